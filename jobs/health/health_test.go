package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fresh := &Backup{ID: 7, State: "complete", StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-time.Hour)}
	streaming := func(mod func(a *Archiver)) *Archiver {
		a := &Archiver{State: "streaming", Since: now.Add(-time.Hour), UpdatedAt: now.Add(-5 * time.Second),
			SlotWALStatus: "reserved", SlotRetainedBytes: 16 << 20}
		if mod != nil {
			mod(a)
		}
		return a
	}
	tests := []struct {
		name       string
		facts      Facts
		level      Level
		reason, do string // substrings
	}{
		{"streaming with a fresh backup", Facts{LastComplete: fresh, LastAttempt: fresh, Archiver: streaming(nil)}, OK, "WAL streaming", ""},
		{"stopped a moment ago", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.State, a.Since, a.Reason, a.Cause = "stopped", now.Add(-3*time.Second), "connection refused.", "unreachable"
		})}, Warning, "interrupted", ""},
		{"stopped for a while", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.State, a.Since, a.Reason, a.Cause = "stopped", now.Add(-40*time.Second), "connection refused by 127.0.0.1:5432: no server is listening there.", "unreachable"
		})}, Broken, "WAL archiving stopped 40 s ago: connection refused", "Start the server"},
		{"stopped but silent does not hide it", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.State, a.Since, a.Reason, a.UpdatedAt = "stopped", now.Add(-time.Hour), "x.", now.Add(-time.Hour)
		})}, Broken, "stopped 1 h ago", ""},
		{"gap, no backup since", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.GapAt, a.NeedsBackupSince = now.Add(-time.Minute), now.Add(-time.Minute)
		})}, Broken, "WAL is missing since 2026-11-25 09:59:00 UTC", "Start a backup now"},
		{"gap, backup since", Facts{LastComplete: &Backup{ID: 8, State: "complete", StartedAt: now.Add(-30 * time.Second), FinishedAt: now.Add(-10 * time.Second)},
			Archiver: streaming(func(a *Archiver) { a.GapAt, a.NeedsBackupSince = now.Add(-time.Minute), now.Add(-time.Minute) })}, OK, "WAL streaming", ""},
		{"slot lost", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) { a.SlotWALStatus = "lost" })}, Broken, "invalidated", ""},
		{"recovering", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.State, a.Reason = "recovering", "the slot is gone."
		})}, Warning, "recovering", ""},
		{"no archiver", Facts{LastComplete: fresh}, Warning, "has not started", "backstop serve"},
		{"archiver silent", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) { a.UpdatedAt = now.Add(-5 * time.Minute) })}, Warning, "not reported for 5 min", ""},
		{"far behind", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) {
			a.State, a.BehindSeconds, a.BehindBytes = "behind", 3*time.Minute, 200<<20
		})}, Warning, "3 min (200.0 MiB) behind", ""},
		{"slot keeps much", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) { a.SlotRetainedBytes = 3 << 30 })}, Warning, "keeps 3.0 GiB", ""},
		{"slot unreserved", Facts{LastComplete: fresh, Archiver: streaming(func(a *Archiver) { a.SlotWALStatus = "unreserved" })}, Broken, "about to be invalidated", ""},
		{"no backup", Facts{Archiver: streaming(nil)}, Warning, "No complete backup yet", "Start the first backup"},
		{"first backup running", Facts{LastAttempt: &Backup{ID: 1, State: "running", StartedAt: now}, Archiver: streaming(nil)}, Warning, "first backup is running", ""},
		{"no backup and it failed", Facts{LastAttempt: &Backup{ID: 3, State: "failed", StartedAt: now}, Archiver: streaming(nil)}, Broken, "last attempt failed", "See backup 3"},
		{"stale backup", Facts{LastComplete: &Backup{ID: 1, State: "complete", StartedAt: now.Add(-50 * time.Hour), FinishedAt: now.Add(-49 * time.Hour)}, Archiver: streaming(nil)}, Warning, "No backup has succeeded for 2 d", ""},
		{"last attempt failed after a good one", Facts{LastComplete: fresh, LastAttempt: &Backup{ID: 9, State: "failed", StartedAt: now.Add(-time.Minute)}, Archiver: streaming(nil)}, Warning, "last backup failed", "See backup 9"},
		{"broken wins over warnings", Facts{Archiver: streaming(func(a *Archiver) {
			a.State, a.Since, a.Reason, a.Cause = "stopped", now.Add(-time.Minute), "no server.", "unreachable"
		})}, Broken, "stopped", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := Of(tt.facts, now, Policy{})
			if h.Level != tt.level || !strings.Contains(h.Reason, tt.reason) || !strings.Contains(h.Do, tt.do) {
				t.Errorf("Of() = %+v, want level %s, reason containing %q, advice containing %q", h, tt.level, tt.reason, tt.do)
			}
			if (h.Level == OK) != (h.Problems == 0) {
				t.Errorf("Of() = %+v: level and problem count disagree", h)
			}
		})
	}
}

func TestCheckService(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("disk I/O error") }
	space := func(free, total int64) func(string) (int64, int64, error) {
		return func(string) (int64, int64, error) { return free, total, nil }
	}
	tests := []struct {
		name string
		c    ServiceChecks
		want string // "" for healthy
	}{
		{"healthy", ServiceChecks{WriteCatalog: ok, WriteRepository: ok, Paths: []string{"/x"}, freeSpace: space(50<<30, 100<<30)}, ""},
		{"catalog", ServiceChecks{WriteCatalog: fail, WriteRepository: ok}, "catalog cannot be written: disk I/O error"},
		{"repository", ServiceChecks{WriteCatalog: ok, WriteRepository: fail}, "repository cannot be written"},
		{"under 1 GiB", ServiceChecks{Paths: []string{"/x"}, freeSpace: space(512<<20, 10<<30)}, "disk nearly full: 512.0 MiB free of 10.0 GiB"},
		{"under 5 %", ServiceChecks{Paths: []string{"/x"}, freeSpace: space(4<<30, 100<<30)}, "disk nearly full"},
		{"statfs fails", ServiceChecks{Paths: []string{"/x"}, freeSpace: func(string) (int64, int64, error) { return 0, 0, errors.New("no such file") }}, "free space of /x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckService(t.Context(), tt.c)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckService() = %v, want %q", err, tt.want)
			}
		})
	}
	// The real statfs works on this machine.
	if _, _, err := statfs(t.TempDir()); err != nil {
		t.Errorf("statfs() = %v", err)
	}
}

// TestProblems checks the rules that verification, drills and the archive feed: each
// fires on its fact with its rule name and evidence, and an ordinary day fires nothing.
func TestProblems(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fresh := &Backup{ID: 7, State: "complete", StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-time.Hour)}
	base := func() Facts {
		return Facts{LastComplete: fresh, LastAttempt: fresh, Archiver: &Archiver{State: "streaming", Since: now.Add(-time.Hour),
			UpdatedAt: now.Add(-5 * time.Second), SlotWALStatus: "reserved"},
			LastPassedDrill: &Drill{ID: 3, Passed: true, At: now.Add(-24 * time.Hour)}}
	}
	policy := Policy{DrillMaxAge: 48 * time.Hour}
	tests := []struct {
		name   string
		mod    func(f *Facts)
		rule   string // "" for none
		level  Level
		reason string
	}{
		{"an ordinary day", func(f *Facts) {
			f.BackupChange = &Change{Value: 0.012, Usual: 0.01, What: "backup 7"}
			f.WALRate = &Change{Value: 300 << 20, Usual: 200 << 20, What: "the last hour"}
		}, "", OK, ""},
		{"gap", func(f *Facts) {
			f.Gaps = []Gap{{Segment: "000000010000000000000005", FromLSN: "0/5000000", ToLSN: "0/6000000", RestorableBefore: now.Add(-3 * time.Hour), RestorableAfter: now.Add(-time.Hour)}}
		}, "wal-gap", Broken, "WAL is missing from 0/5000000 to 0/6000000"},
		{"verification finding", func(f *Facts) {
			f.Verification = &Verification{RunID: 4, At: now, Findings: 1, Summary: "backup 7, base/5/16384: blob 3fa2… does not authenticate"}
		}, "verify-finding", Broken, "base/5/16384"},
		{"drill failed", func(f *Facts) {
			f.Drill = &Drill{ID: 9, At: now, Target: now.Add(-time.Hour), Error: "pg_amcheck found corruption"}
		}, "drill-failed", Broken, "pg_amcheck"},
		{"drill too old", func(f *Facts) { f.LastPassedDrill.At = now.Add(-72 * time.Hour) }, "drill-stale", Warning, "3 d old"},
		{"never drilled", func(f *Facts) { f.LastPassedDrill = nil }, "drill-stale", Warning, "No restore drill has passed"},
		{"tablespace", func(f *Facts) { f.BlockingTablespaces = []string{"ts1 at /srv/ts1 (0/7000100)"} }, "tablespace", Warning, "/srv/ts1"},
		{"backup rewrote most of the data", func(f *Facts) { f.BackupChange = &Change{Value: 0.8, Usual: 0.01, What: "backup 8"} }, "anomaly-backup-change", Warning, "changed 80 %"},
		{"WAL far above its rate", func(f *Facts) { f.WALRate = &Change{Value: 4 << 30, Usual: 100 << 20, What: "the last hour"} }, "anomaly-wal-rate", Warning, "41 times"},
		{"window being computed after start-up", func(f *Facts) {
			f.WindowUnknown, f.WindowPending = "Backstop is computing the restorable window (after start-up).", true
		}, "window-unknown", Warning, "computing the restorable window"},
		{"window cannot be computed", func(f *Facts) {
			f.WindowUnknown = "Backstop cannot compute the restorable window: list WAL: permission denied."
		}, "window-unknown", Broken, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.mod(&f)
			ps := Problems(f, now, policy)
			if tt.rule == "" {
				if len(ps) != 0 {
					t.Fatalf("Problems() = %+v, want none", ps)
				}
				return
			}
			if len(ps) != 1 || ps[0].Rule != tt.rule || ps[0].Level != tt.level || !strings.Contains(ps[0].Reason, tt.reason) {
				t.Fatalf("Problems() = %+v, want one %s %s problem containing %q", ps, tt.level, tt.rule, tt.reason)
			}
			if h := Of(f, now, policy); h.Level != tt.level {
				t.Errorf("Of() = %s, want %s", h.Level, tt.level)
			}
		})
	}
}
