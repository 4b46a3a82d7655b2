package web

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The restore screens' URLs and element ids.

func restoreURL(sourceID int64) string { return fmt.Sprintf("/sources/%d/restore", sourceID) }
func restoreRowID(id int64) string     { return fmt.Sprintf("restore-%d", id) }
func restoreActionURL(id int64, action string) string {
	return fmt.Sprintf("/restores/%d/%s", id, action)
}
func jobPhasesID(jobID int64) string  { return fmt.Sprintf("job-%d-phases", jobID) }
func jobRestoreID(jobID int64) string { return fmt.Sprintf("job-%d-restore", jobID) }

// restoreRowsID is the restores table body new rows are prepended to.
const restoreRowsID = "restore-rows"

// Element ids of the restore page that the plan preview swaps.
const (
	restorePlanID        = "restore-plan"
	restoreTargetMarkID  = "restore-window-target"
	restoreTargetErrorID = "restore-target-error"
)

// targetInputs are the target step's inputs by mode: the element id, the id of
// the slot that holds its error, and the ids of its help.
var targetInputs = map[string]struct{ id, errorID, help string }{
	TargetTime: {"restore-time", restoreTargetErrorID, "restore-time-help restore-time-local"},
	TargetLSN:  {"restore-lsn", "restore-lsn-error", "restore-lsn-help"},
	TargetName: {"restore-point", "restore-point-error", ""},
}

// targetErrorSlots are the selectors of every target error slot, which the plan
// preview swaps along with the plan.
func targetErrorSlots() string {
	return "#" + restoreTargetErrorID + ",#restore-lsn-error,#restore-point-error"
}

// restoreInURL links to restored instance id in the restores list.
func restoreInURL(id int64) string { return "/restores#" + restoreRowID(id) }

// FormatTargetTime writes t as the restore page's time input holds it: UTC, whole
// seconds (a fraction is dropped), in TargetTimeLayout.
func FormatTargetTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TargetTimeLayout)
}

// errTargetTime is returned by ParseTargetTime for text it cannot read.
var errTargetTime = errors.New(`not a time: use the form 2026-11-25 09:30:00 (UTC)`)

// ParseTargetTime reads a target time as the restore page's input sends it, in UTC:
// "2026-11-25T09:30" (browsers drop zero seconds), "2026-11-25T09:30:00", or with a
// fraction of up to nine digits. A space may replace the T, and a trailing "Z" or
// " UTC" is accepted; any other zone is refused rather than guessed.
func ParseTargetTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if v, ok := strings.CutSuffix(s, "UTC"); ok {
		s = strings.TrimSpace(v)
	} else if v, ok := strings.CutSuffix(s, "Z"); ok {
		s = v
	}
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errTargetTime
}

// shortUTC formats t compactly with its zone, e.g. "Nov 25 09:41:07 UTC"; the year
// is added when it is not the year of now.
func shortUTC(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	if t.Year() != nowOr(now).UTC().Year() {
		return t.Format("Jan 2 2006 15:04:05") + " UTC"
	}
	return t.Format("Jan 2 15:04:05") + " UTC"
}

// microUTC formats t to the microsecond, as PostgreSQL keeps commit times:
// "2026-11-25 09:30:00.000000 UTC".
func microUTC(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000000") + " UTC"
}

// isoUTC is t for a datetime attribute.
func isoUTC(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// targetKind is t's kind, TargetLatest when empty.
func targetKind(kind string) string {
	if kind == "" {
		return TargetLatest
	}
	return kind
}

// targetText describes a target in a few words: "2026-11-25 09:30:00 UTC",
// "latest (2026-11-25 09:41:07 UTC)", "LSN 0/5F2C10A8", "restore point
// before-migration".
func targetText(t RestoreTarget) string {
	switch targetKind(t.Kind) {
	case TargetTime:
		return UTC(t.Time)
	case TargetLSN:
		return "LSN " + t.LSN
	case TargetName:
		return "restore point " + t.Name
	default:
		if t.Time.IsZero() {
			return "latest"
		}
		return "latest (" + UTC(t.Time) + ")"
	}
}

// targetHeading is targetText with a capital letter.
func targetHeading(t RestoreTarget) string { return capitalize(targetText(t)) }

// guarantee is the plan's promise about what the restored instance holds.
func guarantee(t RestoreTarget) string {
	const lead = "The new instance will hold exactly the "
	switch targetKind(t.Kind) {
	case TargetTime:
		if t.Inclusive {
			return lead + "transactions committed at or before " + microUTC(t.Time) + "."
		}
		return lead + "transactions committed before " + microUTC(t.Time) + "."
	case TargetLSN:
		if t.Inclusive {
			return lead + "changes written up to and including LSN " + t.LSN + "."
		}
		return lead + "changes written before LSN " + t.LSN + "."
	case TargetName:
		s := lead + "transactions committed before the restore point " + strconv.Quote(t.Name)
		if !t.Time.IsZero() {
			s += " was created, at " + microUTC(t.Time)
		}
		return s + "."
	default:
		if t.Time.IsZero() {
			return lead + "transactions in the archived WAL, up to the newest commit."
		}
		return lead + "transactions committed at or before " + microUTC(t.Time) + ", the newest commit in the archived WAL."
	}
}

// targetValues are the form parameters that choose target t on the restore page.
func targetValues(t RestoreTarget) url.Values {
	v := url.Values{"mode": {targetKind(t.Kind)}}
	switch targetKind(t.Kind) {
	case TargetTime:
		v.Set("target", FormatTargetTime(t.Time))
	case TargetLSN:
		v.Set("lsn", t.LSN)
	case TargetName:
		v.Set("point", t.Name)
	}
	if t.Inclusive || targetKind(t.Kind) == TargetLatest || targetKind(t.Kind) == TargetName {
		v.Set("inclusive", "on")
	}
	return v
}

// restoreTargetURL is the restore page previewing the plan for target t.
func restoreTargetURL(sourceID int64, t RestoreTarget) string {
	return restoreURL(sourceID) + "?" + targetValues(t).Encode() + "#" + restorePlanID
}

// fillValue is the value app.js writes into the input of t's kind.
func fillValue(t RestoreTarget) string {
	switch targetKind(t.Kind) {
	case TargetTime:
		return FormatTargetTime(t.Time)
	case TargetLSN:
		return t.LSN
	case TargetName:
		return t.Name
	}
	return ""
}

// ceilSecond rounds t up to a whole second, so that a target typed in whole
// seconds is never before t.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}

// backupTarget is the time target at which backup b is first restorable.
func backupTarget(b WindowBackup) RestoreTarget {
	return RestoreTarget{Kind: TargetTime, Time: ceilSecond(b.ConsistentAt), Inclusive: true}
}

// backupTip is the tooltip of a backup marker.
func backupTip(b WindowBackup, now time.Time) string {
	return fmt.Sprintf("Backup %d · consistent at %s", b.ID, shortUTC(b.ConsistentAt, now))
}

// gapLabel names a gap's missing WAL: "gap: WAL 0000000100000000000000A3 missing".
func gapLabel(g WindowGap) string {
	if g.LastMissing == "" || g.LastMissing == g.FirstMissing {
		return "gap: WAL " + g.FirstMissing + " missing"
	}
	return "gap: WAL " + g.FirstMissing + " to " + g.LastMissing + " missing"
}

// gapSentence describes a gap for the window's text summary.
func gapSentence(g WindowGap, now time.Time) string {
	what := "WAL segment " + g.FirstMissing + " is"
	if g.LastMissing != "" && g.LastMissing != g.FirstMissing {
		what = "WAL segments " + g.FirstMissing + " to " + g.LastMissing + " are"
	}
	return fmt.Sprintf("Not restorable from %s to %s: %s missing from the archive.",
		shortUTC(g.From, now), shortUTC(g.To, now), what)
}

// windowSummary is the first sentence of the window's text summary.
func windowSummary(w RestoreWindowVM, now time.Time) string {
	s := fmt.Sprintf("Restorable to any second from %s to %s (%s)", shortUTC(w.Earliest, now),
		shortUTC(w.Latest, now), Duration(w.Latest.Sub(w.Earliest)))
	if w.Timeline > 0 {
		s += fmt.Sprintf(" on timeline %d", w.Timeline)
	}
	if n := len(w.Backups); n > 0 {
		s += fmt.Sprintf(", from %d base %s", n, plural(int64(n), "backup", "backups"))
	}
	switch n := len(w.Gaps); n {
	case 0:
		return s + ", with no gap in the WAL."
	case 1:
		return s + ", except one gap."
	default:
		return s + fmt.Sprintf(", except %d gaps.", n)
	}
}

// windowPct is the position of t in the window in percent, clamped to 0..100.
func windowPct(t time.Time, w RestoreWindowVM) float64 {
	span := w.Latest.Sub(w.Earliest)
	if span <= 0 {
		return 0
	}
	p := float64(t.Sub(w.Earliest)) / float64(span) * 100
	return min(max(p, 0), 100)
}

// inWindow reports whether t lies within the window.
func inWindow(t time.Time, w RestoreWindowVM) bool {
	return !t.IsZero() && !t.Before(w.Earliest) && !t.After(w.Latest)
}

// leftStyle positions a marker at pct percent.
func leftStyle(pct float64) string { return "left: " + pctText(pct) }

// spanStyle positions a segment from left to left+width percent.
func spanStyle(left, width float64) string {
	return "left: " + pctText(left) + "; width: " + pctText(width)
}

func pctText(p float64) string { return strconv.FormatFloat(p, 'f', 3, 64) + "%" }

// walSpan is one stretch of the WAL track: covered, or a gap.
type walSpan struct {
	Left, Width float64
	Gap         *WindowGap
}

// walSpans splits the window into covered stretches and gaps, left to right.
func walSpans(w RestoreWindowVM) []walSpan {
	gaps := append([]WindowGap(nil), w.Gaps...)
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].From.Before(gaps[j].From) })
	var out []walSpan
	at := 0.0
	for i := range gaps {
		from, to := windowPct(gaps[i].From, w), windowPct(gaps[i].To, w)
		if to < from {
			from, to = to, from
		}
		from = max(from, at)
		if from > at {
			out = append(out, walSpan{Left: at, Width: from - at})
		}
		if to > from || (to == from && from < 100) {
			out = append(out, walSpan{Left: from, Width: to - from, Gap: &gaps[i]})
		}
		at = max(at, to)
	}
	if at < 100 {
		out = append(out, walSpan{Left: at, Width: 100 - at})
	}
	return out
}

// gapLabelStyle anchors a gap's label at the gap, towards the middle of the track
// so that it stays inside.
func gapLabelStyle(s walSpan) string {
	if s.Left+s.Width/2 > 60 {
		return "right: " + pctText(100-s.Left-s.Width)
	}
	return "left: " + pctText(s.Left)
}

// tick is one labelled time on the window's axis.
type tick struct {
	Pct   float64
	Label string
	At    time.Time
}

// tickSteps are the axis spacings windowTicks chooses from.
var tickSteps = []time.Duration{
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// windowTicks places up to about six axis labels at round UTC times inside the
// window, leaving room for the exact times at both ends.
func windowTicks(w RestoreWindowVM) []tick {
	span := w.Latest.Sub(w.Earliest)
	if span <= 0 {
		return nil
	}
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if span/s <= 6 {
			step = s
			break
		}
	}
	// Round UTC boundaries: days from midnight, shorter steps within the day.
	start := w.Earliest.UTC().Truncate(step)
	if step >= 24*time.Hour {
		d := w.Earliest.UTC()
		start = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	}
	var out []tick
	for t := start; !t.After(w.Latest); t = t.Add(step) {
		p := windowPct(t, w)
		if t.Before(w.Earliest) || p < 4 || p > 96 {
			continue
		}
		label := t.Format("15:04")
		if step >= 24*time.Hour || (t.Hour() == 0 && t.Minute() == 0) {
			label = t.Format("Jan 2")
		}
		out = append(out, tick{Pct: p, Label: label, At: t})
	}
	return out
}

// refusalNearestText says what the nearest valid choice is.
func refusalNearestText(r PlanRefusalVM) string {
	if r.Nearest == nil {
		return ""
	}
	s := "Nearest restorable: " + targetText(*r.Nearest)
	if r.NearestNote != "" {
		s += ", " + r.NearestNote
	}
	return s + "."
}

// nearestButton is the label of the button that picks the nearest target.
func nearestButton(t RestoreTarget) string {
	switch targetKind(t.Kind) {
	case TargetTime:
		return "Use " + UTC(t.Time)
	case TargetLatest:
		return "Use the latest restorable time"
	case TargetLSN:
		return "Use LSN " + t.LSN
	default:
		return "Use restore point " + t.Name
	}
}

// planAnnouncement is what screen readers hear when the plan changes.
func planAnnouncement(vm RestoreVM) string {
	switch {
	case vm.PlanError != nil:
		return "Cannot restore this target. " + vm.PlanError.Message
	case vm.Plan != nil:
		s := fmt.Sprintf("Plan updated: backup %d and %s WAL %s", vm.Plan.BackupID,
			Count(vm.Plan.WALFiles), plural(vm.Plan.WALFiles, "file", "files"))
		if vm.Plan.Estimate > 0 {
			s += ", about " + Duration(vm.Plan.Estimate)
		}
		return s + "."
	}
	return ""
}

// restoreMode is the form's target mode, TargetLatest when empty.
func restoreMode(f RestoreFormVM) string { return targetKind(f.Mode) }

// restoreInto is the form's destination, IntoInstance when empty.
func restoreInto(f RestoreFormVM) string {
	if f.Into == "" {
		return IntoInstance
	}
	return f.Into
}

// targetInputValue is the time input's value: as typed (written the way a
// datetime-local input accepts it, when it can be read), else the latest
// restorable second as a starting point.
func targetInputValue(vm RestoreVM) string {
	if vm.Form.Target == "" {
		return FormatTargetTime(vm.Window.Latest)
	}
	if t, err := ParseTargetTime(vm.Form.Target); err == nil {
		return FormatTargetTime(t)
	}
	return vm.Form.Target
}

// timeBounds are the time input's min and max: the whole seconds inside the window.
func timeMin(w RestoreWindowVM) string { return FormatTargetTime(ceilSecond(w.Earliest)) }
func timeMax(w RestoreWindowVM) string { return FormatTargetTime(w.Latest) }

// localTimeFallback is what stands beside the time input until app.js shows the
// browser's local time: how long ago the typed time was.
func localTimeFallback(vm RestoreVM) string {
	t, err := ParseTargetTime(targetInputValue(vm))
	if err != nil {
		return ""
	}
	return "UTC, " + RelText(t, nowOr(vm.Now))
}

// targetError is Errors["target"] when mode is the chosen target kind: the
// error belongs beside that kind's input.
func targetError(vm RestoreVM, mode string) string {
	if restoreMode(vm.Form) != mode {
		return ""
	}
	return vm.Errors["target"]
}

// targetIsInvalid reports whether the input of target kind mode is marked
// invalid: it is the chosen kind, and it could not be read or was refused.
func targetIsInvalid(vm RestoreVM, mode string) bool {
	return restoreMode(vm.Form) == mode && (vm.Errors["target"] != "" || vm.PlanError != nil)
}

// targetDescribedBy lists the ids that explain the input of target kind mode.
func targetDescribedBy(vm RestoreVM, mode string) string {
	in := targetInputs[mode]
	ids := strings.Fields(in.help)
	if targetError(vm, mode) != "" {
		ids = append(ids, in.errorID)
	}
	if targetIsInvalid(vm, mode) && vm.PlanError != nil {
		ids = append(ids, "restore-plan-error")
	}
	return strings.Join(ids, " ")
}

// targetFocused reports whether the input of target kind mode gets focus.
func targetFocused(vm RestoreVM, mode string) bool {
	return restoreFocus(vm) == "target" && restoreMode(vm.Form) == mode
}

// restoreFocus is the restore form field that gets focus: the first with an
// error (a refused plan counts against the target), else none.
func restoreFocus(vm RestoreVM) string {
	if vm.Errors["target"] != "" || vm.PlanError != nil {
		return "target"
	}
	for _, k := range []string{"port", "dir", "confirm"} {
		if vm.Errors[k] != "" {
			return k
		}
	}
	return ""
}

// fieldDescribedBy joins a field's help id and, when it has an error, its error id.
func fieldDescribedBy(help, errID, errMsg string) string {
	if errMsg == "" {
		return help
	}
	if help == "" {
		return errID
	}
	return help + " " + errID
}

// pointOption is a restore point as the select shows it.
func pointOption(p RestorePointVM, now time.Time) string {
	return p.Name + " · " + shortUTC(p.At, now)
}

// pgMajor is the major version of a version string: "15" of "15.18".
func pgMajor(v string) string {
	major, _, _ := strings.Cut(v, ".")
	return major
}

// isRestoreKind reports whether a job kind restores data.
func isRestoreKind(kind string) bool { return kind == "restore" || kind == "pitr" }

// kindWord is a job kind for people: "Backup", "Restore", "Point-in-time restore".
func kindWord(kind string) string {
	if kind == "pitr" {
		return "Point-in-time restore"
	}
	return capitalize(strings.ReplaceAll(kind, "_", " "))
}

// restoreStates map a restored instance's state to its badge. Unlike a job, a
// running instance is the good outcome: green and steady.
var restoreStates = map[string]state{
	RestoreRestoring: {"info", "Restoring"},
	RestoreRunning:   {"ok", "Running"},
	RestoreStopped:   {"neutral", "Stopped"},
	RestoreFailed:    {"danger", "Failed"},
	RestoreDeleted:   {"neutral", "Deleted"},
}

func restoreStateOf(s string) state {
	if st, ok := restoreStates[s]; ok {
		return st
	}
	return stateOf(s)
}

// restoreBusy reports whether a restored instance is still being written.
func restoreBusy(s string) bool { return s == RestoreRestoring }

// phaseStates map a phase state to how the stepper shows it.
var phaseStates = map[string]state{
	PhaseDone:    {"ok", "done"},
	PhaseCurrent: {"info", "in progress"},
	PhasePending: {"neutral", "pending"},
	PhaseFailed:  {"danger", "failed"},
	PhaseSkipped: {"neutral", "skipped"},
}

func phaseStateOf(s string) state {
	if st, ok := phaseStates[s]; ok {
		return st
	}
	return state{"neutral", s}
}

// phasesLabel is the accessible summary of a stepper: "Phase 4 of 6: replaying".
func phasesLabel(phases []PhaseVM) string {
	for i, p := range phases {
		if p.State == PhaseCurrent || p.State == PhaseFailed {
			return fmt.Sprintf("Phase %d of %d: %s, %s", i+1, len(phases), p.Name, phaseStateOf(p.State).word)
		}
	}
	done := 0
	for _, p := range phases {
		if p.State == PhaseDone || p.State == PhaseSkipped {
			done++
		}
	}
	return fmt.Sprintf("%d of %d phases done", done, len(phases))
}

// targetMarkTime is the time the timeline marks as the chosen target: the plan's,
// else a typed time; ok is false when there is none inside the window.
func targetMarkTime(vm RestoreVM) (time.Time, bool) {
	var t time.Time
	switch {
	case vm.Plan != nil && !vm.Plan.Target.Time.IsZero():
		t = vm.Plan.Target.Time
	case restoreMode(vm.Form) == TargetTime:
		t, _ = ParseTargetTime(vm.Form.Target)
	case restoreMode(vm.Form) == TargetLatest:
		t = vm.Window.Latest
	}
	return t, inWindow(t, vm.Window)
}

// markerEdge keeps a marker's tooltip inside the window: near the left end it
// opens rightwards ("start"), near the right end leftwards ("end").
func markerEdge(pct float64) string {
	switch {
	case pct < 15:
		return "tl-backup--start"
	case pct > 85:
		return "tl-backup--end"
	}
	return ""
}

// inclusiveSuffix is ", inclusive" or ", exclusive" for the targets where
// recovery_target_inclusive applies, else "".
func inclusiveSuffix(t RestoreTarget) string {
	switch targetKind(t.Kind) {
	case TargetTime, TargetLSN:
		if t.Inclusive {
			return ", inclusive"
		}
		return ", exclusive"
	}
	return ""
}
