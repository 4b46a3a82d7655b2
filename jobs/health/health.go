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
	// Gaps are the holes in the archived WAL inside the restorable window.
	Gaps []Gap
	// Verification is the newest finished verification of the source; nil when
	// none ran.
	Verification *Verification
	// Drill is the newest finished restore drill, LastPassedDrill the newest that
	// passed; nil when none.
	Drill, LastPassedDrill *Drill
	// BlockingTablespaces describe tablespaces created in the WAL that block
	// restores past them.
	BlockingTablespaces []string
	// BackupChange compares the newest backup's changed share with the usual;
	// nil when there is too little history.
	BackupChange *Change
	// WALRate compares the last hour's WAL volume with the usual; nil when there
	// is too little history.
	WALRate *Change
	// Unreachable says why Backstop cannot connect to the source now; "" when it
	// can (or was not asked).
	Unreachable string
	// WindowUnknown says why the restorable window and its gaps are not known now
	// ("" when they are): WindowPending while it is computed for the first time after
	// start-up, or else because computing it failed for a while.
	WindowUnknown string
	WindowPending bool
}

// Gap is missing WAL: restores into it are impossible.
type Gap struct {
	Segment          string
	FromLSN, ToLSN   string
	Timeline         uint32
	RestorableBefore time.Time // the last restorable instant before it
	RestorableAfter  time.Time // the first after it; zero when nothing after is
}

// Verification is what health needs of a verification run.
type Verification struct {
	RunID    int64
	At       time.Time
	Findings int
	// Summary names the first findings: the backup, file and object.
	Summary string
}

// Drill is what health needs of a restore drill.
type Drill struct {
	ID     int64
	Passed bool
	At     time.Time // when it ended
	Target time.Time // the second it restored to
	Error  string
}

// Change is a measure against its usual value (the median of the recent past).
type Change struct {
	Value, Usual float64
	// What names it: "backup 12" or "the last hour".
	What string
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
	// DrillMaxAge is how old the newest passing drill may be; 0: drills are
	// not expected (no drill schedule).
	DrillMaxAge time.Duration
	// AnomalyFactor is how many times its usual a backup's changed share or
	// the WAL volume must be to be an anomaly.
	AnomalyFactor float64
}

// DefaultPolicy is the policy used when none is configured.
var DefaultPolicy = Policy{
	StaleAfter:    24 * time.Hour,
	StoppedGrace:  10 * time.Second,
	LagSeconds:    time.Minute,
	LagBytes:      64 << 20,
	RetainedBytes: 1 << 30,
	SilentAfter:   2 * time.Minute,
	AnomalyFactor: 5,
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
	if p.DrillMaxAge > 0 {
		d.DrillMaxAge = p.DrillMaxAge
	}
	if p.AnomalyFactor > 0 {
		d.AnomalyFactor = p.AnomalyFactor
	}
	return d
}

// Problem is one thing wrong with a source: a rule that does not hold, how bad it is,
// and what to do. Alerts are made of problems.
type Problem struct {
	// Rule names the check, such as "wal-lag"; Key tells apart two problems of the
	// same rule (the backup or segment concerned), "" when there is one at most.
	Rule, Key string
	Level     Level
	Reason    string
	Do        string
	Evidence  map[string]string
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

// Of returns the health of a source with facts f at time now: its worst problem.
func Of(f Facts, now time.Time, p Policy) Health {
	problems := Problems(f, now, p)
	if len(problems) == 0 {
		a := f.Archiver
		reason := "WAL streaming"
		if a.BehindBytes > 0 {
			reason += ", " + bytes(a.BehindBytes) + " behind"
		}
		reason += "; newest backup " + dur(now.Sub(backupTime(*f.LastComplete))) + " old."
		return Health{Level: OK, Reason: reason}
	}
	worst := problems[0]
	for _, pr := range problems[1:] {
		if pr.Level.Worse(worst.Level) {
			worst = pr
		}
	}
	return Health{Level: worst.Level, Reason: worst.Reason, Do: worst.Do, Problems: len(problems)}
}

// Problems returns everything wrong with a source with facts f at time now, in the order
// the checks run (the worst of equal levels first).
func Problems(f Facts, now time.Time, p Policy) []Problem {
	p = p.withDefaults()
	var out []Problem
	add := func(rule string, l Level, reason, do string, evidence ...string) {
		pr := Problem{Rule: rule, Level: l, Reason: reason, Do: do}
		if len(evidence) > 0 {
			pr.Evidence = map[string]string{}
			for i := 0; i+1 < len(evidence); i += 2 {
				pr.Evidence[evidence[i]] = evidence[i+1]
			}
		}
		out = append(out, pr)
	}
	keyed := func(key string) { out[len(out)-1].Key = key }
	a := f.Archiver

	// Broken: the source cannot be restored to now, or soon will not be.
	if a != nil && (a.State == "stopped" || a.State == "recovering") {
		stopped := now.Sub(a.Since)
		switch {
		case a.State == "recovering":
			add("archiver-recovering", Warning, "The replication slot was lost; WAL archiving is recovering: "+a.Reason, "")
		case stopped < p.StoppedGrace:
			add("archiver-stopped", Warning, "WAL archiving was interrupted "+ago(stopped)+": "+a.Reason+" Retrying.", "")
		default:
			add("archiver-stopped", Broken, "WAL archiving stopped "+ago(stopped)+": "+a.Reason, stoppedAdvice(a.Cause),
				"stopped since", utc(a.Since), "cause", a.Cause)
		}
	}
	if NeedsBackup(f) {
		add("needs-backup", Broken, fmt.Sprintf("WAL is missing since %s (the replication slot was lost): restores past that point need a new base backup.", utc(a.GapAt)),
			"Start a backup now.", "gap at", utc(a.GapAt))
	}
	if a != nil && a.SlotWALStatus == "lost" && a.State != "recovering" {
		add("slot-lost", Broken, "The server invalidated the replication slot: WAL Backstop had not archived was removed.", "The archiver recreates the slot by itself; then start a backup.")
	}
	if f.LastComplete == nil && f.LastAttempt != nil && f.LastAttempt.State == "failed" {
		add("backup-failed", Broken, "No complete backup, and the last attempt failed: this source cannot be restored.", fmt.Sprintf("See backup %d for the error, fix it and start a backup.", f.LastAttempt.ID),
			"backup", fmt.Sprint(f.LastAttempt.ID))
		keyed(fmt.Sprint(f.LastAttempt.ID))
	}

	// Warnings: restorable now, but something needs attention.
	switch {
	case a == nil:
		add("archiver-silent", Warning, "WAL archiving has not started for this source.", "Run backstop serve: it archives the WAL of every source.")
	case a.State != "stopped" && a.State != "recovering" && now.Sub(a.UpdatedAt) > p.SilentAfter:
		add("archiver-silent", Warning, "The WAL archiver has not reported for "+dur(now.Sub(a.UpdatedAt))+".", "Check that backstop serve is running.",
			"last report", utc(a.UpdatedAt))
	case a.State == "streaming" || a.State == "behind":
		if a.BehindSeconds > p.LagSeconds || a.BehindBytes > p.LagBytes {
			add("wal-lag", Warning, fmt.Sprintf("WAL archiving is %s (%s) behind the server, more than the RPO objective of %s.", dur(a.BehindSeconds), bytes(a.BehindBytes), dur(p.LagSeconds)),
				"Check the network and the disk of the spool.", "behind", dur(a.BehindSeconds), "behind bytes", bytes(a.BehindBytes), "objective", dur(p.LagSeconds))
		}
	}
	if a != nil {
		switch {
		case a.SlotWALStatus == "unreserved":
			add("slot-retained", Broken, "The replication slot is about to be invalidated: the source is removing WAL it keeps for Backstop.", "Check that WAL archiving keeps up; raise max_slot_wal_keep_size.")
		case a.SlotRetainedBytes > p.RetainedBytes:
			add("slot-retained", Warning, fmt.Sprintf("The replication slot keeps %s of WAL on the source's disk.", bytes(a.SlotRetainedBytes)), "Check that WAL archiving keeps up, or the source's disk may fill.",
				"retained", bytes(a.SlotRetainedBytes), "threshold", bytes(p.RetainedBytes))
		}
	}
	switch {
	case f.LastComplete == nil && f.LastAttempt != nil && f.LastAttempt.State == "running":
		add("no-backup", Warning, "The first backup is running: this source cannot be restored until it completes.", "")
	case f.LastComplete == nil && (f.LastAttempt == nil || f.LastAttempt.State != "failed"):
		add("no-backup", Warning, "No complete backup yet: this source cannot be restored.", "Start the first backup.")
	case f.LastComplete != nil:
		if age := now.Sub(backupTime(*f.LastComplete)); age > p.StaleAfter {
			add("backup-stale", Warning, "No backup has succeeded for "+dur(age)+", longer than the expected "+dur(p.StaleAfter)+".", "Start a backup, or check the schedule.",
				"newest backup", fmt.Sprint(f.LastComplete.ID), "finished", utc(backupTime(*f.LastComplete)))
		}
		if la := f.LastAttempt; la != nil && la.ID != f.LastComplete.ID && la.StartedAt.After(f.LastComplete.StartedAt) &&
			(la.State == "failed" || la.State == "interrupted") {
			add("backup-failed", Warning, fmt.Sprintf("The last backup %s; older backups still restore.", la.State), fmt.Sprintf("See backup %d.", la.ID),
				"backup", fmt.Sprint(la.ID))
			keyed(fmt.Sprint(la.ID))
		}
	}
	if f.Unreachable != "" && (a == nil || a.State != "stopped") {
		add("source-unreachable", Broken, "Backstop cannot connect to the source: "+f.Unreachable, "Start the server, or fix the network or credentials.")
	}
	switch {
	case f.WindowPending:
		add("window-unknown", Warning, f.WindowUnknown+" Its gaps show once it is known.", "")
	case f.WindowUnknown != "":
		add("window-unknown", Broken, f.WindowUnknown+" A gap in the WAL would not show.",
			"Check that the repository can be read; Backstop's log has the details.")
	}

	// What verification, drills and the archive itself prove.
	for _, g := range f.Gaps {
		lost := "from " + utc(g.RestorableBefore)
		if !g.RestorableAfter.IsZero() {
			lost += " to " + utc(g.RestorableAfter)
		} else {
			lost += " on"
		}
		add("wal-gap", Broken, fmt.Sprintf("WAL is missing from %s to %s (segment %s): nothing can be restored %s.", g.FromLSN, g.ToLSN, g.Segment, lost),
			"Check the repository; the next backup restarts the window after the gap.",
			"from LSN", g.FromLSN, "to LSN", g.ToLSN, "segment", g.Segment, "window lost", lost)
		keyed(g.Segment)
	}
	if v := f.Verification; v != nil && v.Findings > 0 {
		add("verify-finding", Broken, fmt.Sprintf("Verification found %d damaged or missing objects: %s", v.Findings, v.Summary),
			"Start a backup: it stores good copies of the damaged blocks. Then run a deep verification.",
			"verification run", fmt.Sprint(v.RunID), "findings", fmt.Sprint(v.Findings), "at", utc(v.At))
		keyed(fmt.Sprint(v.RunID))
	}
	if d := f.Drill; d != nil && !d.Passed {
		add("drill-failed", Broken, fmt.Sprintf("The restore drill of %s failed: %s", utc(d.Target), d.Error),
			"Read the drill's job log; restore by hand to check the backup.", "drill", fmt.Sprint(d.ID), "target", utc(d.Target))
		keyed(fmt.Sprint(d.ID))
	}
	if p.DrillMaxAge > 0 && f.LastComplete != nil {
		switch d := f.LastPassedDrill; {
		case d == nil:
			add("drill-stale", Warning, "No restore drill has passed yet: how long a restore takes is not proven.", "Run a drill.")
		case now.Sub(d.At) > p.DrillMaxAge:
			add("drill-stale", Warning, fmt.Sprintf("The last passing restore drill is %s old, older than %s.", dur(now.Sub(d.At)), dur(p.DrillMaxAge)),
				"Run a drill, or check the drill schedule.", "last drill", fmt.Sprint(d.ID), "at", utc(d.At))
		}
	}
	for _, t := range f.BlockingTablespaces {
		add("tablespace", Warning, "A tablespace created in the WAL blocks restores past it: "+t, "Take a backup: restores from it on are not blocked.")
		keyed(t)
	}
	if c := f.BackupChange; c != nil && c.Usual > 0 && c.Value > c.Usual*p.AnomalyFactor && c.Value > 0.05 {
		add("anomaly-backup-change", Warning, fmt.Sprintf("%s changed %.0f %% of the data, %.0f times the usual %.1f %%: a runaway job, or something rewriting tables.",
			c.What, 100*c.Value, c.Value/c.Usual, 100*c.Usual), "Check what ran on the source; keep the backups from before it.",
			"changed", fmt.Sprintf("%.1f %%", 100*c.Value), "usual", fmt.Sprintf("%.1f %%", 100*c.Usual))
		keyed(c.What)
	}
	if c := f.WALRate; c != nil && c.Usual > 0 && c.Value > c.Usual*p.AnomalyFactor && c.Value > 64<<20 {
		add("anomaly-wal-rate", Warning, fmt.Sprintf("The source wrote %s of WAL in %s, %.0f times its usual %s: a runaway job, or something rewriting tables.",
			bytes(int64(c.Value)), c.What, c.Value/c.Usual, bytes(int64(c.Usual))), "Check what runs on the source.",
			"WAL", bytes(int64(c.Value)), "usual", bytes(int64(c.Usual)))
	}
	return out
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
