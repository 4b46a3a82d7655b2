package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store"
)

// Channel kinds.
const (
	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"
	ChannelEmail   = "email"
)

// ChannelConfig is a notification channel's settings, as stored (sealed) in the catalog.
type ChannelConfig struct {
	// URL is a webhook's or a Slack incoming webhook's address.
	URL string `json:"url,omitempty"`
	// Secret is a webhook's signing key (its bytes are the HMAC key).
	Secret string `json:"secret,omitempty"`
	// SMTP is an email channel's server and addresses.
	SMTP *notify.SMTPConfig `json:"smtp,omitempty"`
}

// ValidateChannel checks a channel's settings, naming each field at fault.
func ValidateChannel(name, kind string, cfg ChannelConfig) error {
	switch kind {
	case ChannelWebhook:
		return notify.ValidateWebhook(name, cfg.URL, []byte(cfg.Secret))
	case ChannelSlack:
		return notify.ValidateSlack(name, cfg.URL)
	case ChannelEmail:
		if cfg.SMTP == nil {
			return &notify.ConfigError{Channel: name, Field: "smtp", Problem: "an email channel needs an SMTP server"}
		}
		return notify.ValidateEmail(name, *cfg.SMTP)
	}
	return &notify.ConfigError{Channel: name, Field: "kind", Problem: fmt.Sprintf("unknown kind %q (webhook, slack or email)", kind)}
}

// BuildChannel returns the channel a stored row describes.
func BuildChannel(c store.Channel) (notify.Channel, error) {
	var cfg ChannelConfig
	if err := json.Unmarshal(c.Config, &cfg); err != nil {
		return nil, fmt.Errorf("channel %s: settings: %w", c.Name, err)
	}
	if err := ValidateChannel(c.Name, c.Kind, cfg); err != nil {
		return nil, err
	}
	switch c.Kind {
	case ChannelWebhook:
		return notify.NewWebhook(c.Name, cfg.URL, []byte(cfg.Secret), nil), nil
	case ChannelSlack:
		return notify.NewSlack(c.Name, cfg.URL, nil), nil
	}
	return notify.NewEmail(c.Name, *cfg.SMTP), nil
}

// Notifier sends alerts to the enabled channels of the catalog: one dispatcher (a queue
// and a worker per channel, with retries), rebuilt when the channels change. Every
// attempt is recorded as a delivery.
type Notifier struct {
	store *store.Store
	log   *slog.Logger
	// BaseURL is the dashboard's address, for links in notifications ("" for none).
	BaseURL string
	// Options tune the dispatcher (tests shorten its delays).
	Options notify.DispatchOptions

	mu       sync.Mutex
	d        *notify.Dispatcher
	version  string
	severity map[string]string // channel → its minimum severity
	records  chan record
	wg       sync.WaitGroup
}

type record struct {
	channel string
	d       store.Delivery
}

// NewNotifier returns a notifier over st's channels; Reload (or Run) loads them.
func NewNotifier(st *store.Store, log *slog.Logger) *Notifier {
	n := &Notifier{store: st, log: log, records: make(chan record, 256)}
	n.wg.Add(1)
	go n.recordLoop()
	return n
}

// recordLoop writes deliveries to the catalog, off the dispatcher's goroutines.
func (n *Notifier) recordLoop() {
	defer n.wg.Done()
	for r := range n.records {
		if err := n.store.RecordDelivery(context.Background(), r.channel, r.d); err != nil {
			n.log.Warn("record a notification", "channel", r.channel, "err", err)
		}
	}
}

// Run reloads the channels every interval until ctx is done, then closes the dispatcher,
// giving queued notifications a few seconds.
func (n *Notifier) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.Reload(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("notification channels", "err", err)
		}
		select {
		case <-ctx.Done():
			n.Close()
			return
		case <-t.C:
		}
	}
}

// Reload builds the dispatcher again if the channels changed.
func (n *Notifier) Reload(ctx context.Context) error {
	v, err := n.store.ChannelsVersion(ctx)
	if err != nil {
		return err
	}
	n.mu.Lock()
	same := v == n.version && n.d != nil
	n.mu.Unlock()
	if same {
		return nil
	}
	rows, err := n.store.Channels(ctx)
	if err != nil {
		return err
	}
	var chans []notify.Channel
	severity := map[string]string{}
	var errs []error
	for _, c := range rows {
		if !c.Enabled {
			continue
		}
		ch, err := BuildChannel(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chans = append(chans, ch)
		severity[c.Name] = c.MinSeverity
	}
	opts := n.Options
	opts.OnResult = func(channel string, e notify.Event, attempt int, err error) {
		d := store.Delivery{AlertID: e.AlertID, Event: e.Kind, Attempt: attempt}
		if err != nil {
			d.Error = err.Error()
		}
		select {
		case n.records <- record{channel, d}:
		default: // the catalog is far behind: the dispatcher's stats still count it
		}
	}
	d := notify.NewDispatcher(n.log, opts, chans...)
	n.mu.Lock()
	old := n.d
	n.d, n.version, n.severity = d, v, severity
	n.mu.Unlock()
	if old != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			old.Close(ctx) //nolint:errcheck // what it could not send is logged by it
		}()
	}
	return errors.Join(errs...)
}

// Close stops the dispatcher after giving queued notifications a few seconds.
func (n *Notifier) Close() {
	n.mu.Lock()
	d := n.d
	n.d = nil
	n.mu.Unlock()
	if d != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx) //nolint:errcheck // logged by the dispatcher
	}
}

// Changes sends what the evaluator opened and resolved.
func (n *Notifier) Changes(changes []store.AlertChange) {
	for _, c := range changes {
		kind := notify.KindResolved
		if c.Opened {
			kind = notify.KindFiring
		}
		n.Alert(c.Alert, kind)
	}
}

// Alert sends one transition of alert a (notify.KindFiring, KindAcknowledged or
// KindResolved) to every channel whose minimum severity it reaches.
func (n *Notifier) Alert(a store.Alert, kind string) {
	n.mu.Lock()
	d, severity := n.d, n.severity
	n.mu.Unlock()
	if d == nil {
		return
	}
	src := a.Evidence["source"]
	e := notify.Event{ID: fmt.Sprintf("alert-%d-%s", a.ID, kind), AlertID: a.ID, Kind: kind, Rule: a.Rule, Severity: a.Severity,
		Source: src, Title: a.Title, Explanation: a.Explanation, Action: a.Action, Evidence: a.Evidence, At: time.Now().UTC()}
	if n.BaseURL != "" {
		e.URL = strings.TrimSuffix(n.BaseURL, "/") + fmt.Sprintf("/alerts/%d", a.ID)
	}
	for name, min := range severity {
		if store.SeverityRank(a.Severity) <= store.SeverityRank(min) {
			d.NotifyChannel(name, e)
		}
	}
}

// Test sends a test notification to the channel named name, now, without retries, and
// returns what went wrong.
func (n *Notifier) Test(ctx context.Context, name string) error {
	return SendTest(ctx, n.store, n.log, name)
}

// SendTest sends a test notification to st's channel named name, now, without retries,
// records the attempt, and returns what went wrong.
func SendTest(ctx context.Context, st *store.Store, log *slog.Logger, name string) error {
	c, err := st.ChannelByName(ctx, name)
	if err != nil {
		return err
	}
	ch, err := BuildChannel(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	e := notify.TestEvent(name, time.Now().UTC())
	err = ch.Send(ctx, e)
	d := store.Delivery{Event: notify.KindTest, Attempt: 1}
	if err != nil {
		d.Error = err.Error()
	}
	if rerr := st.RecordDelivery(ctx, name, d); rerr != nil {
		log.Warn("record a notification", "channel", name, "err", rerr)
	}
	return err
}
