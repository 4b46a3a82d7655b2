package report

// The recoverability scorecard. An instant was provably restorable when it lies in the
// restorable window computed (jobs.ComputeWindow) from verified facts only: complete base
// backups whose latest verification passed, and archived WAL that a finished verification
// read without a finding; and when a restore drill had passed no longer than the policy's
// drill age before it. Everything else is a hole with a reason; a day's gaps are the union
// of the holes that fall in it, cut where the reasons change.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
)

// windowHoles returns the stretches of [from, to) outside w's ranges, each with why:
// before the first range there was no base backup (what names it, such as "verified
// base backup"), between ranges a WAL gap, after the last one a WAL gap with no base
// backup after it or, when no WAL follows, what tail says.
func windowHoles(w jobs.Window, what, tail string, from, to time.Time) []Gap {
	var holes []Gap
	add := func(a, b time.Time, reason string) {
		a, b = later(a.Truncate(time.Second), from), earlier(b.Truncate(time.Second), to)
		if a.Before(b) {
			holes = append(holes, Gap{From: a, To: b, Reason: reason})
		}
	}
	if len(w.Ranges) == 0 {
		add(from, to, "no "+what+" with the WAL after it")
		return holes
	}
	add(from, w.Ranges[0].From, "no "+what+" before "+clock(w.Ranges[0].From))
	for i := 0; i+1 < len(w.Ranges); i++ {
		r, next := w.Ranges[i], w.Ranges[i+1]
		reason := "no continuous WAL from " + clock(r.To) + " to " + clock(next.From)
		for _, g := range w.Gaps {
			if g.FromLSN == r.ToLSN {
				reason = fmt.Sprintf("WAL gap %s-%s (segment %s) from %s to %s", g.FromLSN, g.ToLSN, g.Segment, clock(r.To), clock(next.From))
				break
			}
		}
		add(r.To, next.From, reason)
	}
	last := w.Ranges[len(w.Ranges)-1]
	reason := tail + " after " + clock(last.To)
	for _, g := range w.Gaps {
		if g.FromLSN == last.ToLSN {
			reason = fmt.Sprintf("WAL gap %s-%s (segment %s) from %s, and no %s after it", g.FromLSN, g.ToLSN, g.Segment, clock(last.To), what)
		}
	}
	add(last.To, to, reason)
	return holes
}

// drillHoles returns the stretches of [from, to) when no drill had passed within maxAge
// before: passes are the passing drills' finish times.
func drillHoles(passes []time.Time, maxAge time.Duration, from, to time.Time) []Gap {
	reason := "no passing drill within " + duration(maxAge)
	passes = slices.Clone(passes)
	slices.SortFunc(passes, time.Time.Compare)
	var holes []Gap
	at := from
	for _, p := range passes {
		p = p.Truncate(time.Second)
		if p.After(at) && at.Before(to) {
			holes = append(holes, Gap{From: at, To: earlier(p, to), Reason: reason})
		}
		at = later(at, p.Add(maxAge))
	}
	if at.Before(to) {
		holes = append(holes, Gap{From: at, To: to, Reason: reason})
	}
	return holes
}

// scoreDays returns the scorecard of [from, to) cut into UTC days, measured up to now:
// holes are the stretches not provably restorable, possibly overlapping.
func scoreDays(from, to, now time.Time, holes []Gap) []Day {
	end := earlier(to, now.Truncate(time.Second))
	var days []Day
	for start := from.Truncate(24 * time.Hour); start.Before(to); start = start.Add(24 * time.Hour) {
		a, b := later(start, from), earlier(start.Add(24*time.Hour), end)
		d := Day{Date: start.Format(time.DateOnly), Gaps: []Gap{}}
		if a.Before(b) {
			d.MeasuredSeconds = int64(b.Sub(a) / time.Second)
			d.Gaps = union(holes, a, b)
			d.ProvableSeconds = d.MeasuredSeconds
			for _, g := range d.Gaps {
				d.ProvableSeconds -= g.Seconds()
			}
		}
		d.Share = share(d.ProvableSeconds, d.MeasuredSeconds)
		days = append(days, d)
	}
	return days
}

// union returns the stretches of [a, b) inside some hole, cut where the set of reasons
// changes, each with its reasons joined by "; ".
func union(holes []Gap, a, b time.Time) []Gap {
	cuts := []time.Time{a, b}
	for _, h := range holes {
		if h.From.Before(b) && h.To.After(a) {
			cuts = append(cuts, later(h.From, a), earlier(h.To, b))
		}
	}
	slices.SortFunc(cuts, time.Time.Compare)
	cuts = slices.Compact(cuts)
	out := []Gap{}
	for i := 0; i+1 < len(cuts); i++ {
		x, y := cuts[i], cuts[i+1]
		var reasons []string
		for _, h := range holes {
			if !h.From.After(x) && h.To.After(x) && !slices.Contains(reasons, h.Reason) {
				reasons = append(reasons, h.Reason)
			}
		}
		if len(reasons) == 0 {
			continue
		}
		slices.SortFunc(reasons, cmp.Compare)
		reason := strings.Join(reasons, "; ")
		if n := len(out); n > 0 && out[n-1].To.Equal(x) && out[n-1].Reason == reason {
			out[n-1].To = y
			continue
		}
		out = append(out, Gap{From: x, To: y, Reason: reason})
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// clock formats t for a reason: "2026-11-25 03:12:00 UTC".
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// duration formats a policy duration: "8 days", "36h0m0s".
func duration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		if n := d / (24 * time.Hour); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}
