package report

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/backstop/backstop/jobs"
)

var t0 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

func TestWindowHoles(t *testing.T) {
	gap := jobs.Gap{Segment: "000000010000000000000005", FromLSN: 0x5000000, ToLSN: 0x6000000}
	tests := []struct {
		name string
		w    jobs.Window
		want []Gap
	}{
		{"nothing restorable", jobs.Window{}, []Gap{{at(0, 0), at(24, 0), "no verified base backup with the WAL after it"}}},
		{"one range inside the day", jobs.Window{Ranges: []jobs.Range{{From: at(3, 12), To: at(20, 0), ToLSN: 0x9000000}}}, []Gap{
			{at(0, 0), at(3, 12), "no verified base backup before 2026-11-25 03:12:00 UTC"},
			{at(20, 0), at(24, 0), "no verified WAL after 2026-11-25 20:00:00 UTC"},
		}},
		{"a WAL gap between two ranges", jobs.Window{Ranges: []jobs.Range{
			{From: t0.Add(-time.Hour), To: at(10, 0), ToLSN: 0x5000000},
			{From: at(10, 7), To: at(30, 0), FromLSN: 0x6000000},
		}, Gaps: []jobs.Gap{gap}}, []Gap{
			{at(10, 0), at(10, 7), "WAL gap 0/5000000-0/6000000 (segment 000000010000000000000005) from 2026-11-25 10:00:00 UTC to 2026-11-25 10:07:00 UTC"},
		}},
		{"a WAL gap that ends the window", jobs.Window{Ranges: []jobs.Range{{From: t0.Add(-time.Hour), To: at(10, 0), ToLSN: 0x5000000}},
			Gaps: []jobs.Gap{gap}}, []Gap{
			{at(10, 0), at(24, 0), "WAL gap 0/5000000-0/6000000 (segment 000000010000000000000005) from 2026-11-25 10:00:00 UTC, and no verified base backup after it"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := windowHoles(tt.w, "verified base backup", "no verified WAL", at(0, 0), at(24, 0))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("windowHoles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDrillHoles(t *testing.T) {
	tests := []struct {
		name   string
		passes []time.Time
		want   []Gap
	}{
		{"no drill", nil, []Gap{{at(0, 0), at(24, 0), "no passing drill within 8 days"}}},
		{"a drill before the day covers it", []time.Time{t0.Add(-24 * time.Hour)}, nil},
		{"a drill too old, then one at noon", []time.Time{t0.Add(-9 * 24 * time.Hour), at(12, 0)},
			[]Gap{{at(0, 0), at(12, 0), "no passing drill within 8 days"}}},
		{"a drill that expires at 06:00", []time.Time{at(6, 0).Add(-8 * 24 * time.Hour)},
			[]Gap{{at(6, 0), at(24, 0), "no passing drill within 8 days"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := drillHoles(tt.passes, 8*24*time.Hour, at(0, 0), at(24, 0))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("drillHoles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScoreDaysMeasuresUpToNow(t *testing.T) {
	days := scoreDays(at(0, 0), at(48, 0), at(30, 0), []Gap{{at(23, 0), at(25, 0), "x"}})
	want := []Day{
		{Date: "2026-11-25", MeasuredSeconds: 86400, ProvableSeconds: 82800, Share: 0.9583, Gaps: []Gap{{at(23, 0), at(24, 0), "x"}}},
		{Date: "2026-11-26", MeasuredSeconds: 6 * 3600, ProvableSeconds: 5 * 3600, Share: 0.8333, Gaps: []Gap{{at(24, 0), at(25, 0), "x"}}},
	}
	if diff := cmp.Diff(want, days); diff != "" {
		t.Errorf("scoreDays (-want +got):\n%s", diff)
	}
}

// TestScoreDaysProperties: whatever the holes, each day's share is in [0, 1], its gaps
// do not overlap, lie within the day, and with the provable time make up the day.
func TestScoreDaysProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		from := t0.Add(time.Duration(rapid.IntRange(0, 86399).Draw(t, "from")) * time.Second)
		to := from.Add(time.Duration(rapid.IntRange(1, 4*86400).Draw(t, "len")) * time.Second)
		now := from.Add(time.Duration(rapid.IntRange(0, 5*86400).Draw(t, "now")) * time.Second)
		var holes []Gap
		for i := range rapid.IntRange(0, 8).Draw(t, "holes") {
			a := t0.Add(time.Duration(rapid.IntRange(-86400, 6*86400).Draw(t, "a")) * time.Second)
			b := a.Add(time.Duration(rapid.IntRange(0, 2*86400).Draw(t, "b")) * time.Second)
			holes = append(holes, Gap{From: a, To: b, Reason: []string{"p", "q", "r"}[i%3]})
		}
		for _, d := range scoreDays(from, to, now, holes) {
			if d.Share < 0 || d.Share > 1 {
				t.Fatalf("day %s: share %v", d.Date, d.Share)
			}
			var sum int64
			var prev time.Time
			for _, g := range d.Gaps {
				if !g.From.Before(g.To) || g.From.Before(prev) || g.From.Format(time.DateOnly) != d.Date {
					t.Fatalf("day %s: gap %+v is empty, overlaps or lies outside", d.Date, g)
				}
				prev = g.To
				sum += g.Seconds()
			}
			if sum+d.ProvableSeconds != d.MeasuredSeconds || d.MeasuredSeconds > 86400 {
				t.Fatalf("day %s: gaps %d + provable %d != measured %d", d.Date, sum, d.ProvableSeconds, d.MeasuredSeconds)
			}
		}
	})
}
