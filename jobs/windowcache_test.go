package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pglogrepl"
	"pgregory.net/rapid"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// hasProblem reports whether f has a problem of rule at level.
func hasProblem(f health.Facts, now time.Time, p health.Policy, rule string, level health.Level) bool {
	return slices.ContainsFunc(health.Problems(f, now, p), func(pr health.Problem) bool { return pr.Rule == rule && pr.Level == level })
}

// TestKeptWindowsAndHealth: while the windows are kept (as serve keeps them), a read never
// computes: before the first computation the window is unknown, health says so and the
// alerts wait; then reads get the window computed in the background; a computation that
// fails keeps the last window, and once it could not be checked for ListEvery, health is
// broken.
func TestKeptWindowsAndHealth(t *testing.T) {
	t.Parallel()
	c := newMetricsCatalog(t)
	ctx := t.Context()
	w := c.windows
	w.Keep()

	if _, _, err := w.Window(ctx, c.orders); !errors.Is(err, ErrWindowUnknown) {
		t.Fatalf("Window before the first computation = %v, want ErrWindowUnknown", err)
	}
	f, p, err := GatherFacts(ctx, c.st, w, c.orders, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if !f.WindowPending || !hasProblem(f, c.now, p, "window-unknown", health.Warning) {
		t.Errorf("facts before the first computation = pending %v, problems %+v; want a window-unknown warning", f.WindowPending, health.Problems(f, c.now, p))
	}
	e := NewEvaluator(c.st, w, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if changes, err := e.Evaluate(ctx); err != nil || len(changes) != 0 {
		t.Errorf("Evaluate before the first computation = %+v, %v; want nothing opened or resolved", changes, err)
	}

	if err := w.RefreshAll(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, err := w.Window(ctx, c.orders)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := NewWindowCache(c.st, c.repo).Window(ctx, c.orders)
	if err != nil {
		t.Fatal(err)
	}
	if got.ComputedAt.IsZero() || got.String() != want.String() || !got.Latest.Equal(c.commits[1]) {
		t.Errorf("kept window = %s (computed at %s), want %s to %s", got, got.ComputedAt, want, c.commits[1])
	}
	if changes, err := e.Evaluate(ctx); err != nil || len(changes) == 0 {
		t.Errorf("Evaluate once the window is known = %+v, %v; want the rules evaluated", changes, err)
	}

	// The repository lost a history file the catalog lists: computing fails.
	if _, err := c.st.RecordWAL(ctx, store.WALFileParams{SourceID: c.orders.ID, Name: "00000002.history", Kind: store.WALHistory,
		Timeline: 2, Size: 42, Via: store.WALViaStream}); err != nil {
		t.Fatal(err)
	}
	if err := w.RefreshAll(ctx); err == nil || !strings.Contains(err.Error(), "00000002.history") {
		t.Fatalf("RefreshAll with a history file missing = %v, want it to name the file", err)
	}
	if kept, _, err := w.Window(ctx, c.orders); err != nil || !kept.ComputedAt.Equal(got.ComputedAt) {
		t.Errorf("Window after a failed computation = computed at %s, %v; want the last one, computed at %s", kept.ComputedAt, err, got.ComputedAt)
	}
	if f, p, err = GatherFacts(ctx, c.st, w, c.orders, c.now); err != nil || f.WindowUnknown != "" {
		t.Errorf("facts just after a failure = %q, %v; want the last window trusted until ListEvery", f.WindowUnknown, err)
	}
	w.ListEvery = time.Nanosecond // as if a minute had passed since the last check
	if f, p, err = GatherFacts(ctx, c.st, w, c.orders, c.now); err != nil || !hasProblem(f, c.now, p, "window-unknown", health.Broken) {
		t.Errorf("facts after failing for ListEvery = %q, %v; want a broken window-unknown", f.WindowUnknown, err)
	}
	if !strings.Contains(f.WindowUnknown, "00000002.history") {
		t.Errorf("WindowUnknown = %q, want the cause", f.WindowUnknown)
	}
}

// TestKeptWindowNotCheckedIsBroken: a kept window that nothing checked for twice ListEvery
// (the refresh stopped or fell far behind) makes health broken rather than trusted.
func TestKeptWindowNotCheckedIsBroken(t *testing.T) {
	t.Parallel()
	c := newMetricsCatalog(t)
	ctx := t.Context()
	w := c.windows
	w.Keep()
	if err := w.RefreshAll(ctx); err != nil {
		t.Fatal(err)
	}
	f, p, err := GatherFacts(ctx, c.st, w, c.orders, c.now)
	if err != nil || f.WindowUnknown != "" {
		t.Fatalf("facts of a window just checked = %q, %v; want it trusted", f.WindowUnknown, err)
	}
	w.ListEvery = time.Nanosecond // as if two minutes had passed without a refresh
	f, p, err = GatherFacts(ctx, c.st, w, c.orders, c.now)
	if err != nil || !hasProblem(f, c.now, p, "window-unknown", health.Broken) || !strings.Contains(f.WindowUnknown, "has not checked") {
		t.Errorf("facts of a window not checked for long = %q, %v; want a broken window-unknown", f.WindowUnknown, err)
	}
}

// TestKeptWindowFollowsEveryChange: a kept window, brought up to date from what changed
// in the catalog since it was computed, equals the window computed afresh after every
// kind of change: new segments, a partial piece and the longer piece and the segment
// that replace it, a history file, a segment the catalog loses, and a backup.
func TestKeptWindowFollowsEveryChange(t *testing.T) {
	t.Parallel()
	c := newMetricsCatalog(t)
	ctx := t.Context()
	w := c.windows
	w.Keep()
	const segSize = 16 << 20
	put := func(name string, data io.Reader, size int64) {
		t.Helper()
		if _, _, err := c.repo.PutWAL(ctx, c.orders.SystemIdentifier, name, data, size); err != nil {
			t.Fatal(err)
		}
	}
	archive := func(segNo uint64, size int64, at time.Time) {
		t.Helper()
		name, kind := pgwal.SegmentName(1, segNo, segSize), store.WALSegment
		if size < segSize {
			name, kind = repository.PartialWALName(name, size), store.WALPartial
		}
		put(name, io.LimitReader(zeros{}, size), size)
		start := pgwal.SegmentStart(segNo, segSize)
		if _, err := c.st.RecordWAL(ctx, store.WALFileParams{SourceID: c.orders.ID, Name: name, Kind: kind, Timeline: 1,
			SegNo: int64(segNo), StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(size)).String(), Size: size,
			Commits: 1, FirstCommitAt: at, LastCommitAt: at, Via: store.WALViaStream}); err != nil {
			t.Fatal(err)
		}
	}
	// same refreshes the kept window and checks it against one computed afresh.
	same := func(after string) {
		t.Helper()
		if err := w.RefreshAll(ctx); err != nil {
			t.Fatalf("RefreshAll after %s = %v", after, err)
		}
		got, gotIn, err := w.Window(ctx, c.orders)
		if err != nil {
			t.Fatal(err)
		}
		if diff, err := freshDiff(ctx, c.st, c.repo, c.orders, got, gotIn); err != nil || diff != "" {
			t.Errorf("kept after %s differs from one computed afresh (%v): %s", after, err, diff)
		}
		if len(got.Ranges) == 0 {
			t.Errorf("kept window after %s is empty, want the orders' window", after)
		}
	}
	same("the first computation")
	at := c.now.Add(-4 * time.Second)
	archive(3, 16<<10, at) // a longer piece replaces the 8 KiB one
	same("a longer partial piece")
	archive(3, segSize, at.Add(time.Second)) // the segment replaces the piece
	same("the segment replacing its piece")
	archive(4, segSize, at.Add(2*time.Second))
	archive(5, segSize, at.Add(3*time.Second))
	same("two more segments")
	history := "1\t0/6000000\tno recovery target specified\n"
	put("00000002.history", strings.NewReader(history), int64(len(history)))
	if _, err := c.st.RecordWAL(ctx, store.WALFileParams{SourceID: c.orders.ID, Name: "00000002.history", Kind: store.WALHistory,
		Timeline: 2, Size: int64(len(history)), Via: store.WALViaStream}); err != nil {
		t.Fatal(err)
	}
	same("a history file")
	if err := c.st.Expire(ctx, []store.Expiration{{SourceID: c.orders.ID, Kind: store.ExpireWAL, Name: pgwal.SegmentName(1, 4, segSize),
		SystemID: c.orders.SystemIdentifier, Bytes: segSize, Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	same("a segment the catalog no longer lists")
	b, err := c.st.CreateBackup(ctx, store.BackupParams{SourceID: c.orders.ID, RepoID: "orders-4", StartLSN: "0/5000028", Timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: "0/5000200"}); err != nil {
		t.Fatal(err)
	}
	same("a backup")
}

// TestKeptWindowMatchesFreshProperty applies random sequences of WAL changes (segments,
// partial pieces and the pieces and segments that replace them, on two timelines, a
// history file, restore points, expiry, files the repository loses, another source's
// changes) with refreshes, reads and invalidations between them, and checks after each
// read that the kept WAL rows, the input and the window equal those computed from
// scratch, and that no input handed out before changed since.
func TestKeptWindowMatchesFreshProperty(t *testing.T) {
	t.Parallel()
	const segSize = 1 << 20
	const sysID = "7300000000000000042"
	dir := t.TempDir()
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// One repository for every run: what was put stays put, unless a run loses it.
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	put := map[string]bool{}
	history := "1\t0/800000\tno recovery target specified\n"
	runs := 0
	rapid.Check(t, func(rt *rapid.T) {
		ctx := t.Context()
		runs++
		st, err := store.Open(ctx, filepath.Join(dir, fmt.Sprintf("catalog-%d.db", runs)))
		if err != nil {
			rt.Fatal(err)
		}
		defer st.Close()
		src, err := createKeptSource(ctx, st, "orders", sysID)
		if err != nil {
			rt.Fatal(err)
		}
		other, err := createKeptSource(ctx, st, "other", "7300000000000000044")
		if err != nil {
			rt.Fatal(err)
		}
		w := NewWindowCache(st, repo)
		if rapid.Bool().Draw(rt, "keep") {
			w.Keep()
		}
		now := time.Now().UTC().Truncate(time.Second)
		lost := map[string]bool{} // by this run: a recorded file the repository loses stays lost
		record := func(p store.WALFileParams) {
			if lost[p.Name] { // put again only when archived anew, not as a row kept
				rows, err := st.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
				if err != nil {
					rt.Fatal(err)
				}
				if slices.ContainsFunc(rows, func(f store.WALFile) bool { return f.Name == p.Name }) {
					return
				}
				delete(lost, p.Name)
			}
			if !put[p.Name] {
				if _, _, err := repo.PutWAL(ctx, sysID, p.Name, io.LimitReader(zeros{}, p.Size), p.Size); err != nil {
					rt.Fatal(err)
				}
				put[p.Name] = true
			}
			if _, err := st.RecordWAL(ctx, p); err != nil && !errors.Is(err, store.ErrConflict) {
				rt.Fatalf("RecordWAL(%s) = %v", p.Name, err)
			}
		}
		type handed struct {
			in   WindowInput
			copy []store.WALFile
		}
		var given []handed
		check := func(after string) {
			got, gotIn, err := w.Window(ctx, src)
			if err != nil {
				rt.Fatalf("Window after %s = %v", after, err)
			}
			given = append(given, handed{gotIn, slices.Clone(gotIn.WAL)})
			w.mu.Lock()
			cw := w.m[src.ID]
			w.mu.Unlock()
			rows, err := st.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
			if err != nil {
				rt.Fatal(err)
			}
			kept := append(slices.Clone(cw.histories), cw.wal...)
			slices.SortStableFunc(kept, func(a, b store.WALFile) int { return int(a.ID - b.ID) })
			slices.SortStableFunc(rows, func(a, b store.WALFile) int { return int(a.ID - b.ID) })
			if diff := cmp.Diff(rows, kept, cmpopts.EquateEmpty()); diff != "" {
				rt.Fatalf("kept rows after %s differ from the catalog's (-want +got):\n%s", after, diff)
			}
			if cw.version != "" {
				v, err := st.WindowVersion(ctx, src.ID)
				if err != nil {
					rt.Fatal(err)
				}
				if v != cw.version {
					return // a read between changes and Run: the kept window is older, as it may be
				}
			}
			if diff, err := freshDiff(ctx, st, repo, src, got, gotIn); err != nil || diff != "" {
				rt.Fatalf("kept after %s differs from one computed afresh (%v): %s", after, err, diff)
			}
			for i, h := range given {
				if !slices.Equal(h.copy, h.in.WAL) { // a shallow copy: == is exact
					rt.Fatalf("input %d handed out changed by %s (-then +now):\n%s", i, after, cmp.Diff(h.copy, h.in.WAL))
				}
			}
		}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for i := range steps {
			var did string
			switch op := rapid.IntRange(0, 11).Draw(rt, "op"); op {
			case 0, 1, 2: // a segment
				tl := rapid.IntRange(1, 2).Draw(rt, "timeline")
				segNo := rapid.Int64Range(0, 13).Draw(rt, "segno")
				start := pgwal.SegmentStart(uint64(segNo), segSize)
				at := now.Add(time.Duration(segNo) * time.Second)
				record(store.WALFileParams{SourceID: src.ID, Name: pgwal.SegmentName(uint32(tl), uint64(segNo), segSize), Kind: store.WALSegment,
					Timeline: int64(tl), SegNo: segNo, StartLSN: start.String(), EndLSN: (start + segSize).String(), Size: segSize,
					Commits: 1, FirstCommitAt: at, LastCommitAt: at, Via: store.WALViaStream})
				did = fmt.Sprintf("segment %d/%d", tl, segNo)
			case 3, 4: // a partial piece
				tl := rapid.IntRange(1, 2).Draw(rt, "timeline")
				segNo := rapid.Int64Range(0, 13).Draw(rt, "segno")
				size := int64(8<<10) << rapid.IntRange(0, 3).Draw(rt, "piece")
				start := pgwal.SegmentStart(uint64(segNo), segSize)
				at := now.Add(time.Duration(segNo) * time.Second)
				record(store.WALFileParams{SourceID: src.ID, Name: repository.PartialWALName(pgwal.SegmentName(uint32(tl), uint64(segNo), segSize), size),
					Kind: store.WALPartial, Timeline: int64(tl), SegNo: segNo, StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(size)).String(),
					Size: size, Commits: 1, FirstCommitAt: at, LastCommitAt: at, Via: store.WALViaStream})
				did = fmt.Sprintf("piece %d/%d of %d", tl, segNo, size)
			case 5: // the history file of timeline 2
				p := store.WALFileParams{SourceID: src.ID, Name: "00000002.history", Kind: store.WALHistory, Timeline: 2,
					Size: int64(len(history)), Via: store.WALViaStream}
				if !put[p.Name] {
					if _, _, err := repo.PutWAL(ctx, sysID, p.Name, strings.NewReader(history), p.Size); err != nil {
						rt.Fatal(err)
					}
					put[p.Name] = true
				}
				if _, err := st.RecordWAL(ctx, p); err != nil {
					rt.Fatal(err)
				}
				did = "history"
			case 6, 7, 10: // expiry, a restore point or a loss (which a verification finds), of a recorded file
				rows, err := st.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
				if err != nil {
					rt.Fatal(err)
				}
				if len(rows) == 0 {
					continue
				}
				f := rows[rapid.IntRange(0, len(rows)-1).Draw(rt, "file")]
				if op == 6 {
					if err := st.Expire(ctx, []store.Expiration{{SourceID: src.ID, Kind: store.ExpireWAL, Name: f.Name,
						SystemID: sysID, Bytes: f.Size, Reason: "test"}}); err != nil {
						rt.Fatal(err)
					}
					did = "expiry of " + f.Name
					break
				}
				if f.Kind == store.WALHistory {
					continue
				}
				if op == 10 {
					if err := os.Remove(filepath.Join(dir, "repository", "wal", sysID, f.Name+".wal")); err != nil && !errors.Is(err, fs.ErrNotExist) {
						rt.Fatal(err)
					}
					put[f.Name], lost[f.Name] = false, true
					w.Invalidate(src.ID)
					did = "loss of " + f.Name
					break
				}
				if err := st.RecordRestorePoints(ctx, f.ID, []store.RestorePointParams{{Name: fmt.Sprintf("p%d", i), LSN: f.StartLSN,
					At: now.Add(time.Duration(f.SegNo) * time.Second)}}); err != nil && !errors.Is(err, store.ErrConflict) {
					rt.Fatal(err)
				}
				did = "restore point in " + f.Name
			case 11: // another source's segment, or its expiry (the IDs and the change log are shared)
				segNo := rapid.Int64Range(0, 13).Draw(rt, "segno")
				start := pgwal.SegmentStart(uint64(segNo), segSize)
				name := pgwal.SegmentName(1, uint64(segNo), segSize)
				rows, err := st.WALFiles(ctx, store.WALFilter{SourceID: other.ID})
				if err != nil {
					rt.Fatal(err)
				}
				if slices.ContainsFunc(rows, func(f store.WALFile) bool { return f.Name == name }) {
					err = st.Expire(ctx, []store.Expiration{{SourceID: other.ID, Kind: store.ExpireWAL, Name: name,
						SystemID: other.SystemIdentifier, Bytes: segSize, Reason: "test"}})
				} else {
					_, err = st.RecordWAL(ctx, store.WALFileParams{SourceID: other.ID, Name: name, Kind: store.WALSegment, Timeline: 1,
						SegNo: segNo, StartLSN: start.String(), EndLSN: (start + segSize).String(), Size: segSize, Via: store.WALViaStream})
				}
				if err != nil {
					rt.Fatal(err)
				}
				did = "the other source's " + name
			case 8:
				w.Invalidate(src.ID)
				did = "invalidation"
			case 9:
				if _, _, err := w.Current(ctx, src); err != nil {
					rt.Fatal(err)
				}
				did = "current"
			}
			if rapid.Bool().Draw(rt, "refresh") {
				if err := w.RefreshAll(ctx); err != nil {
					rt.Fatalf("RefreshAll after %s = %v", did, err)
				}
				check(did)
			}
		}
		if err := w.RefreshAll(ctx); err != nil {
			rt.Fatal(err)
		}
		check("the last step")
	})
}

// TestKeptWindowWithConcurrentChangesAndReads: while WAL is archived and expired, restores
// plan from Current and Run refreshes at the same time; afterwards the kept rows and window
// equal those computed afresh, and no input handed out meanwhile changed.
func TestKeptWindowWithConcurrentChangesAndReads(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKeptCatalog(t)
	st, repo, src, archive, w := k.st, k.repo, k.src, k.archive, k.windows
	const segSize, sysID = keptSegSize, keptSysID
	if err := archive(1, segSize); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Current(ctx, src); err != nil {
		t.Fatal(err)
	}
	w.Keep()

	done := make(chan struct{})
	errc := make(chan error, 3)
	go func() { // the archiver, with expiry of every fifth segment
		defer close(done)
		for segNo := uint64(2); segNo < 24; segNo++ {
			for _, size := range []int64{64 << 10, segSize} {
				if err := archive(segNo, size); err != nil {
					errc <- err
					return
				}
			}
			if segNo%5 == 0 {
				if err := st.Expire(ctx, []store.Expiration{{SourceID: src.ID, Kind: store.ExpireWAL, Name: pgwal.SegmentName(1, segNo-3, segSize),
					SystemID: sysID, Bytes: segSize, Reason: "test"}}); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	type handed struct {
		in   WindowInput
		copy []store.WALFile
	}
	var mu sync.Mutex
	var given []handed
	reader := func(read func() (WindowInput, error)) {
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			in, err := read()
			if err != nil {
				errc <- err
				return
			}
			mu.Lock()
			given = append(given, handed{in, slices.Clone(in.WAL)})
			mu.Unlock()
		}
	}
	go reader(func() (WindowInput, error) { // restores
		_, in, err := w.Current(ctx, src)
		return in, err
	})
	go reader(func() (WindowInput, error) { // Run and pages
		if err := w.RefreshAll(ctx); err != nil {
			return WindowInput{}, err
		}
		_, in, err := w.Window(ctx, src)
		return in, err
	})
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	<-done

	if err := w.RefreshAll(ctx); err != nil {
		t.Fatal(err)
	}
	got, gotIn, err := w.Window(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if diff, err := freshDiff(ctx, st, repo, src, got, gotIn); err != nil || diff != "" {
		t.Errorf("kept window differs from one computed afresh (%v): %s", err, diff)
	}
	for i, h := range given {
		if !slices.Equal(h.copy, h.in.WAL) { // a shallow copy: == is exact
			t.Fatalf("input %d of %d handed out changed since (-then +now):\n%s", i, len(given), cmp.Diff(h.copy, h.in.WAL))
		}
	}
}

// keptSegSize and keptSysID are the segment size and system identifier of newKeptCatalog's
// source.
const (
	keptSegSize = 1 << 20
	keptSysID   = "7300000000000000043"
)

// keptCatalog is a catalog and repository with one source, orders, and a complete
// backup of it ending in its segment 1 (of keptSegSize bytes), with its window cache.
type keptCatalog struct {
	st      *store.Store
	repo    *repository.Repo
	src     store.Source
	windows *WindowCache
	// archive puts the first size bytes of segment segNo of timeline 1 into the
	// repository, then records them (a partial piece when size is below a segment).
	archive func(segNo uint64, size int64) error
}

func newKeptCatalog(t *testing.T) keptCatalog {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	src, err := createKeptSource(ctx, st, "orders", keptSysID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	archive := func(segNo uint64, size int64) error {
		name, kind := pgwal.SegmentName(1, segNo, keptSegSize), store.WALSegment
		if size < keptSegSize {
			name, kind = repository.PartialWALName(name, size), store.WALPartial
		}
		if _, _, err := repo.PutWAL(ctx, keptSysID, name, io.LimitReader(zeros{}, size), size); err != nil {
			return err
		}
		start, at := pgwal.SegmentStart(segNo, keptSegSize), now.Add(time.Duration(segNo)*time.Second)
		_, err := st.RecordWAL(ctx, store.WALFileParams{SourceID: src.ID, Name: name, Kind: kind, Timeline: 1,
			SegNo: int64(segNo), StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(size)).String(), Size: size,
			Commits: 1, FirstCommitAt: at, LastCommitAt: at, Via: store.WALViaStream})
		return err
	}
	return keptCatalog{st: st, repo: repo, src: src, windows: NewWindowCache(st, repo), archive: archive}
}

// createKeptSource creates a source named name with a complete backup ending in its
// segment 1 (of keptSegSize bytes).
func createKeptSource(ctx context.Context, st *store.Store, name, sysID string) (store.Source, error) {
	src, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: sysID, PGVersion: 150004, Timeline: 1})
	if err != nil {
		return store.Source{}, err
	}
	b, err := st.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: name + "-1", StartLSN: "0/100028", Timeline: 1})
	if err != nil {
		return store.Source{}, err
	}
	return src, st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: "0/100200"})
}

// sameAsFresh checks that k's kept window and WAL input equal those computed afresh.
func (k keptCatalog) sameAsFresh(t *testing.T, after string) {
	t.Helper()
	got, gotIn, err := k.windows.Window(t.Context(), k.src)
	if err != nil {
		t.Fatalf("Window after %s = %v", after, err)
	}
	if diff, err := freshDiff(t.Context(), k.st, k.repo, k.src, got, gotIn); err != nil || diff != "" {
		t.Errorf("kept after %s differs from one computed afresh (%v): %s", after, err, diff)
	}
}

// freshDiff compares src's kept window and input (got, gotIn) with those computed afresh
// from st and repo, and says how they differ: "" when they do not.
func freshDiff(ctx context.Context, st *store.Store, repo *repository.Repo, src store.Source, got Window, gotIn WindowInput) (string, error) {
	wantIn, err := LoadWindowInput(ctx, st, repo, src)
	if err != nil {
		return "", err
	}
	if diff := cmp.Diff(wantIn.WAL, gotIn.WAL, cmpopts.EquateEmpty()); diff != "" {
		return "WAL input (-fresh +kept):\n" + diff, nil
	}
	got.ComputedAt = time.Time{}
	if diff := cmp.Diff(ComputeWindow(wantIn), got, cmpopts.EquateEmpty()); diff != "" {
		return "window (-fresh +kept):\n" + diff, nil
	}
	return "", nil
}

// TestKeptWindowAfterFailedComputations: computations that fail after reading what
// changed (a history file the repository cannot give, then a canceled context) keep
// nothing of it, and the next one brings the kept window up to date.
func TestKeptWindowAfterFailedComputations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	k := newKeptCatalog(t)
	for segNo := range uint64(4) {
		if err := k.archive(segNo+1, keptSegSize); err != nil {
			t.Fatal(err)
		}
	}
	k.windows.Keep()
	if err := k.windows.RefreshAll(ctx); err != nil {
		t.Fatal(err)
	}
	k.sameAsFresh(t, "the first computation")
	// A history file recorded without being in the repository: reading it fails.
	if _, err := k.st.RecordWAL(ctx, store.WALFileParams{SourceID: k.src.ID, Name: "00000002.history", Kind: store.WALHistory,
		Timeline: 2, Size: 40, Via: store.WALViaStream}); err != nil {
		t.Fatal(err)
	}
	for _, segNo := range []uint64{5, 6} {
		if err := k.archive(segNo, keptSegSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.windows.RefreshAll(ctx); err == nil {
		t.Fatal("RefreshAll with a history file the repository lacks = nil, want an error")
	}
	if err := k.archive(7, 64<<10); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := k.windows.Current(canceled, k.src); err == nil {
		t.Fatal("Current(canceled context) = nil error, want one")
	}
	history := "1\t0/6000000\tno recovery target specified\n"
	// The history file arrives, with other values than recorded: record it again.
	if err := k.st.Expire(ctx, []store.Expiration{{SourceID: k.src.ID, Kind: store.ExpireWAL, Name: "00000002.history",
		SystemID: keptSysID, Bytes: 40, Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.repo.PutWAL(ctx, keptSysID, "00000002.history", strings.NewReader(history), int64(len(history))); err != nil {
		t.Fatal(err)
	}
	if _, err := k.st.RecordWAL(ctx, store.WALFileParams{SourceID: k.src.ID, Name: "00000002.history", Kind: store.WALHistory,
		Timeline: 2, Size: int64(len(history)), Via: store.WALViaStream}); err != nil {
		t.Fatal(err)
	}
	if err := k.archive(7, keptSegSize); err != nil {
		t.Fatal(err)
	}
	if err := k.windows.RefreshAll(ctx); err != nil {
		t.Fatal(err)
	}
	k.sameAsFresh(t, "failed computations")
}
