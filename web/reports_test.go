package web

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReportsNavigation: Reports is in the navigation for a role that may read reports,
// and not for one that may not.
func TestReportsNavigation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		allowed Allowed
		want    bool
	}{{Allowed{CanReadReports: true}, true}, {Allowed{}, false}} {
		d := parseCtx(t, WithAllowed(context.Background(), tc.allowed), Layout(LayoutVM{Title: "x", Nav: NavOverview}, ReportsPage(ReportsVM{})))
		has := strings.Contains(d.src, `href="/reports"`)
		if has != tc.want {
			t.Errorf("allowed %v: navigation links to /reports = %v, want %v", tc.allowed, has, tc.want)
		}
	}
}

// TestReportPreview: the preview says the figures, charts every source's days and lists
// each gap with its reason.
func TestReportPreview(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	p := ReportPreviewVM{From: "2026-11-25", To: "2026-11-25", Query: "from=2026-11-25&to=2026-11-25", Backups: 24, BackupsComplete: 23,
		VerifyRuns: 1, Drills: 1, DrillsPassed: 1, ProvableSeconds: 43200, MeasuredSecs: 86400,
		Sources: []ReportSourceVM{{Name: "app", ProvableSeconds: 43200, MeasuredSecs: 86400, WindowHeld: true, WindowFrom: day, WindowTo: day.Add(24 * time.Hour),
			Days: []ReportDayVM{{Date: "2026-11-25", Start: day, ProvableSeconds: 43200, MeasuredSecs: 86400,
				Gaps: []ReportGapVM{{From: day, To: day.Add(12 * time.Hour), Reason: "no verified base backup before 2026-11-25 12:00:00 UTC"}}}}}}}
	d := parseCtx(t, context.Background(), ReportPreview(p))
	d.contains("24 (23 complete)", "50.00 %", "00:00:00–12:00:00", "no verified base backup before 2026-11-25 12:00:00 UTC")
	for _, want := range []string{`"x":[1795564800]`, `"y":[[50]]`, "/reports/download?format=pdf&amp;from=2026-11-25"} {
		if !strings.Contains(d.src, want) {
			t.Errorf("preview HTML lacks %s", want)
		}
	}
}
