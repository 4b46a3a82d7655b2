package handlers

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/backstop/backstop/store"
)

// TestWarmReadsTheCharts: after Warm (which serve runs before it serves), the overview's lag
// chart of every source comes from the cache: a day of samples each, nothing older than
// the cache's margin, and no read of the catalog (samples deleted since still show).
func TestWarmReadsTheCharts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	h := New(st, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.now = func() time.Time { return now }
	want := map[int64]int{}
	for i, name := range []string{"orders", "billing"} {
		src, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://backstop@127.0.0.1:1/postgres",
			SystemIdentifier: "730000000000000000" + string(rune('1'+i)), PGVersion: 150004, Timeline: 1})
		if err != nil {
			t.Fatal(err)
		}
		// A sample every 10 minutes for two days: 145 in the last day, 6 more in the
		// hour before it.
		for at := now.Add(-48 * time.Hour); !at.After(now); at = at.Add(10 * time.Minute) {
			if err := st.RecordSourceSample(ctx, store.SourceSample{SourceID: src.ID, At: at, LagSeconds: 1}); err != nil {
				t.Fatal(err)
			}
		}
		want[src.ID] = 24*6 + 1
	}
	if err := h.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range want {
		if got := len(h.lagSamples.m[id]); got != n+6 {
			t.Errorf("source %d: %d samples cached after Warm, want the %d of the last day and the 6 of the hour before", id, got, n)
		}
	}
	if _, err := st.DeleteSourceSamples(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	for id, n := range want {
		xs, err := h.lagSamples.get(ctx, st, id, now.Add(-lagPeriod))
		if err != nil || len(xs) != n {
			t.Errorf("source %d: chart after Warm = %d samples, %v; want the %d cached", id, len(xs), err, n)
		}
	}
}
