package jobs_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// startArchiver runs an archiver for src until the test ends, saving its state every second.
func startArchiver(t *testing.T, e *env, src store.Source) {
	t.Helper()
	startArchiverIn(t, e, src, t.TempDir())
}

// startArchiverIn starts an archiver of src spooling into spool, and returns what stops
// it (also called when the test ends).
func startArchiverIn(t *testing.T, e *env, src store.Source, spool string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := jobs.NewArchiver(e.store, e.repo, spool, testLogger(t))
	a.PartialEvery, a.StateEvery = 200*time.Millisecond, time.Second
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx, src) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// waitArchiver waits until the archiver's saved state satisfies cond.
func waitArchiver(t *testing.T, e *env, src store.Source, what string, cond func(store.ArchiverState) bool) store.ArchiverState {
	t.Helper()
	var st store.ArchiverState
	waitFor(t, what, time.Minute, func() (bool, error) {
		var err error
		st, err = e.store.ArchiverState(context.Background(), src.ID)
		if err != nil {
			return false, nil
		}
		return cond(st), nil
	})
	return st
}

// waitHealth waits until the source's health is at level and returns it, with how long it took.
func waitHealth(t *testing.T, e *env, src store.Source, level health.Level) (health.Health, time.Duration) {
	t.Helper()
	start := time.Now()
	var h health.Health
	waitFor(t, "health "+string(level), time.Minute, func() (bool, error) {
		var err error
		h, err = jobs.SourceHealth(context.Background(), e.store, nil, src, time.Now())
		return h.Level == level, err
	})
	return h, time.Since(start)
}

// TestArchiverRecoversFromADroppedSlot: a slot dropped by hand while WAL moves on leaves
// the source broken with the reason (a gap, a backup needed) within a minute; the archiver
// recovers by itself, streams again, and the window shows the gap until a new backup.
func TestArchiverRecoversFromADroppedSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := pgtest.Start(t)
	dsn := cl.DSN("postgres")
	e := setup(t, jobs.Options{})
	src := e.register(t, "dropped", dsn)
	conn := connect(t, dsn)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("Exec(%s) = %v", sql, err)
		}
	}
	exec(`CREATE TABLE ticks (id serial PRIMARY KEY)`)
	e.backup(t, src)
	spool := t.TempDir()
	stop := startArchiverIn(t, e, src, spool)
	waitArchiver(t, e, src, "streaming", func(a store.ArchiverState) bool { return a.State == store.ArchiverStreaming })
	if h, _ := waitHealth(t, e, src, health.OK); h.Level != health.OK {
		t.Fatalf("health before = %+v", h)
	}
	before, err := e.store.WALSummary(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}

	// With the archiver away (as during a restart of Backstop), drop the slot and make
	// the server remove the WAL the archiver would resume from; then start it again on the
	// same spool. (Racing a running archiver's one-second retry made the removal a matter
	// of timing.)
	stop()
	slot := jobs.SlotName(src)
	dropped := time.Now()
	waitFor(t, "the slot dropped", 10*time.Second, func() (bool, error) {
		conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		return err == nil, nil
	})
	for range 4 {
		exec(`INSERT INTO ticks SELECT FROM generate_series(1, 100)`)
		exec(`SELECT pg_switch_wal()`)
	}
	exec(`CHECKPOINT`)
	startArchiverIn(t, e, src, spool)

	h, _ := waitHealth(t, e, src, health.Broken)
	t.Logf("broken %.1f s after the slot was dropped: %s (%s)", time.Since(dropped).Seconds(), h.Reason, h.Do)
	if !strings.Contains(h.Reason, "WAL is missing") && !strings.Contains(h.Reason, "stopped") {
		t.Errorf("health reason = %q, want the missing WAL or the stopped archiver", h.Reason)
	}
	st := waitArchiver(t, e, src, "streaming again after recovering", func(a store.ArchiverState) bool {
		return a.State == store.ArchiverStreaming && a.Recoveries > 0
	})
	t.Logf("streaming again %.1f s after the slot was dropped; gap %s → %s", time.Since(dropped).Seconds(), st.GapFromLSN, st.GapToLSN)
	if st.NeedsBackupSince == nil || st.GapFromLSN == "" {
		t.Fatalf("archiver state after recovery = %+v, want a gap and a backup needed", st)
	}
	gaps, err := e.store.WALGaps(ctx, src.ID)
	if err != nil || len(gaps) != 1 {
		t.Fatalf("WALGaps() = %+v, %v, want one gap", gaps, err)
	}
	if h, err := jobs.SourceHealth(ctx, e.store, nil, src, time.Now()); err != nil || h.Level != health.Broken || !strings.Contains(h.Reason, "WAL is missing") || !strings.Contains(h.Do, "backup") {
		t.Errorf("health after recovery = %+v, %v, want broken: WAL missing, start a backup", h, err)
	}
	entries, err := e.store.AuditEntries(ctx, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, a := range entries {
		audited = audited || (a.Actor == "archiver" && a.Action == "archiver.recover_slot" && a.Target == src.Name)
	}
	if !audited {
		t.Errorf("audit log = %+v, want archiver.recover_slot by archiver", entries)
	}

	// New WAL arrives after the gap; the window shows the hole where the WAL is missing.
	for range 2 {
		exec(`INSERT INTO ticks SELECT FROM generate_series(1, 100)`)
		exec(`SELECT pg_switch_wal()`)
	}
	gapTo, _ := pglogrepl.ParseLSN(gaps[0].ToLSN)
	gapFrom, _ := pglogrepl.ParseLSN(gaps[0].FromLSN)
	var w jobs.Window
	waitFor(t, "WAL after the gap archived and the gap in the window", time.Minute, func() (bool, error) {
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		if err != nil {
			return false, err
		}
		w = jobs.ComputeWindow(in)
		return len(w.Gaps) > 0, nil
	})
	g := w.Gaps[len(w.Gaps)-1]
	if g.FromLSN > gapFrom || g.ToLSN < gapTo {
		t.Errorf("window gap %s → %s, want it to cover the recorded gap %s → %s", g.FromLSN, g.ToLSN, gapFrom, gapTo)
	}
	waitFor(t, "segments archived after the gap", time.Minute, func() (bool, error) {
		after, err := e.store.WALSummary(ctx, src.ID)
		return after.Segments > before.Segments, err
	})

	// A new base backup clears the need: the source is restorable to now again.
	e.backup(t, src)
	waitArchiver(t, e, src, "backup need cleared", func(a store.ArchiverState) bool { return a.NeedsBackupSince == nil })
	if h, err := jobs.SourceHealth(ctx, e.store, nil, src, time.Now()); err != nil || h.Level == health.Broken {
		t.Errorf("health after a new backup = %+v, %v, want not broken", h, err)
	}
}

// TestArchiverStateOfAStoppedSource: a source whose server stops turns broken with the
// reason, and streams again when the server is back.
func TestArchiverStateOfAStoppedSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := pgtest.Start(t)
	e := setup(t, jobs.Options{})
	src := e.register(t, "stopping", cl.DSN("postgres"))
	e.backup(t, src)
	startArchiver(t, e, src)
	st := waitArchiver(t, e, src, "streaming", func(a store.ArchiverState) bool { return a.State == store.ArchiverStreaming })
	if st.SlotWALStatus != "reserved" || st.FlushedLSN == "" || st.ServerLSN == "" {
		t.Errorf("streaming state = %+v, want the slot reserved and the positions known", st)
	}
	waitHealth(t, e, src, health.OK)

	stopped := time.Now()
	if err := cl.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	h, _ := waitHealth(t, e, src, health.Broken)
	t.Logf("broken %.1f s after the server stopped: %s (%s)", time.Since(stopped).Seconds(), h.Reason, h.Do)
	if !strings.Contains(h.Reason, "WAL archiving stopped") || !strings.Contains(h.Reason, "no server is listening") || !strings.Contains(h.Do, "Start the server") {
		t.Errorf("health = %+v, want the stopped archiver, the refused connection and the advice", h)
	}
	if st, _ := e.store.ArchiverState(ctx, src.ID); st.State != store.ArchiverStopped || st.Cause != store.CauseUnreachable {
		t.Errorf("archiver state = %+v, want stopped, unreachable", st)
	}

	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitArchiver(t, e, src, "streaming again", func(a store.ArchiverState) bool { return a.State == store.ArchiverStreaming })
	waitHealth(t, e, src, health.OK)
}
