package notify

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// guard bounds how long a test waits for something that should happen; it
// only turns a hang into a failure and is never a timing assertion.
const guard = 20 * time.Second

// received is one request a test receiver got.
type received struct {
	n      int // 1 for the first request
	header http.Header
	body   []byte
}

// receiver is a local HTTP server that records every request and answers
// through respond (200 when respond is nil).
type receiver struct {
	*httptest.Server
	got chan received

	mu sync.Mutex
	n  int
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan received, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		rc.mu.Lock()
		rc.n++
		n := rc.n
		rc.mu.Unlock()
		rc.got <- received{n: n, header: r.Header.Clone(), body: body}
		if respond != nil {
			respond(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// next returns the next request, failing the test if none comes.
func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(guard):
		t.Fatal("receiver got no request")
		return received{}
	}
}

// count is how many requests the receiver has had.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.n
}

// result is one OnResult call.
type result struct {
	channel string
	event   Event
	attempt int
	err     error
}

// results collects OnResult calls.
type results chan result

func newResults() results { return make(results, 100) }

func (rs results) onResult(channel string, e Event, attempt int, err error) {
	rs <- result{channel, e, attempt, err}
}

func (rs results) next(t *testing.T) result {
	t.Helper()
	select {
	case r := <-rs:
		return r
	case <-time.After(guard):
		t.Fatal("OnResult was not called")
		return result{}
	}
}

// noWait is a DispatchOptions.wait that records each delay and returns at
// once, so that retry tests neither sleep nor depend on the clock.
type noWait chan time.Duration

func (nw noWait) wait(ctx context.Context, d time.Duration) error {
	nw <- d
	return ctx.Err()
}

func (nw noWait) all() []time.Duration {
	var out []time.Duration
	for {
		select {
		case d := <-nw:
			out = append(out, d)
		default:
			return out
		}
	}
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func sampleEvent() Event {
	return Event{
		ID:          "alert-42-firing-1",
		AlertID:     42,
		Kind:        KindFiring,
		Rule:        "wal-lag",
		Severity:    "critical",
		Source:      "orders-db",
		Title:       "WAL archiving is 9 min behind on orders-db",
		Explanation: "The newest WAL in the repository is 9 minutes old, so a restore now would lose up to 9 minutes of commits.",
		Action:      "Check the source's replication slot and the archiver's log on the Sources page.",
		Evidence:    map[string]string{"lag_seconds": "540", "lag_bytes": "83886080"},
		At:          time.Date(2026, 11, 25, 9, 41, 7, 0, time.UTC),
		URL:         "https://backstop.example/alerts/42",
	}
}

func closeDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
}

// hangingUp returns the address of a listener on 127.0.0.1 that closes every
// connection at once. Unlike a closed port, no other test's server can
// take it over while the test runs.
func hangingUp(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}
