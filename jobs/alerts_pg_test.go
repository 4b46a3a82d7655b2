package jobs_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// stallProxy forwards TCP connections to a server and can stall them: while paused, no
// byte moves either way and the connections stay open, as in a network stall.
type stallProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	paused bool
	resume chan struct{}
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, resume: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *stallProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *stallProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			p.wait()
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
}

// wait blocks while the proxy is paused.
func (p *stallProxy) wait() {
	p.mu.Lock()
	paused, resume := p.paused, p.resume
	p.mu.Unlock()
	if paused {
		<-resume
	}
}

func (p *stallProxy) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
}

func (p *stallProxy) unpause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	close(p.resume)
	p.resume = make(chan struct{})
}

// evaluateUntil evaluates the rules every 200 ms until cond holds on the alerts, and
// returns how long it took.
func evaluateUntil(t *testing.T, e *jobs.Evaluator, st *store.Store, what string, timeout time.Duration, cond func([]store.Alert) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if _, err := e.Evaluate(context.Background()); err != nil {
			t.Logf("evaluate: %v", err)
		}
		all, err := st.Alerts(context.Background(), store.AlertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if cond(all) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s; alerts: %+v", what, timeout, all)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func openAlert(rule string) func([]store.Alert) bool {
	return func(as []store.Alert) bool {
		return slices.ContainsFunc(as, func(a store.Alert) bool { return a.Rule == rule && a.State != store.AlertResolved })
	}
}

func resolvedAlert(rule string) func([]store.Alert) bool {
	return func(as []store.Alert) bool {
		return slices.ContainsFunc(as, func(a store.Alert) bool { return a.Rule == rule && a.State == store.AlertResolved }) &&
			!openAlert(rule)(as)
	}
}

// TestAlertsFromFacts drives the alert rules with real failures on a real cluster:
//   - an ordinary series of backups raises nothing; a backup after most of a table was
//     rewritten raises the anomaly alert;
//   - a stalled WAL stream (a network stall between Backstop and the source) while the
//     source keeps writing raises the lag alert once the lag passes the RPO objective,
//     and it resolves by itself once streaming resumes;
//   - a WAL segment deleted from the repository raises a gap alert with the LSN range and
//     the part of the window lost;
//   - a stopped source raises an alert.
func TestAlertsFromFacts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t)
	direct := cl.DSN("postgres")
	proxy := newStallProxy(t, fmt.Sprintf("127.0.0.1:%d", cl.Port()))
	e := setup(t, jobs.Options{})
	src := e.register(t, "watched", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", proxy.port()))
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery, a.StateEvery = 200*time.Millisecond, 500*time.Millisecond
	go a.Run(ctx, src)

	execSQL(t, direct,
		`CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text NOT NULL)`,
		`INSERT INTO accounts SELECT g, 0, repeat('x', 200) FROM generate_series(1, 100000) g`,
		`CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())`)
	if _, err := e.store.SetPolicy(ctx, store.Policy{SourceID: src.ID, TimeZone: "UTC", Window: 24 * time.Hour, RPO: 3 * time.Second, UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	windows := jobs.NewWindowCache(e.store, e.repo)
	ev := jobs.NewEvaluator(e.store, windows, testLogger(t))
	conn := connect(t, direct)
	ev.Probe = func(ctx context.Context, _ store.Source) (pglogrepl.LSN, error) {
		var s string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
			return 0, err
		}
		return pglogrepl.ParseLSN(s)
	}

	// An ordinary day: a few rows change between backups.
	var backups []store.Backup
	for i := range 4 {
		execSQL(t, direct, fmt.Sprintf(`UPDATE accounts SET balance = balance + 1 WHERE id %% 500 = %d`, i))
		_, b := e.backup(t, src)
		backups = append(backups, b)
	}
	waitFor(t, "the archiver to stream", time.Minute, func() (bool, error) {
		st, err := e.store.ArchiverState(ctx, src.ID)
		return err == nil && st.State == store.ArchiverStreaming, nil
	})
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if open, err := e.store.Alerts(ctx, store.AlertFilter{Open: true}); err != nil || len(open) != 0 {
		t.Fatalf("alerts on an ordinary day = %+v, %v; want none", open, err)
	}

	// Most of a table rewritten, then a backup: an anomaly.
	execSQL(t, direct, `UPDATE accounts SET note = repeat('y', 200) WHERE id % 10 <> 0`)
	e.backup(t, src)
	evaluateUntil(t, ev, e.store, "the anomaly alert", 30*time.Second, openAlert("anomaly-backup-change"))

	// The stream stalls while the source keeps writing.
	writeCtx, stopWriting := context.WithCancel(ctx)
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		w := connect(t, direct)
		for writeCtx.Err() == nil {
			w.Exec(writeCtx, `INSERT INTO ticks DEFAULT VALUES`) //nolint:errcheck // stops with writeCtx
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	evaluateUntil(t, ev, e.store, "no lag alert while streaming", 10*time.Second, func(as []store.Alert) bool { return !openAlert("wal-lag")(as) })
	proxy.pause()
	took := evaluateUntil(t, ev, e.store, "the lag alert", time.Minute, openAlert("wal-lag"))
	t.Logf("stream stalled: the lag alert fired after %s (RPO objective 3 s)", took.Round(100*time.Millisecond))
	lag, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true})
	for _, al := range lag {
		if al.Rule == "wal-lag" && (al.Severity != store.SeverityWarning || al.Evidence["objective"] == "" || !strings.Contains(al.Explanation, "behind")) {
			t.Errorf("lag alert = %+v, want a warning explaining the lag with its objective", al)
		}
	}
	proxy.unpause()
	took = evaluateUntil(t, ev, e.store, "the lag alert to resolve", 2*time.Minute, resolvedAlert("wal-lag"))
	t.Logf("stream resumed: the lag alert resolved by itself after %s", took.Round(100*time.Millisecond))

	// A segment between the first backup and the newest goes missing from the repository.
	b1End, _ := pglogrepl.ParseLSN(backups[0].EndLSN)
	seg := pgwal.SegmentName(uint32(backups[0].Timeline), pgwal.SegmentOf(b1End, pgwal.DefaultSegmentSize)+1, pgwal.DefaultSegmentSize)
	if err := e.repo.Storage().Delete(ctx, "wal/"+src.SystemIdentifier+"/"+seg+".wal"); err != nil {
		t.Fatalf("delete %s: %v", seg, err)
	}
	windows.Invalidate(src.ID)
	evaluateUntil(t, ev, e.store, "the gap alert", 30*time.Second, openAlert("wal-gap"))
	gaps, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true})
	for _, al := range gaps {
		if al.Rule == "wal-gap" && (al.Severity != store.SeverityCritical || al.Evidence["from LSN"] == "" || al.Evidence["window lost"] == "" || al.Evidence["segment"] != seg) {
			t.Errorf("gap alert = %+v, want it critical, naming %s, the LSN range and the window lost", al, seg)
		}
	}

	// The source stops.
	stopWriting()
	<-writing
	if open, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true}); slices.ContainsFunc(open, func(a store.Alert) bool {
		return a.Severity == store.SeverityCritical && a.Rule != "wal-gap"
	}) {
		t.Fatalf("a critical alert is open before the source stops: %+v", open)
	}
	if err := cl.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	took = evaluateUntil(t, ev, e.store, "an alert for the stopped source", 2*time.Minute, func(as []store.Alert) bool {
		return slices.ContainsFunc(as, func(a store.Alert) bool {
			return (a.Rule == "archiver-stopped" || a.Rule == "source-unreachable") && a.Severity == store.SeverityCritical && a.State == store.AlertFiring
		})
	})
	t.Logf("source stopped: alert after %s (%s since the stop)", took.Round(100*time.Millisecond), time.Since(stopped).Round(100*time.Millisecond))
}
