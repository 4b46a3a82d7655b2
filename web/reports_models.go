package web

import (
	"fmt"
	"time"
)

// CanReadReports is the action of previewing and downloading reports.
const CanReadReports = "report.read"

// ReportsVM is the auditor's page: choose a period and sources, preview, download.
type ReportsVM struct {
	// From and To are the period's first and last days (2006-01-02).
	From, To string
	// Sources are every source's name; Selected those chosen (none: all).
	Sources  []string
	Selected map[string]bool
	// Fingerprint names the key that signs reports.
	Fingerprint string
	// Preview is the chosen report's summary, nil before one is asked for.
	Preview *ReportPreviewVM
	// Error says why the choice could not be previewed.
	Error string
}

// ReportPreviewVM is what a report says, as the page previews it.
type ReportPreviewVM struct {
	From, To    string
	GeneratedAt time.Time
	// Query is the period and sources as a query string, for the download links.
	Query                         string
	Backups, BackupsComplete      int
	VerifyRuns, Findings          int
	Drills, DrillsPassed          int
	Alerts, Restores              int
	ProvableSeconds, MeasuredSecs int64
	WindowsHeld                   int
	Sources                       []ReportSourceVM
}

// ReportSourceVM is one source's scorecard.
type ReportSourceVM struct {
	Name                          string
	ProvableSeconds, MeasuredSecs int64
	WindowHeld                    bool
	WindowFrom, WindowTo          time.Time
	WindowGaps                    []ReportGapVM
	Days                          []ReportDayVM
}

// ReportDayVM is one day of a source's scorecard.
type ReportDayVM struct {
	Date                          string
	Start                         time.Time
	ProvableSeconds, MeasuredSecs int64
	Gaps                          []ReportGapVM
}

// ReportGapVM is a stretch that was not provably restorable, and why.
type ReportGapVM struct {
	From, To time.Time
	Reason   string
}

// scorecardChart is every source's daily share as charts.js draws it: one series per
// source, in whole percent.
func scorecardChart(p ReportPreviewVM) chartSpec {
	spec := chartSpec{}
	if len(p.Sources) == 0 {
		return spec
	}
	for _, d := range p.Sources[0].Days {
		spec.X = append(spec.X, d.Start.Unix())
	}
	for _, s := range p.Sources {
		spec.Series = append(spec.Series, chartSeries{Label: s.Name + " (% provable)", Unit: "count"})
		ys := make([]int64, len(spec.X))
		for i, d := range s.Days {
			if i < len(ys) && d.MeasuredSecs > 0 {
				ys[i] = d.ProvableSeconds * 100 / d.MeasuredSecs
			}
		}
		spec.Y = append(spec.Y, ys)
	}
	return spec
}

// gapSpan is a gap's times within its day: "03:00:00–03:12:00".
func gapSpan(g ReportGapVM) string {
	end := g.To.UTC().Format("15:04:05")
	if g.To.Equal(g.To.Truncate(24 * time.Hour)) {
		end = "24:00:00"
	}
	return g.From.UTC().Format("15:04:05") + "–" + end
}

// share is part of whole as a percentage with two decimals.
func share(part, whole int64) string {
	if whole <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f %%", float64(part)*100/float64(whole))
}
