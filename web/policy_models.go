package web

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The actions the policy page and the backup page ask about; the names are the
// use-case layer's.
const (
	CanSetPolicy = "policy.set"
	CanExpire    = "expire.run"
	CanPinBackup = "backup.pin"
)

// PolicyVM is a source's "Schedule and retention" page: the saved policy and its
// schedule's last runs, the form with the dry-run preview beneath it, the
// repository's size over time and what expiry deleted lately.
type PolicyVM struct {
	Now        time.Time
	SourceID   int64
	SourceName string
	// Saved is the stored policy; nil when the source has none: nothing is then
	// scheduled and nothing expires, and the form holds the defaults.
	Saved *SavedPolicyVM
	// Runs are the schedule's latest runs, newest first.
	Runs []ScheduleRunVM
	// Editor is the form and the preview: the part that Preview replaces.
	Editor PolicyEditorVM
	// Storage is the repository's size over time.
	Storage StorageVM
	// Expired are the source's recently expired backups, newest first.
	Expired []ExpiredBackupVM
}

// SavedPolicyVM is a stored policy as the page describes it.
type SavedPolicyVM struct {
	// BackupCron is the full-backup schedule in cron syntax, "" for none.
	BackupCron string
	// TimeZone is the IANA zone the schedule and retention's calendar are read in.
	TimeZone string
	// Retention is the retention rules in words ("window 14 days; at least 2 kept").
	Retention string
	// NextRun is when the next scheduled backup starts (jitter included), zero
	// without a schedule; NextRunLocal is the same instant in TimeZone.
	NextRun      time.Time
	NextRunLocal string
	// Jitter is how long after each due time this source's runs start.
	Jitter    time.Duration
	UpdatedAt time.Time
	UpdatedBy string
}

// ScheduleRunVM is one run of a source's backup schedule.
type ScheduleRunVM struct {
	DueAt, QueuedAt time.Time
	// Late is set when the run was queued more than a minute after it was due;
	// Missed counts the earlier due times folded into it (Backstop was down).
	Late   bool
	Missed int
	// JobID is the backup job queued, 0 when none was (Note says why); JobState
	// is its state, "" when unknown.
	JobID    int64
	JobState string
	Note     string
}

// PolicyEditorVM is the policy form and, beneath it, the dry-run preview and
// Apply now. Preview swaps this whole part, so that errors appear next to the
// fields and the preview follows the form.
type PolicyEditorVM struct {
	Now        time.Time
	SourceID   int64
	SourceName string
	// HasSaved says a policy is stored, so that Apply now can apply it.
	HasSaved bool
	Form     PolicyFormVM
	Preview  PolicyPreviewVM
	// Confirm is the typed confirmation of Apply now, refilled with ConfirmError
	// after a refusal.
	Confirm, ConfirmError string
}

// The policy form's parameters, which are also the keys of PolicyFormVM.Errors;
// FieldPolicy holds an error about the policy as a whole.
const (
	FieldBackupCron   = "backup_cron"
	FieldVerifyCron   = "verify_cron"
	FieldDrillCron    = "drill_cron"
	FieldRPOSeconds   = "rpo_seconds"
	FieldTimeZone     = "time_zone"
	FieldWindowDays   = "window_days"
	FieldKeepLast     = "keep_last"
	FieldDaily        = "daily"
	FieldWeekly       = "weekly"
	FieldMonthly      = "monthly"
	FieldYearly       = "yearly"
	FieldMinKeep      = "min_keep"
	FieldArchiveYears = "archive_years"
	FieldPolicy       = "policy"
)

// PolicyFormVM holds the policy form's values as typed (refilled after an error)
// or as stored.
type PolicyFormVM struct {
	BackupCron, TimeZone string
	// VerifyCron and DrillCron schedule verification and drills; RPOSeconds is the lag
	// objective alerts compare against ("" for the default).
	VerifyCron, DrillCron, RPOSeconds string
	// WindowDays is the recovery window in days; it may have a fraction.
	WindowDays                               string
	KeepLast, Daily, Weekly, Monthly, Yearly string
	MinKeep, ArchiveYears                    string
	Errors                                   map[string]string
}

// PolicyPreviewVM is what applying a policy now would keep and delete.
type PolicyPreviewVM struct {
	// Unsaved says the preview is of the form's values (or the defaults of a
	// source without a policy), not of the saved policy.
	Unsaved bool
	// Error says why there is no preview; empty when there is one.
	Error string
	// Policy is the previewed retention rules in words; Summary the plan in one
	// sentence ("3 backups and 1.2 GiB of WAL (52 files) go; …").
	Policy, Summary string
	// Before is the restorable window now, After once the plan is applied.
	Before, After WindowSpanVM
	// Backups are the complete backups, newest first, each kept or expiring.
	Backups []PlanBackupVM
	// ExpiringBytes is what the expiring backups added when taken: an upper bound
	// of what deleting them frees.
	ExpiringBytes int64
	// WALFiles and WALBytes are the archived WAL that would go: from FirstWAL to
	// LastWAL, everything below KeepWALFrom.
	WALFiles          int
	WALBytes          int64
	FirstWAL, LastWAL string
	KeepWALFrom       string
}

// WindowSpanVM is a restorable window: its ends, and its ranges in words.
type WindowSpanVM struct {
	// Earliest and Latest are zero when nothing is restorable.
	Earliest, Latest time.Time
	// Text lists the ranges ("2026-11-25 02:00:14 UTC to 09:41:07 UTC"), "empty"
	// when there is none.
	Text string
	// Gaps counts the gaps that split it.
	Gaps int
}

// PlanBackupVM is one complete backup in a preview.
type PlanBackupVM struct {
	ID int64
	// ConsistentAt is the backup's consistency time, as retention counts it.
	ConsistentAt                time.Time
	SourceBytes, StoredNewBytes int64
	// Rules are the rules that keep it (window, last, daily, weekly, monthly,
	// yearly, minimum, pinned, archive); none when it expires, and Reason says why.
	Rules  []string
	Reason string
	Pin    *PinVM
}

// Expires reports whether no rule keeps the backup.
func (b PlanBackupVM) Expires() bool { return len(b.Rules) == 0 }

// PinVM is a backup's pin (legal hold): who pinned it, when and why.
type PinVM struct {
	At   time.Time
	By   string
	Note string
}

// StorageVM is the repository's size over time, as expiry jobs sampled it.
type StorageVM struct {
	// Since is the start of the period shown.
	Since   time.Time
	Samples []StorageSampleVM
}

// StorageSampleVM is the repository's size at a moment: Bytes in all, of which
// DeadBytes are in packs marked for deletion.
type StorageSampleVM struct {
	At               time.Time
	Bytes, DeadBytes int64
}

// ExpiredBackupVM is a backup that expiry deleted.
type ExpiredBackupVM struct {
	BackupID int64
	// Manifest is the backup's id in the repository.
	Manifest string
	Bytes    int64
	Reason   string
	// ExpiredAt is when expiry took it out of the catalog; Deleted says pruning
	// has also deleted its objects from the repository.
	ExpiredAt time.Time
	Deleted   bool
	JobID     int64
}

// CommonTimeZones are offered as suggestions by the time zone field; any IANA
// name is accepted.
var CommonTimeZones = []string{
	"UTC",
	"Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Amsterdam",
	"Europe/Madrid", "Europe/Rome", "Europe/Zurich", "Europe/Stockholm", "Europe/Warsaw", "Europe/Helsinki",
	"Europe/Athens", "Europe/Istanbul",
	"America/New_York", "America/Toronto", "America/Chicago", "America/Denver", "America/Phoenix",
	"America/Los_Angeles", "America/Mexico_City", "America/Sao_Paulo", "America/Argentina/Buenos_Aires",
	"Africa/Lagos", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Hong_Kong",
	"Asia/Shanghai", "Asia/Seoul", "Asia/Tokyo", "Australia/Perth", "Australia/Sydney", "Pacific/Auckland",
}

// cronExample is a schedule the form shows as an example.
type cronExample struct{ Expr, Meaning string }

var cronExamples = []cronExample{
	{"0 2 * * *", "every day at 02:00"},
	{"30 1 * * 0", "Sundays at 01:30"},
	{"0 */6 * * *", "every 6 hours"},
	{"@daily", "midnight"},
}

// Policy page URLs and element ids.

func policyURL(sourceID int64) string        { return fmt.Sprintf("/sources/%d/policy", sourceID) }
func policyPreviewURL(sourceID int64) string { return policyURL(sourceID) + "/preview" }
func expireURL(sourceID int64) string        { return fmt.Sprintf("/sources/%d/expire", sourceID) }
func pinURL(backupID int64) string           { return backupURL(backupID) + "/pin" }
func unpinURL(backupID int64) string         { return backupURL(backupID) + "/unpin" }
func planBackupID(backupID int64) string     { return fmt.Sprintf("plan-backup-%d", backupID) }

// policyEditorID is the element that Preview replaces.
const policyEditorID = "policy-editor"

// The return targets of the pin forms (parameter "next").
const (
	PinReturnPolicy = "policy"
	PinReturnBackup = "backup"
)

// FormatWindowDays writes a recovery window in days for the form: "14", "1.5".
func FormatWindowDays(d time.Duration) string {
	return strconv.FormatFloat(d.Hours()/24, 'f', -1, 64)
}

// ParseWindowDays reads the form's recovery window in days (a fraction is
// allowed) to the second; empty means no window.
func ParseWindowDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	days, err := strconv.ParseFloat(s, 64)
	if err != nil || !(days >= 0 && days <= 100*366) { // NaN fails both
		return 0, errors.New("enter the recovery window in days, such as 14 or 1.5 (0 for none)")
	}
	return time.Duration(days*86400+0.5) * time.Second, nil
}

// ruleInfo is how a retention rule reads on the page.
type ruleInfo struct {
	word, tone, title string
}

var policyRules = map[string]ruleInfo{
	"window":  {"Window", "info", "Needed to restore every second of the recovery window"},
	"last":    {"Last", "neutral", "One of the newest backups kept by count"},
	"daily":   {"Daily", "neutral", "The newest backup of its day"},
	"weekly":  {"Weekly", "neutral", "The newest backup of its ISO week"},
	"monthly": {"Monthly", "neutral", "The newest backup of its month"},
	"yearly":  {"Yearly", "neutral", "The newest backup of its year"},
	"minimum": {"Minimum", "neutral", "One of the newest backups kept however old"},
	"pinned":  {"Pinned", "ok", "Pinned (legal hold): never expires until unpinned"},
	"archive": {"Archive", "neutral", "The first backup of its month, kept for the archive (without the WAL after it)"},
}

func ruleOf(r string) ruleInfo {
	if i, ok := policyRules[r]; ok {
		return i
	}
	return ruleInfo{capitalize(r), "neutral", ""}
}

// runStatus is the word and tone of a schedule run.
func runStatus(r ScheduleRunVM) state {
	switch {
	case r.JobID == 0 && r.Note != "":
		return state{"warn", "Not queued"}
	case r.Late:
		return state{"warn", "Late"}
	}
	return state{"ok", "On time"}
}

// lateRuns counts the late runs among runs and the due times they folded in.
func lateRuns(runs []ScheduleRunVM) (late, missed int) {
	for _, r := range runs {
		if r.Late {
			late++
		}
		missed += r.Missed
	}
	return late, missed
}

// runsSummary is the sentence above the runs table.
func runsSummary(runs []ScheduleRunVM) string {
	late, missed := lateRuns(runs)
	n := len(runs)
	s := fmt.Sprintf("The last %d %s", n, plural(int64(n), "run", "runs"))
	if n == 1 {
		s = "The last run"
	}
	switch {
	case late == 0:
		return s + " started on time."
	case missed == 0:
		return fmt.Sprintf("%s: %d late.", s, late)
	default:
		return fmt.Sprintf("%s: %d late, which also stood in for %d %s missed while Backstop was down.", s, late, missed,
			plural(int64(missed), "run", "runs"))
	}
}

// planCounts counts a preview's kept and expiring backups.
func planCounts(p PolicyPreviewVM) (kept, expiring int) {
	for _, b := range p.Backups {
		if b.Expires() {
			expiring++
		} else {
			kept++
		}
	}
	return kept, expiring
}

// previewTitle is the preview's heading; withForm says the page shows the form
// (without it, an unsaved preview is of the defaults).
func previewTitle(p PolicyPreviewVM, withForm bool) string {
	switch {
	case !p.Unsaved:
		return "What the saved policy would delete now"
	case withForm:
		return "Preview of the policy in the form (not saved)"
	}
	return "What the default policy would delete (not saved)"
}

// windowText writes a window's ends, "from … to …", or says it is empty.
func windowText(w WindowSpanVM) string {
	if w.Latest.IsZero() {
		return "nothing is restorable"
	}
	return "from " + UTC(w.Earliest) + " to " + UTC(w.Latest)
}

// windowLost is how much of the window's start a plan gives up: the earliest
// restorable time moves from before to after.
func windowLost(before, after WindowSpanVM) time.Duration {
	if before.Earliest.IsZero() || after.Earliest.IsZero() || !after.Earliest.After(before.Earliest) {
		return 0
	}
	return after.Earliest.Sub(before.Earliest)
}

// chartSpec is the JSON static/charts.js draws.
type chartSpec struct {
	Series []chartSeries `json:"series"`
	X      []int64       `json:"x"`
	Y      [][]int64     `json:"y"`
}

type chartSeries struct {
	Label string `json:"label"`
	Unit  string `json:"unit"`
}

// maxChartPoints bounds the points drawn: an hourly sample over 90 days thinned
// to about one every three hours.
const maxChartPoints = 720

// storageChart is the storage samples as charts.js reads them.
func storageChart(s StorageVM) chartSpec {
	samples := thin(s.Samples, maxChartPoints)
	spec := chartSpec{
		Series: []chartSeries{{Label: "Stored", Unit: "bytes"}, {Label: "Awaiting deletion", Unit: "bytes"}},
		X:      make([]int64, len(samples)),
		Y:      [][]int64{make([]int64, len(samples)), make([]int64, len(samples))},
	}
	for i, x := range samples {
		spec.X[i] = x.At.Unix()
		spec.Y[0][i] = x.Bytes
		spec.Y[1][i] = x.DeadBytes
	}
	return spec
}

// thin returns at most n of samples, evenly spread, always with the first and
// the last.
func thin(samples []StorageSampleVM, n int) []StorageSampleVM {
	if len(samples) <= n || n < 2 {
		return samples
	}
	out := make([]StorageSampleVM, 0, n)
	for i := range n {
		out = append(out, samples[i*(len(samples)-1)/(n-1)])
	}
	return out
}

// storageRows are the few samples the chart's fallback table lists.
func storageRows(s StorageVM) []StorageSampleVM {
	return thin(s.Samples, 6)
}

// storageSentence sums the samples up in words, for the chart's fallback.
func storageSentence(s StorageVM, now time.Time) string {
	if len(s.Samples) == 0 {
		return "No size recorded yet: each expiry run (hourly while Backstop serves) records the repository's size."
	}
	first, last := s.Samples[0], s.Samples[len(s.Samples)-1]
	out := fmt.Sprintf("The repository holds %s (%s of it awaiting deletion), measured %s.", Bytes(last.Bytes),
		Bytes(last.DeadBytes), RelText(last.At, nowOr(now)))
	if len(s.Samples) > 1 {
		out += fmt.Sprintf(" It held %s on %s.", Bytes(first.Bytes), first.At.UTC().Format("2006-01-02"))
	}
	return out
}

// pinText describes a pin: "Pinned by ana 3 d ago: legal hold 42".
func pinLine(p PinVM) string {
	s := "Pinned by " + p.By
	if p.Note != "" {
		s += ": " + p.Note
	}
	return s
}

// zoneSuffix is " (Europe/Berlin)", or "" for UTC.
func zoneSuffix(tz string) string {
	if tz == "" || tz == "UTC" {
		return ""
	}
	return " (" + tz + ")"
}

// policyField is one input of the policy form.
type policyField struct {
	Name, Label, Help, Value, Error string
	// Number makes it a whole-number input; List names a datalist of suggestions;
	// Examples adds the cron examples beneath it.
	Number, Mono, Short, Examples bool
	List                          string
	Autofocus                     bool
}

// policyDescribedBy lists the ids describing a field other than its error.
func policyDescribedBy(f policyField) string {
	ids := []string{policyFieldID(f.Name) + "-help"}
	if f.Examples {
		ids = append(ids, policyFieldID(f.Name)+"-examples")
	}
	if f.Number {
		ids = append(ids, "policy-counts-help")
	}
	return strings.Join(ids, " ")
}

// policyFieldID is the element id of a policy form field.
func policyFieldID(name string) string { return "policy-" + strings.ReplaceAll(name, "_", "-") }

// policyFocus is the policy form's field that gets focus: the first with an error.
func policyFocus(errs map[string]string) string {
	for _, k := range []string{FieldBackupCron, FieldVerifyCron, FieldDrillCron, FieldTimeZone, FieldRPOSeconds, FieldWindowDays, FieldKeepLast, FieldDaily, FieldWeekly,
		FieldMonthly, FieldYearly, FieldMinKeep, FieldArchiveYears} {
		if errs[k] != "" {
			return k
		}
	}
	return ""
}

// countValue is the form's value of the count field name.
func (f PolicyFormVM) countValue(name string) string {
	switch name {
	case FieldKeepLast:
		return f.KeepLast
	case FieldDaily:
		return f.Daily
	case FieldWeekly:
		return f.Weekly
	case FieldMonthly:
		return f.Monthly
	case FieldYearly:
		return f.Yearly
	case FieldMinKeep:
		return f.MinKeep
	case FieldArchiveYears:
		return f.ArchiveYears
	}
	return ""
}

// previewEmpty reports whether a preview deletes nothing.
func previewEmpty(p PolicyPreviewVM) bool {
	_, expiring := planCounts(p)
	return expiring == 0 && p.WALFiles == 0
}
