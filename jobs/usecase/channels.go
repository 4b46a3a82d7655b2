package usecase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store"
)

// Notifier sends alert transitions to the notification channels and tests a channel
// (jobs.Notifier in serve; nil in CLI commands, which notify nobody).
type Notifier interface {
	Alert(a store.Alert, kind string)
	Test(ctx context.Context, name string) error
}

// SetNotifier makes s tell n about the alert transitions people make (acknowledgements
// and resolutions by hand) and lets TestChannel reach n.
func (s *Service) SetNotifier(n Notifier) { s.notifier = n }

// ChannelInput is a notification channel as a person gives it.
type ChannelInput struct {
	Name string
	// Kind is jobs.ChannelWebhook, ChannelSlack or ChannelEmail.
	Kind        string
	Config      jobs.ChannelConfig
	MinSeverity string
}

// AddChannel checks and stores a notification channel. A webhook without a secret gets a
// new one, returned once in the stored config (the receiver needs it to check signatures).
func (s *Service) AddChannel(ctx context.Context, a Actor, in ChannelInput) (store.Channel, jobs.ChannelConfig, error) {
	if err := Authorize(a, ManageChannels); err != nil {
		return store.Channel{}, jobs.ChannelConfig{}, err
	}
	if in.MinSeverity == "" {
		in.MinSeverity = store.SeverityWarning
	}
	if in.Kind == jobs.ChannelWebhook && in.Config.Secret == "" {
		in.Config.Secret = notify.NewWebhookSecret()
	}
	fields := map[string]string{}
	if err := jobs.ValidateChannel(in.Name, in.Kind, in.Config); err != nil {
		var ce *notify.ConfigError
		for _, e := range unjoin(err) {
			if errors.As(e, &ce) {
				fields[ce.Field] = Sentence(ce.Problem)
			} else {
				fields["channel"] = Sentence(e.Error())
			}
		}
	}
	switch in.MinSeverity {
	case store.SeverityCritical, store.SeverityWarning, store.SeverityInfo:
	default:
		fields["min_severity"] = fmt.Sprintf("Unknown severity %q: critical, warning or info.", in.MinSeverity)
	}
	if len(fields) > 0 {
		return store.Channel{}, jobs.ChannelConfig{}, &InputError{Fields: fields}
	}
	config, err := json.Marshal(in.Config)
	if err != nil {
		return store.Channel{}, jobs.ChannelConfig{}, err
	}
	c, err := s.store.CreateChannel(ctx, store.Channel{Name: in.Name, Kind: in.Kind, Config: config, MinSeverity: in.MinSeverity, Enabled: true})
	if err != nil {
		return store.Channel{}, jobs.ChannelConfig{}, err
	}
	s.audit(ctx, a, "channel.add", in.Name, map[string]any{"kind": in.Kind, "min_severity": in.MinSeverity})
	return c, in.Config, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Channels returns the notification channels; their secrets are not returned.
func (s *Service) Channels(ctx context.Context, a Actor) ([]store.Channel, error) {
	if err := Authorize(a, View); err != nil {
		return nil, err
	}
	cs, err := s.store.Channels(ctx)
	for i := range cs {
		cs[i].Config = nil
	}
	return cs, err
}

// RemoveChannel removes the channel named name.
func (s *Service) RemoveChannel(ctx context.Context, a Actor, name string) error {
	if err := Authorize(a, ManageChannels); err != nil {
		return err
	}
	c, err := s.store.ChannelByName(ctx, name)
	if err != nil {
		return err
	}
	if err := s.store.DeleteChannel(ctx, c.ID); err != nil {
		return err
	}
	s.audit(ctx, a, "channel.remove", name, nil)
	return nil
}

// TestChannel sends a test notification to the channel named name now and returns what
// went wrong, in words.
func (s *Service) TestChannel(ctx context.Context, a Actor, name string) error {
	if err := Authorize(a, TestChannel); err != nil {
		return err
	}
	if _, err := s.store.ChannelByName(ctx, name); err != nil {
		return err
	}
	var err error
	if s.notifier != nil {
		err = s.notifier.Test(ctx, name)
	} else {
		err = jobs.SendTest(ctx, s.store, s.log, name)
	}
	s.audit(ctx, a, "channel.test", name, map[string]any{"ok": err == nil})
	return err
}
