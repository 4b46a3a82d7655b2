package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store"
)

// TestNotifierEndToEnd: alerts the evaluator opens reach a webhook stored in the catalog,
// signed with its key, while a failing webhook beside it is retried without holding the
// first one up; every attempt is recorded as a delivery.
func TestNotifierEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateSource(ctx, store.SourceParams{Name: "quiet", DSN: "postgres://x@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000001", PGVersion: 150004}); err != nil {
		t.Fatal(err)
	}

	secret := notify.NewWebhookSecret()
	got := make(chan notify.WebhookPayload, 16)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifySignature([]byte(secret), body, r.Header.Get(notify.SignatureHeader)); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got <- p
	}))
	defer good.Close()
	var failed atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer bad.Close()
	for _, c := range []struct{ name, url, secret string }{{"pager", good.URL, secret}, {"broken", bad.URL, notify.NewWebhookSecret()}} {
		config, _ := json.Marshal(jobs.ChannelConfig{URL: c.url, Secret: c.secret})
		if _, err := st.CreateChannel(ctx, store.Channel{Name: c.name, Kind: jobs.ChannelWebhook, Config: config,
			MinSeverity: store.SeverityWarning, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}

	n := jobs.NewNotifier(st, testLogger(t))
	n.BaseURL = "https://backstop.example.net"
	n.Options = notify.DispatchOptions{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond, MaxAttempts: 3}
	if err := n.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ev := jobs.NewEvaluator(st, nil, testLogger(t))
	ev.Notify = n.Changes
	changes, err := ev.Evaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 {
		t.Fatal("a source never backed up nor archived opened no alert")
	}
	select {
	case p := <-got:
		if p.Kind != notify.KindFiring || p.Source != "quiet" || p.AlertID == 0 || p.URL == "" || p.Explanation == "" {
			t.Errorf("webhook payload = %+v, want a firing alert of quiet with its explanation and link", p)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the webhook received nothing")
	}
	// The failing channel is retried up to its limit, and every attempt recorded.
	waitFor(t, "the failing webhook's attempts", 30*time.Second, func() (bool, error) {
		chs, err := st.Channels(ctx)
		if err != nil {
			return false, err
		}
		for _, c := range chs {
			if c.Name != "broken" {
				continue
			}
			ds, err := st.Deliveries(ctx, c.ID, 100)
			if err != nil {
				return false, err
			}
			for _, d := range ds {
				if d.Attempt == 3 && d.Error != "" {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if failed.Load() < 3 {
		t.Errorf("the failing webhook was called %d times, want 3 attempts per alert", failed.Load())
	}
	// A test notification goes out at once, and says what failed.
	if err := n.Test(ctx, "broken"); err == nil {
		t.Errorf("Test(broken) = nil, want the 502")
	}
	if err := n.Test(ctx, "pager"); err != nil {
		t.Errorf("Test(pager) = %v", err)
	}
}
