package web

import (
	"time"
)

// samplePolicy is orders-db's schedule and retention page: a nightly schedule in
// Berlin with one late run, a 7-day window that lets two backups and some WAL go,
// one pinned backup, a month of storage samples and two expired backups.
func samplePolicy(now time.Time) PolicyVM {
	day := 24 * time.Hour
	midnight := now.UTC().Truncate(day)
	var backups []PlanBackupVM
	for i := range 10 {
		at := midnight.Add(-time.Duration(i)*day + 2*time.Hour + 14*time.Second)
		if at.After(now) {
			at = at.Add(-day)
		}
		b := PlanBackupVM{ID: int64(30 - i), ConsistentAt: at, SourceBytes: 3650722201, StoredNewBytes: int64(80+i) * mib}
		switch {
		case i < 7:
			b.Rules = []string{"window"}
			if i < 2 {
				b.Rules = append(b.Rules, "minimum")
			}
		case i == 7:
			b.Rules = []string{"window", "pinned"}
			b.Pin = &PinVM{At: now.Add(-3 * day), By: "ana.operator", Note: "legal hold, case 4711"}
		default:
			b.Reason = "older than backup 23 (consistent " + UTC(backups[7].ConsistentAt) +
				"), the base of the 7-day recovery window, and no other rule keeps it (policy: window 7 days; at least 2 kept)"
		}
		backups = append(backups, b)
	}
	preview := PolicyPreviewVM{
		Policy:  "window 7 days; at least 2 kept",
		Summary: "2 backups and 1.4 GiB of WAL (90 files) go; the restorable window afterwards is " + UTC(backups[7].ConsistentAt) + " to " + UTC(now.Add(-4*time.Second)) + ".",
		Before: WindowSpanVM{Earliest: backups[9].ConsistentAt, Latest: now.Add(-4 * time.Second),
			Text: UTC(backups[9].ConsistentAt) + " to " + UTC(now.Add(-4*time.Second))},
		After: WindowSpanVM{Earliest: backups[7].ConsistentAt, Latest: now.Add(-4 * time.Second),
			Text: UTC(backups[7].ConsistentAt) + " to " + UTC(now.Add(-4*time.Second))},
		Backups:       backups,
		ExpiringBytes: 170 * mib,
		WALFiles:      90, WALBytes: 1440 * mib,
		FirstWAL: "000000010000000000000012", LastWAL: "00000001000000000000006B", KeepWALFrom: "0/6C000028",
	}
	next := midnight.Add(day + time.Hour + 3*time.Minute)
	var samples []StorageSampleVM
	for i := 30; i >= 0; i-- {
		samples = append(samples, StorageSampleVM{At: now.Add(-time.Duration(i) * day),
			Bytes: 6*gib + int64(30-i)*90*mib - int64(i%7)*40*mib, DeadBytes: int64(i%7) * 40 * mib})
	}
	return PolicyVM{
		Now: now, SourceID: 1, SourceName: "orders-db",
		Saved: &SavedPolicyVM{BackupCron: "0 2 * * *", TimeZone: "Europe/Berlin", Retention: "window 7 days; at least 2 kept",
			NextRun: next, NextRunLocal: next.In(time.FixedZone("CET", 3600)).Format("Mon Jan 2 15:04 MST"),
			Jitter: 3 * time.Minute, UpdatedAt: now.Add(-2 * day), UpdatedBy: "ana.operator"},
		Runs: []ScheduleRunVM{
			{DueAt: midnight.Add(-day + time.Hour), QueuedAt: midnight.Add(-day + time.Hour + 3*time.Minute), JobID: 52, JobState: "succeeded"},
			{DueAt: midnight.Add(-2*day + time.Hour), QueuedAt: midnight.Add(-2*day + 7*time.Hour + 12*time.Minute), Late: true, Missed: 2,
				JobID: 49, JobState: "succeeded"},
			{DueAt: midnight.Add(-5*day + time.Hour), QueuedAt: midnight.Add(-5*day + time.Hour + 3*time.Minute),
				Note: "not queued: a backup of orders-db was already queued or running (job 44)"},
		},
		Editor: PolicyEditorVM{
			Now: now, SourceID: 1, SourceName: "orders-db", HasSaved: true,
			Form: PolicyFormVM{BackupCron: "0 2 * * *", TimeZone: "Europe/Berlin", WindowDays: "7", KeepLast: "0", Daily: "0",
				Weekly: "0", Monthly: "0", Yearly: "0", MinKeep: "2", ArchiveYears: "0"},
			Preview: preview,
		},
		Storage: StorageVM{Since: now.Add(-90 * day), Samples: samples},
		Expired: []ExpiredBackupVM{
			{BackupID: 19, Manifest: "20261101T020014Z-3fa2c1d0", Bytes: 92 * mib, ExpiredAt: now.Add(-20 * time.Hour), JobID: 47,
				Deleted: true, Reason: "older than backup 20, the base of the 7-day recovery window, and no other rule keeps it"},
			{BackupID: 18, Manifest: "20261031T020011Z-9c0d1e2f", Bytes: 88 * mib, ExpiredAt: now.Add(-20 * time.Minute), JobID: 55,
				Reason: "older than backup 20, the base of the 7-day recovery window, and no other rule keeps it"},
		},
	}
}

// policySamplePages are the policy page's states: saved, a source without a policy,
// an edited form with errors, and an unsaved preview.
func policySamplePages(now time.Time) []page {
	saved := samplePolicy(now)

	none := samplePolicy(now)
	none.SourceID, none.SourceName, none.Saved, none.Runs, none.Expired = 4, "inventory", nil, nil, nil
	none.Storage = StorageVM{Since: now.Add(-90 * 24 * time.Hour)}
	none.Editor = PolicyEditorVM{Now: now, SourceID: 4, SourceName: "inventory",
		Form: PolicyFormVM{BackupCron: "0 2 * * *", TimeZone: "UTC", WindowDays: "14", KeepLast: "0", Daily: "0", Weekly: "0",
			Monthly: "0", Yearly: "0", MinKeep: "2", ArchiveYears: "0"},
		Preview: PolicyPreviewVM{Unsaved: true, Policy: "window 14 days; at least 2 kept",
			Summary: "Nothing to expire: the policy keeps every backup and all archived WAL."}}

	invalid := samplePolicy(now)
	invalid.Editor.Form = PolicyFormVM{BackupCron: "0 2 * *", TimeZone: "Europe/Berln", WindowDays: "a week", KeepLast: "-1",
		Errors: map[string]string{
			FieldBackupCron: `Cron expression "0 2 * *": expected exactly 5 fields, found 4: [0 2 * *].`,
			FieldTimeZone:   `Unknown time zone "Europe/Berln": use an IANA name such as Europe/Berlin, America/New_York or UTC.`,
			FieldWindowDays: "Enter the recovery window in days, such as 14 or 1.5 (0 for none).",
			FieldKeepLast:   "Enter a whole number, 0 or more.",
			FieldPolicy:     "Policy keeps nothing: at least one rule must keep something.",
		}}
	invalid.Editor.Preview = PolicyPreviewVM{Unsaved: true, Error: "Correct the fields marked above to preview this policy."}

	unsaved := samplePolicy(now)
	unsaved.Editor.Form.WindowDays = "3"
	unsaved.Editor.Preview.Unsaved = true
	unsaved.Editor.Confirm, unsaved.Editor.ConfirmError = "orders", "Type orders-db exactly."

	refused := samplePolicy(now)
	refused.Editor.Confirm, refused.Editor.ConfirmError = "orders", "Type orders-db exactly: it confirms that the backups and WAL the preview lists are deleted."

	pinned := BackupVM{
		Now: now, BackupRow: sampleBackups(now)[2], Label: "backstop-16-orders-db",
		RepositoryID: "b16-7c1f0e9a4d2b8e6f3a5c9d0e1b2a4c6f8e0d2b4a", Timeline: 1, PGVersion: "15.18",
		SystemIdentifier: "7312455870123456789", JobID: 39, Files: sampleFiles(),
		FilesPage: Pager{Page: 1, PerPage: 10, Total: 10},
		Pin:       &PinVM{At: now.Add(-3 * 24 * time.Hour), By: "ana.operator", Note: "legal hold, case 4711"},
	}

	title := "Schedule and retention of orders-db"
	return []page{
		{"policy", layout(title, NavSources, PolicyPage(saved))},
		{"policy-none", layout("Schedule and retention of inventory", NavSources, PolicyPage(none))},
		{"policy-invalid", layout(title, NavSources, PolicyPage(invalid))},
		{"policy-unsaved-preview", layout(title, NavSources, PolicyPage(unsaved))},
		{"policy-apply-refused", layout(title, NavSources, PolicyPage(refused))},
		{"backup-pinned", layout("Backup 16", NavBackups, BackupPage(pinned))},
		{"overview-storage", layout("Overview", NavOverview, OverviewPage(OverviewVM{Now: now, Sources: sampleSources(now),
			Storage: &saved.Storage}))},
	}
}
