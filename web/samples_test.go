package web

import (
	"strings"
	"time"

	"github.com/a-h/templ"
)

// page is one rendered screen of the sample set: a name usable with -run and as
// a file name, and the component to render.
type page struct {
	name string
	c    templ.Component
}

// sampleNow is the reference time of the samples: the current time, so that the
// relative times static/app.js renders in a preview match the server's.
// sampleStart is when the test binary started, to the second: every sample page and every
// test that checks one share it, so that none sees a second tick between them.
var sampleStart = time.Now().UTC().Truncate(time.Second)

func sampleNow() time.Time { return sampleStart }

const (
	gib = int64(1) << 30
	mib = int64(1) << 20
)

func layout(title string, nav Nav, c templ.Component) templ.Component {
	return Layout(LayoutVM{Title: title, Nav: nav, UserName: "ana.operator"}, c)
}

// sampleRunning is the live progress of job 41, backing up orders-db into backup 18.
func sampleRunning() JobProgressVM {
	return JobProgressVM{
		JobID: 41, State: "running", Phase: "copying data files",
		Done: 1288490188, Total: 3650722201, RatePerSec: 89128960, ETA: 25 * time.Second,
		Message: "base/16384/24576.2", BackupID: 18,
	}
}

func sampleBackups(now time.Time) []BackupRow {
	running := sampleRunning()
	return []BackupRow{
		{
			ID: 18, SourceID: 1, SourceName: "orders-db", State: "running",
			StartedAt: now.Add(-14 * time.Second), StartLSN: "0/5F000028", Progress: &running,
		},
		{
			ID: 17, SourceID: 2, SourceName: "billing", State: "failed",
			StartedAt: now.Add(-2*time.Hour - 10*time.Minute), FinishedAt: now.Add(-2*time.Hour - 9*time.Minute),
			SourceBytes: 512 * mib, StartLSN: "1/A2000060",
		},
		{
			ID: 16, SourceID: 1, SourceName: "orders-db", State: "complete",
			StartedAt: now.Add(-4*time.Hour - 3*time.Minute), FinishedAt: now.Add(-4 * time.Hour),
			SourceBytes: 3650722201, StoredNewBytes: 98 * mib, StoredRefBytes: 1288490188,
			BlocksNew: 812, BlocksTotal: 27852, StartLSN: "0/3A000028", EndLSN: "0/3A0001F8",
		},
		{
			ID: 15, SourceID: 3, SourceName: "analytics-warehouse", State: "interrupted",
			StartedAt: now.Add(-26 * time.Hour), FinishedAt: now.Add(-25*time.Hour - 30*time.Minute),
			SourceBytes: 41 * gib, StartLSN: "12/0C000028",
		},
		{
			ID: 14, SourceID: 2, SourceName: "billing", State: "complete",
			StartedAt: now.Add(-49 * time.Hour), FinishedAt: now.Add(-49*time.Hour + 95*time.Second),
			SourceBytes: 2 * gib, StoredNewBytes: 610 * mib, StoredRefBytes: 700 * mib,
			BlocksNew: 4880, BlocksTotal: 16384, StartLSN: "1/8E000028", EndLSN: "1/8E000138",
		},
	}
}

func sampleSources(now time.Time) []SourceSummary {
	b := sampleBackups(now)
	running := sampleRunning()
	return []SourceSummary{
		{
			ID: 1, Name: "orders-db", MaskedDSN: "postgres://backstop:xxxxx@db1.example:5432/orders?sslmode=require",
			PGVersion: "15.18", LastComplete: &b[2], LastAttempt: &b[0], ActiveJob: &running,
			EarliestRestorable: sampleWindow(now).Earliest, LatestRestorable: sampleWindow(now).Latest,
			WALArchivedAt: now.Add(-3 * time.Second),
		},
		{
			ID: 2, Name: "billing", MaskedDSN: "host=billing.internal port=5433 dbname=billing user=backstop password=xxxxx",
			PGVersion: "15.18", LastComplete: &b[4], LastAttempt: &b[1],
		},
		{
			ID: 3, Name: "analytics-warehouse", MaskedDSN: "postgres://backstop:xxxxx@10.0.4.17:5432/warehouse",
			PGVersion: "15.6", LastAttempt: &b[3],
		},
		{
			ID: 4, Name: "inventory", MaskedDSN: "postgres://backstop:xxxxx@inventory.example:5432/postgres",
			PGVersion: "15.18", LastComplete: &BackupRow{
				ID: 13, SourceID: 4, SourceName: "inventory", State: "complete",
				StartedAt: now.Add(-3 * time.Hour), FinishedAt: now.Add(-3*time.Hour + 40*time.Second),
				SourceBytes: 880 * mib,
			},
		},
	}
}

func sampleJobs(now time.Time) []JobRow {
	r := sampleRunning()
	return []JobRow{
		{
			ID: 42, Kind: "backup", SourceID: 4, SourceName: "inventory", State: "queued",
			CreatedAt: now.Add(-3 * time.Second),
		},
		{
			ID: 41, Kind: "backup", SourceID: 1, SourceName: "orders-db", State: r.State, Phase: r.Phase,
			Done: r.Done, Total: r.Total, RatePerSec: r.RatePerSec, ETA: r.ETA, Message: r.Message, BackupID: 18,
			CreatedAt: now.Add(-15 * time.Second), StartedAt: now.Add(-14 * time.Second),
		},
		{
			ID: 40, Kind: "backup", SourceID: 2, SourceName: "billing", State: "failed", Phase: "checkpoint",
			Message:   "ERROR: must be superuser or replication role to start walsender (SQLSTATE 42501)",
			CreatedAt: now.Add(-2*time.Hour - 10*time.Minute), StartedAt: now.Add(-2*time.Hour - 10*time.Minute),
			FinishedAt: now.Add(-2*time.Hour - 9*time.Minute), BackupID: 17,
		},
		{
			ID: 39, Kind: "backup", SourceID: 1, SourceName: "orders-db", State: "succeeded", Phase: "done",
			Done: 3650722201, Total: 3650722201, BackupID: 16,
			CreatedAt: now.Add(-4*time.Hour - 3*time.Minute), StartedAt: now.Add(-4*time.Hour - 3*time.Minute),
			FinishedAt: now.Add(-4 * time.Hour),
		},
		{
			ID: 38, Kind: "backup", SourceID: 3, SourceName: "analytics-warehouse", State: "cancelled",
			Phase: "copying data files", Done: 7 * gib, Total: 41 * gib,
			CreatedAt: now.Add(-30 * time.Hour), StartedAt: now.Add(-30 * time.Hour), FinishedAt: now.Add(-29 * time.Hour),
		},
	}
}

func sampleEvents(now time.Time) []EventRow {
	return []EventRow{
		{At: now.Add(-15 * time.Second), Level: "info", Phase: "queued", Message: "Job queued by ana.operator"},
		{At: now.Add(-14 * time.Second), Level: "info", Phase: "checkpoint", Message: "Connected to db1.example:5432 (PostgreSQL 15.18); requested a fast checkpoint"},
		{At: now.Add(-13 * time.Second), Level: "info", Phase: "checkpoint", Message: "Checkpoint done; backup starts at 0/5F000028 on timeline 1"},
		{At: now.Add(-12 * time.Second), Level: "warn", Phase: "copying data files", Message: "Size estimate unavailable for tablespace 16400; progress may jump"},
		{At: now.Add(-2 * time.Second), Level: "info", Phase: "copying data files", Message: "1.2 GiB of 3.4 GiB copied"},
	}
}

func sampleFiles() []FileRow {
	return []FileRow{
		{Path: "PG_VERSION", Type: "file", Size: 3, Blocks: 1},
		{Path: "backup_label", Type: "file", Size: 227, Blocks: 1},
		{Path: "base", Type: "dir"},
		{Path: "base/16384/1259", Type: "file", Size: 114688, Blocks: 1},
		{Path: "base/16384/24576", Type: "file", Size: 1073741824, Blocks: 8192},
		{Path: "base/16384/24576.1", Type: "file", Size: 1073741824, Blocks: 8192},
		{Path: "base/16384/24576_fsm", Type: "file", Size: 278528, Blocks: 3},
		{Path: "global/pg_control", Type: "file", Size: 8192, Blocks: 1},
		{Path: "pg_tblspc/16400", Type: "symlink"},
		{Path: "pg_wal", Type: "dir"},
	}
}

// samplePages is every screen, with the states worth looking at.
func samplePages(now time.Time) []page {
	backups := sampleBackups(now)
	jobs := sampleJobs(now)
	sources := sampleSources(now)
	running := sampleRunning()

	complete := BackupVM{
		Now: now, BackupRow: backups[2], Label: "backstop-16-orders-db",
		RepositoryID: "b16-7c1f0e9a4d2b8e6f3a5c9d0e1b2a4c6f8e0d2b4a",
		Timeline:     1, PGVersion: "15.18", SystemIdentifier: "7312455870123456789",
		WALBytes: 16 * mib, JobID: 39,
		RestoreCommand: "backstop restore --backup 16 --target-dir /var/lib/backstop/restore/orders-db-16",
		Files:          sampleFiles(), FilesPage: Pager{Page: 2, PerPage: 10, Total: 1874},
	}
	runningBackup := BackupVM{
		Now: now, BackupRow: backups[0], Label: "backstop-18-orders-db", Timeline: 1,
		PGVersion: "15.18", SystemIdentifier: "7312455870123456789", JobID: 41,
	}
	failed := BackupVM{
		Now: now, BackupRow: backups[1], Label: "backstop-17-billing", Timeline: 3,
		PGVersion: "15.18", SystemIdentifier: "7298001244567123001", JobID: 40,
		Error: "ERROR: must be superuser or replication role to start walsender (SQLSTATE 42501)",
	}

	runningJob := JobVM{Now: now, Row: jobs[1], Events: sampleEvents(now)}
	failedJob := JobVM{
		Now: now, Row: jobs[2], Error: jobs[2].Message,
		Events: []EventRow{
			{At: jobs[2].CreatedAt, Level: "info", Phase: "queued", Message: "Job queued by schedule nightly"},
			{At: jobs[2].StartedAt.Add(time.Second), Level: "error", Phase: "checkpoint", Message: jobs[2].Message},
		},
	}
	queuedJob := JobVM{Now: now, Row: jobs[0]}

	pages := []page{
		{"login", LoginPage(LoginVM{Next: "/backups"})},
		{"login-error", LoginPage(LoginVM{Name: "ana.operator", Error: "Wrong name or password.", Next: "/"})},
		{"overview", Layout(LayoutVM{Title: "Overview", Nav: NavOverview, UserName: "ana.operator",
			Flash: Flash{Kind: FlashSuccess, Message: "Backup of orders-db started as job 41."}},
			OverviewPage(OverviewVM{Now: now, Sources: sources}))},
		{"overview-empty", layout("Overview", NavOverview, OverviewPage(OverviewVM{Now: now}))},
		{"sources", layout("Sources", NavSources, SourcesPage(SourcesVM{Now: now, Sources: sources}))},
		{"sources-empty", layout("Sources", NavSources, SourcesPage(SourcesVM{Now: now}))},
		{"source-new", layout("Add source", NavSources, SourceNewPage(SourceFormVM{}))},
		{"source-new-errors", layout("Add source", NavSources, SourceNewPage(SourceFormVM{
			Name: "orders db", DSN: "postgres://backstop:xxxxx@db1.example:5432/orders",
			Errors: map[string]string{
				"":     "Backstop could not start a backup connection to db1.example:5432.",
				"name": "Use letters, digits, dots, dashes and underscores only.",
				"dsn":  "The role backstop lacks the REPLICATION attribute.",
			},
			Hint: "ALTER ROLE backstop REPLICATION;",
		}))},
		{"source", layout("orders-db", NavSources, SourcePage(SourceVM{
			Now: now, ID: 1, Name: "orders-db", MaskedDSN: sources[0].MaskedDSN,
			SystemIdentifier: "7312455870123456789", PGVersion: "15.18", Timeline: 1, DataChecksums: true,
			CreatedAt: now.Add(-40 * 24 * time.Hour), Backups: []BackupRow{backups[0], backups[2]},
			Jobs: []JobRow{jobs[1], jobs[3]}, ActiveJob: &running,
			EarliestRestorable: sampleWindow(now).Earliest, LatestRestorable: sampleWindow(now).Latest,
		}))},
		{"source-idle", layout("inventory", NavSources, SourcePage(SourceVM{
			Now: now, ID: 4, Name: "inventory", MaskedDSN: sources[3].MaskedDSN,
			SystemIdentifier: "7312455870999999999", PGVersion: "15.18", Timeline: 2,
			CreatedAt: now.Add(-2 * time.Hour),
		}))},
		{"backups", layout("Backups", NavBackups, BackupsPage(BackupsVM{Now: now, Rows: backups,
			Page: Pager{Page: 1, PerPage: 5, Total: 18}}))},
		{"backups-empty", layout("Backups", NavBackups, BackupsPage(BackupsVM{Now: now}))},
		{"backup-complete", layout("Backup 16", NavBackups, BackupPage(complete))},
		{"backup-running", layout("Backup 18", NavBackups, BackupPage(runningBackup))},
		{"backup-failed", layout("Backup 17", NavBackups, BackupPage(failed))},
		{"jobs", layout("Jobs", NavJobs, JobsPage(JobsVM{Now: now, Rows: jobs}))},
		{"jobs-empty", layout("Jobs", NavJobs, JobsPage(JobsVM{Now: now}))},
		{"job-running", layout("Job 41", NavJobs, JobPage(runningJob))},
		{"job-failed", layout("Job 40", NavJobs, JobPage(failedJob))},
		{"job-queued", layout("Job 42", NavJobs, JobPage(queuedJob))},
		{"audit", layout("Audit log", NavAudit, AuditPage(AuditVM{Rows: []AuditRow{
			{ID: 212, At: now.Add(-15 * time.Second), Actor: "ana.operator", Action: "backup.start", Target: "orders-db", Detail: `{"job":41,"source":1}`,
				DetailPretty: "{\n  \"job\": 41,\n  \"source\": 1\n}", IP: "192.0.2.10", Hash: strings.Repeat("ab", 32), PrevHash: strings.Repeat("cd", 32)},
			{ID: 211, At: now.Add(-3 * time.Hour), Actor: "ana.operator", Action: "source.create", Target: "inventory", Detail: `{"dsn":"postgres://backstop:xxxxx@inventory.example:5432/postgres"}`, IP: "192.0.2.10"},
			{ID: 210, At: now.Add(-5 * time.Hour), Actor: "anonymous", Action: "user.login_failed", Target: "admin", IP: "2001:db8::17", Repeats: "7 so far"},
			{ID: 209, At: now.Add(-26 * time.Hour), Actor: "schedule", Action: "backup.end", Target: "orders-db", Detail: `{"job_id":37,"state":"succeeded"}`},
		}, OlderURL: "/audit?before=209", NewerURL: "/audit?after=212", ExportCSV: "/audit/export?format=csv", ExportJSON: "/audit/export?format=json"}))},
		{"audit-empty", layout("Audit log", NavAudit, AuditPage(AuditVM{}))},
		{"audit-filtered", layout("Audit log", NavAudit, AuditPage(AuditVM{Filtered: true, Filter: AuditFilterVM{Action: "restore.", From: "2026-12-08"},
			Errors: map[string]string{"to": "must be after from"}}))},
		{"error", ErrorPage(ErrorVM{Status: 404, Title: "Backup not found",
			Message: "There is no backup 99. It may have been removed by retention.", RequestID: "req-7f3a9c21b04e"})},
	}
	pages = append(pages, restoreSamplePages(now)...)
	pages = append(pages, policySamplePages(now)...)
	pages = append(pages, integritySamplePages(now)...)
	pages = append(pages, accessSamplePages(now)...)
	return append(pages, alertSamplePages(now)...)
}
