package web

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The actions of verification and drills that components ask about (see perms.go); the
// names are the use-case layer's.
const (
	CanStartVerify = "verify.start"
	CanStartDrill  = "drill.start"
)

// Restore answers (RestoreAnswerVM.Level).
const (
	// AnswerYes: the source restores to about now.
	AnswerYes = "yes"
	// AnswerCaveat: it restores, and something needs attention (a warning).
	AnswerCaveat = "caveat"
	// AnswerNo: nothing is restorable, or not up to now, or what is may not restore.
	AnswerNo = "no"
	// AnswerUnknown: the restorable window is not computed yet (after start-up).
	AnswerUnknown = "unknown"
)

// RestoreAnswerVM answers "can I restore this source right now?", by colour and by word.
type RestoreAnswerVM struct {
	// Level is AnswerYes, AnswerCaveat or AnswerNo.
	Level string
	// Why is what the answer rests on, in one short sentence.
	Why string
}

// answerWord is how an answer reads next to its colour.
func answerWord(level string) string {
	switch level {
	case AnswerYes:
		return "Yes"
	case AnswerCaveat:
		return "Yes, with a warning"
	case AnswerUnknown:
		return "Not known yet"
	}
	return "No"
}

func answerTone(level string) string {
	switch level {
	case AnswerYes:
		return "ok"
	case AnswerCaveat, AnswerUnknown:
		return "warn"
	}
	return "danger"
}

// LagVM is a source's WAL archiving lag now: how much of the last changes a restore would
// lose (the RPO now), against the objective of its policy.
type LagVM struct {
	// State is the archiver's state: starting, streaming, behind, stopped or recovering;
	// Since when it entered it.
	State string
	Since time.Time
	// Seconds and Bytes are how far archiving is behind the server.
	Seconds time.Duration
	Bytes   int64
	// Objective and ObjectiveBytes are the policy's RPO objective; Over is set when the
	// lag is beyond either.
	Objective      time.Duration
	ObjectiveBytes int64
	Over           bool
}

// lagTone is the colour of a lag: over its objective, or not archiving, needs attention.
func lagTone(l LagVM) string {
	switch {
	case l.State == "stopped":
		return "danger"
	case l.Over || l.State == "recovering" || l.State == "starting":
		return "warn"
	}
	return "ok"
}

// lagText is the lag in words: "3 s · 4.0 KiB behind", "stopped 5 min ago".
func lagText(l LagVM, now time.Time) string {
	switch l.State {
	case "stopped":
		return "Archiving stopped " + RelText(l.Since, now)
	case "recovering":
		return "Recovering a lost slot"
	case "starting":
		return "Starting"
	}
	if l.Seconds <= 0 && l.Bytes <= 0 {
		return "Up to date"
	}
	return durationShort(l.Seconds) + " · " + Bytes(l.Bytes) + " behind"
}

// durationShort is Duration, with times under a second as "under 1 s".
func durationShort(d time.Duration) string {
	if d < time.Second {
		return "under 1 s"
	}
	return Duration(d)
}

// objectiveText is the RPO objective: "objective 1 min".
func objectiveText(l LagVM) string {
	if l.Objective <= 0 {
		return ""
	}
	return "objective " + Duration(l.Objective)
}

// DrillRow is one restore drill: a restore of the source to a random second of its
// window into a sandbox, checked and torn down.
type DrillRow struct {
	ID    int64
	JobID int64
	// State is running, passed or failed.
	State string
	// TargetAt is the second the drill restored to (and, passed, proved restorable).
	TargetAt time.Time
	// BackupID is the base backup it restored; 0 when not known (yet).
	BackupID              int64
	StartedAt, FinishedAt time.Time
	// RTO is the time from the start to a restored instance that passed its checks;
	// 0 unless passed.
	RTO time.Duration
	// Checks say what was checked, in order; Tables counts the tables whose rows were
	// counted.
	Checks []string
	Tables int
	// Error says why it failed.
	Error string
}

// drillTone and drillWord show a drill's outcome.
func drillTone(state string) string {
	switch state {
	case "passed":
		return "ok"
	case "failed":
		return "danger"
	}
	return "info"
}

func drillWord(state string) string {
	switch state {
	case "passed":
		return "Passed"
	case "failed":
		return "Failed"
	case "running":
		return "Running"
	}
	return capitalize(state)
}

// VerifyRunRow is one verification of a source's backups and WAL in the repository.
type VerifyRunRow struct {
	ID    int64
	JobID int64
	// Deep runs read every pack; routine ones what is new plus a rotating sample.
	Deep bool
	// State is running, clean, findings or failed (the run could not finish).
	State                 string
	StartedAt, FinishedAt time.Time
	// PacksChecked of PacksTotal packs were read, BytesRead bytes in all.
	PacksChecked, PacksTotal, BytesRead int64
	// BlobsChecked, ManifestsChecked and WALChecked count what was checked.
	BlobsChecked, ManifestsChecked, WALChecked int64
	// Findings counts what was found wrong; FindingRows are the first of them.
	Findings    int
	FindingRows []VerifyFindingRow
	// Error says why a failed run could not finish.
	Error string
}

// VerifyFindingRow is one thing a verification found wrong.
type VerifyFindingRow struct {
	// BackupID is the backup concerned; 0 for WAL or a pack alone.
	BackupID int64
	// Kind is what is wrong: "corrupt-blob", "missing-blob", "wal-gap", …
	Kind string
	// Path is the file in the backup, or the WAL file's name.
	Path string
	// Object is the stored object's name, Pack the pack holding it.
	Object, Pack string
	// FromLSN and ToLSN bound missing WAL.
	FromLSN, ToLSN string
	Reason         string
}

func verifyTone(state string) string {
	switch state {
	case "clean":
		return "ok"
	case "findings", "failed":
		return "danger"
	}
	return "info"
}

func verifyWord(r VerifyRunRow) string {
	switch r.State {
	case "clean":
		return "Clean"
	case "findings":
		return plural(int64(r.Findings), "1 finding", fmt.Sprintf("%d findings", r.Findings))
	case "failed":
		return "Could not finish"
	case "running":
		return "Running"
	}
	return capitalize(r.State)
}

func verifyKind(deep bool) string {
	if deep {
		return "Deep"
	}
	return "Routine"
}

// findingWhere names where a finding is: "backup 12, base/16384/1259".
func findingWhere(f VerifyFindingRow) string {
	var parts []string
	if f.BackupID != 0 {
		parts = append(parts, fmt.Sprintf("Backup %d", f.BackupID))
	}
	if f.Path != "" {
		parts = append(parts, f.Path)
	}
	if f.FromLSN != "" {
		parts = append(parts, "WAL "+f.FromLSN+" → "+f.ToLSN)
	}
	if len(parts) == 0 {
		return "Repository"
	}
	return strings.Join(parts, ", ")
}

// LagSampleVM is a source's archiving lag at a moment.
type LagSampleVM struct {
	At      time.Time
	Seconds float64
	Bytes   int64
}

// BackupPointVM is one complete backup on the overview's charts.
type BackupPointVM struct {
	ID        int64
	StartedAt time.Time
	Duration  time.Duration
	// SourceBytes is the data read from the source; StoredNewBytes what the backup added
	// to the repository.
	SourceBytes, StoredNewBytes int64
}

// SourceChartsVM is what the small charts of an overview card draw.
type SourceChartsVM struct {
	// Lag is the archiving lag, sampled every minute, over the last LagPeriod, oldest
	// first.
	Lag       []LagSampleVM
	LagPeriod time.Duration
	// Backups are the newest complete backups (about 30), oldest first.
	Backups []BackupPointVM
}

// lagChartPoints bounds the points of a lag chart: 24 h of minutes, five at a time.
const lagChartPoints = 288

// lagGap is the pause between two samples drawn as a break in the line: sampling stopped
// (Backstop was not serving), and nothing is known about the time between.
const lagGap = 5 * time.Minute

// floatChart is the JSON static/charts.js draws, with fractions and gaps (null).
type floatChart struct {
	Series []chartSeries `json:"series"`
	X      []int64       `json:"x"`
	Y      [][]*float64  `json:"y"`
}

func num(v float64) *float64 { return &v }

// lagChart is the lag samples as charts.js reads them: at most lagChartPoints, each the
// worst of the samples it stands for, with a break where sampling paused.
func lagChart(c SourceChartsVM) floatChart {
	spec := floatChart{Series: []chartSeries{{Label: "Lag", Unit: "seconds"}, {Label: "Not archived", Unit: "bytes"}},
		Y: [][]*float64{{}, {}}}
	for i, x := range bucketMax(c.Lag, lagChartPoints) {
		if i > 0 && x.At.Sub(time.Unix(spec.X[len(spec.X)-1], 0)) > lagGap+c.LagPeriod/lagChartPoints {
			spec.X = append(spec.X, x.At.Unix()-1)
			spec.Y[0], spec.Y[1] = append(spec.Y[0], nil), append(spec.Y[1], nil)
		}
		spec.X = append(spec.X, x.At.Unix())
		spec.Y[0] = append(spec.Y[0], num(x.Seconds))
		spec.Y[1] = append(spec.Y[1], num(float64(x.Bytes)))
	}
	return spec
}

// bucketMax returns at most n samples: consecutive runs of samples, each replaced by
// its last time and its worst lag, so that a spike survives thinning.
func bucketMax(xs []LagSampleVM, n int) []LagSampleVM {
	if len(xs) <= n || n < 1 {
		return xs
	}
	out := make([]LagSampleVM, 0, n)
	per := (len(xs) + n - 1) / n
	for i := 0; i < len(xs); i += per {
		run := xs[i:min(i+per, len(xs))]
		b := run[len(run)-1]
		for _, x := range run {
			b.Seconds = max(b.Seconds, x.Seconds)
			b.Bytes = max(b.Bytes, x.Bytes)
		}
		out = append(out, b)
	}
	return out
}

// durationChart is the backups' durations as charts.js reads them.
func durationChart(c SourceChartsVM) floatChart {
	spec := floatChart{Series: []chartSeries{{Label: "Duration", Unit: "seconds"}}, Y: [][]*float64{{}}}
	for _, b := range c.Backups {
		spec.X = append(spec.X, b.StartedAt.Unix())
		spec.Y[0] = append(spec.Y[0], num(b.Duration.Seconds()))
	}
	return spec
}

// sizeChart is the backups' sizes as charts.js reads them.
func sizeChart(c SourceChartsVM) floatChart {
	spec := floatChart{Series: []chartSeries{{Label: "Data", Unit: "bytes"}, {Label: "Stored new", Unit: "bytes"}},
		Y: [][]*float64{{}, {}}}
	for _, b := range c.Backups {
		spec.X = append(spec.X, b.StartedAt.Unix())
		spec.Y[0] = append(spec.Y[0], num(float64(b.SourceBytes)))
		spec.Y[1] = append(spec.Y[1], num(float64(b.StoredNewBytes)))
	}
	return spec
}

// backupsCaption is the title of a chart of the newest backups: "Backup size, last 30".
func backupsCaption(what string, c SourceChartsVM) string {
	switch len(c.Backups) {
	case 0:
		return what
	case 1:
		return what + ", the one backup"
	}
	return fmt.Sprintf("%s, last %d", what, len(c.Backups))
}

// periodText is a chart's period in words: "24 h".
func periodText(d time.Duration) string {
	if d <= 0 {
		d = 24 * time.Hour
	}
	if d%time.Hour == 0 && d <= 72*time.Hour {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return Duration(d)
}

// lagSentence sums the lag chart up in words, for readers without it.
func lagSentence(c SourceChartsVM, now time.Time) string {
	if len(c.Lag) == 0 {
		return "No lag measured in the last " + periodText(c.LagPeriod) + ": Backstop samples it every minute while it serves."
	}
	last := c.Lag[len(c.Lag)-1]
	worst := last
	for _, x := range c.Lag {
		if x.Seconds > worst.Seconds || (x.Seconds == worst.Seconds && x.Bytes > worst.Bytes) {
			worst = x
		}
	}
	out := fmt.Sprintf("Behind by %s (%s) %s", secondsText(last.Seconds), Bytes(last.Bytes), RelText(last.At, now))
	if worst.Seconds > last.Seconds {
		out += fmt.Sprintf("; at most %s (%s), %s", secondsText(worst.Seconds), Bytes(worst.Bytes), RelText(worst.At, now))
	}
	return out + ", over the last " + periodText(c.LagPeriod) + "."
}

func secondsText(s float64) string {
	return durationShort(time.Duration(s * float64(time.Second)))
}

// lagRows are the few samples the lag chart's fallback table lists.
func lagRows(c SourceChartsVM) []LagSampleVM {
	return bucketMax(c.Lag, 6)
}

// durationSentence sums the duration chart up in words.
func durationSentence(c SourceChartsVM, now time.Time) string {
	if len(c.Backups) == 0 {
		return "No complete backup yet."
	}
	ds := make([]time.Duration, len(c.Backups))
	for i, b := range c.Backups {
		ds[i] = b.Duration
	}
	last := c.Backups[len(c.Backups)-1]
	out := fmt.Sprintf("The newest backup, %s, took %s.", RelText(last.StartedAt, now), Duration(last.Duration))
	if len(ds) > 1 {
		out += fmt.Sprintf(" The last %d took %s to %s.", len(ds), Duration(slices.Min(ds)), Duration(slices.Max(ds)))
	}
	return out
}

// sizeSentence sums the size chart up in words.
func sizeSentence(c SourceChartsVM) string {
	if len(c.Backups) == 0 {
		return "No complete backup yet."
	}
	first, last := c.Backups[0], c.Backups[len(c.Backups)-1]
	out := fmt.Sprintf("The newest backup read %s and stored %s new.", Bytes(last.SourceBytes), Bytes(last.StoredNewBytes))
	if len(c.Backups) > 1 {
		out += fmt.Sprintf(" %d backups before, %s and %s.", len(c.Backups)-1, Bytes(first.SourceBytes), Bytes(first.StoredNewBytes))
	}
	return out
}

// backupRows are the newest backups the backup charts' fallback table lists, newest
// first.
func backupRows(c SourceChartsVM) []BackupPointVM {
	out := slices.Clone(c.Backups[max(0, len(c.Backups)-5):])
	slices.Reverse(out)
	return out
}

// Element ids of an overview card's charts' data.
func lagChartID(sourceID int64) string      { return fmt.Sprintf("source-%d-lag-data", sourceID) }
func durationChartID(sourceID int64) string { return fmt.Sprintf("source-%d-duration-data", sourceID) }
func sizeChartID(sourceID int64) string     { return fmt.Sprintf("source-%d-size-data", sourceID) }
func restoreAnswerID(sourceID int64) string { return fmt.Sprintf("source-%d-restore-answer", sourceID) }

// verifyURL and drillURL are where a source's Verify and Run a drill buttons post.
func verifyURL(sourceID int64, deep bool) string {
	if deep {
		return sourceURL(sourceID) + "/verify?deep=1"
	}
	return sourceURL(sourceID) + "/verify"
}

func drillURL(sourceID int64) string { return sourceURL(sourceID) + "/drill" }
