package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Channel is where alert notifications go: a generic webhook, a Slack-compatible webhook
// or email. Its settings hold secrets (a signing key, a Slack URL, an SMTP password) and
// are sealed in the catalog like sources' connection strings.
type Channel struct {
	ID   int64
	Name string
	// Kind is "webhook", "slack" or "email".
	Kind string
	// Config is the channel's settings as JSON, opened.
	Config []byte
	// MinSeverity: alerts below it are not sent.
	MinSeverity string
	Enabled     bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func channelAD(name string) []byte { return []byte("channel:" + name) }

func (s *Store) sealConfig(name string, config []byte) (string, error) {
	if s.sealer == nil {
		return string(config), nil
	}
	b, err := s.sealer.Seal(config, channelAD(name))
	if err != nil {
		return "", fmt.Errorf("seal channel settings: %w", err)
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(b), nil
}

func (s *Store) openConfig(name, stored string) ([]byte, error) {
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return []byte(stored), nil
	}
	if s.sealer == nil {
		return nil, fmt.Errorf("channel %q: its settings are sealed and this process has no key", name)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("channel %q: %w", name, ErrSecretsUnreadable)
	}
	return s.sealer.Open(b, channelAD(name))
}

const channelColumns = `id, name, kind, config, min_severity, enabled, created_at, updated_at`

func (s *Store) scanChannel(r rowScanner) (Channel, error) {
	var c Channel
	var config string
	err := r.Scan(&c.ID, &c.Name, &c.Kind, &config, &c.MinSeverity, &c.Enabled, scanTime(&c.CreatedAt), scanTime(&c.UpdatedAt))
	if err != nil {
		return c, err
	}
	c.Config, err = s.openConfig(c.Name, config)
	return c, err
}

// CreateChannel stores a new channel; a name in use is a *ValidationError on "name".
func (s *Store) CreateChannel(ctx context.Context, c Channel) (Channel, error) {
	config, err := s.sealConfig(c.Name, c.Config)
	if err != nil {
		return Channel{}, err
	}
	now := formatTime(s.clock())
	out, err := s.scanChannel(s.wdb.QueryRowContext(ctx, `INSERT INTO notification_channels
		(name, kind, config, min_severity, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+channelColumns,
		c.Name, c.Kind, config, c.MinSeverity, c.Enabled, now, now))
	if isUnique(err, "notification_channels.name") {
		return Channel{}, &ValidationError{Field: "name", Message: fmt.Sprintf("A channel named %q already exists.", c.Name)}
	}
	if err != nil {
		return Channel{}, fmt.Errorf("create channel %q: %w", c.Name, err)
	}
	return out, nil
}

// Channels returns every channel, by name.
func (s *Store) Channels(ctx context.Context) ([]Channel, error) {
	cs, err := queryAll(ctx, s.db, s.scanChannel, `SELECT `+channelColumns+` FROM notification_channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	return cs, nil
}

// ChannelByName returns the channel named name.
func (s *Store) ChannelByName(ctx context.Context, name string) (Channel, error) {
	c, err := s.scanChannel(s.db.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM notification_channels WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, fmt.Errorf("channel %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Channel{}, fmt.Errorf("channel %q: %w", name, err)
	}
	return c, nil
}

// DeleteChannel removes channel id and its deliveries.
func (s *Store) DeleteChannel(ctx context.Context, id int64) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM notification_channels WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete channel %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("channel %d: %w", id, ErrNotFound)
	}
	return nil
}

// ChannelsVersion changes whenever a channel is added, changed or removed.
func (s *Store) ChannelsVersion(ctx context.Context) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT count(*) || '/' || coalesce(max(id), 0) || '/' || coalesce(max(updated_at), '')
		FROM notification_channels`).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("channels version: %w", err)
	}
	return v, nil
}

// Delivery is one attempt to notify a channel.
type Delivery struct {
	ID        int64
	ChannelID int64
	AlertID   int64
	Event     string
	Attempt   int
	At        time.Time
	Error     string
}

// RecordDelivery records an attempt to notify channel name (unknown names are ignored:
// the channel was removed meanwhile).
func (s *Store) RecordDelivery(ctx context.Context, channel string, d Delivery) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO notification_deliveries (channel_id, alert_id, event, attempt, at, error)
		SELECT id, (SELECT id FROM alerts WHERE id = ?), ?, ?, ?, ? FROM notification_channels WHERE name = ?`,
		nullID(d.AlertID), d.Event, d.Attempt, formatTime(s.clock()), nullString(d.Error), channel)
	if err != nil {
		return fmt.Errorf("record delivery to %s: %w", channel, err)
	}
	return nil
}

// Deliveries returns channel id's newest attempts, newest first.
func (s *Store) Deliveries(ctx context.Context, channelID int64, limit int) ([]Delivery, error) {
	ds, err := queryAll(ctx, s.db, func(r rowScanner) (Delivery, error) {
		var d Delivery
		err := r.Scan(&d.ID, &d.ChannelID, orZero(&d.AlertID), &d.Event, &d.Attempt, scanTime(&d.At), orZero(&d.Error))
		return d, err
	}, `SELECT id, channel_id, alert_id, event, attempt, at, error FROM notification_deliveries WHERE channel_id = ?
		ORDER BY id DESC LIMIT ?`, channelID, limit)
	if err != nil {
		return nil, fmt.Errorf("deliveries of channel %d: %w", channelID, err)
	}
	return ds, nil
}
