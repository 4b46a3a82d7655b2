// Package report builds verification reports: for a period and a set of sources, the
// backups taken, the verification runs and their findings, the restore drills, the alerts,
// the restores, whether the policy's recovery window was restorable, and a recoverability
// scorecard per source and day. One Report is built from the catalog (Build); JSON, CSV and
// PDF are rendered from it, each signed with the installation's Ed25519 key (Sign), and
// Verify checks a file offline. The formats are described in SCHEMA.md beside this file.
package report

import (
	"fmt"
	"time"
)

// FormatVersion names the report's schema; it changes when a field changes meaning.
const FormatVersion = "backstop-report/1"

// Report is everything a verification report says. Times are UTC, to the second.
type Report struct {
	Format      string    `json:"format"`
	GeneratedAt time.Time `json:"generated_at"`
	// From and To bound the period: From ≤ t < To.
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Summary Summary   `json:"summary"`
	Sources []Source  `json:"sources"`
}

// Summary is the report's totals over all its sources: what `backstop report verify`
// prints and the first page of the PDF shows.
type Summary struct {
	Sources         []string `json:"sources"`
	Backups         int      `json:"backups"`
	BackupsComplete int      `json:"backups_complete"`
	BackupBytes     int64    `json:"backup_bytes"`
	VerifyRuns      int      `json:"verify_runs"`
	Findings        int      `json:"findings"`
	Drills          int      `json:"drills"`
	DrillsPassed    int      `json:"drills_passed"`
	Alerts          int      `json:"alerts"`
	Restores        int      `json:"restores"`
	// ProvableSeconds of MeasuredSeconds (the period up to when the report was made, for
	// every source) were provably restorable; Coverage is their ratio (0 when nothing
	// was measured).
	ProvableSeconds int64   `json:"provable_seconds"`
	MeasuredSeconds int64   `json:"measured_seconds"`
	Coverage        float64 `json:"coverage"`
	// WindowsHeld counts the sources whose whole policy window was restorable.
	WindowsHeld int `json:"windows_held"`
}

// Source is one source's part of the report.
type Source struct {
	Name             string `json:"name"`
	SystemIdentifier string `json:"system_identifier"`
	// Policy is the source's policy when the report was made (the defaults when it has
	// none).
	Policy     Policy      `json:"policy"`
	Backups    []Backup    `json:"backups"`
	VerifyRuns []VerifyRun `json:"verify_runs"`
	Drills     []Drill     `json:"drills"`
	Alerts     []Alert     `json:"alerts"`
	Restores   []Restore   `json:"restores"`
	// Window is whether every second of the policy's recovery window, ending at the end
	// of the period, was restorable.
	Window WindowCheck `json:"window"`
	// Days is the recoverability scorecard: one entry per UTC day of the period.
	Days []Day `json:"days"`
}

// Policy is what of a source's policy the report measures against.
type Policy struct {
	WindowSeconds      int64 `json:"window_seconds"`
	DrillMaxAgeSeconds int64 `json:"drill_max_age_seconds"`
	RPOSeconds         int64 `json:"rpo_seconds"`
}

// Backup is one base backup started in the period.
type Backup struct {
	ID              int64      `json:"id"`
	RepoID          string     `json:"repo_id"`
	State           string     `json:"state"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	DurationSeconds int64      `json:"duration_seconds"`
	SourceBytes     int64      `json:"source_bytes"`
	StoredBytesNew  int64      `json:"stored_bytes_new"`
	StartLSN        string     `json:"start_lsn"`
	EndLSN          string     `json:"end_lsn"`
	Timeline        int64      `json:"timeline"`
	// ManifestSHA256 is the SHA-256 of the backup's manifest object as stored in the
	// repository (backups/ID.manifest): "" when the repository no longer holds it.
	ManifestSHA256 string `json:"manifest_sha256"`
	// VerifyState is "ok" or "corrupt" after a verification read it, "" before.
	VerifyState string     `json:"verify_state"`
	VerifiedAt  *time.Time `json:"verified_at"`
}

// VerifyRun is one verification started in the period, with its findings.
type VerifyRun struct {
	ID         int64      `json:"id"`
	Deep       bool       `json:"deep"`
	State      string     `json:"state"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Packs      int64      `json:"packs_checked"`
	Bytes      int64      `json:"bytes_read"`
	Findings   []Finding  `json:"findings"`
}

// Finding is one thing a verification found wrong.
type Finding struct {
	Kind     string `json:"kind"`
	Object   string `json:"object"`
	BackupID int64  `json:"backup_id"`
	Path     string `json:"path"`
	Reason   string `json:"reason"`
}

// Drill is one restore drill started in the period: the second it restored and proved,
// and how long it took (RTO).
type Drill struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"`
	TargetAt   time.Time  `json:"target_at"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	RTOSeconds float64    `json:"rto_seconds"`
	Error      string     `json:"error"`
}

// Alert is one alert of the source first raised in the period, with how long people took
// to acknowledge and resolve it (null while they have not).
type Alert struct {
	ID                   int64      `json:"id"`
	Rule                 string     `json:"rule"`
	Severity             string     `json:"severity"`
	State                string     `json:"state"`
	Title                string     `json:"title"`
	FirstAt              time.Time  `json:"first_at"`
	AckedAt              *time.Time `json:"acked_at"`
	ResolvedAt           *time.Time `json:"resolved_at"`
	SecondsToAcknowledge *int64     `json:"seconds_to_acknowledge"`
	SecondsToResolve     *int64     `json:"seconds_to_resolve"`
}

// Restore is one restore requested in the period.
type Restore struct {
	ID        int64     `json:"id"`
	Target    string    `json:"target"`
	BackupID  int64     `json:"backup_id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
}

// WindowCheck says whether the policy's recovery window was restorable.
type WindowCheck struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Held is true when every second from From to To was restorable.
	Held bool `json:"held"`
	// Gaps are the stretches that were not, with why.
	Gaps []Gap `json:"gaps"`
}

// Day is one UTC day of the recoverability scorecard.
type Day struct {
	Date string `json:"date"` // 2006-01-02
	// MeasuredSeconds is the part of the day inside the period and before the report
	// was made; ProvableSeconds of it were provably restorable; Share is their ratio.
	MeasuredSeconds int64   `json:"measured_seconds"`
	ProvableSeconds int64   `json:"provable_seconds"`
	Share           float64 `json:"share"`
	// Gaps are the stretches of the day that were not provably restorable, with why;
	// their lengths add up to MeasuredSeconds - ProvableSeconds.
	Gaps []Gap `json:"gaps"`
}

// Gap is a stretch of time that was not (provably) restorable: From ≤ t < To.
type Gap struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
}

// Seconds is the gap's length in whole seconds.
func (g Gap) Seconds() int64 { return int64(g.To.Sub(g.From) / time.Second) }

// summarize computes r's Summary from its sources.
func summarize(r *Report) {
	s := Summary{Sources: []string{}}
	for _, src := range r.Sources {
		s.Sources = append(s.Sources, src.Name)
		s.Backups += len(src.Backups)
		for _, b := range src.Backups {
			if b.State == "complete" {
				s.BackupsComplete++
				s.BackupBytes += b.SourceBytes
			}
		}
		s.VerifyRuns += len(src.VerifyRuns)
		for _, v := range src.VerifyRuns {
			s.Findings += len(v.Findings)
		}
		s.Drills += len(src.Drills)
		for _, d := range src.Drills {
			if d.State == "passed" {
				s.DrillsPassed++
			}
		}
		s.Alerts += len(src.Alerts)
		s.Restores += len(src.Restores)
		for _, d := range src.Days {
			s.ProvableSeconds += d.ProvableSeconds
			s.MeasuredSeconds += d.MeasuredSeconds
		}
		if src.Window.Held {
			s.WindowsHeld++
		}
	}
	s.Coverage = share(s.ProvableSeconds, s.MeasuredSeconds)
	r.Summary = s
}

// share is part/whole rounded to 4 decimals, 0 for an empty whole.
func share(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part*10000/whole) / 10000
}

// Check reports the first way r does not hold together: totals that do not match the
// rows, a share outside [0, 1], a day whose gaps and provable time do not add up to it.
func (r *Report) Check() error {
	if r.Format != FormatVersion {
		return fmt.Errorf("format %q, want %q", r.Format, FormatVersion)
	}
	if !r.From.Before(r.To) {
		return fmt.Errorf("period from %s to %s is empty", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	want := *r
	summarize(&want)
	if got := fmt.Sprintf("%+v", r.Summary); got != fmt.Sprintf("%+v", want.Summary) {
		return fmt.Errorf("summary %s does not match the report's rows (%+v)", got, want.Summary)
	}
	for _, src := range r.Sources {
		for _, d := range src.Days {
			if d.Share < 0 || d.Share > 1 || d.ProvableSeconds < 0 || d.ProvableSeconds > d.MeasuredSeconds {
				return fmt.Errorf("source %s, day %s: provable %ds of %ds (share %v) is impossible", src.Name, d.Date,
					d.ProvableSeconds, d.MeasuredSeconds, d.Share)
			}
			if d.Share != share(d.ProvableSeconds, d.MeasuredSeconds) {
				return fmt.Errorf("source %s, day %s: share %v does not match %d of %d seconds", src.Name, d.Date, d.Share,
					d.ProvableSeconds, d.MeasuredSeconds)
			}
			var gaps int64
			for _, g := range d.Gaps {
				gaps += g.Seconds()
			}
			if gaps+d.ProvableSeconds != d.MeasuredSeconds {
				return fmt.Errorf("source %s, day %s: %ds of gaps and %ds provable do not make the %ds measured", src.Name,
					d.Date, gaps, d.ProvableSeconds, d.MeasuredSeconds)
			}
		}
	}
	return nil
}
