// Package retention decides which base backups a retention policy keeps, and why.
//
// Select applies a Policy to a set of backups at an instant now. A backup is kept when at least
// one rule keeps it, and the result names every rule that does:
//
//   - Window: every backup whose At is strictly after now-Window, plus the anchor, the newest
//     backup whose At is at or before now-Window. The anchor is the base from which the
//     window's oldest second is restored (by replaying WAL from it), so a backup exactly at
//     now-Window is the anchor, not one inside the window. A zero Window keeps nothing.
//   - KeepLast N: the N newest backups.
//   - Daily, Weekly, Monthly, Yearly N: for the N most recent periods that hold at least one
//     backup, the newest backup of each period. Periods without backups do not count toward N
//     (as in restic and borg), so a pause in backups does not use up the history. Periods are
//     counted in Location: a day is a calendar day there (the 23- or 25-hour day of a DST
//     change is one day, and a backup at 23:30 local time belongs to that local day whatever
//     the date in UTC); a week is an ISO 8601 week, Monday first, numbered within its ISO
//     week-year (2026-12-31 and 2027-01-01 are in the same week); months and years are
//     calendar ones.
//   - MinKeep M: the M newest backups, however old. It is a floor that still holds when backups
//     stopped long ago and the window keeps none.
//   - Pinned: every pinned backup (legal hold), whatever the rest of the policy says.
//   - ArchiveYears N: for each calendar month in Location from the month of now minus 12·N
//     months on, the oldest backup of that month. The oldest rather than the newest, so the
//     month's archived backup does not change as more backups arrive in it. The first month is
//     computed arithmetically: from 2028-02-29 one year back is February 2027 (AddDate would
//     normalise to 2027-03-01 and lose February). The current month counts, so N years span
//     12·N+1 months.
//
// Backups are ordered by At, ties broken by ID (a higher ID is newer). Backups with At after
// now, which clock skew can produce, are considered like any other: they are the newest (and
// their day, week, month or year is the most recent period). Times are compared by their wall
// clock only, never by a monotonic clock reading.
//
// Location nil means UTC. Select does not validate the policy: a negative count or Window
// keeps nothing by that rule. Policy.Validate reports such policies, and one that keeps
// nothing at all.
package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rule names why a backup is kept.
type Rule string

// The rules, in the order Select lists them.
const (
	RuleWindow  Rule = "window"  // needed by the recovery window
	RuleLast    Rule = "last"    // one of the newest KeepLast
	RuleDaily   Rule = "daily"   // newest of one of the newest Daily days
	RuleWeekly  Rule = "weekly"  // newest of one of the newest Weekly ISO weeks
	RuleMonthly Rule = "monthly" // newest of one of the newest Monthly months
	RuleYearly  Rule = "yearly"  // newest of one of the newest Yearly years
	RuleMinimum Rule = "minimum" // one of the newest MinKeep, kept however old
	RulePinned  Rule = "pinned"  // legal hold
	RuleArchive Rule = "archive" // one a month for ArchiveYears years
)

// ruleOrder lists the rules in the order of the constants; a ruleSet bit is an index into it.
var ruleOrder = [...]Rule{RuleWindow, RuleLast, RuleDaily, RuleWeekly, RuleMonthly, RuleYearly, RuleMinimum, RulePinned, RuleArchive}

// ruleSet holds the rules keeping one backup, one bit per index into ruleOrder, so that each
// rule is listed once and in order however many times it is applied.
type ruleSet uint16

const (
	setWindow ruleSet = 1 << iota
	setLast
	setDaily
	setWeekly
	setMonthly
	setYearly
	setMinimum
	setPinned
	setArchive
)

// Policy says which backups to keep. Each rule keeps backups on its own; a backup is kept if
// any rule keeps it. The zero Policy keeps nothing but pinned backups.
type Policy struct {
	Window   time.Duration // recovery window; 0: none
	KeepLast int           // the newest KeepLast backups

	// The newest backup of each of the newest Daily days, Weekly ISO weeks, Monthly months
	// and Yearly years that hold a backup.
	Daily, Weekly, Monthly, Yearly int

	MinKeep      int // the newest MinKeep backups, however old
	ArchiveYears int // the oldest backup of each month of the last ArchiveYears years

	// Location is the time zone in which days, weeks, months and years are counted (the
	// schedule's); nil means UTC.
	Location *time.Location
}

// Backup is a complete base backup as retention sees it.
type Backup struct {
	ID int64
	// At is the backup's consistency time: the earliest instant it restores to.
	At     time.Time
	Pinned bool
}

// maxArchiveYears bounds the archive's reach so that the month arithmetic cannot overflow;
// it is far beyond any backup's age.
const maxArchiveYears = 1 << 20

// Select returns, for every backup p keeps, the rules that keep it (in the order of the Rule
// constants); backups absent from the map are not kept. Input order does not matter; ties on
// At are broken by ID (higher ID is newer). The package comment gives each rule's meaning.
// The result is never nil.
func Select(backups []Backup, p Policy, now time.Time) map[int64][]Rule {
	loc := p.location()
	now = now.Round(0)
	// byAge holds the backups newest first. Round(0) drops monotonic clock readings: comparing
	// some times by their monotonic reading and others by their wall clock would make the
	// order inconsistent.
	byAge := make([]Backup, len(backups))
	for i, b := range backups {
		b.At = b.At.Round(0)
		byAge[i] = b
	}
	slices.SortFunc(byAge, func(a, b Backup) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})

	kept := make(map[int64]ruleSet)
	if p.Window > 0 {
		cutoff := now.Add(-p.Window)
		for _, b := range byAge {
			kept[b.ID] |= setWindow
			if !b.At.After(cutoff) {
				break // the anchor: the newest at or before the window's start
			}
		}
	}
	for _, b := range newest(byAge, p.KeepLast) {
		kept[b.ID] |= setLast
	}
	for _, b := range newest(byAge, p.MinKeep) {
		kept[b.ID] |= setMinimum
	}
	periods := []struct {
		n      int
		rule   ruleSet
		period func(time.Time) period
	}{
		{p.Daily, setDaily, func(t time.Time) period { return period{t.Year(), t.YearDay()} }},
		{p.Weekly, setWeekly, func(t time.Time) period { y, w := t.ISOWeek(); return period{y, w} }},
		{p.Monthly, setMonthly, func(t time.Time) period { return period{t.Year(), int(t.Month())} }},
		{p.Yearly, setYearly, func(t time.Time) period { return period{t.Year(), 0} }},
	}
	for _, pr := range periods {
		// A set rather than "differs from the previous backup's period": a zone whose
		// calendar once stepped back (moving across the date line) would repeat a period.
		seen := make(map[period]bool)
		for _, b := range byAge {
			if len(seen) >= pr.n {
				break
			}
			k := pr.period(b.At.In(loc))
			if !seen[k] {
				seen[k] = true
				kept[b.ID] |= pr.rule
			}
		}
	}
	if p.ArchiveYears > 0 {
		first := monthIndex(now.In(loc)) - 12*int64(min(p.ArchiveYears, maxArchiveYears))
		seen := make(map[int64]bool)
		for _, b := range slices.Backward(byAge) {
			m := monthIndex(b.At.In(loc))
			if m >= first && !seen[m] {
				seen[m] = true
				kept[b.ID] |= setArchive
			}
		}
	}
	for _, b := range byAge {
		if b.Pinned {
			kept[b.ID] |= setPinned
		}
	}

	out := make(map[int64][]Rule, len(kept))
	for id, set := range kept {
		var rules []Rule
		for i, r := range ruleOrder {
			if set&(1<<i) != 0 {
				rules = append(rules, r)
			}
		}
		out[id] = rules
	}
	return out
}

// period is a day (year, day of year), ISO week (ISO year, week), month (year, month) or year
// (year, 0).
type period struct{ year, n int }

// monthIndex numbers t's calendar month so that consecutive months differ by one.
func monthIndex(t time.Time) int64 {
	y, m, _ := t.Date()
	return int64(y)*12 + int64(m) - 1
}

// newest returns the first n of the newest-first byAge (none for n <= 0).
func newest(byAge []Backup, n int) []Backup {
	return byAge[:max(0, min(n, len(byAge)))]
}

func (p Policy) location() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// counts lists the policy's counts with their names as people read them, in declaration
// order.
func (p Policy) counts() []struct {
	name string
	n    int
} {
	return []struct {
		name string
		n    int
	}{
		{"keep last", p.KeepLast},
		{"daily", p.Daily},
		{"weekly", p.Weekly},
		{"monthly", p.Monthly},
		{"yearly", p.Yearly},
		{"minimum kept", p.MinKeep},
		{"archive years", p.ArchiveYears},
	}
}

// Validate reports why p cannot be applied: a negative Window or count (each named with its
// allowed range), or a policy that keeps nothing at all.
func (p Policy) Validate() error {
	var errs []error
	if p.Window < 0 {
		errs = append(errs, fmt.Errorf("retention: the recovery window is %v: it must be 0 (no window) or more", p.Window))
	}
	keeps := p.Window > 0
	for _, c := range p.counts() {
		if c.n < 0 {
			errs = append(errs, fmt.Errorf("retention: %s is %d: it must be 0 or more", c.name, c.n))
		}
		keeps = keeps || c.n > 0
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !keeps {
		return errors.New("retention: this policy keeps nothing: at least one rule must keep something (a recovery window, or keep last, daily, weekly, monthly, yearly, minimum kept or archive years of 1 or more)")
	}
	return nil
}

// Describe returns a one-line human summary of p, such as "window 14 days; last 3; 7 daily,
// 4 weekly, 12 monthly, 2 yearly; at least 2 kept; archive 7 years". Rules that keep nothing
// are left out; a policy that keeps nothing reads "nothing kept".
func (p Policy) Describe() string {
	var parts []string
	if p.Window > 0 {
		parts = append(parts, "window "+FormatDuration(p.Window))
	}
	if p.KeepLast > 0 {
		parts = append(parts, "last "+strconv.Itoa(p.KeepLast))
	}
	var gfs []string
	for _, c := range []struct {
		n    int
		name string
	}{{p.Daily, "daily"}, {p.Weekly, "weekly"}, {p.Monthly, "monthly"}, {p.Yearly, "yearly"}} {
		if c.n > 0 {
			gfs = append(gfs, strconv.Itoa(c.n)+" "+c.name)
		}
	}
	if len(gfs) > 0 {
		parts = append(parts, strings.Join(gfs, ", "))
	}
	if p.MinKeep > 0 {
		parts = append(parts, fmt.Sprintf("at least %d kept", p.MinKeep))
	}
	if p.ArchiveYears > 0 {
		parts = append(parts, "archive "+plural(p.ArchiveYears, "year"))
	}
	if len(parts) == 0 {
		return "nothing kept"
	}
	return strings.Join(parts, "; ")
}

// FormatDuration writes d in the largest whole unit among days, hours and minutes, and as
// time.Duration does otherwise.
func FormatDuration(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if d != 0 && d%u.d == 0 {
			return plural(int(d/u.d), u.name)
		}
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
