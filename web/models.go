package web

import "time"

// Nav names the navigation entry that a page belongs to; Layout marks it as current.
type Nav string

// The navigation entries, in the order the layout shows them.
const (
	NavNone     Nav = ""
	NavOverview Nav = "overview"
	NavSources  Nav = "sources"
	NavBackups  Nav = "backups"
	NavRestores Nav = "restores"
	NavAlerts   Nav = "alerts"
	NavJobs     Nav = "jobs"
	NavAudit    Nav = "audit"
	NavSettings Nav = "settings"
	NavUsers    Nav = "users"
	// NavAccount is the signed-in user's own account page, reached from their name.
	NavAccount Nav = "account"
	NavReports Nav = "reports"
)

// FlashKind is the tone of a one-time message shown at the top of a page.
type FlashKind string

// The flash tones.
const (
	FlashSuccess FlashKind = "success"
	FlashError   FlashKind = "error"
)

// Flash is a one-time message shown above the page content, typically after a
// redirect ("Backup 12 started"). The zero Flash shows nothing.
type Flash struct {
	Kind    FlashKind
	Message string
}

// LayoutVM is what the page frame shows around every signed-in page.
type LayoutVM struct {
	// Title is the page's name; the document title becomes "Title · Backstop".
	Title string
	// Nav is the navigation entry marked as the current page.
	Nav Nav
	// UserName is the signed-in user, shown above the Sign out button.
	UserName string
	// Role is the signed-in user's role, shown beside their name.
	Role string
	// Flash is an optional one-time message.
	Flash Flash
	// Health counts the sources that need attention, for the navigation's
	// indicator; nil shows none.
	Health *NavHealthVM
}

// NavHealthVM is the navigation's compact health indicator: it links to the
// overview and refreshes itself.
type NavHealthVM struct {
	// Broken and Warning count the sources at those levels; Total all sources.
	Broken, Warning, Total int
	// Overview is set on the overview page: the refresh then also swaps each
	// card's health.
	Overview bool
}

// HealthVM is a source's health as jobs/health judged it: shown by colour and
// by word, with the reason and what to do.
type HealthVM struct {
	// Level is ok, warning or broken; Word is how it reads ("Broken").
	Level, Word string
	// Reason is the worst problem (or what is fine); Do what to do about it.
	Reason, Do string
}

// ArchiverVM is the WAL archiver's state on a source's page.
type ArchiverVM struct {
	// State is starting, streaming, behind, stopped or recovering; Reason why it
	// is stopped or recovering.
	State, Reason string
	Since         time.Time
	// FlushedLSN is what the spool holds durably; ServerLSN the server's WAL end.
	FlushedLSN, ServerLSN string
	BehindBytes           int64
	BehindSeconds         time.Duration
	// SlotName, SlotWALStatus and SlotRetainedBytes describe the replication slot.
	SlotName, SlotWALStatus string
	SlotRetainedBytes       int64
	// GapFromLSN, GapToLSN and GapAt are the newest WAL gap, if any;
	// NeedsBackup is set until a base backup completes after it.
	GapFromLSN, GapToLSN string
	GapAt                time.Time
	NeedsBackup          bool
	UpdatedAt            time.Time
}

// LoginVM is the sign-in form.
type LoginVM struct {
	// Name is the user name to refill after a failed attempt.
	Name string
	// Error is shown above the form when sign-in failed ("Wrong name or password").
	Error string
	// Next is the local path to return to after signing in; sent back as a hidden field.
	Next string
}

// Pager describes one page of a longer list. The zero Pager shows no page links.
type Pager struct {
	// Page is the current page, starting at 1.
	Page int
	// PerPage is the number of rows per page.
	PerPage int
	// Total is the number of rows in the whole list.
	Total int64
}

// JobProgressVM is the live state of one job: the partial rendered by JobProgress
// and pushed by JobProgressOOB.
type JobProgressVM struct {
	JobID int64
	// State is the job state: queued, running, succeeded, failed, cancelled or interrupted.
	State string
	// Phase is a short human word or phrase for the current step, e.g.
	// "waiting for checkpoint", "copying data files", "archiving WAL".
	Phase string
	// Done and Total are bytes; Total 0 means the total is unknown and the bar is
	// indeterminate.
	Done, Total int64
	// RatePerSec is bytes per second; 0 means unknown.
	RatePerSec float64
	// ETA is the estimated time left; 0 means unknown.
	ETA time.Duration
	// Message is the latest event message, or the error of a failed job.
	Message string
	// BackupID is the backup the job produces, linked once the job has succeeded;
	// 0 if none.
	BackupID int64
}

// JobRow is one job in a list, and the header of the job page.
type JobRow struct {
	ID int64
	// Kind is the job kind, e.g. "backup".
	Kind       string
	SourceID   int64
	SourceName string
	// State is queued, running, succeeded, failed, cancelled or interrupted.
	State string
	// Phase, Done, Total, RatePerSec, ETA, Message and BackupID are as in JobProgressVM.
	Phase       string
	Done, Total int64
	RatePerSec  float64
	ETA         time.Duration
	Message     string
	BackupID    int64
	// CreatedAt is when the job was queued; StartedAt and FinishedAt are zero until
	// they happen.
	CreatedAt, StartedAt, FinishedAt time.Time
}

// Progress returns the row's live progress as the JobProgress partial shows it.
func (r JobRow) Progress() JobProgressVM {
	return JobProgressVM{
		JobID: r.ID, State: r.State, Phase: r.Phase, Done: r.Done, Total: r.Total,
		RatePerSec: r.RatePerSec, ETA: r.ETA, Message: r.Message, BackupID: r.BackupID,
	}
}

// EventRow is one entry of a job's event log.
type EventRow struct {
	At time.Time
	// Level is info, warn or error.
	Level   string
	Phase   string
	Message string
}

// BackupRow is one backup in a list; BackupVM embeds it.
type BackupRow struct {
	ID         int64
	SourceID   int64
	SourceName string
	// State is running, complete, failed, cancelled or interrupted.
	State string
	// StartedAt is when the backup began; FinishedAt is zero while it runs.
	StartedAt, FinishedAt time.Time
	// SourceBytes is the size of the data read from the source.
	SourceBytes int64
	// StoredNewBytes is what this backup added to the repository (after
	// compression and dedupe).
	StoredNewBytes int64
	// StoredRefBytes is the stored size of every block the backup references, new
	// or reused; SourceBytes / StoredRefBytes is the compression ratio.
	StoredRefBytes int64
	// BlocksNew and BlocksTotal count the backup's blocks; the rest were reused.
	BlocksNew, BlocksTotal int64
	// StartLSN and EndLSN are formatted as PostgreSQL does, e.g. "0/3A000028".
	StartLSN, EndLSN string
	// Progress is the live progress of the job writing the backup; set it while the
	// backup runs to show a progress bar in place of the sizes.
	Progress *JobProgressVM
}

// SourceSummary is one registered PostgreSQL source, as the overview cards and the
// sources table show it.
type SourceSummary struct {
	ID   int64
	Name string
	// MaskedDSN is the connection string with the password masked; the pages show
	// host:port/database from it.
	MaskedDSN string
	// PGVersion is the server version, e.g. "15.18"; empty if not known yet.
	PGVersion string
	// LastComplete is the newest complete backup; nil if there is none.
	LastComplete *BackupRow
	// LastAttempt is the newest backup in any state. If it is newer than
	// LastComplete and failed, the page says so. May be nil or equal to LastComplete.
	LastAttempt *BackupRow
	// ActiveJob is the live progress of the source's queued or running job, if any.
	ActiveJob *JobProgressVM
	// EarliestRestorable and LatestRestorable bound the restorable window (zero when
	// nothing is restorable yet); LatestRestorable is the newest commit in archived WAL.
	EarliestRestorable, LatestRestorable time.Time
	// Window is when the window was computed, or that it is not known yet.
	Window WindowStateVM
	// WALArchivedAt is when WAL was last stored in the repository; zero if never.
	WALArchivedAt time.Time
	// Health is the source's health; nil falls back to judging by the backups.
	Health *HealthVM
	// Restore answers "can I restore it right now?"; nil leaves the question out.
	Restore *RestoreAnswerVM
	// Lag is the WAL archiving lag now (the RPO now); nil when no archiver ran.
	Lag *LagVM
	// ProvenDrill is the newest passing restore drill, whose RTO is the proven one;
	// FailedDrill the newest drill when it failed after that. Nil when there is none.
	ProvenDrill, FailedDrill *DrillRow
	// Verification is the newest finished verification; nil when none ran.
	Verification *VerifyRunRow
	// Charts are the card's small charts (lag, backup duration and size); nil shows none.
	Charts *SourceChartsVM
}

// OverviewVM is the overview page: one card per source.
type OverviewVM struct {
	// Now is the reference for relative times; zero means time.Now().
	Now     time.Time
	Sources []SourceSummary
	// StaleAfter is the age beyond which the newest complete backup is flagged as
	// stale; zero means DefaultStaleAfter.
	StaleAfter time.Duration
	// Storage is the repository's size over time; nil shows no chart.
	Storage *StorageVM
}

// DefaultStaleAfter is the backup age flagged as stale when OverviewVM.StaleAfter is zero.
const DefaultStaleAfter = 24 * time.Hour

// SourcesVM is the sources list.
type SourcesVM struct {
	Now     time.Time
	Sources []SourceSummary
	// StaleAfter is as in OverviewVM.
	StaleAfter time.Duration
}

// SourceFormVM is the add-source form, empty or refilled after a failed check.
type SourceFormVM struct {
	Name string
	DSN  string
	// Errors holds messages by field: "name", "dsn", and "" for an error that
	// belongs to no single field (e.g. the connection check failed).
	Errors map[string]string
	// Hint is an optional suggestion shown with the general error, e.g.
	// "ALTER ROLE backstop REPLICATION;".
	Hint string
}

// SourceVM is one source's page.
type SourceVM struct {
	Now       time.Time
	ID        int64
	Name      string
	MaskedDSN string
	// SystemIdentifier is the cluster's system identifier as PostgreSQL prints it.
	SystemIdentifier string
	// PGVersion is e.g. "15.18".
	PGVersion     string
	Timeline      int64
	DataChecksums bool
	CreatedAt     time.Time
	// Backups are the source's recent backups, newest first.
	Backups []BackupRow
	// Jobs are the source's recent jobs, newest first.
	Jobs []JobRow
	// ActiveJob is the live progress of the queued or running job, if any.
	ActiveJob *JobProgressVM
	// EarliestRestorable and LatestRestorable bound the restorable window, as in
	// SourceSummary; zero when nothing is restorable yet. A non-zero
	// LatestRestorable shows the "Restore…" button.
	EarliestRestorable, LatestRestorable time.Time
	// Window is when the window was computed, or that it is not known yet.
	Window WindowStateVM
	// Health is the source's health, Archiver its WAL archiver's state; nil
	// when unknown.
	Health   *HealthVM
	Archiver *ArchiverVM
	// Tablespaces are the tablespaces created in the archived WAL after the newest
	// backup started: restores past them are refused until a new base backup.
	Tablespaces []TablespaceNoteVM
	// VerifyRuns are the source's newest verifications, Drills its newest restore
	// drills, newest first.
	VerifyRuns []VerifyRunRow
	Drills     []DrillRow
	// VerifyJob and DrillJob are the source's queued or running verification and drill,
	// if any: their buttons then link to the job instead of starting another.
	VerifyJob, DrillJob *JobProgressVM
}

// TablespaceNoteVM is a CREATE TABLESPACE found in archived WAL.
type TablespaceNoteVM struct {
	OID      uint32
	Location string
	// LSN is where its WAL record starts, as PostgreSQL prints it.
	LSN string
}

// BackupsVM is the backups list.
type BackupsVM struct {
	Now  time.Time
	Rows []BackupRow
	// Page is optional; its zero value shows no page links.
	Page Pager
}

// FileRow is one file of a backup.
type FileRow struct {
	Path string
	// Type is file, dir or symlink.
	Type string
	Size int64
	// Blocks is the number of blocks the file was split into.
	Blocks int64
}

// BackupVM is one backup's page. The embedded BackupRow holds the identity, state,
// times, sizes, LSNs and live progress.
type BackupVM struct {
	Now time.Time
	BackupRow
	// Label is the backup label given to PostgreSQL.
	Label string
	// RepositoryID is the backup's identifier in the repository (its manifest key).
	RepositoryID     string
	Timeline         int64
	PGVersion        string
	SystemIdentifier string
	// WALBytes is the size of the WAL needed to make the backup consistent.
	WALBytes int64
	// JobID is the job that made the backup; 0 if unknown.
	JobID int64
	// Error explains a failed or interrupted backup.
	Error string
	// RestoreCommand is the CLI command that restores this backup.
	RestoreCommand string
	// Files is one page of the backup's files; FilesPage.Total is the file count.
	Files     []FileRow
	FilesPage Pager
	// Pin is set while the backup is pinned (legal hold).
	Pin *PinVM
}

// JobsVM is the jobs list.
type JobsVM struct {
	Now  time.Time
	Rows []JobRow
	// Page is optional; its zero value shows no page links.
	Page Pager
}

// JobVM is one job's page.
type JobVM struct {
	Now time.Time
	// Row is the job itself, including its progress and result (Row.BackupID).
	Row JobRow
	// Events is the job's event log, oldest first.
	Events []EventRow
	// Error explains a failed or interrupted job.
	Error string
	// Phases are the steps of a restore job, in order ("materializing",
	// "configuring", "starting", "replaying", "promoting", "checking"), shown as
	// a stepper above the progress bar; leave nil for other jobs.
	Phases []PhaseVM
	// Restore is the result of a restore job (Kind "restore" or "pitr"): where it
	// went and what was checked. It may be set while the job runs (the data
	// directory is known early); nil shows nothing.
	Restore *RestoreResultVM
}

// AuditRow is one entry of the audit log.
type AuditRow struct {
	ID     int64
	At     time.Time
	Actor  string
	Action string
	Target string
	// Detail is the compact machine-readable detail, shown in monospace; DetailPretty the
	// same, indented, for the expanded entry.
	Detail, DetailPretty string
	IP                   string
	PrevHash, Hash       string
	// Repeats says how many repeats an open counting window has counted so far, or "".
	Repeats string
}

// AuditFilterVM is the audit page's filter as typed.
type AuditFilterVM struct {
	Actor, Action, Source, From, To string
}

// AuditVM is the audit log page.
type AuditVM struct {
	Filter AuditFilterVM
	// Filtered is true when a filter is set.
	Filtered bool
	// Errors are the filter's errors by field ("from", "to").
	Errors map[string]string
	Rows   []AuditRow
	// NewerURL and OlderURL are the adjacent pages; "" when there is none.
	NewerURL, OlderURL string
	// ExportCSV and ExportJSON download the filtered log.
	ExportCSV, ExportJSON string
}

// FieldError is the error of a filter field, or "".
func (vm AuditVM) FieldError(field string) string { return vm.Errors[field] }

// ErrorVM is an error page or fragment.
type ErrorVM struct {
	// Status is the HTTP status code, e.g. 404.
	Status int
	// Title is a short headline ("Backup not found").
	Title string
	// Message says what happened and what to do next.
	Message string
	// RequestID identifies the request in the server log; shown with a copy button.
	RequestID string
}

// Restore target kinds: what a restore stops at (RestoreTarget.Kind and the
// "mode" form parameter of the restore page).
const (
	// TargetLatest replays all archived WAL: the newest restorable commit.
	TargetLatest = "latest"
	// TargetTime stops at a commit time (recovery_target_time).
	TargetTime = "time"
	// TargetLSN stops at a WAL position (recovery_target_lsn).
	TargetLSN = "lsn"
	// TargetName stops at a named restore point (recovery_target_name).
	TargetName = "name"
)

// Where a restore goes (RestoreFormVM.Into and the "into" form parameter).
const (
	// IntoInstance starts a new PostgreSQL instance on a port.
	IntoInstance = "instance"
	// IntoDir writes a data directory with its recovery settings and does not
	// start it.
	IntoDir = "dir"
)

// TargetTimeLayout is how the restore page writes a target time into its
// datetime-local input and links (UTC, whole seconds): "2026-11-25T09:30:00".
// Browsers may send it back without seconds or with a fraction; read it with
// ParseTargetTime.
const TargetTimeLayout = "2006-01-02T15:04:05"

// RestoreTarget is what a restore stops at, as the plan, the restores list and
// a restore job's result describe it.
type RestoreTarget struct {
	// Kind is TargetLatest, TargetTime, TargetLSN or TargetName.
	Kind string
	// Time is the target time for TargetTime; for TargetLatest the newest
	// restorable commit time; for TargetName the time the restore point was
	// created; optional for TargetLSN. Microseconds are shown where they matter.
	Time time.Time
	// LSN is the target WAL position for TargetLSN, e.g. "0/5F2C10A8".
	LSN string
	// Name is the restore point's name for TargetName.
	Name string
	// Inclusive is recovery_target_inclusive: stop just after the target
	// (true, the default) rather than just before it. Ignored for TargetLatest
	// and TargetName.
	Inclusive bool
}

// WindowBackup is one complete base backup drawn on the restorable window.
type WindowBackup struct {
	ID int64
	// ConsistentAt is the earliest time the backup can be restored to: the
	// commit time reached at its end LSN.
	ConsistentAt time.Time
}

// WindowGap is a stretch of the window that cannot be restored because WAL is
// missing from the archive.
type WindowGap struct {
	// From and To bound the times that cannot be restored: from the last commit
	// before the missing WAL to the first restorable time after it (usually the
	// next backup's ConsistentAt).
	From, To time.Time
	// FirstMissing and LastMissing name the missing WAL segments, e.g.
	// "0000000100000000000000A3"; LastMissing is "" (or equal) when one is missing.
	FirstMissing, LastMissing string
}

// RestoreWindowVM is a source's restorable window as the restore page draws it.
// The page computes every position from these times; a zero Latest means
// nothing is restorable yet.
type RestoreWindowVM struct {
	// Earliest and Latest bound the window: the oldest backup's consistency
	// point and the newest commit in archived WAL.
	Earliest, Latest time.Time
	// Timeline is the timeline the window is on.
	Timeline int64
	// Backups are the complete backups inside the window, oldest first; each is
	// one marker (a few dozen at most read well).
	Backups []WindowBackup
	// Gaps are the unrestorable stretches, oldest first.
	Gaps []WindowGap
	// State is when the window was computed, or that it is not known yet.
	State WindowStateVM
}

// WindowStateVM says how current a restorable window shown is: the pages show the last
// one computed in the background.
type WindowStateVM struct {
	// Unknown is set while the window is not computed yet (after start-up).
	Unknown bool
	// ComputedAt is when it was computed; zero when not known.
	ComputedAt time.Time
}

// RestorePointVM is a named restore point (pg_create_restore_point) that the
// restore page offers as a target.
type RestorePointVM struct {
	Name string
	// At is when the point was created; LSN where its record is.
	At  time.Time
	LSN string
}

// RestoreFormVM holds the restore form's values, as submitted (refilled after
// an error) or as the handler suggests them on first load. Each field names
// the form parameter it comes from; the form posts to POST /sources/{id}/restore
// and previews the plan with GET /sources/{id}/restore and the same parameters.
type RestoreFormVM struct {
	// Mode ("mode") is TargetLatest, TargetTime, TargetLSN or TargetName;
	// "" means TargetLatest.
	Mode string
	// Target ("target") is the target time as typed, in UTC, in the form
	// TargetTimeLayout; "" shows the latest restorable time as a starting point.
	Target string
	// LSN ("lsn") is the target LSN as typed.
	LSN string
	// Point ("point") is the chosen restore point's name.
	Point string
	// Inclusive ("inclusive", value "on" when checked) is the include-the-target
	// checkbox. An unchecked box sends nothing: treat a request without the
	// "mode" parameter (the first load) as Inclusive true.
	Inclusive bool
	// Into ("into") is IntoInstance or IntoDir; "" means IntoInstance.
	Into string
	// Port ("port") is the new instance's port as typed, e.g. a suggested free
	// port "5433".
	Port string
	// Dir ("dir") is the data directory for IntoDir, as typed or suggested.
	Dir string
	// Confirm ("confirm") is what the user typed to confirm; it must equal the
	// source's name.
	Confirm string
}

// RestorePlanVM is how the server would restore the chosen target: the base
// backup, the WAL to replay and the recovery settings it would write.
type RestorePlanVM struct {
	// Target is the resolved target (for TargetLatest, Time is the newest commit).
	Target RestoreTarget
	// Timeline is the timeline recovery follows.
	Timeline int64
	// BackupID is the base backup restored; BackupConsistentAt as in WindowBackup.
	BackupID           int64
	BackupConsistentAt time.Time
	// BackupStoredBytes is the size read from the repository (compressed,
	// deduplicated); BackupRestoredBytes the size of the data directory written.
	BackupStoredBytes, BackupRestoredBytes int64
	// WALFromLSN and WALToLSN bound the WAL replayed, e.g. "0/3A000028".
	WALFromLSN, WALToLSN string
	// WALFiles is the number of WAL segment files replayed; WALBytes their size.
	WALFiles, WALBytes int64
	// Estimate is the expected duration of the whole restore; 0 means unknown.
	Estimate time.Duration
	// RecoverySettings are the exact settings written beside recovery.signal,
	// one per line, e.g. "recovery_target_time = '2026-11-25 09:30:00+00'".
	RecoverySettings string
}

// PlanRefusalVM says why the chosen target cannot be restored, and what can.
type PlanRefusalVM struct {
	// Message names the cause, e.g. "2026-11-26 10:00:00 UTC is after the latest
	// restorable time." or "WAL 0000000100000000000000A3 is missing: replay
	// cannot reach 2026-11-18 12:00:00 UTC."
	Message string
	// Nearest is the nearest target that can be restored; nil if there is none.
	// A Time target should be a whole second inside the window.
	Nearest *RestoreTarget
	// NearestNote says what Nearest is, e.g. "the last commit before the gap".
	NearestNote string
}

// RestoreVM is the "Restore to a point in time" page of one source.
type RestoreVM struct {
	// Now is the reference for relative times; zero means time.Now().
	Now        time.Time
	SourceID   int64
	SourceName string
	// PGVersion is the source's server version, e.g. "15.18"; the new instance
	// runs the same major version.
	PGVersion string
	// Window is the restorable window; a zero Window.Latest shows an empty state
	// instead of the form.
	Window RestoreWindowVM
	// RestorePoints are the named restore points inside the window, newest first.
	RestorePoints []RestorePointVM
	// Form holds the form's values.
	Form RestoreFormVM
	// Plan is the plan for the target in Form; nil when there is none (yet).
	Plan *RestorePlanVM
	// PlanError replaces the plan when the target cannot be restored; it also
	// marks the target field invalid.
	PlanError *PlanRefusalVM
	// Errors holds messages by field: "target" (a target that cannot be read,
	// e.g. an unparsable time or LSN), "port", "dir", "confirm", and "" for an
	// error that belongs to no single field (e.g. no PostgreSQL 15 binaries).
	Errors map[string]string
}

// Restored instance states (RestoreRow.State).
const (
	RestoreRestoring = "restoring"
	RestoreRunning   = "running"
	RestoreStopped   = "stopped"
	RestoreFailed    = "failed"
	RestoreDeleted   = "deleted"
)

// RestoreRow is one restored instance (or directory) in the restores list.
type RestoreRow struct {
	ID         int64
	SourceID   int64
	SourceName string
	// Target is what the restore stopped at.
	Target RestoreTarget
	// State is restoring, running, stopped, failed or deleted.
	State string
	// Port is the instance's port; 0 for a directory-only restore.
	Port int
	// DSN is the connection string of the instance, e.g.
	// "postgres://postgres@127.0.0.1:5433/postgres". It holds no password: the
	// instance trusts local connections. "" for a directory-only restore.
	DSN string
	// DataDir is the restored data directory.
	DataDir   string
	CreatedAt time.Time
	// JobID is the job that restored it; 0 if unknown.
	JobID int64
	// Error explains a failed restore (shown under its state).
	Error string
}

// RestoresVM is the restores list: instances and directories restored.
type RestoresVM struct {
	Now  time.Time
	Rows []RestoreRow
	// Page is optional; its zero value shows no page links.
	Page Pager
}

// Phase states (PhaseVM.State).
const (
	PhaseDone    = "done"
	PhaseCurrent = "current"
	PhasePending = "pending"
	PhaseFailed  = "failed"
	PhaseSkipped = "skipped"
)

// PhaseVM is one step of a restore job's stepper.
type PhaseVM struct {
	// Name is the phase, e.g. "replaying".
	Name string
	// State is PhaseDone, PhaseCurrent, PhasePending, PhaseFailed or PhaseSkipped.
	State string
	// Detail is an optional short line under the phase, e.g. for replaying
	// "at 09:12:44 of 09:30:00 UTC".
	Detail string
}

// RestoreResultVM is what a restore job produced.
type RestoreResultVM struct {
	// RestoreID is the restored instance, linked in the restores list; 0 if none.
	RestoreID int64
	// Target is what the restore stopped at.
	Target RestoreTarget
	// DSN is the new instance's connection string (no password); "" for a
	// directory-only restore or until the instance accepts connections.
	DSN string
	// DataDir is the restored data directory.
	DataDir string
	// Checked lists what was verified, one sentence each, e.g.
	// "pg_verifybackup: 1,874 files match the backup manifest".
	Checked []string
	// StopLine is PostgreSQL's log line where recovery stopped, e.g.
	// "LOG:  recovery stopping before commit of transaction 48213, time …".
	StopLine string
}
