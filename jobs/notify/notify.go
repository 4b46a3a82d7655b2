package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Event kinds.
const (
	KindFiring       = "firing"
	KindAcknowledged = "acknowledged"
	KindResolved     = "resolved"
	KindTest         = "test"
)

// Event is what a channel is told: one transition of one alert.
type Event struct {
	ID          string // unique per (alert, transition), for receivers to de-duplicate
	AlertID     int64
	Kind        string // KindFiring, KindAcknowledged, KindResolved or KindTest
	Rule        string // e.g. "wal-lag"
	Severity    string // "critical", "warning", "info"
	Source      string // source name, "" for installation-wide alerts
	Title       string // one line
	Explanation string // what it means, in plain words
	Action      string // what to do, in plain words
	Evidence    map[string]string
	At          time.Time
	URL         string // link to the alert in the dashboard, "" if unknown
}

// Channel delivers events to one destination. Send makes one attempt and
// returns when it is done or ctx is done; retrying is the Dispatcher's job.
// A Channel must be safe for concurrent use: the Dispatcher's worker and
// [Dispatcher.Test] may call Send at the same time.
type Channel interface {
	Name() string
	Send(ctx context.Context, e Event) error
}

var (
	// ErrUndelivered is wrapped by every error that [DispatchOptions].OnResult
	// receives for an event the Dispatcher has stopped trying to deliver: it
	// marks the final result. Errors of attempts that will be retried do not
	// wrap it.
	ErrUndelivered = errors.New("notify: event not delivered")
	// ErrQueueFull is the final result of an event dropped, oldest first,
	// from a channel's full queue. It wraps ErrUndelivered.
	ErrQueueFull = fmt.Errorf("%w: dropped from a full queue", ErrUndelivered)
	// ErrClosed is the final result of an event the Dispatcher was still
	// holding when Close gave up, or that was passed to Notify after Close.
	// It wraps ErrUndelivered.
	ErrClosed = fmt.Errorf("%w: dispatcher closed", ErrUndelivered)
	// ErrUnknownChannel is returned by [Dispatcher.Test] for a name no
	// channel has.
	ErrUnknownChannel = errors.New("notify: no such channel")
)

// StatusError is a non-2xx answer from an HTTP channel. Answers 5xx and 429
// are retried, after RetryAfter when the receiver said so; others are final.
type StatusError struct {
	StatusCode int
	RetryAfter time.Duration // from the Retry-After header; 0 when absent
	Body       string        // the start of the answer's body, for the error message
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("receiver answered HTTP %d", e.StatusCode)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (e *StatusError) retryable() bool {
	return e.StatusCode == 429 || e.StatusCode >= 500
}

// Permanent marks err as final: the Dispatcher does not retry it. Channels
// use it for errors that another attempt cannot fix, such as an invalid
// configuration or a receiver refusing the message.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// newEventID returns a random event id with the given prefix, for events the
// caller sent without one.
func newEventID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails
	return prefix + hex.EncodeToString(b[:])
}

// headline is the one line that names an event everywhere: the email's
// subject after "[Backstop] ", Slack's header and fallback text.
func headline(e Event) string {
	sev := strings.ToUpper(orDefault(e.Severity, "alert"))
	title := oneLine(e.Title)
	switch e.Kind {
	case KindFiring, "":
		return sev + ": " + title
	case KindTest:
		return "TEST: " + title
	default:
		return strings.ToUpper(e.Kind) + " (" + strings.ToLower(sev) + "): " + title
	}
}

// sourceLabel is how an event's source is shown to a person.
func sourceLabel(e Event) string {
	if e.Source == "" {
		return "installation-wide"
	}
	return e.Source
}

// evidenceLines returns "key: value" lines in key order.
func evidenceLines(ev map[string]string) []string {
	lines := make([]string, 0, len(ev))
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		lines = append(lines, oneLine(k)+": "+oneLine(ev[k]))
	}
	return lines
}

// oneLine folds every line break and control character of s into a space, so
// that outside text can never start a new header or line of its own.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	}), " ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// truncate cuts s to at most n runes, ending it with "…" when cut.
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
