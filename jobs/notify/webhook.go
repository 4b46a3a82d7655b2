package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request; see the package documentation.
const (
	SignatureHeader = "X-Backstop-Signature"
	TimestampHeader = "X-Backstop-Timestamp"
	EventIDHeader   = "X-Backstop-Event-Id"
)

// MinSecretLen is the shortest webhook secret accepted, in bytes.
const MinSecretLen = 16

// ErrBadSignature is wrapped by every error of [VerifySignature].
var ErrBadSignature = errors.New("notify: bad webhook signature")

// WebhookPayload is the JSON body of a webhook request, version 1. Receivers
// written in Go may decode into it.
type WebhookPayload struct {
	Version     int               `json:"version"`
	ID          string            `json:"id"`
	AlertID     int64             `json:"alert_id"`
	Kind        string            `json:"kind"`
	Rule        string            `json:"rule"`
	Severity    string            `json:"severity"`
	Source      string            `json:"source"`
	Title       string            `json:"title"`
	Explanation string            `json:"explanation"`
	Action      string            `json:"action"`
	Evidence    map[string]string `json:"evidence"`
	At          time.Time         `json:"at"`
	URL         string            `json:"url"`
}

// PayloadVersion is the version of [WebhookPayload] this package sends.
const PayloadVersion = 1

type webhook struct {
	name   string
	url    string
	secret []byte
	client *http.Client
	err    error // invalid configuration, returned by every Send
}

// NewWebhook returns a channel that POSTs each event as a signed JSON body
// (see the package documentation) to url. A nil client means one of the
// package's own (proxy from the environment, no redirects followed). An
// invalid configuration (see [ValidateWebhook]) is not retried: every Send
// returns the validation error.
func NewWebhook(name, url string, secret []byte, client *http.Client) Channel {
	return &webhook{
		name:   name,
		url:    url,
		secret: bytes.Clone(secret),
		client: orDefaultClient(client),
		err:    ValidateWebhook(name, url, secret),
	}
}

// ValidateWebhook checks a webhook channel's configuration: a name, an
// absolute http or https URL, and a secret of at least [MinSecretLen] bytes.
// The error names every bad field (see [ConfigError]).
func ValidateWebhook(name, url string, secret []byte) error {
	var errs []error
	errs = append(errs, validateName(name))
	errs = append(errs, validateURL(name, "url", url))
	if len(secret) < MinSecretLen {
		errs = append(errs, &ConfigError{Channel: name, Field: "secret",
			Problem: fmt.Sprintf("must be at least %d bytes, got %d", MinSecretLen, len(secret))})
	}
	return errors.Join(errs...)
}

// NewWebhookSecret returns a fresh random secret to offer when a webhook
// channel is created: 64 hex characters, used as the HMAC key byte for byte
// ([]byte(secret)), so that it can be pasted into a receiver's configuration.
func NewWebhookSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

func (w *webhook) Name() string { return w.name }

func (w *webhook) Send(ctx context.Context, e Event) error {
	if w.err != nil {
		return Permanent(w.err)
	}
	evidence := e.Evidence
	if evidence == nil {
		evidence = map[string]string{}
	}
	body, err := json.Marshal(WebhookPayload{
		Version:     PayloadVersion,
		ID:          e.ID,
		AlertID:     e.AlertID,
		Kind:        e.Kind,
		Rule:        e.Rule,
		Severity:    e.Severity,
		Source:      e.Source,
		Title:       e.Title,
		Explanation: e.Explanation,
		Action:      e.Action,
		Evidence:    evidence,
		At:          e.At.UTC(),
		URL:         e.URL,
	})
	if err != nil {
		return Permanent(fmt.Errorf("webhook %q: encode: %w", w.name, err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(SignatureHeader, Signature(w.secret, body))
	h.Set(TimestampHeader, strconv.FormatInt(time.Now().Unix(), 10))
	h.Set(EventIDHeader, e.ID)
	if err := post(ctx, w.client, w.url, body, h); err != nil {
		return fmt.Errorf("webhook %q: %w", w.name, err)
	}
	return nil
}

// Signature returns the X-Backstop-Signature value for body:
// "sha256=" and the hex HMAC-SHA256 of body keyed with secret.
func Signature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a webhook request's X-Backstop-Signature header
// against the raw body and the channel's secret, in constant time. It
// returns nil when they match and an error wrapping [ErrBadSignature]
// otherwise, including for an empty secret.
func VerifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return fmt.Errorf("%w: header does not start with sha256=", ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: not %d hex-encoded bytes", ErrBadSignature, sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: does not match the body", ErrBadSignature)
	}
	return nil
}

// post sends one POST and turns a non-2xx answer into a *StatusError. Errors
// never carry the URL's path or query, which often hold a token.
func post(ctx context.Context, client *http.Client, rawURL string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("build request for %s: %w", redactURL(rawURL), redactErr(err, rawURL)))
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "Backstop-Notify/1")
	resp, err := client.Do(req)
	if err != nil {
		return redactErr(err, rawURL)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Read a little more so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       truncate(oneLine(string(head)), 200),
	}
}

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP date;
// it returns 0 for an absent, unreadable or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap before converting so that a huge value cannot overflow.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

func orDefaultClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	// A transport of its own: idle connections closed elsewhere in the
	// process (http.DefaultTransport's) do not break a delivery.
	transport, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		transport = transport.Clone()
	} else {
		transport = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	return &http.Client{
		Transport: transport,
		// A webhook that redirects is misconfigured: say so rather than
		// resend the body somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
