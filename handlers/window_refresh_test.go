package handlers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// TestPagesShowTheFreshWindowAfterAChange: with the windows kept in the background (as
// serve keeps them), a page never computes one: before the first computation the restore
// page and the overview say it is being computed, and after each change (a new WAL
// segment, a WAL segment deleted from the repository behind the catalog's back, a new
// backup) the pages show the window computed from the facts after it, gap and health
// included, within the refresh.
func TestPagesShowTheFreshWindowAfterAChange(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	ctx := t.Context()
	c := f.signedIn(t, store.RoleAdmin)
	windows := f.svc.Windows()
	windows.ListEvery = time.Second
	restorePath := fmt.Sprintf("/sources/%d/restore", f.orders.ID)
	card := fmt.Sprintf("source-%d", f.orders.ID)

	windows.Keep()
	_, page := f.get(t, c, restorePath)
	if got := testIDText(t, page, "", "window-computing"); !strings.Contains(got, "Computing the restorable window") {
		t.Fatalf("restore page before the first computation: window-computing = %q, want it computing", got)
	}
	_, page = f.get(t, c, "/")
	if got := testIDText(t, page, card, "restorable"); !strings.Contains(got, "Computing") {
		t.Errorf("overview before the first computation: restorable = %q, want Computing…", got)
	}
	if got := testIDText(t, page, card, "restore-answer"); !strings.Contains(got, "Not known yet") {
		t.Errorf("overview before the first computation: restore-answer = %q, want Not known yet", got)
	}

	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		windows.Run(runCtx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	f.waitForFreshWindow(t, c, restorePath)

	// A new WAL segment, archived as the archiver does: in the repository, then recorded.
	const segSize = 16 << 20
	sysID := f.orders.SystemIdentifier
	newest := f.now.Add(-10 * time.Minute).Truncate(time.Microsecond) // as the catalog keeps it
	name6 := pgwal.SegmentName(1, 6, segSize)
	if _, _, err := f.repo.PutWAL(ctx, sysID, name6, io.LimitReader(zeroReader{}, segSize), segSize); err != nil {
		t.Fatal(err)
	}
	start := pgwal.SegmentStart(6, segSize)
	if _, err := f.store.RecordWAL(ctx, store.WALFileParams{SourceID: f.orders.ID, Name: name6, Kind: store.WALSegment, Timeline: 1,
		SegNo: 6, StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(segSize)).String(), Size: segSize,
		Commits: 3, FirstCommitAt: newest.Add(-5 * time.Minute), LastCommitAt: newest, Via: store.WALViaStream}); err != nil {
		t.Fatal(err)
	}
	w := f.waitForFreshWindow(t, c, restorePath)
	if !w.Latest.Equal(newest) || len(w.Gaps) != 0 {
		t.Fatalf("window after the new segment = latest %s, %d gaps; want latest %s, no gap", w.Latest, len(w.Gaps), newest)
	}

	// Segment 5 lost from the repository: the catalog does not know, the window shows the
	// gap and health is broken.
	name5 := pgwal.SegmentName(1, 5, segSize)
	if err := os.Remove(filepath.Join(f.repo.Dir(), "wal", sysID, name5+".wal")); err != nil {
		t.Fatal(err)
	}
	w = f.waitForFreshWindow(t, c, restorePath)
	if len(w.Gaps) != 1 || w.Gaps[0].Segment != name5 {
		t.Fatalf("window after losing segment 5 = gaps %+v, want one at %s", w.Gaps, name5)
	}
	_, page = f.get(t, c, "/")
	if got := testIDText(t, page, card, "restore-answer"); !strings.Contains(got, "No") || !strings.Contains(got, "WAL is missing") {
		t.Errorf("overview after losing segment 5: restore-answer = %q, want No: WAL is missing", got)
	}

	// A backup after the gap starts a new range.
	b, err := f.store.CreateBackup(ctx, store.BackupParams{SourceID: f.orders.ID, RepoID: "orders-after-gap", StartedAt: newest,
		StartLSN: (start + 0x28).String(), Timeline: 1, SystemIdentifier: sysID})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: (start + 0x200).String(),
		Stats: store.BackupStats{SourceBytes: 6 << 30}}); err != nil {
		t.Fatal(err)
	}
	w = f.waitForFreshWindow(t, c, restorePath)
	if len(w.Ranges) != 2 || w.Ranges[1].BackupID != b.ID {
		t.Fatalf("window after the backup = ranges %+v, want a second one from backup %d", w.Ranges, b.ID)
	}
}

// waitForFreshWindow waits until the restore page at path shows the window of f.orders as
// computed now from the facts (by a cache that computes on read), and returns it.
func (f *integrityApp) waitForFreshWindow(t *testing.T, c *http.Client, path string) jobs.Window {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // the refresh is every few seconds; the machine may be loaded
	for {
		w, _, err := jobs.NewWindowCache(f.store, f.repo).Window(t.Context(), f.orders)
		if err != nil {
			t.Fatal(err)
		}
		_, page := f.get(t, c, path)
		if restorePageShows(page, w) {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restore page does not show the window computed from the facts (%s, %d gaps, %d backups)", w, len(w.Gaps), len(w.Backups))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// restorePageShows reports whether a restore page shows window w, computed in the
// background: its ends, one marker per backup, each gap in words and when it was computed.
func restorePageShows(page string, w jobs.Window) bool {
	return strings.Contains(page, `datetime="`+w.Earliest.UTC().Format(time.RFC3339Nano)+`"`) &&
		strings.Contains(page, `datetime="`+w.Latest.UTC().Format(time.RFC3339Nano)+`"`) &&
		strings.Count(page, `class="tl-backup`) == len(w.Backups) &&
		strings.Count(page, "missing from the archive.") == len(w.Gaps) &&
		!slices.ContainsFunc(w.Gaps, func(g jobs.Gap) bool { return !strings.Contains(page, "segment "+g.Segment+" is missing") }) &&
		strings.Contains(page, `data-testid="window-computed-at"`)
}
