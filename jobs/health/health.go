// Package health decides, from facts alone, whether each source can be
// restored right now: ok, warning or broken, with a short reason and what to
// do. It is the one place where that verdict is made, so that the overview,
// the sources list, the source page and the navigation's indicator agree. It
// is pure: callers gather the facts (catalog rows, the archiver's state) and
// pass them in.
package health

import (
	"fmt"
	"time"
)

// Level is how much a source needs attention.
type Level string

// Levels, from best to worst.
const (
	OK      Level = "ok"
	Warning Level = "warning"
	Broken  Level = "broken"
)

// Word is the word shown next to the level's colour.
func (l Level) Word() string {
	switch l {
	case OK:
		return "Healthy"
	case Warning:
		return "Warning"
	case Broken:
		return "Broken"
	}
	return "Unknown"
}

func (l Level) rank() int {
	switch l {
	case Broken:
		return 2
	case Warning:
		return 1
	}
	return 0
}

// Worse reports whether l needs more attention than m.
func (l Level) Worse(m Level) bool { return l.rank() > m.rank() }

// Backup is what health needs of a base backup.
type Backup struct {
	ID int64
	// State is running, complete, failed, cancelled or interrupted.
	State      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Archiver is what health needs of the WAL archiver's state (store.ArchiverState).
type Archiver struct {
	// State is starting, streaming, behind, stopped or recovering.
	State string
	Since time.Time
	// Reason and Cause say why it is stopped or recovering (store.Cause*).
	Reason, Cause string
	BehindBytes   int64
	BehindSeconds time.Duration
	// SlotWALStatus is pg_replication_slots.wal_status; SlotRetainedBytes the
	// WAL the slot keeps on the source.
	SlotWALStatus     string
	SlotRetainedBytes int64
	// GapAt is when WAL was last found missing; NeedsBackupSince is set from
	// then until a base backup completes after it.
	GapAt            time.Time
	NeedsBackupSince time.Time
	UpdatedAt        time.Time
}

// Facts are what is known about one source.
type Facts struct {
	// LastComplete is the newest complete backup, LastAttempt the newest in
	// any state; nil when there is none.
	LastComplete, LastAttempt *Backup
	// Archiver is the archiver's state; nil when no archiver ever ran for the
	// source.
	Archiver *Archiver
}

// Policy holds the thresholds. The zero Policy means DefaultPolicy.
type Policy struct {
	// StaleAfter is the age beyond which the newest complete backup is too old.
	StaleAfter time.Duration
	// StoppedGrace is how long the archiver may be stopped (reconnecting after
	// a blip) before the source is broken.
	StoppedGrace time.Duration
	// LagSeconds and LagBytes bound the WAL not yet archived (the RPO).
	LagSeconds time.Duration
	LagBytes   int64
	// RetainedBytes bounds the WAL the slot keeps on the source's disk.
	RetainedBytes int64
	// SilentAfter is how long the archiver may go without saving its state
	// before it is presumed not running.
	SilentAfter time.Duration
}

// DefaultPolicy is the policy used when none is configured.
var DefaultPolicy = Policy{
	StaleAfter:    24 * time.Hour,
	StoppedGrace:  10 * time.Second,
	LagSeconds:    time.Minute,
	LagBytes:      64 << 20,
	RetainedBytes: 1 << 30,
	SilentAfter:   2 * time.Minute,
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy
	if p.StaleAfter > 0 {
		d.StaleAfter = p.StaleAfter
	}
	if p.StoppedGrace > 0 {
		d.StoppedGrace = p.StoppedGrace
	}
	if p.LagSeconds > 0 {
		d.LagSeconds = p.LagSeconds
	}
	if p.LagBytes > 0 {
		d.LagBytes = p.LagBytes
	}
	if p.RetainedBytes > 0 {
		d.RetainedBytes = p.RetainedBytes
	}
	if p.SilentAfter > 0 {
		d.SilentAfter = p.SilentAfter
	}
	return d
}

// Health is the verdict on one source.
type Health struct {
	Level Level
	// Reason is the worst problem, or what is fine, in one sentence.
	Reason string
	// Do says what to do about it; empty when nothing is needed.
	Do string
	// Problems counts the problems found (0 when OK).
	Problems int
}

// NeedsBackup reports whether a WAL gap was found and no base backup has
// completed since: restores past the gap are impossible until one does.
func NeedsBackup(f Facts) bool {
	a := f.Archiver
	if a == nil || a.NeedsBackupSince.IsZero() {
		return false
	}
	return f.LastComplete == nil || !f.LastComplete.StartedAt.After(a.NeedsBackupSince)
}

// Of returns the health of a source with facts f at time now.
func Of(f Facts, now time.Time, p Policy) Health {
	p = p.withDefaults()
	var worst Health
	n := 0
	add := func(l Level, reason, do string) {
		n++
		if n == 1 || l.Worse(worst.Level) {
			worst = Health{Level: l, Reason: reason, Do: do}
		}
	}
	a := f.Archiver

	// Broken: the source cannot be restored to now, or soon will not be.
	if a != nil && (a.State == "stopped" || a.State == "recovering") {
		stopped := now.Sub(a.Since)
		switch {
		case a.State == "recovering":
			add(Warning, "The replication slot was lost; WAL archiving is recovering: "+a.Reason, "")
		case stopped < p.StoppedGrace:
			add(Warning, "WAL archiving was interrupted "+ago(stopped)+": "+a.Reason+" Retrying.", "")
		default:
			add(Broken, "WAL archiving stopped "+ago(stopped)+": "+a.Reason, stoppedAdvice(a.Cause))
		}
	}
	if NeedsBackup(f) {
		add(Broken, fmt.Sprintf("WAL is missing since %s (the replication slot was lost): restores past that point need a new base backup.", utc(a.GapAt)),
			"Start a backup now.")
	}
	if a != nil && a.SlotWALStatus == "lost" && a.State != "recovering" {
		add(Broken, "The server invalidated the replication slot: WAL Backstop had not archived was removed.", "The archiver recreates the slot by itself; then start a backup.")
	}
	if f.LastComplete == nil && f.LastAttempt != nil && f.LastAttempt.State == "failed" {
		add(Broken, "No complete backup, and the last attempt failed: this source cannot be restored.", fmt.Sprintf("See backup %d for the error, fix it and start a backup.", f.LastAttempt.ID))
	}

	// Warnings: restorable now, but something needs attention.
	switch {
	case a == nil:
		add(Warning, "WAL archiving has not started for this source.", "Run backstop serve: it archives the WAL of every source.")
	case a.State != "stopped" && a.State != "recovering" && now.Sub(a.UpdatedAt) > p.SilentAfter:
		add(Warning, "The WAL archiver has not reported for "+dur(now.Sub(a.UpdatedAt))+".", "Check that backstop serve is running.")
	case a.State == "streaming" || a.State == "behind":
		if a.BehindSeconds > p.LagSeconds || a.BehindBytes > p.LagBytes {
			add(Warning, fmt.Sprintf("WAL archiving is %s (%s) behind the server.", dur(a.BehindSeconds), bytes(a.BehindBytes)), "Check the network and the disk of the spool.")
		}
	}
	if a != nil {
		switch {
		case a.SlotWALStatus == "unreserved":
			add(Warning, "The replication slot is about to be invalidated: the source is removing WAL it keeps for Backstop.", "Check that WAL archiving keeps up; raise max_slot_wal_keep_size.")
		case a.SlotRetainedBytes > p.RetainedBytes:
			add(Warning, fmt.Sprintf("The replication slot keeps %s of WAL on the source's disk.", bytes(a.SlotRetainedBytes)), "Check that WAL archiving keeps up, or the source's disk may fill.")
		}
	}
	switch {
	case f.LastComplete == nil && f.LastAttempt != nil && f.LastAttempt.State == "running":
		add(Warning, "The first backup is running: this source cannot be restored until it completes.", "")
	case f.LastComplete == nil && (f.LastAttempt == nil || f.LastAttempt.State != "failed"):
		add(Warning, "No complete backup yet: this source cannot be restored.", "Start the first backup.")
	case f.LastComplete != nil:
		if age := now.Sub(backupTime(*f.LastComplete)); age > p.StaleAfter {
			add(Warning, "The newest complete backup is "+dur(age)+" old.", "Start a backup, or check the schedule.")
		}
		if la := f.LastAttempt; la != nil && la.ID != f.LastComplete.ID && la.StartedAt.After(f.LastComplete.StartedAt) &&
			(la.State == "failed" || la.State == "interrupted") {
			add(Warning, fmt.Sprintf("The last backup %s; older backups still restore.", la.State), fmt.Sprintf("See backup %d.", la.ID))
		}
	}

	if n == 0 {
		reason := "WAL streaming"
		if a.BehindBytes > 0 {
			reason += ", " + bytes(a.BehindBytes) + " behind"
		}
		reason += "; newest backup " + dur(now.Sub(backupTime(*f.LastComplete))) + " old."
		return Health{Level: OK, Reason: reason}
	}
	worst.Problems = n
	return worst
}

// stoppedAdvice says what to do about a stopped archiver, by cause.
func stoppedAdvice(cause string) string {
	switch cause {
	case "unreachable":
		return "Start the server, or fix the network or credentials: archiving resumes by itself."
	case "identity":
		return "The server at this address is another cluster: fix the source's connection string."
	case "spool":
		return "Check the spool directory's disk and permissions."
	case "slot_lost":
		return "The archiver recreates the slot by itself; then start a backup."
	}
	return "Check the server log and Backstop's log: archiving retries by itself."
}

func backupTime(b Backup) time.Time {
	if !b.FinishedAt.IsZero() {
		return b.FinishedAt
	}
	return b.StartedAt
}

func ago(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return dur(d) + " ago"
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// dur is a short duration for sentences: "40 s", "3 min", "5 h", "2 d".
func dur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d d", int(d.Hours()/24))
}

// bytes is a size in binary units.
func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
