package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDispatcherRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "database is restarting", http.StatusInternalServerError)
		}
	})
	rs, waits := newResults(), make(noWait, 10)
	d := NewDispatcher(nil, DispatchOptions{MaxAttempts: 5, BaseDelay: time.Second, OnResult: rs.onResult, wait: waits.wait},
		NewWebhook("ops", rc.URL, testSecret, nil))
	e := sampleEvent()
	d.Notify(e)

	for attempt := 1; attempt <= 3; attempt++ {
		r := rs.next(t)
		if r.channel != "ops" || r.attempt != attempt || r.event.ID != e.ID {
			t.Fatalf("OnResult(%q, %q, %d, %v), want (ops, %q, %d, …)", r.channel, r.event.ID, r.attempt, r.err, e.ID, attempt)
		}
		var se *StatusError
		switch {
		case attempt < 3 && (!errors.As(r.err, &se) || se.StatusCode != 500 || errors.Is(r.err, ErrUndelivered)):
			t.Errorf("attempt %d: err = %v, want a retryable StatusError 500", attempt, r.err)
		case attempt == 3 && r.err != nil:
			t.Errorf("attempt 3: err = %v, want nil", r.err)
		}
	}
	// Every retry is the same event, signed the same way.
	for i := 1; i <= 3; i++ {
		got := rc.next(t)
		if err := VerifySignature(testSecret, got.body, got.header.Get(SignatureHeader)); err != nil {
			t.Errorf("request %d: VerifySignature = %v", i, err)
		}
		if id := got.header.Get(EventIDHeader); id != e.ID {
			t.Errorf("request %d: event id %q, want %q", i, id, e.ID)
		}
	}
	closeDispatcher(t, d)

	// Backoff: 1 s then 2 s, each drawn from its upper half.
	delays := waits.all()
	if len(delays) != 2 || delays[0] < 500*time.Millisecond || delays[0] > time.Second ||
		delays[1] < time.Second || delays[1] > 2*time.Second {
		t.Errorf("backoff delays = %v, want [0.5s–1s, 1s–2s]", delays)
	}
	st := d.Stats()["ops"]
	if st.Sent != 1 || st.Retried != 2 || st.Failed != 0 || st.Dropped != 0 || st.LastSentAt.IsZero() ||
		!strings.Contains(st.LastError, "HTTP 500") {
		t.Errorf("Stats()[ops] = %+v, want 1 sent, 2 retried, last error HTTP 500", st)
	}
}

func TestDispatcherGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{MaxAttempts: 3, OnResult: rs.onResult, wait: make(noWait, 10).wait},
		NewWebhook("ops", rc.URL, testSecret, nil))
	d.Notify(sampleEvent())
	var last result
	for i := 1; i <= 3; i++ {
		last = rs.next(t)
		if final := errors.Is(last.err, ErrUndelivered); final != (i == 3) {
			t.Errorf("attempt %d: errors.Is(%v, ErrUndelivered) = %v, want %v", i, last.err, final, i == 3)
		}
	}
	closeDispatcher(t, d)
	var se *StatusError
	if last.attempt != 3 || !errors.As(last.err, &se) || se.StatusCode != http.StatusBadGateway {
		t.Errorf("final OnResult attempt %d, err %v; want 3 and the StatusError 502", last.attempt, last.err)
	}
	if n := rc.count(); n != 3 {
		t.Errorf("receiver got %d requests, want 3", n)
	}
	if st := d.Stats()["ops"]; st.Sent != 0 || st.Failed != 1 || st.Retried != 2 {
		t.Errorf("Stats()[ops] = %+v, want 0 sent, 1 failed, 2 retried", st)
	}
	select {
	case r := <-rs:
		t.Errorf("OnResult called again after the final result: %+v", r)
	default:
	}
}

func TestDispatcherRetryPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
		attempts   int             // requests the receiver gets
		delays     []time.Duration // exact waits, when the receiver set them
	}{
		{"400 is final", http.StatusBadRequest, "", 1, nil},
		{"404 is final", http.StatusNotFound, "", 1, nil},
		{"429 honours Retry-After seconds", http.StatusTooManyRequests, "7", 2, []time.Duration{7 * time.Second}},
		{"503 honours Retry-After", http.StatusServiceUnavailable, "3", 2, []time.Duration{3 * time.Second}},
		{"Retry-After is capped", http.StatusTooManyRequests, "86400", 2, []time.Duration{5 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 1 {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(tt.status)
				}
			})
			rs, waits := newResults(), make(noWait, 10)
			d := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult, wait: waits.wait},
				NewWebhook("ops", rc.URL, testSecret, nil))
			d.Notify(sampleEvent())
			for {
				r := rs.next(t)
				if r.err == nil || errors.Is(r.err, ErrUndelivered) {
					break
				}
			}
			closeDispatcher(t, d)
			if n := rc.count(); n != tt.attempts {
				t.Errorf("receiver got %d requests, want %d", n, tt.attempts)
			}
			if diff := cmp.Diff(tt.delays, waits.all()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDispatcherSlowChannelDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	slowStarted := make(chan string, 10)
	release := make(chan struct{})
	slow := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		slowStarted <- r.Header.Get(EventIDHeader)
		select { // a receiver that takes 5 s, or until the test lets it go
		case <-release:
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	failing := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	fast := newReceiver(t, nil)
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{MaxAttempts: 3, OnResult: rs.onResult, wait: make(noWait, 10).wait},
		NewWebhook("slow", slow.URL, testSecret, nil),
		NewWebhook("failing", failing.URL, testSecret, nil),
		NewWebhook("fast", fast.URL, testSecret, nil))

	first, second := sampleEvent(), sampleEvent()
	second.ID, second.Kind = "alert-42-resolved-1", KindResolved
	d.Notify(first) // returns at once: everything below runs while the slow receiver holds it
	if id := <-slowStarted; id != first.ID {
		t.Fatalf("slow receiver got %q first, want %q", id, first.ID)
	}
	// The slow receiver is now holding the first event. The fast channel gets
	// it, and then the second one, all the same.
	if got := fast.next(t); got.header.Get(EventIDHeader) != first.ID {
		t.Errorf("fast receiver got %q, want %q", got.header.Get(EventIDHeader), first.ID)
	}
	d.Notify(second)
	if got := fast.next(t); got.header.Get(EventIDHeader) != second.ID {
		t.Errorf("fast receiver got %q, want %q", got.header.Get(EventIDHeader), second.ID)
	}
	if n := slow.count(); n != 1 {
		t.Errorf("slow receiver has %d requests while holding the first, want 1", n)
	}
	if st := d.Stats()["slow"]; st.Queued != 1 || st.Sent != 0 {
		t.Errorf("Stats()[slow] while blocked = %+v, want the second event queued and nothing sent", st)
	}
	close(release)
	if id := <-slowStarted; id != second.ID {
		t.Errorf("slow receiver got %q second, want %q", id, second.ID)
	}
	closeDispatcher(t, d)

	stats := d.Stats()
	want := map[string][2]int64{"slow": {2, 0}, "failing": {0, 2}, "fast": {2, 0}}
	for name, w := range want {
		if got := [2]int64{stats[name].Sent, stats[name].Failed}; got != w {
			t.Errorf("Stats()[%s] sent, failed = %v, want %v", name, got, w)
		}
	}
}

// blockingChannel holds every Send until the test releases it or ctx ends.
type blockingChannel struct {
	name    string
	started chan string
	release chan struct{}
}

func (b *blockingChannel) Name() string { return b.name }

func (b *blockingChannel) Send(ctx context.Context, e Event) error {
	b.started <- e.ID
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestDispatcherDropsOldestWhenFull(t *testing.T) {
	t.Parallel()
	ch := &blockingChannel{name: "b", started: make(chan string, 10), release: make(chan struct{})}
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{QueueSize: 2, OnResult: rs.onResult}, ch)
	d.Notify(Event{ID: "e1"})
	if id := <-ch.started; id != "e1" {
		t.Fatalf("first Send got %q, want e1", id)
	}
	for _, id := range []string{"e2", "e3", "e4"} {
		d.Notify(Event{ID: id}) // e4 pushes e2, the oldest waiting, out
	}
	r := rs.next(t)
	if r.event.ID != "e2" || r.attempt != 0 || !errors.Is(r.err, ErrQueueFull) || !errors.Is(r.err, ErrUndelivered) {
		t.Errorf("OnResult(%q, %d, %v), want (e2, 0, ErrQueueFull)", r.event.ID, r.attempt, r.err)
	}
	if st := d.Stats()["b"]; st.Dropped != 1 || st.Queued != 2 {
		t.Errorf("Stats()[b] = %+v, want 1 dropped, 2 queued", st)
	}
	close(ch.release)
	var sent []string
	for range 3 {
		sent = append(sent, rs.next(t).event.ID)
	}
	if diff := cmp.Diff([]string{"e1", "e3", "e4"}, sent); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"e3", "e4"}, []string{<-ch.started, <-ch.started}); diff != "" {
		t.Errorf("sent after e1 (-want +got):\n%s", diff)
	}
	closeDispatcher(t, d)
}

func TestDispatcherCloseDrains(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	d := NewDispatcher(nil, DispatchOptions{}, NewWebhook("ops", rc.URL, testSecret, nil))
	for i := range 5 {
		d.Notify(Event{ID: fmt.Sprintf("e%d", i), Kind: KindFiring})
	}
	closeDispatcher(t, d)
	if n := rc.count(); n != 5 {
		t.Errorf("after Close the receiver has %d requests, want 5", n)
	}
	rs := newResults()
	d2 := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult}, NewWebhook("ops", rc.URL, testSecret, nil))
	closeDispatcher(t, d2)
	d2.Notify(Event{ID: "late"})
	if r := rs.next(t); r.event.ID != "late" || !errors.Is(r.err, ErrClosed) {
		t.Errorf("Notify after Close: OnResult(%q, %v), want (late, ErrClosed)", r.event.ID, r.err)
	}
}

func TestDispatcherCloseGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	ch := &blockingChannel{name: "stuck", started: make(chan string, 10), release: make(chan struct{})}
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult}, ch)
	d.Notify(Event{ID: "in-flight"})
	<-ch.started
	d.Notify(Event{ID: "queued"})

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed
	err := d.Close(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 deliveries unfinished") {
		t.Errorf("Close(done ctx) = %v, want context.Canceled and 2 unfinished", err)
	}
	got := map[string]int{}
	for range 2 {
		r := rs.next(t)
		if !errors.Is(r.err, ErrClosed) {
			t.Errorf("OnResult(%q, %d, %v), want ErrClosed", r.event.ID, r.attempt, r.err)
		}
		got[r.event.ID] = r.attempt
	}
	if diff := cmp.Diff(map[string]int{"in-flight": 1, "queued": 0}, got); diff != "" {
		t.Errorf("final results' attempts (-want +got):\n%s", diff)
	}
}

func TestDispatcherTest(t *testing.T) {
	t.Parallel()
	ok := newReceiver(t, nil)
	broken := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such hook", http.StatusInternalServerError)
	})
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult},
		NewWebhook("ok", ok.URL, testSecret, nil), NewWebhook("broken", broken.URL, testSecret, nil))
	defer closeDispatcher(t, d)

	if err := d.Test(t.Context(), "ok"); err != nil {
		t.Errorf("Test(ok) = %v, want nil", err)
	}
	var p WebhookPayload
	if err := json.Unmarshal(ok.next(t).body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindTest || !strings.HasPrefix(p.ID, "test-") || !strings.Contains(p.Explanation, `"ok"`) {
		t.Errorf("test payload = %+v, want kind test, a test- id, the channel named", p)
	}

	err := d.Test(t.Context(), "broken")
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 500 || !strings.Contains(err.Error(), "no such hook") {
		t.Errorf("Test(broken) = %v, want the StatusError 500 with the receiver's words", err)
	}
	if n := broken.count(); n != 1 {
		t.Errorf("Test(broken) made %d requests, want 1 (no retry)", n)
	}
	if err := d.Test(t.Context(), "nope"); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("Test(nope) = %v, want ErrUnknownChannel", err)
	}
	select {
	case r := <-rs:
		t.Errorf("Test called OnResult: %+v", r)
	default:
	}
	if st := d.Stats()["broken"]; st != (ChannelStats{}) {
		t.Errorf("Stats()[broken] after Test = %+v, want zero", st)
	}
}

func TestDispatcherDuplicateNameLeftOut(t *testing.T) {
	t.Parallel()
	a := &blockingChannel{name: "same"}
	b := &blockingChannel{name: "same"}
	d := NewDispatcher(nil, DispatchOptions{}, a, b)
	defer closeDispatcher(t, d)
	if n := len(d.Stats()); n != 1 {
		t.Errorf("len(Stats()) = %d, want 1", n)
	}
}

type panickingChannel struct{}

func (panickingChannel) Name() string                      { return "p" }
func (panickingChannel) Send(context.Context, Event) error { panic("boom") }

func TestDispatcherSurvivesPanickingChannel(t *testing.T) {
	t.Parallel()
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult}, panickingChannel{})
	d.Notify(Event{ID: "x"})
	if r := rs.next(t); r.attempt != 1 || !errors.Is(r.err, ErrUndelivered) || !strings.Contains(r.err.Error(), "boom") {
		t.Errorf("OnResult(%d, %v), want a final error naming the panic", r.attempt, r.err)
	}
	closeDispatcher(t, d)
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	d := &Dispatcher{opts: DispatchOptions{BaseDelay: time.Second, MaxDelay: 10 * time.Second}}
	for attempt, ceil := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		for range 50 {
			if got := d.backoff(attempt); got < ceil/2 || got > ceil {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, got, ceil/2, ceil)
			}
		}
	}
}
