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
	NavJobs     Nav = "jobs"
	NavAudit    Nav = "audit"
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
	// Flash is an optional one-time message.
	Flash Flash
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
	// WALArchivedAt is when WAL was last stored in the repository; zero if never.
	WALArchivedAt time.Time
}

// OverviewVM is the overview page: one card per source.
type OverviewVM struct {
	// Now is the reference for relative times; zero means time.Now().
	Now     time.Time
	Sources []SourceSummary
	// StaleAfter is the age beyond which the newest complete backup is flagged as
	// stale; zero means DefaultStaleAfter.
	StaleAfter time.Duration
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
}

// AuditRow is one entry of the audit log.
type AuditRow struct {
	At     time.Time
	Actor  string
	Action string
	Target string
	// Detail is a compact machine-readable detail, shown in monospace.
	Detail string
	IP     string
}

// AuditVM is the audit log page.
type AuditVM struct {
	Now  time.Time
	Rows []AuditRow
	// Page is optional; its zero value shows no page links.
	Page Pager
}

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
