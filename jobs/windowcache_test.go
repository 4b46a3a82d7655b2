package jobs

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
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
