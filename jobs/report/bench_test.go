package report_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/store"
)

// BenchmarkReport90Days builds, then renders, a 90-day report of 10 sources, each with
// hourly backups and their WAL, a verification and a passing drill a day, all in the
// catalog (filled directly, before the timer starts).
func BenchmarkReport90Days(b *testing.B) {
	const sources, days = 10, 90
	c := newCatalog(b)
	ctx := context.Background()
	var srcs []store.Source
	for i := range sources {
		srcs = append(srcs, fillBusy(b, c, fmt.Sprintf("db%02d", i), days))
	}
	facts := report.Facts{Window: func(ctx context.Context, src store.Source) (jobs.WindowInput, error) {
		return jobs.WindowInputs(ctx, c.Store, src.ID, nil)
	}}
	p := report.Params{From: day0, To: day0.Add(days * 24 * time.Hour), Sources: srcs, Now: day0.Add(days * 24 * time.Hour)}
	var r report.Report
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			var err error
			if r, err = report.Build(ctx, c.Store, facts, p); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(r.Summary.Backups), "backups")
	})
	for _, format := range report.Formats {
		b.Run(format, func(b *testing.B) {
			var n int
			for b.Loop() {
				out, err := report.Render(r, format, testKey)
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

// fillBusy records days of a source's history: a WAL segment and a backup every hour,
// a verification at noon that reads the day's backups, a drill passing at 06:00.
func fillBusy(b *testing.B, c *catalog, name string, days int) store.Source {
	b.Helper()
	ctx := context.Background()
	src, err := c.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://backstop@db/" + name,
		SystemIdentifier: fmt.Sprintf("73%017d", len(name)*1000+int(name[len(name)-1])), PGVersion: 150000, Timeline: 1})
	if err != nil {
		b.Fatal(err)
	}
	var today []int64
	for h := range days * 24 {
		start := day0.Add(time.Duration(h) * time.Hour)
		seg := int64(2 + h)
		bk := c.addBackup(b, src, fmt.Sprintf("%s-%s", start.Format("20060102T150405Z"), name), start, 4*time.Minute, seg)
		today = append(today, bk.ID)
		c.addSegment(b, src, seg, start, start.Add(59*time.Minute))
		switch h % 24 {
		case 6:
			d, err := c.at(start).StartDrill(ctx, src.ID, 0, start.Add(-time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			d.RTO = 90 * time.Second
			if _, err := c.at(start.Add(2*time.Minute)).FinishDrill(ctx, d); err != nil {
				b.Fatal(err)
			}
		case 12:
			run, err := c.at(start.Add(5*time.Minute)).StartVerifyRun(ctx, src.ID, 0, false)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.at(start.Add(9*time.Minute)).FinishVerifyRun(ctx, run, nil, today, ""); err != nil {
				b.Fatal(err)
			}
			today = nil
		}
	}
	return src
}
