package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ConfigError is one invalid field of a channel's configuration. Validation
// functions join one per bad field with errors.Join, so that a form can show
// each next to its field:
//
//	var ce *notify.ConfigError
//	if errors.As(err, &ce) { ... ce.Field ... }
type ConfigError struct {
	Channel string // the channel's name, as given
	Field   string // "name", "url", "secret", "addr", "from", "to", "username", "password", "tls"
	Problem string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("notify: channel %q: %s: %s", e.Channel, e.Field, e.Problem)
}

// MaxNameLen is the longest channel name accepted, in bytes.
const MaxNameLen = 100

func validateName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return &ConfigError{Channel: name, Field: "name", Problem: "is required"}
	case len(name) > MaxNameLen:
		return &ConfigError{Channel: name, Field: "name", Problem: fmt.Sprintf("is longer than %d bytes", MaxNameLen)}
	case oneLine(name) != name:
		return &ConfigError{Channel: name, Field: "name", Problem: "must be one line without control characters"}
	}
	return nil
}

// validateURL accepts only absolute http and https URLs with a host. Its
// errors never repeat the URL, which may hold a token.
func validateURL(channel, field, raw string) error {
	bad := func(problem string) error {
		return &ConfigError{Channel: channel, Field: field, Problem: problem}
	}
	if raw == "" {
		return bad("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return bad("must start with http:// or https://")
		}
		return bad(fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	}
	if u.Host == "" || u.Hostname() == "" {
		return bad("has no host")
	}
	return nil
}

// redactURL keeps a URL's scheme and host and hides the rest, which for
// Slack and many webhooks is the secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(url)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/…"
	}
	return s
}

// redactErr returns err with raw replaced by its redacted form wherever it
// shows, keeping err in the chain for errors.Is and errors.As.
func redactErr(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	if raw == "" || !strings.Contains(err.Error(), raw) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), raw, redactURL(raw)), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
