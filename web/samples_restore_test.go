package web

import (
	"time"
)

// sampleWindow is orders-db's restorable window: seven base backups two days
// apart, WAL up to four minutes ago, and one gap where segment A3 was lost.
func sampleWindow(now time.Time) RestoreWindowVM {
	day := 24 * time.Hour
	// The newest backup was taken at 02:00 UTC yesterday, so that it is in the
	// past whatever the time of day.
	base := now.Truncate(day).Add(-day + 2*time.Hour + 14*time.Second + 318*time.Millisecond)
	var backups []WindowBackup
	for k := 6; k >= 0; k-- {
		backups = append(backups, WindowBackup{ID: int64(24 - 2*k), ConsistentAt: base.Add(-time.Duration(2*k) * day)})
	}
	gapFrom := backups[2].ConsistentAt.Add(day + time.Hour + 12*time.Minute + 40*time.Second)
	return RestoreWindowVM{
		Earliest: backups[0].ConsistentAt,
		Latest:   now.Add(-4*time.Minute - 3*time.Second + 482913*time.Microsecond),
		Timeline: 1,
		Backups:  backups,
		Gaps: []WindowGap{{
			From: gapFrom, To: backups[3].ConsistentAt,
			FirstMissing: "0000000100000000000000A3",
		}},
	}
}

// sampleTarget is a whole second between the newest backup and now.
func sampleTarget(now time.Time) time.Time {
	w := sampleWindow(now)
	newest := w.Backups[len(w.Backups)-1].ConsistentAt
	return newest.Add(w.Latest.Sub(newest) * 3 / 4).Truncate(time.Minute)
}

func sampleRestorePoints(now time.Time) []RestorePointVM {
	w := sampleWindow(now)
	return []RestorePointVM{
		{Name: "before-migration-42", At: w.Latest.Add(-26*time.Hour + 17*time.Second), LSN: "0/5A000090"},
		{Name: "nightly-etl-done", At: w.Latest.Add(-5*24*time.Hour - 3*time.Hour), LSN: "0/41A2C3D8"},
	}
}

// samplePlan is the plan for restoring orders-db to target.
func samplePlan(now time.Time, target RestoreTarget) *RestorePlanVM {
	w := sampleWindow(now)
	b := w.Backups[len(w.Backups)-1]
	settings := "restore_command = '/usr/local/bin/backstop wal-fetch --source 1 %f \"%p\"'\n"
	switch target.Kind {
	case TargetTime:
		settings += "recovery_target_time = '" + target.Time.UTC().Format("2006-01-02 15:04:05.000000") + "+00'\n"
		if target.Inclusive {
			settings += "recovery_target_inclusive = on\n"
		} else {
			settings += "recovery_target_inclusive = off\n"
		}
	case TargetLatest:
	}
	settings += "recovery_target_timeline = 'current'\nrecovery_target_action = 'promote'"
	return &RestorePlanVM{
		Target: target, Timeline: 1, BackupID: b.ID, BackupConsistentAt: b.ConsistentAt,
		BackupStoredBytes: 1503238554, BackupRestoredBytes: 6549825126,
		WALFromLSN: "0/3A000028", WALToLSN: "0/5F2C10A8", WALFiles: 412, WALBytes: 412 * 16 * mib,
		Estimate: 48 * time.Second, RecoverySettings: settings,
	}
}

func sampleRestores(now time.Time) []RestoreRow {
	w := sampleWindow(now)
	return []RestoreRow{
		{
			ID: 8, SourceID: 2, SourceName: "billing", Target: RestoreTarget{Kind: TargetLatest, Time: now.Add(-40 * time.Second)},
			State: RestoreRestoring, Port: 5434, DataDir: "/var/lib/backstop/restore/billing-8",
			CreatedAt: now.Add(-35 * time.Second), JobID: 46,
		},
		{
			ID: 7, SourceID: 1, SourceName: "orders-db", Target: RestoreTarget{Kind: TargetTime, Time: sampleTarget(now), Inclusive: true},
			State: RestoreRunning, Port: 5433, DSN: "postgres://postgres@127.0.0.1:5433/postgres",
			DataDir: "/var/lib/backstop/restore/orders-db-7", CreatedAt: now.Add(-2 * time.Hour), JobID: 45,
		},
		{
			ID: 6, SourceID: 1, SourceName: "orders-db", Target: RestoreTarget{Kind: TargetLSN, LSN: "0/5A0001C8", Inclusive: true},
			State: RestoreStopped, Port: 5435, DSN: "postgres://postgres@127.0.0.1:5435/postgres",
			DataDir: "/var/lib/backstop/restore/orders-db-6", CreatedAt: now.Add(-27 * time.Hour), JobID: 39,
		},
		{
			ID: 5, SourceID: 1, SourceName: "orders-db", Target: RestoreTarget{Kind: TargetTime, Time: w.Gaps[0].From.Add(2 * time.Hour), Inclusive: true},
			State: RestoreFailed, Port: 5436, DataDir: "/var/lib/backstop/restore/orders-db-5",
			Error:     "recovery ended before the target: WAL 0000000100000000000000A3 is missing",
			CreatedAt: now.Add(-3 * 24 * time.Hour), JobID: 33,
		},
		{
			ID: 4, SourceID: 1, SourceName: "orders-db", Target: RestoreTarget{Kind: TargetName, Name: "nightly-etl-done", Time: sampleRestorePoints(now)[1].At},
			State: RestoreStopped, DataDir: "/srv/exports/orders-db-etl", CreatedAt: now.Add(-4 * 24 * time.Hour), JobID: 30,
		},
		{
			ID: 3, SourceID: 2, SourceName: "billing", Target: RestoreTarget{Kind: TargetLatest, Time: now.Add(-9 * 24 * time.Hour)},
			State: RestoreDeleted, Port: 5433, DSN: "postgres://postgres@127.0.0.1:5433/postgres",
			DataDir: "/var/lib/backstop/restore/billing-3", CreatedAt: now.Add(-9 * 24 * time.Hour), JobID: 21,
		},
	}
}

// sampleRestoreJobs are job 46 (replaying, running) and job 45 (finished).
func sampleRestoreJobs(now time.Time) (running, finished JobVM) {
	target := RestoreTarget{Kind: TargetTime, Time: sampleTarget(now), Inclusive: true}
	phases := func(current int) []PhaseVM {
		names := []string{"materializing", "configuring", "starting", "replaying", "promoting", "checking"}
		out := make([]PhaseVM, len(names))
		for i, n := range names {
			switch {
			case i < current:
				out[i] = PhaseVM{Name: n, State: PhaseDone}
			case i == current:
				out[i] = PhaseVM{Name: n, State: PhaseCurrent}
			default:
				out[i] = PhaseVM{Name: n, State: PhasePending}
			}
		}
		return out
	}
	rp := phases(3)
	rp[3].Detail = "at " + target.Time.Add(-17*time.Minute-16*time.Second).UTC().Format("15:04:05") + " of " + target.Time.UTC().Format("15:04:05") + " UTC"
	running = JobVM{
		Now: now,
		Row: JobRow{
			ID: 46, Kind: "pitr", SourceID: 1, SourceName: "orders-db", State: "running", Phase: "replaying WAL",
			Done: 4402341478, Total: 412 * 16 * mib, RatePerSec: 152 * float64(mib), ETA: 15 * time.Second,
			Message:   "restored WAL file 00000001000000000000005A",
			CreatedAt: now.Add(-35 * time.Second), StartedAt: now.Add(-34 * time.Second),
		},
		Phases:  rp,
		Restore: &RestoreResultVM{RestoreID: 8, Target: target, DataDir: "/var/lib/backstop/restore/orders-db-8"},
		Events: []EventRow{
			{At: now.Add(-35 * time.Second), Level: "info", Phase: "queued", Message: "Restore of orders-db to " + UTC(target.Time) + " queued by ana.operator"},
			{At: now.Add(-34 * time.Second), Level: "info", Phase: "materializing", Message: "Writing backup 24 (6.1 GiB) into /var/lib/backstop/restore/orders-db-8"},
			{At: now.Add(-21 * time.Second), Level: "info", Phase: "configuring", Message: "Wrote recovery.signal and the recovery settings"},
			{At: now.Add(-20 * time.Second), Level: "info", Phase: "starting", Message: "pg_ctl start: PostgreSQL 15.18 on 127.0.0.1:5434"},
			{At: now.Add(-18 * time.Second), Level: "info", Phase: "replaying", Message: "Replaying WAL from 0/3A000028"},
		},
	}
	finished = JobVM{
		Now: now,
		Row: JobRow{
			ID: 45, Kind: "pitr", SourceID: 1, SourceName: "orders-db", State: "succeeded", Phase: "done",
			Done: 412 * 16 * mib, Total: 412 * 16 * mib,
			CreatedAt: now.Add(-2 * time.Hour), StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-2*time.Hour + 51*time.Second),
		},
		Phases: phases(6),
		Restore: &RestoreResultVM{
			RestoreID: 7, Target: target,
			DSN:     "postgres://postgres@127.0.0.1:5433/postgres",
			DataDir: "/var/lib/backstop/restore/orders-db-7",
			Checked: []string{
				"pg_verifybackup: 1,874 files of backup 24 match its manifest",
				"Recovery stopped at the target, not before: the last replayed commit is at or before " + UTC(target.Time),
				"Promoted to timeline 2; the instance accepts connections on 127.0.0.1:5433",
				"SELECT count(*) FROM pg_database: 4 databases, as on the source",
			},
			StopLine: "LOG:  recovery stopping after commit of transaction 48213, time " + target.Time.UTC().Add(-412*time.Millisecond).Format("2006-01-02 15:04:05.000000") + "+00",
		},
		Events: []EventRow{
			{At: now.Add(-2 * time.Hour), Level: "info", Phase: "queued", Message: "Restore of orders-db to " + UTC(target.Time) + " queued by ana.operator"},
			{At: now.Add(-2*time.Hour + 50*time.Second), Level: "info", Phase: "checking", Message: "All checks passed"},
		},
	}
	return running, finished
}

// restoreSamplePages are the restore screens in the states worth looking at.
func restoreSamplePages(now time.Time) []page {
	w := sampleWindow(now)
	target := sampleTarget(now)
	points := sampleRestorePoints(now)
	form := RestoreFormVM{Mode: TargetTime, Target: FormatTargetTime(target), Inclusive: true, Into: IntoInstance, Port: "5433"}
	vm := func(f RestoreFormVM) RestoreVM {
		return RestoreVM{Now: now, SourceID: 1, SourceName: "orders-db", PGVersion: "15.18", Window: w, RestorePoints: points, Form: f}
	}
	withPlan := vm(form)
	withPlan.Plan = samplePlan(now, RestoreTarget{Kind: TargetTime, Time: target, Inclusive: true})

	latest := vm(RestoreFormVM{Inclusive: true, Port: "5433"})
	latest.Plan = samplePlan(now, RestoreTarget{Kind: TargetLatest, Time: w.Latest})

	inGap := w.Gaps[0].From.Add(5 * time.Hour).Truncate(time.Second)
	refused := vm(RestoreFormVM{Mode: TargetTime, Target: FormatTargetTime(inGap), Inclusive: true, Port: "5433"})
	refused.PlanError = &PlanRefusalVM{
		Message:     "WAL 0000000100000000000000A3 is missing from the archive, so replay cannot reach " + UTC(inGap) + ".",
		Nearest:     &RestoreTarget{Kind: TargetTime, Time: w.Gaps[0].From.Truncate(time.Second), Inclusive: true},
		NearestNote: "the last commit before the gap",
	}

	after := w.Latest.Add(26 * time.Hour).Truncate(time.Hour)
	errs := vm(RestoreFormVM{Mode: TargetTime, Target: FormatTargetTime(after), Inclusive: true, Into: IntoInstance, Port: "80", Confirm: "orders"})
	errs.PlanError = &PlanRefusalVM{
		Message: UTC(after) + " is after the latest restorable time, " + UTC(w.Latest) + ".",
		Nearest: &RestoreTarget{Kind: TargetLatest, Time: w.Latest},
	}
	errs.Errors = map[string]string{
		"":        "Nothing was started: fix the fields marked below.",
		"port":    "Port 80 is below 1024; choose a free port from 1024 to 65535, such as 5433.",
		"confirm": "Type orders-db exactly to confirm.",
	}

	dirErr := vm(RestoreFormVM{Mode: TargetLSN, LSN: "0/5A00", Inclusive: false, Into: IntoDir, Dir: "/var/lib/postgresql/15/main", Port: "5433", Confirm: "orders-db"})
	dirErr.Errors = map[string]string{
		"target": "0/5A00 is not an LSN: write it as PostgreSQL prints it, e.g. 0/5A000090.",
		"dir":    "/var/lib/postgresql/15/main is not empty. Choose an empty or new directory.",
	}

	running, finished := sampleRestoreJobs(now)
	return []page{
		{"restore", layout("Restore orders-db", NavSources, RestorePage(withPlan))},
		{"restore-latest", layout("Restore orders-db", NavSources, RestorePage(latest))},
		{"restore-refused", layout("Restore orders-db", NavSources, RestorePage(refused))},
		{"restore-errors", layout("Restore orders-db", NavSources, RestorePage(errs))},
		{"restore-dir-errors", layout("Restore orders-db", NavSources, RestorePage(dirErr))},
		{"restore-nothing", layout("Restore analytics-warehouse", NavSources, RestorePage(RestoreVM{
			Now: now, SourceID: 3, SourceName: "analytics-warehouse", PGVersion: "15.6",
		}))},
		{"restores", layout("Restores", NavRestores, RestoresPage(RestoresVM{Now: now, Rows: sampleRestores(now)}))},
		{"restores-empty", layout("Restores", NavRestores, RestoresPage(RestoresVM{Now: now}))},
		{"job-restore-running", layout("Job 46", NavJobs, JobPage(running))},
		{"job-restore-finished", layout("Job 45", NavJobs, JobPage(finished))},
	}
}
