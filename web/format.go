package web

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Bytes formats n bytes in binary units: "512 B", "1.5 KiB", "85 MiB", "412 GiB".
// Values below 10 of a unit keep one decimal.
func Bytes(n int64) string {
	if n < 0 {
		return "-" + Bytes(-n)
	}
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case v < 9.95:
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
	case v < 1023.5 || i == len(units)-1:
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + units[i]
	default: // rounds up to 1024 of this unit
		return "1.0 " + units[i+1]
	}
}

// Rate formats a transfer rate in bytes per second, e.g. "85 MiB/s"; zero or
// negative rates yield "".
func Rate(bytesPerSec float64) string {
	if bytesPerSec <= 0 || math.IsNaN(bytesPerSec) || math.IsInf(bytesPerSec, 0) {
		return ""
	}
	return Bytes(int64(bytesPerSec)) + "/s"
}

// Duration formats d for people, to two units at most: "< 1 s", "42 s",
// "3 min 12 s", "1 h 4 min", "2 d 3 h".
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(d / time.Second)
	switch {
	case s < 1:
		return "< 1 s"
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return twoUnits(s/60, "min", s%60, "s")
	case s < 86400:
		return twoUnits(s/3600, "h", s%3600/60, "min")
	default:
		return twoUnits(s/86400, "d", s%86400/3600, "h")
	}
}

func twoUnits(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d %s", a, ua)
	}
	return fmt.Sprintf("%d %s %d %s", a, ua, b, ub)
}

// Ratio formats num/den as a factor, e.g. "3.2×"; it yields "—" when either is
// zero or negative.
func Ratio(num, den int64) string {
	if num <= 0 || den <= 0 {
		return "—"
	}
	r := float64(num) / float64(den)
	if r >= 99.95 {
		return strconv.FormatFloat(r, 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(r, 'f', 1, 64) + "×"
}

// Percent formats part/whole as a whole percentage rounded down, e.g. "87%"
// (so that nothing reads 100% before it is); it yields "—" when whole is not
// positive.
func Percent(part, whole int64) string {
	if whole <= 0 {
		return "—"
	}
	return strconv.Itoa(percent(part, whole)) + "%"
}

// percent is part/whole in whole percent, rounded down and clamped to 0..100.
func percent(part, whole int64) int {
	if whole <= 0 || part <= 0 {
		return 0
	}
	if part >= whole {
		return 100
	}
	return int(float64(part) * 100 / float64(whole))
}

// Count formats n with thousands separators, e.g. "12,480".
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// UTC formats t as the exact time shown on hover, e.g. "2026-11-25 09:41:07 UTC".
func UTC(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// RelText is the relative text of t seen from now: "just now", "42 s ago",
// "4 min ago", "3 h ago", "12 d ago", "in 3 s"; beyond 45 days, the UTC date.
// A zero t yields "—". static/app.js mirrors these rules in the browser.
func RelText(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	s := int64(d / time.Second)
	var text string
	switch {
	case s < 5:
		return "just now"
	case s < 60:
		text = fmt.Sprintf("%d s", s)
	case s < 3600:
		text = fmt.Sprintf("%d min", s/60)
	case s < 86400:
		text = fmt.Sprintf("%d h", s/3600)
	case s < 45*86400:
		text = fmt.Sprintf("%d d", s/86400)
	default:
		return t.UTC().Format("2006-01-02")
	}
	if future {
		return "in " + text
	}
	return text + " ago"
}

// DSNEndpoint returns "host:port/database" from a connection string in URL form
// (postgres://user:xxxxx@host:5432/db) or key=value form (host=h port=5432
// dbname=db). It never returns the user or password; if it cannot parse dsn it
// returns "".
func DSNEndpoint(dsn string) string {
	dsn = strings.TrimSpace(dsn)
	var host, port, db string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		host, db = u.Host, strings.TrimPrefix(u.Path, "/")
		if host == "" {
			host = u.Query().Get("host")
		}
		if p := u.Query().Get("port"); p != "" && !strings.Contains(host, ":") {
			port = p
		}
	} else {
		for _, f := range strings.Fields(dsn) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, "'")
			switch k {
			case "host":
				host = v
			case "port":
				port = v
			case "dbname":
				db = v
			}
		}
	}
	if host == "" {
		host = "localhost"
	}
	out := host
	if port != "" {
		out += ":" + port
	}
	if db != "" {
		out += "/" + db
	}
	return out
}

// nowOr returns now, or the current time if now is zero.
func nowOr(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}

// state describes how a state word is shown: its tone (a colour class) and word.
type state struct {
	tone string // ok, info, warn, danger, neutral
	word string
}

// states maps job, backup and event-level states to their badge.
var states = map[string]state{
	// jobs
	"queued":    {"neutral", "Queued"},
	"running":   {"info", "Running"},
	"succeeded": {"ok", "Succeeded"},
	"failed":    {"danger", "Failed"},
	"cancelled": {"neutral", "Cancelled"},
	// "interrupted" is not a failure of the data, but it needs attention.
	"interrupted": {"warn", "Interrupted"},
	// backups
	"complete": {"ok", "Complete"},
	// restored instances (restoreStates shows a running instance in green)
	"restoring": {"info", "Restoring"},
	"stopped":   {"neutral", "Stopped"},
	"deleted":   {"neutral", "Deleted"},
	// event levels
	"debug": {"neutral", "Debug"},
	"info":  {"neutral", "Info"},
	"warn":  {"warn", "Warning"},
	"error": {"danger", "Error"},
	// source health (overview)
	"unknown": {"warn", "Health unknown"},
	"broken":  {"danger", "Last backup failed"},
}

func stateOf(s string) state {
	if st, ok := states[s]; ok {
		return st
	}
	if s == "" {
		return state{"neutral", "Unknown"}
	}
	return state{"neutral", strings.ToUpper(s[:1]) + s[1:]}
}

// StateWord is the word a badge shows for a state, e.g. "Complete" for "complete".
func StateWord(s string) string { return stateOf(s).word }

// jobActive reports whether a job in state s can still be cancelled.
func jobActive(s string) bool { return s == "queued" || s == "running" }

// jobTerminal reports whether a job in state s has ended.
func jobTerminal(s string) bool {
	switch s {
	case "succeeded", "failed", "cancelled", "interrupted":
		return true
	}
	return false
}

// health is what a source card shows when its view model carries no health verdict
// (jobs/health computes it from facts; handlers fill it in): a failed last backup is
// broken, anything else is unknown. Never "up to date" from the age of a backup alone.
func health(s SourceSummary, _ time.Time, _ time.Duration) string {
	if s.LastAttempt != nil && s.LastAttempt.State == "failed" &&
		(s.LastComplete == nil || s.LastAttempt.StartedAt.After(s.LastComplete.StartedAt)) {
		return "broken"
	}
	return "unknown"
}

// stale reports whether the source's newest complete backup is older than
// staleAfter (DefaultStaleAfter if zero).
func stale(s SourceSummary, now time.Time, staleAfter time.Duration) bool {
	return s.LastComplete != nil && now.Sub(backupTime(*s.LastComplete)) > staleAfterOr(staleAfter)
}

// backupTime is when a backup's data was taken: its finish time, or its start
// while it has none.
func backupTime(b BackupRow) time.Time {
	if !b.FinishedAt.IsZero() {
		return b.FinishedAt
	}
	return b.StartedAt
}

// failedAfter returns the newest attempt if it ended badly after the last
// complete backup, else nil.
func failedAfter(s SourceSummary) *BackupRow {
	a := s.LastAttempt
	if a == nil || a.State == "complete" || a.State == "running" {
		return nil
	}
	if s.LastComplete != nil && !a.StartedAt.After(s.LastComplete.StartedAt) {
		return nil
	}
	return a
}

// elapsed is the run time between start and end, or until now while end is zero.
func elapsed(start, end, now time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	if end.IsZero() {
		end = now
	}
	return end.Sub(start)
}

// itoa formats an ID.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// pageCount is the number of pages of p.
func pageCount(p Pager) int {
	if p.PerPage <= 0 || p.Total <= 0 {
		return 1
	}
	return int((p.Total + int64(p.PerPage) - 1) / int64(p.PerPage))
}

// pageURL returns base with the page parameter set to n, keeping a fragment.
func pageURL(base string, n int, fragment string) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	u := base + sep + "page=" + strconv.Itoa(n)
	if fragment != "" {
		u += "#" + fragment
	}
	return u
}
