package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWebhookSignedPayload(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	ch := NewWebhook("ops-hook", rc.URL+"/hooks/backstop", testSecret, nil)
	e := sampleEvent()
	before := time.Now().Unix()
	if err := ch.Send(t.Context(), e); err != nil {
		t.Fatalf("Send() = %v, want nil", err)
	}
	got := rc.next(t)

	if err := VerifySignature(testSecret, got.body, got.header.Get(SignatureHeader)); err != nil {
		t.Errorf("VerifySignature(secret, body, %q) = %v, want nil", got.header.Get(SignatureHeader), err)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if id := got.header.Get(EventIDHeader); id != e.ID {
		t.Errorf("%s = %q, want %q", EventIDHeader, id, e.ID)
	}
	ts, err := strconv.ParseInt(got.header.Get(TimestampHeader), 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("%s = %q, want the Unix time of sending", TimestampHeader, got.header.Get(TimestampHeader))
	}

	// The body, field by field, as any receiver sees it.
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got.body)
	}
	want := map[string]any{
		"version":     1.0,
		"id":          "alert-42-firing-1",
		"alert_id":    42.0,
		"kind":        "firing",
		"rule":        "wal-lag",
		"severity":    "critical",
		"source":      "orders-db",
		"title":       e.Title,
		"explanation": e.Explanation,
		"action":      e.Action,
		"evidence":    map[string]any{"lag_seconds": "540", "lag_bytes": "83886080"},
		"at":          "2026-11-25T09:41:07Z",
		"url":         "https://backstop.example/alerts/42",
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("webhook body mismatch (-want +got):\n%s", diff)
	}

	t.Run("tampered body fails", func(t *testing.T) {
		tampered := []byte(strings.Replace(string(got.body), `"critical"`, `"info"`, 1))
		err := VerifySignature(testSecret, tampered, got.header.Get(SignatureHeader))
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifySignature(secret, tampered, sig) = %v, want ErrBadSignature", err)
		}
	})
	t.Run("other secret fails", func(t *testing.T) {
		err := VerifySignature([]byte("another secret of enough length"), got.body, got.header.Get(SignatureHeader))
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifySignature(other, body, sig) = %v, want ErrBadSignature", err)
		}
	})
}

func TestWebhookNilEvidenceIsEmptyObject(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	e := sampleEvent()
	e.Evidence, e.Source, e.URL = nil, "", ""
	if err := NewWebhook("h", rc.URL, testSecret, nil).Send(t.Context(), e); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	var p WebhookPayload
	if err := json.Unmarshal(rc.next(t).body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Evidence == nil || len(p.Evidence) != 0 || p.Source != "" || p.URL != "" {
		t.Errorf("payload evidence, source, url = %v, %q, %q; want {}, \"\", \"\"", p.Evidence, p.Source, p.URL)
	}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"x"}`)
	good := Signature(testSecret, body)
	tests := []struct {
		name   string
		secret []byte
		header string
		ok     bool
	}{
		{"valid", testSecret, good, true},
		{"surrounding space", testSecret, " " + good + " ", true},
		{"no prefix", testSecret, strings.TrimPrefix(good, "sha256="), false},
		{"other algorithm", testSecret, "sha1=" + strings.TrimPrefix(good, "sha256="), false},
		{"not hex", testSecret, "sha256=zz", false},
		{"short", testSecret, good[:len(good)-2], false},
		{"upper-case hex", testSecret, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), true},
		{"empty header", testSecret, "", false},
		{"empty secret", nil, Signature(nil, body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifySignature(tt.secret, body, tt.header)
			if (err == nil) != tt.ok {
				t.Errorf("VerifySignature(%q, body, %q) = %v, want ok %v", tt.secret, tt.header, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifySignature error %v does not wrap ErrBadSignature", err)
			}
		})
	}
}

func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("secret-secret-secret"), []byte(`{"id":"x"}`), "sha256=00")
	f.Add([]byte("k"), []byte{}, "")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		err := VerifySignature(secret, body, header)
		if len(secret) > 0 {
			if err := VerifySignature(secret, body, Signature(secret, body)); err != nil {
				t.Fatalf("VerifySignature of its own Signature = %v", err)
			}
			if err == nil && !strings.EqualFold(strings.TrimSpace(header), Signature(secret, body)) {
				t.Fatalf("VerifySignature accepted %q, want only %q", header, Signature(secret, body))
			}
		} else if err == nil {
			t.Fatal("VerifySignature with an empty secret = nil, want an error")
		}
	})
}

func TestWebhookErrorsHideURLPath(t *testing.T) {
	t.Parallel()
	// Each attempt fails with a network error, which net/http reports with
	// the URL.
	url := "http://" + hangingUp(t) + "/services/T000/B000/sekrit-token"
	for _, ch := range []Channel{NewWebhook("h", url, testSecret, nil), NewSlack("s", url, nil)} {
		err := ch.Send(t.Context(), sampleEvent())
		if err == nil {
			t.Fatalf("%s: Send to a server that hangs up = nil, want an error", ch.Name())
		}
		if strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: Send error %q shows the URL's token", ch.Name(), err)
		}
		if ok, _ := retryable(err); !ok {
			t.Errorf("%s: a network error %v is not retryable", ch.Name(), err)
		}
	}
}

func TestWebhookRedirectIsFinal(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	err := NewWebhook("h", rc.URL, testSecret, nil).Send(t.Context(), sampleEvent())
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("Send() = %v, want a StatusError 301", err)
	}
	if ok, _ := retryable(err); ok {
		t.Errorf("retryable(%v) = true, want false", err)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (no redirect followed)", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"99999999999999999999", 0}, // does not parse as int64
		{"9999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "Wed, 25 Nov 2026 09:01:30 GMT", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("parseRetryAfter(%q) = %v, want within [0, 24h]", s, d)
		}
	})
}

func TestInvalidChannelFailsEverySendForGood(t *testing.T) {
	t.Parallel()
	ch := NewWebhook("h", "ftp://example.com/x", []byte("short"), nil)
	err := ch.Send(context.Background(), sampleEvent())
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Send() = %v, want a ConfigError", err)
	}
	if ok, _ := retryable(err); ok {
		t.Errorf("retryable(%v) = true, want false", err)
	}
	for _, field := range []string{"url:", "secret:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Send() = %q, want it to name the field %s", err, field)
		}
	}
}
