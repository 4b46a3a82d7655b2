package pg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store/pgwal"
)

// walRecorder records what ReceiveWAL reports and lets a test wait for it.
type walRecorder struct {
	mu       sync.Mutex
	handed   []string
	flushes  []pglogrepl.LSN
	changed  chan struct{} // closed at each report
	failWith error         // returned by OnSegment, if set
}

func newWALRecorder() *walRecorder {
	return &walRecorder{changed: make(chan struct{})}
}

func (w *walRecorder) notify() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *walRecorder) onSegment(_ context.Context, name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handed = append(w.handed, name)
	w.notify()
	return w.failWith
}

func (w *walRecorder) onFlush(lsn pglogrepl.LSN) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushes = append(w.flushes, lsn)
	w.notify()
}

// flushed returns the highest position reported to OnFlush.
func (w *walRecorder) flushed() pglogrepl.LSN {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.flushes) == 0 {
		return 0
	}
	return w.flushes[len(w.flushes)-1]
}

// firstFlush returns the first position reported to OnFlush.
func (w *walRecorder) firstFlush() pglogrepl.LSN {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.flushes) == 0 {
		return 0
	}
	return w.flushes[0]
}

func (w *walRecorder) handedOver() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.handed)
}

// wait waits until cond holds, for timeout at most.
func (w *walRecorder) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return cond()
		}
	}
}

// waitFlushed waits until OnFlush reported lsn or more, and returns how
// long that took.
func (w *walRecorder) waitFlushed(t *testing.T, lsn pglogrepl.LSN, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	if !w.wait(timeout, func() bool { return w.flushed() >= lsn }) {
		t.Fatalf("OnFlush reported %s after %s, want %s or more", w.flushed(), timeout, lsn)
	}
	return time.Since(began)
}

// completeSegments returns the complete segments handed over.
func (w *walRecorder) completeSegments() []string {
	var segs []string
	for _, name := range w.handedOver() {
		if _, _, err := pgwal.ParseSegmentName(name, 0); err == nil && !strings.HasSuffix(name, pgwal.PartialSuffix) {
			segs = append(segs, name)
		}
	}
	return segs
}

// receiverRun is a ReceiveWAL running in a goroutine.
type receiverRun struct {
	rec    *walRecorder
	cancel context.CancelFunc
	done   chan error
}

func startReceiver(t *testing.T, dsn, slot, dir string) *receiverRun {
	t.Helper()
	rec := newWALRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	run := &receiverRun{rec: rec, cancel: cancel, done: make(chan error, 1)}
	opts := pg.ReceiveOptions{Slot: slot, Dir: dir, OnSegment: rec.onSegment, OnFlush: rec.onFlush}
	go func() { run.done <- pg.ReceiveWAL(ctx, dsn, opts) }()
	t.Cleanup(func() {
		cancel()
		<-run.done
	})
	return run
}

// stop cancels the receiver and checks that it stops promptly with ctx's
// error.
func (r *receiverRun) stop(t *testing.T) {
	t.Helper()
	began := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReceiveWAL() after cancel = %v, want context.Canceled", err)
		}
		if took := time.Since(began); took > time.Second {
			t.Errorf("ReceiveWAL() took %v to return after cancel", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("ReceiveWAL() did not return within 10s of cancel")
	}
}

// failed reports an early return of ReceiveWAL as a test failure.
func (r *receiverRun) failed(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("ReceiveWAL() returned early: %v", err)
	default:
	}
}

func queryLSN(t *testing.T, ctx context.Context, dsn, sql string, args ...any) pglogrepl.LSN {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var s *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return 0
	}
	lsn, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// waitSlotInactive waits until no WAL sender uses slot (after a receiver
// stopped, its WAL sender takes a moment to exit).
func waitSlotInactive(t *testing.T, ctx context.Context, dsn, slot string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var active bool
		if err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil {
			t.Fatalf("slot %s: %v", slot, err)
		}
		if !active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s still active after 10s", slot)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdWAL creates a slot that keeps the server from removing WAL from now
// on, so that tests can compare the spool with the server's pg_wal.
func holdWAL(t *testing.T, dsn, slot string) {
	t.Helper()
	pgtest.Exec(t, dsn, fmt.Sprintf(`SELECT pg_create_physical_replication_slot('%s', true)`, slot))
	t.Cleanup(func() { pgtest.Exec(t, dsn, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, slot)) })
}

// createSlot creates a receiver's slot and drops it when the test ends.
func createSlot(t *testing.T, ctx context.Context, dsn, slot string) pglogrepl.LSN {
	t.Helper()
	created, lsn, err := pg.CreatePhysicalSlot(ctx, dsn, slot)
	if err != nil || !created || lsn == 0 {
		t.Fatalf("CreatePhysicalSlot(%s) = %v, %s, %v, want a new slot", slot, created, lsn, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		waitSlotInactive(t, ctx, dsn, slot)
		if err := pg.DropSlot(ctx, dsn, slot); err != nil {
			t.Errorf("DropSlot(%s) = %v", slot, err)
		}
	})
	return lsn
}

// compareSpool checks every file in the spool against the server's pg_wal:
// complete segments and history files byte for byte, partial segments as
// prefixes of the server's file (under either name). It returns the
// number of complete segments.
func compareSpool(t *testing.T, dataDir, spool string) int {
	t.Helper()
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for _, e := range entries {
		name := e.Name()
		got, err := os.ReadFile(filepath.Join(spool, name))
		if err != nil {
			t.Fatal(err)
		}
		base, partial := strings.CutSuffix(name, pgwal.PartialSuffix)
		want, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", base))
		if errors.Is(err, os.ErrNotExist) && partial {
			want, err = os.ReadFile(filepath.Join(dataDir, "pg_wal", name))
		}
		if err != nil {
			t.Errorf("spool file %s: the server's copy: %v", name, err)
			continue
		}
		if partial {
			if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
				t.Errorf("partial segment %s (%d bytes) is not a prefix of the server's file", name, len(got))
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("spool file %s (%d bytes) differs from the server's (%d bytes) at byte %d", name, len(got), len(want), firstDiff(got, want))
			continue
		}
		if !pgwal.IsHistoryFile(name) {
			complete++
		}
	}
	return complete
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// partialFile returns the name and size of the spool's partial segment.
func partialFile(t *testing.T, spool string) (string, int64) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(spool, "*"+pgwal.PartialSuffix))
	if len(matches) != 1 {
		t.Fatalf("spool holds partial segments %v, want one", matches)
	}
	fi, err := os.Stat(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(matches[0]), fi.Size()
}

// partialEnd returns the LSN just past the spool's partial segment.
func partialEnd(t *testing.T, spool string) pglogrepl.LSN {
	t.Helper()
	name, size := partialFile(t, spool)
	_, segNo, err := pgwal.ParseSegmentName(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pgwal.SegmentStart(segNo, 0) + pglogrepl.LSN(size)
}

// makeWAL writes rows to table and switches to a new segment switches
// times, returning the server's flush position afterwards.
func makeWAL(t *testing.T, ctx context.Context, dsn, table string, rows, switches int) pglogrepl.LSN {
	t.Helper()
	for i := 0; i < max(switches, 1); i++ {
		pgtest.Exec(t, dsn, fmt.Sprintf(`INSERT INTO %s (payload) SELECT repeat(md5(i::text), 8) FROM generate_series(1, %d) i`, table, rows))
		if i < switches {
			pgtest.Exec(t, dsn, `SELECT pg_switch_wal()`)
		}
	}
	return queryLSN(t, ctx, dsn, `SELECT pg_current_wal_flush_lsn()::text`)
}

// checkFlushNeverAhead samples the server's view of our flush position
// while the receiver runs: the slot's restart_lsn and the WAL sender's
// flush_lsn must never pass what OnFlush reported before the sample.
func checkFlushNeverAhead(t *testing.T, ctx context.Context, dsn, slot string, rec *walRecorder) (stop func() int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	quit := make(chan struct{})
	done := make(chan int)
	go func() {
		defer conn.Close(context.Background())
		samples := 0
		for {
			select {
			case <-quit:
				done <- samples
				return
			case <-time.After(5 * time.Millisecond):
			}
			var restart, flush *string
			err := conn.QueryRow(ctx, `SELECT s.restart_lsn::text, r.flush_lsn::text
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, slot).Scan(&restart, &flush)
			ours := rec.flushed()
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("sample the slot: %v", err)
				}
				done <- samples
				return
			}
			for what, s := range map[string]*string{"restart_lsn": restart, "flush_lsn": flush} {
				if s == nil {
					continue
				}
				lsn, err := pglogrepl.ParseLSN(*s)
				if err != nil {
					t.Errorf("parse %s %q: %v", what, *s, err)
					continue
				}
				if lsn > ours {
					t.Errorf("the server's %s is %s, but OnFlush had reported only %s", what, lsn, ours)
				}
			}
			samples++
		}
	}()
	return func() int {
		close(quit)
		return <-done
	}
}

// TestReceiveWAL streams WAL into a spool, stops, resumes, and recovers
// from a truncated and from a garbage-tailed partial segment, checking at
// each step that the spool holds exactly the server's WAL.
func TestReceiveWAL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := shared.Cluster(t)
	dsn := c.DSN("")
	const slot, table = "recv_main", "recv_main_rows"
	pgtest.Exec(t, dsn, `DROP TABLE IF EXISTS `+table, `CREATE TABLE `+table+` (id bigserial PRIMARY KEY, payload text NOT NULL)`)
	holdWAL(t, dsn, slot+"_hold")
	slotStart := createSlot(t, ctx, dsn, slot)
	spool := filepath.Join(t.TempDir(), "spool")

	// Stream, and measure how soon a commit is durable in the spool.
	began := time.Now()
	run := startReceiver(t, dsn, slot, spool)
	run.rec.waitFlushed(t, slotStart, 10*time.Second)
	if first := run.rec.firstFlush(); first != slotStart-pglogrepl.LSN(pgwal.SegmentOffset(slotStart, 0)) {
		t.Errorf("first OnFlush = %s, want the start of the slot's segment (slot at %s)", first, slotStart)
	}
	stopSampling := checkFlushNeverAhead(t, ctx, dsn, slot, run.rec)

	other := pg.ReceiveWAL(ctx, dsn, pg.ReceiveOptions{Slot: slot, Dir: spool})
	if other == nil || !strings.Contains(other.Error(), "in use by another WAL receiver") {
		t.Errorf("second ReceiveWAL on the same spool = %v, want an in-use error", other)
	}

	segsBefore := len(run.rec.completeSegments())
	makeWAL(t, ctx, dsn, table, 2000, 4)
	if !run.rec.wait(30*time.Second, func() bool { return len(run.rec.completeSegments()) >= segsBefore+3 }) {
		run.failed(t)
		t.Fatalf("OnSegment reported %v, want 3 more complete segments", run.rec.handedOver())
	}
	t.Logf("streamed %d segments in %v", len(run.rec.completeSegments()), time.Since(began).Round(time.Millisecond))

	afterCommit, fromStart := commitLatencies(t, ctx, dsn, table, run.rec, 20)
	t.Logf("RPO over %d commits: from commit return to OnFlush: %s; from commit start: %s",
		len(afterCommit), summary(afterCommit), summary(fromStart))
	if afterCommit[len(afterCommit)/2] > time.Second {
		t.Errorf("median commit to OnFlush latency %v, want under 1s", afterCommit[len(afterCommit)/2])
	}

	// Stop mid-segment: the final status confirms exactly what is fsynced.
	run.rec.waitFlushed(t, makeWAL(t, ctx, dsn, table, 50, 0), 10*time.Second)
	if samples := stopSampling(); samples < 10 {
		t.Errorf("only %d samples of the server's flush position", samples)
	}
	run.stop(t)
	waitSlotInactive(t, ctx, dsn, slot)
	final := run.rec.flushed()
	if restart := queryLSN(t, ctx, dsn, `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot); restart != final {
		t.Errorf("after stop, the slot's restart_lsn = %s, want the last flush reported, %s", restart, final)
	}
	if end := partialEnd(t, spool); end != final {
		t.Errorf("the partial segment ends at %s, want the last flush reported, %s", end, final)
	}
	if n := compareSpool(t, c.DataDir(), spool); n < 3 {
		t.Errorf("spool holds %d complete segments, want 3 or more", n)
	}
	for _, seg := range run.rec.completeSegments() {
		if _, err := os.Stat(filepath.Join(spool, seg)); err != nil {
			t.Errorf("OnSegment(%s), but: %v", seg, err)
		}
	}

	t.Run("resume", func(t *testing.T) {
		partial, _ := partialFile(t, spool)
		resumeAt := partialEnd(t, spool)
		run := startReceiver(t, dsn, slot, spool)
		run.rec.waitFlushed(t, resumeAt, 10*time.Second)
		if first := run.rec.firstFlush(); first != resumeAt {
			t.Errorf("resumed with OnFlush(%s), want the end of the partial segment, %s", first, resumeAt)
		}
		// Every file left in the spool is handed over again.
		if handed := run.rec.completeSegments(); len(handed) < 3 {
			t.Errorf("OnSegment on resume: %v, want the complete segments left in the spool", handed)
		}
		makeWAL(t, ctx, dsn, table, 500, 2)
		complete := strings.TrimSuffix(partial, pgwal.PartialSuffix)
		if !run.rec.wait(30*time.Second, func() bool { return slices.Contains(run.rec.completeSegments(), complete) }) {
			run.failed(t)
			t.Fatalf("OnSegment reported %v, want %s", run.rec.handedOver(), complete)
		}
		run.rec.waitFlushed(t, makeWAL(t, ctx, dsn, table, 50, 0), 10*time.Second)
		run.stop(t)
		waitSlotInactive(t, ctx, dsn, slot)
		compareSpool(t, c.DataDir(), spool)
	})

	// A crash can lose the end of what was fsynced only if storage lies,
	// but the receiver must cope with a shorter file: it asks for the rest.
	t.Run("truncated partial", func(t *testing.T) {
		name, size := partialFile(t, spool)
		if size < 100 {
			t.Fatalf("partial segment %s has %d bytes, too few for the test", name, size)
		}
		if err := os.Truncate(filepath.Join(spool, name), size-7); err != nil {
			t.Fatal(err)
		}
		resumeAt := partialEnd(t, spool)
		run := startReceiver(t, dsn, slot, spool)
		run.rec.waitFlushed(t, resumeAt, 10*time.Second)
		if first := run.rec.firstFlush(); first != resumeAt {
			t.Errorf("resumed with OnFlush(%s), want the end of the truncated partial segment, %s", first, resumeAt)
		}
		complete := strings.TrimSuffix(name, pgwal.PartialSuffix)
		makeWAL(t, ctx, dsn, table, 100, 1)
		if !run.rec.wait(30*time.Second, func() bool { return slices.Contains(run.rec.completeSegments(), complete) }) {
			run.failed(t)
			t.Fatalf("OnSegment reported %v, want %s", run.rec.handedOver(), complete)
		}
		run.rec.waitFlushed(t, makeWAL(t, ctx, dsn, table, 50, 0), 10*time.Second)
		run.stop(t)
		waitSlotInactive(t, ctx, dsn, slot)
		compareSpool(t, c.DataDir(), spool)
	})

	// A crash can leave an appended file longer than what was fsynced,
	// ending in zeros or garbage (XFS, ext4 data=writeback): the receiver
	// resumes where the slot says it confirmed, and overwrites the rest.
	t.Run("garbage after the confirmed end", func(t *testing.T) {
		name, _ := partialFile(t, spool)
		confirmed := queryLSN(t, ctx, dsn, `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if confirmed != partialEnd(t, spool) {
			t.Fatalf("slot at %s, partial segment ends at %s: want them equal before the test", confirmed, partialEnd(t, spool))
		}
		f, err := os.OpenFile(filepath.Join(spool, name), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte{0xA5}, 5000)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		run := startReceiver(t, dsn, slot, spool)
		run.rec.waitFlushed(t, confirmed, 10*time.Second)
		if first := run.rec.firstFlush(); first != confirmed {
			t.Errorf("resumed with OnFlush(%s), want the slot's confirmed position, %s", first, confirmed)
		}
		complete := strings.TrimSuffix(name, pgwal.PartialSuffix)
		makeWAL(t, ctx, dsn, table, 100, 1)
		if !run.rec.wait(30*time.Second, func() bool { return slices.Contains(run.rec.completeSegments(), complete) }) {
			run.failed(t)
			t.Fatalf("OnSegment reported %v, want %s", run.rec.handedOver(), complete)
		}
		run.stop(t)
		waitSlotInactive(t, ctx, dsn, slot)
		compareSpool(t, c.DataDir(), spool)
	})
}

// commitLatencies commits n single-row transactions and measures, for
// each, how long after the commit returned OnFlush reported the server's
// flush position (taken after the commit), and how long after the commit
// started. They are returned sorted.
func commitLatencies(t *testing.T, ctx context.Context, dsn, table string, rec *walRecorder, n int) (afterCommit, fromStart []time.Duration) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for range n {
		started := time.Now()
		if _, err := conn.Exec(ctx, `INSERT INTO `+table+` (payload) VALUES ('commit')`); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		var s string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		lsn, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		rec.waitFlushed(t, lsn, 2*time.Second)
		afterCommit = append(afterCommit, time.Since(committed))
		fromStart = append(fromStart, time.Since(started))
	}
	slices.Sort(afterCommit)
	slices.Sort(fromStart)
	return afterCommit, fromStart
}

// summary formats the median, p99 and max of sorted durations.
func summary(d []time.Duration) string {
	return fmt.Sprintf("median %v, p99 %v, max %v", d[len(d)/2], d[(len(d)*99+99)/100-1], d[len(d)-1])
}

func TestPhysicalSlot(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := shared.Cluster(t)
	dsn := c.DSN("")

	created, lsn, err := pg.CreatePhysicalSlot(ctx, dsn, "recv_slot_test")
	if err != nil || !created || lsn == 0 {
		t.Fatalf("CreatePhysicalSlot() = %v, %s, %v, want a new slot", created, lsn, err)
	}
	created, again, err := pg.CreatePhysicalSlot(ctx, dsn, "recv_slot_test")
	if err != nil || created || again != lsn {
		t.Errorf("CreatePhysicalSlot(existing) = %v, %s, %v, want false, %s, nil", created, again, err, lsn)
	}
	if got := queryLSN(t, ctx, dsn, `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'recv_slot_test'`); got != lsn {
		t.Errorf("pg_replication_slots.restart_lsn = %s, want %s", got, lsn)
	}
	if err := pg.DropSlot(ctx, dsn, "recv_slot_test"); err != nil {
		t.Errorf("DropSlot() = %v", err)
	}
	if err := pg.DropSlot(ctx, dsn, "recv_slot_test"); err != nil {
		t.Errorf("DropSlot(dropped) = %v, want nil", err)
	}

	err = pg.ReceiveWAL(ctx, dsn, pg.ReceiveOptions{Slot: "recv_slot_test", Dir: t.TempDir()})
	if !errors.Is(err, pg.ErrSlotNotFound) {
		t.Errorf("ReceiveWAL(missing slot) = %v, want ErrSlotNotFound", err)
	}

	for _, name := range []string{"", "Upper", "with-dash", "x; DROP", strings.Repeat("a", 64)} {
		if _, _, err := pg.CreatePhysicalSlot(ctx, dsn, name); err == nil || !strings.Contains(err.Error(), "invalid replication slot name") {
			t.Errorf("CreatePhysicalSlot(%q) = %v, want an invalid name error", name, err)
		}
		if err := pg.DropSlot(ctx, dsn, name); err == nil || !strings.Contains(err.Error(), "invalid replication slot name") {
			t.Errorf("DropSlot(%q) = %v, want an invalid name error", name, err)
		}
		if err := pg.ReceiveWAL(ctx, dsn, pg.ReceiveOptions{Slot: name, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "invalid replication slot name") {
			t.Errorf("ReceiveWAL(slot %q) = %v, want an invalid name error", name, err)
		}
	}
}

// TestReceiveWALRefusesOtherCluster checks that a spool holding another
// cluster's WAL is refused before anything is streamed.
func TestReceiveWALRefusesOtherCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := shared.Cluster(t)
	dsn := c.DSN("")
	createSlot(t, ctx, dsn, "recv_other")
	pgtest.Exec(t, dsn, `DROP TABLE IF EXISTS recv_other_rows`, `CREATE TABLE recv_other_rows (id int)`)
	flushed := queryLSN(t, ctx, dsn, `SELECT pg_current_wal_flush_lsn()::text`)
	// The server's current segment, as if another cluster had written it.
	name := pgwal.SegmentName(1, pgwal.SegmentOf(flushed-1, 0), 0)
	data, err := os.ReadFile(filepath.Join(c.DataDir(), "pg_wal", name))
	if err != nil {
		t.Fatal(err)
	}
	data[24] ^= 0xFF // xlp_sysid
	spool := t.TempDir()
	if err := os.WriteFile(filepath.Join(spool, name+pgwal.PartialSuffix), data[:8192], 0o600); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	err = pg.ReceiveWAL(rctx, dsn, pg.ReceiveOptions{Slot: "recv_other", Dir: spool})
	if err == nil || !strings.Contains(err.Error(), name+".partial belongs to the cluster with system identifier") {
		t.Errorf("ReceiveWAL(spool of another cluster) = %v, want a refusal naming the file", err)
	}
}

// TestReceiveWALOnSegmentError checks that an error from OnSegment stops
// the receiver, and that the segment is handed over again next time.
func TestReceiveWALOnSegmentError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := shared.Cluster(t)
	dsn := c.DSN("")
	const slot, table = "recv_onseg", "recv_onseg_rows"
	pgtest.Exec(t, dsn, `DROP TABLE IF EXISTS `+table, `CREATE TABLE `+table+` (id bigserial PRIMARY KEY, payload text NOT NULL)`)
	createSlot(t, ctx, dsn, slot)
	spool := t.TempDir()

	rec := newWALRecorder()
	rec.failWith = errors.New("repository full")
	done := make(chan error, 1)
	go func() {
		done <- pg.ReceiveWAL(ctx, dsn, pg.ReceiveOptions{Slot: slot, Dir: spool, OnSegment: rec.onSegment, OnFlush: rec.onFlush})
	}()
	rec.waitFlushed(t, 1, 10*time.Second)
	makeWAL(t, ctx, dsn, table, 10, 1)
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("ReceiveWAL() did not stop after OnSegment failed")
	}
	handed := rec.completeSegments()
	if len(handed) != 1 || err == nil || !strings.Contains(err.Error(), "hand over "+handed[0]+": repository full") {
		t.Fatalf("ReceiveWAL() = %v after handing over %v, want the OnSegment error for one segment", err, handed)
	}
	waitSlotInactive(t, ctx, dsn, slot)

	run := startReceiver(t, dsn, slot, spool)
	if !run.rec.wait(10*time.Second, func() bool { return slices.Contains(run.rec.completeSegments(), handed[0]) }) {
		t.Errorf("OnSegment after restart: %v, want %s again", run.rec.handedOver(), handed[0])
	}
	run.stop(t)
}

// TestReceiveWALTimelineSwitch streams from a standby, promotes it, and
// checks that the receiver follows it onto the new timeline: the old
// timeline's last segment kept as .partial, the new history file, and the
// new timeline's segments, each identical to the standby's own files.
func TestReceiveWALTimelineSwitch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := pgtest.Start(t)
	pgtest.Exec(t, primary.DSN(""), `CREATE TABLE tl_rows (id bigserial PRIMARY KEY, payload text NOT NULL)`)

	root := tempDir(t)
	dir := filepath.Join(root, "standby")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.BaseBackup(ctx, primary.DSN(""), pg.BackupOptions{Fast: true, WAL: true}, newDirHandler(dir)); err != nil {
		t.Fatalf("BaseBackup() = %v", err)
	}
	conf := fmt.Sprintf("primary_conninfo = '%s'\n", primary.DSN(""))
	if err := os.WriteFile(filepath.Join(dir, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	standby, err := pg.StartDataDir(ctx, pg.ServerOptions{Bin: primary.Binaries(), DataDir: dir, LogFile: filepath.Join(root, "log", "standby.log")})
	if err != nil {
		t.Fatalf("StartDataDir(standby) = %v", err)
	}
	t.Cleanup(func() { standby.Stop(context.Background(), "immediate") })
	sdsn := standby.DSN("")

	holdWAL(t, sdsn, "tl_hold")
	createSlot(t, ctx, sdsn, "tl_slot")
	createSlot(t, ctx, sdsn, "tl_down")
	spool := filepath.Join(root, "spool")
	run := startReceiver(t, sdsn, "tl_slot", spool)
	// A second receiver is down during the promotion.
	downSpool := filepath.Join(root, "down")
	down := startReceiver(t, sdsn, "tl_down", downSpool)

	// Timeline 1: a complete segment, then stop in the middle of one.
	makeWAL(t, ctx, primary.DSN(""), "tl_rows", 200, 1)
	if !run.rec.wait(30*time.Second, func() bool { return len(run.rec.completeSegments()) >= 1 }) {
		run.failed(t)
		t.Fatalf("OnSegment reported %v, want a segment on timeline 1", run.rec.handedOver())
	}
	lsn := makeWAL(t, ctx, primary.DSN(""), "tl_rows", 100, 0)
	run.rec.waitFlushed(t, lsn, 30*time.Second)
	down.rec.waitFlushed(t, lsn, 30*time.Second)
	down.stop(t)

	promoted := time.Now()
	pgtest.Exec(t, sdsn, `SELECT pg_promote(true, 60)`)
	switchLSN := queryLSN(t, ctx, sdsn, `SELECT pg_current_wal_flush_lsn()::text`)
	makeWAL(t, ctx, sdsn, "tl_rows", 100, 1)
	history := pgwal.HistoryFileName(2)
	var tl2 []string
	ok := run.rec.wait(30*time.Second, func() bool {
		tl2 = nil
		for _, name := range run.rec.completeSegments() {
			if strings.HasPrefix(name, "00000002") {
				tl2 = append(tl2, name)
			}
		}
		return len(tl2) > 0
	})
	if !ok {
		run.failed(t)
		t.Fatalf("OnSegment reported %v, want a segment on timeline 2", run.rec.handedOver())
	}
	t.Logf("from promotion to the first complete segment on timeline 2: %v", time.Since(promoted).Round(time.Millisecond))
	run.rec.waitFlushed(t, makeWAL(t, ctx, sdsn, "tl_rows", 50, 0), 10*time.Second)
	run.stop(t)

	handed := run.rec.handedOver()
	if !slices.Contains(handed, history) {
		t.Errorf("OnSegment reported %v, want %s", handed, history)
	}
	var ended string
	for _, name := range handed {
		if strings.HasPrefix(name, "00000001") && strings.HasSuffix(name, pgwal.PartialSuffix) {
			ended = name
		}
	}
	if ended == "" {
		t.Fatalf("OnSegment reported %v, want the last segment of timeline 1 as .partial", handed)
	}
	_, endedSeg, _ := pgwal.ParseSegmentName(ended, 0)
	if want := pgwal.SegmentName(2, endedSeg, 0); tl2[0] != want {
		t.Errorf("first complete segment of timeline 2 = %s, want %s, where timeline 1 ended", tl2[0], want)
	}
	fi, err := os.Stat(filepath.Join(spool, ended))
	if err != nil {
		t.Fatal(err)
	}
	endedAt := pgwal.SegmentStart(endedSeg, 0) + pglogrepl.LSN(fi.Size())
	t.Logf("timeline 1 ends at %s in the spool (the standby's flush position after promotion: %s)", endedAt, switchLSN)
	compareSpool(t, standby.DataDir(), spool)

	// Resuming with the ended timeline's .partial still in the spool goes
	// on with timeline 2.
	waitSlotInactive(t, ctx, sdsn, "tl_slot")
	matches, _ := filepath.Glob(filepath.Join(spool, "00000002*"+pgwal.PartialSuffix))
	if len(matches) != 1 {
		t.Fatalf("spool holds %v, want one partial segment on timeline 2", matches)
	}
	current := filepath.Base(matches[0])
	fi, err = os.Stat(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	_, curSeg, _ := pgwal.ParseSegmentName(current, 0)
	resumeAt := pgwal.SegmentStart(curSeg, 0) + pglogrepl.LSN(fi.Size())
	run = startReceiver(t, sdsn, "tl_slot", spool)
	run.rec.waitFlushed(t, resumeAt, 10*time.Second)
	if first := run.rec.firstFlush(); first != resumeAt {
		t.Errorf("resumed with OnFlush(%s), want the end of %s, %s", first, current, resumeAt)
	}
	makeWAL(t, ctx, sdsn, "tl_rows", 100, 1)
	complete := strings.TrimSuffix(current, pgwal.PartialSuffix)
	if !run.rec.wait(30*time.Second, func() bool { return slices.Contains(run.rec.completeSegments(), complete) }) {
		run.failed(t)
		t.Fatalf("OnSegment reported %v, want %s", run.rec.handedOver(), complete)
	}
	run.stop(t)
	for _, name := range []string{ended, history} {
		if !slices.Contains(run.rec.handedOver(), name) {
			t.Errorf("OnSegment on resume: %v, want %s again", run.rec.handedOver(), name)
		}
	}
	compareSpool(t, standby.DataDir(), spool)

	// A spool left with only the ended timeline's last segment (the caller
	// stored and removed everything newer): as the slot confirmed WAL on
	// timeline 2, the file is finished; it is handed over as it is, and
	// streaming starts from the slot.
	waitSlotInactive(t, ctx, sdsn, "tl_slot")
	old, err := os.ReadFile(filepath.Join(spool, ended))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "stale")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, ended), old, 0o600); err != nil {
		t.Fatal(err)
	}
	slotAt := queryLSN(t, ctx, sdsn, `SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'tl_slot'`)
	run = startReceiver(t, sdsn, "tl_slot", stale)
	run.rec.waitFlushed(t, slotAt, 10*time.Second)
	if first, want := run.rec.firstFlush(), slotAt-pglogrepl.LSN(pgwal.SegmentOffset(slotAt, 0)); first != want {
		t.Errorf("started with OnFlush(%s), want the start of the slot's segment, %s", first, want)
	}
	if handed := run.rec.handedOver(); !slices.Contains(handed, ended) {
		t.Errorf("OnSegment reported %v, want %s", handed, ended)
	}
	run.rec.waitFlushed(t, makeWAL(t, ctx, sdsn, "tl_rows", 10, 0), 10*time.Second)
	run.stop(t)
	if got, err := os.ReadFile(filepath.Join(stale, ended)); err != nil || !bytes.Equal(got, old) {
		t.Errorf("%s: %d bytes, %v, want the %d bytes it had", ended, len(got), err, len(old))
	}
	compareSpool(t, standby.DataDir(), stale)

	// The receiver that was down during the promotion resumes in its
	// partial segment on timeline 1, now historic: the server streams it
	// up to the switch (from its file of timeline 2, which holds a copy),
	// ends the timeline, and streaming goes on with timeline 2.
	waitSlotInactive(t, ctx, sdsn, "tl_down")
	down = startReceiver(t, sdsn, "tl_down", downSpool)
	first := pgwal.SegmentName(2, endedSeg, 0)
	if !down.rec.wait(30*time.Second, func() bool { return slices.Contains(down.rec.completeSegments(), first) }) {
		down.failed(t)
		t.Fatalf("OnSegment reported %v, want %s", down.rec.handedOver(), first)
	}
	down.stop(t)
	for _, name := range []string{ended, history} {
		if !slices.Contains(down.rec.handedOver(), name) {
			t.Errorf("OnSegment after the promotion: %v, want %s", down.rec.handedOver(), name)
		}
	}
	if got, err := os.ReadFile(filepath.Join(downSpool, ended)); err != nil || !bytes.Equal(got, old) {
		t.Errorf("%s received after the promotion: %d bytes, %v, want the %d bytes received live", ended, len(got), err, len(old))
	}
	compareSpool(t, standby.DataDir(), downSpool)
}
