package web

import (
	"context"
	"time"
)

// The alert and notification actions components ask about; the names are the use-case
// layer's.
const (
	CanHandleAlerts   = "alert.handle"
	CanManageChannels = "channel.manage"
	CanTestChannel    = "channel.test"
)

// AlertVM is one alert as a card, a history row and the alert's own page show it.
type AlertVM struct {
	ID int64
	// Rule names the check that raised it, such as "wal-lag".
	Rule string
	// Severity is critical, warning or info; State firing, acknowledged or resolved.
	Severity, State string
	// Title is one line; Explanation what is wrong; Action what to do.
	Title, Explanation, Action string
	// SourceID and SourceName link the source; SourceID 0 is the installation itself.
	SourceID   int64
	SourceName string
	// Evidence is what the rule saw, in the order to show.
	Evidence []EvidenceVM
	// FirstAt is when the condition was first seen; LastSeenAt when it last held.
	FirstAt, LastSeenAt time.Time
	// AckedBy, AckedAt and AckComment are set once someone acknowledged it.
	AckedBy    string
	AckedAt    time.Time
	AckComment string
	// ResolvedBy, ResolvedAt and ResolveComment are set once it resolved; ResolvedBy
	// is ResolvedByItself when its condition cleared.
	ResolvedBy     string
	ResolvedAt     time.Time
	ResolveComment string
}

// ResolvedByItself is the ResolvedBy of an alert whose condition cleared.
const ResolvedByItself = "backstop"

// EvidenceVM is one fact an alert's rule saw.
type EvidenceVM struct{ Key, Value string }

// AlertNoteVM is a message shown in a card after an action on it: what happened, or why
// it was refused (someone else acknowledged or resolved it first).
type AlertNoteVM struct {
	// Error is set for a refused action.
	Error   bool
	Message string
}

// AlertsVM is the on-call page: open alerts, worst first then oldest, and one page of
// the resolved ones, newest first.
type AlertsVM struct {
	Now  time.Time
	Open []AlertVM
	// History is one page of resolved alerts; Before is the cursor it was read with (0
	// for the newest), Older the cursor of the next page (0 when there is none).
	History       []AlertVM
	Before, Older int64
	// Version fingerprints what the live part shows. The page polls with it and the
	// server answers 204 No Content while it still holds, so that the list (and the
	// comments being typed into it) is replaced only when something changed.
	Version string
}

// AlertPageVM is one alert's page.
type AlertPageVM struct {
	Now   time.Time
	Alert AlertVM
}

// NavAlertsVM is the navigation's open-alert count.
type NavAlertsVM struct {
	// Critical, Warning and Info count the open alerts of each severity.
	Critical, Warning, Info int
	// OOB marks the count for an out-of-band swap, in answers to an htmx action.
	OOB bool
}

type navAlertsKey struct{}

// WithNavAlerts returns ctx carrying the open-alert count that the layout shows in the
// navigation. Without it the navigation shows no count.
func WithNavAlerts(ctx context.Context, vm NavAlertsVM) context.Context {
	return context.WithValue(ctx, navAlertsKey{}, vm)
}

func navAlertsFrom(ctx context.Context) (NavAlertsVM, bool) {
	vm, ok := ctx.Value(navAlertsKey{}).(NavAlertsVM)
	return vm, ok
}

// ChannelsVM is the notification settings page.
type ChannelsVM struct {
	Now      time.Time
	Channels []ChannelVM
	// Webhook, Slack and Email are the add forms, one per kind: empty, or refilled
	// with their errors after a refused attempt.
	Webhook, Slack, Email ChannelFormVM
	// Created names a channel just added; CreatedSecret is its generated webhook
	// signing secret, shown this once.
	Created       string
	CreatedSecret string
}

// ChannelVM is one notification channel with its latest delivery attempts.
type ChannelVM struct {
	Name string
	// Kind is webhook, slack or email; MinSeverity the least severe alert it gets.
	Kind, MinSeverity string
	Enabled           bool
	CreatedAt         time.Time
	// Deliveries are the newest attempts, newest first.
	Deliveries []DeliveryVM
}

// DeliveryVM is one attempt to notify a channel.
type DeliveryVM struct {
	At time.Time
	// Event is firing, acknowledged, resolved or test.
	Event   string
	AlertID int64
	Attempt int
	// Error is what went wrong; empty for a delivered notification.
	Error string
}

// ChannelFormVM is the add form of one kind of channel. Secrets (a webhook's secret, an
// SMTP password) are never refilled.
type ChannelFormVM struct {
	Name, MinSeverity string
	// URL is a webhook's or Slack's address.
	URL string
	// Addr, From, To (comma-separated), Username and TLS are an email channel's.
	Addr, From, To, Username, TLS string
	// Errors holds messages by field: name, url, secret, addr, from, to, username,
	// password, tls, min_severity, and "" for what belongs to no field.
	Errors map[string]string
}
