package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/store"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		expr, tz string
		from     time.Time
		want     time.Time // zero: an error
	}{
		{"0 2 * * *", "UTC", time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)},
		{"@daily", "UTC", time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC), time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)},
		// 02:30 Berlin does not exist on 2027-03-28 (clocks jump from 02:00 to 03:00): the
		// next 02:30 is the day after; in winter 02:30 Berlin is 01:30 UTC, in summer 00:30.
		{"30 2 * * *", "Europe/Berlin", time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 29, 0, 30, 0, 0, time.UTC)},
		{"30 2 * * *", "Europe/Berlin", time.Date(2027, 3, 26, 12, 0, 0, 0, time.UTC), time.Date(2027, 3, 27, 1, 30, 0, 0, time.UTC)},
		{"0 2 29 2 *", "UTC", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Date(2028, 2, 29, 2, 0, 0, 0, time.UTC)},
		{"0 2 * *", "UTC", time.Time{}, time.Time{}},
		{"0 2 * * *", "Mars/Olympus", time.Time{}, time.Time{}},
		{"CRON_TZ=UTC 0 2 * * *", "UTC", time.Time{}, time.Time{}},
	} {
		s, err := ParseSchedule(tt.expr, tt.tz)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("ParseSchedule(%q, %q) = nil error, want one", tt.expr, tt.tz)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSchedule(%q, %q) = %v", tt.expr, tt.tz, err)
			continue
		}
		if got := s.Next(tt.from); !got.Equal(tt.want) {
			t.Errorf("ParseSchedule(%q, %q).Next(%s) = %s, want %s", tt.expr, tt.tz, tt.from, got.UTC(), tt.want)
		}
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	daily, _ := ParseSchedule("0 2 * * *", "UTC")
	minutely, _ := ParseSchedule("* * * * *", "UTC")
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	seen := map[time.Duration]bool{}
	for _, name := range []string{"orders", "billing", "users", "events", "search"} {
		j := Jitter(daily, name, now)
		if j < 0 || j >= maxJitter {
			t.Errorf("Jitter(daily, %q) = %s, want within [0, %s)", name, j, maxJitter)
		}
		if j != Jitter(daily, name, now.Add(5*time.Hour)) {
			t.Errorf("Jitter(daily, %q) changes with the time: want it fixed per source", name)
		}
		seen[j] = true
		if j := Jitter(minutely, name, now); j >= 6*time.Second {
			t.Errorf("Jitter(every minute, %q) = %s, want under a tenth of the interval", name, j)
		}
	}
	if len(seen) < 4 {
		t.Errorf("five sources got %d distinct jitters, want them spread", len(seen))
	}
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	daily, _ := ParseSchedule("0 2 * * *", "UTC")
	last := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		now  time.Time
		ok   bool
		want Due
	}{
		{"not yet", time.Date(2026, 12, 2, 1, 59, 0, 0, time.UTC), false, Due{}},
		{"jitter not over", time.Date(2026, 12, 2, 2, 0, 30, 0, time.UTC), false, Due{}},
		{"on time", time.Date(2026, 12, 2, 2, 1, 10, 0, time.UTC), true, Due{At: time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)}},
		{"late", time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC), true, Due{At: time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC), Late: true}},
		{"three missed: run once", time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC), true,
			Due{At: time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC), Missed: 3, Late: true}},
	} {
		got, ok := NextDue(daily, last, time.Minute, tt.now)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: NextDue(daily, last %s, jitter 1m, now %s) = %+v, %t; want %+v, %t", tt.name, last, tt.now, got, ok, tt.want, tt.ok)
		}
	}
}

// TestSchedulerTick: a run owed is queued once, and recorded; runs missed while nothing
// ran (the server was down) are queued once, marked late; a backup already running is
// recorded as the reason nothing was queued; another tick queues nothing more.
func TestSchedulerTick(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := st.CreateSource(ctx, store.SourceParams{Name: "orders", DSN: "postgres://x@127.0.0.1/postgres",
		SystemIdentifier: "7300000000000000001", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := st.SetPolicy(ctx, store.Policy{SourceID: src.ID, BackupCron: "0 2 * * *", TimeZone: "UTC", Window: 24 * time.Hour, UpdatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var queued []Params
	locked := false
	s := NewScheduler(st, func(_ context.Context, p Params) (store.Job, error) {
		if locked {
			return store.Job{}, &store.LockedError{LockKey: p.LockKey, JobID: 41}
		}
		queued = append(queued, p)
		return st.InsertJob(ctx, store.JobParams{Kind: p.Kind, SourceID: p.SourceID, RequestedBy: p.RequestedBy})
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	sched, _ := ParseSchedule(pol.BackupCron, pol.TimeZone)
	_, jitter := NextRun(sched, src.Name, ScheduleBackup, pol.ScheduleSince)
	firstDue := sched.Next(pol.ScheduleSince)

	// Down for three nights: one run, late, with the two nights before it counted missed.
	s.now = func() time.Time { return firstDue.Add(2*24*time.Hour + 7*time.Hour) }
	if err := s.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || queued[0].Kind != KindBackup || !strings.Contains(queued[0].RequestedBy, "late") {
		t.Fatalf("after three missed nights queued %+v, want one backup requested by a late schedule", queued)
	}
	runs, err := st.ScheduleRuns(ctx, src.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].Late || runs[0].Missed != 2 || runs[0].JobID != 1 || !runs[0].DueAt.Equal(firstDue.Add(48*time.Hour)) {
		t.Fatalf("schedule runs = %+v, want one late run due %s with 2 missed, job 1", runs, firstDue.Add(48*time.Hour))
	}
	if err := s.Tick(ctx); err != nil || len(queued) != 1 {
		t.Fatalf("a second tick queued %d jobs (%v), want still 1", len(queued), err)
	}

	// The next night, on time (after the jitter): queued, not late.
	s.now = func() time.Time { return firstDue.Add(72*time.Hour + jitter + 10*time.Second) }
	if err := s.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(queued) != 2 || queued[1].RequestedBy != "schedule" {
		t.Fatalf("on-time night queued %+v, want a second backup requested by the schedule", queued)
	}

	// The night after, a backup is still running: recorded, with why nothing was queued.
	locked = true
	s.now = func() time.Time { return firstDue.Add(96*time.Hour + jitter + 10*time.Second) }
	if err := s.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	last, err := st.LastScheduleRun(ctx, src.ID, ScheduleBackup)
	if err != nil {
		t.Fatal(err)
	}
	if last.JobID != 0 || !strings.Contains(last.Note, "already queued or running (job 41)") {
		t.Errorf("run while a backup runs = %+v, want no job and a note naming job 41", last)
	}

	if _, err := st.RecordScheduleRun(ctx, store.ScheduleRun{SourceID: src.ID, Kind: ScheduleBackup, DueAt: last.DueAt}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("recording the same due time twice = %v, want ErrConflict", err)
	}

	// A removed source's schedule stops.
	if _, err := st.RemoveSource(ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	locked = false
	s.now = func() time.Time { return firstDue.Add(30 * 24 * time.Hour) }
	if err := s.Tick(ctx); err != nil || len(queued) != 2 {
		t.Errorf("after removing the source, a tick queued %d jobs (%v), want still 2", len(queued), err)
	}
}
