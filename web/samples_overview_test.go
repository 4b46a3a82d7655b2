package web

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
)

// sampleCharts is a day of lag samples, with a spike and a pause in sampling, and the
// newest 30 backups of a source.
func sampleCharts(now time.Time, seed int64) *SourceChartsVM {
	c := &SourceChartsVM{LagPeriod: 24 * time.Hour}
	for m := 24 * 60; m >= 0; m-- {
		if m > 600 && m < 660 {
			continue // Backstop was not serving: no samples
		}
		x := LagSampleVM{At: now.Add(-time.Duration(m) * time.Minute), Seconds: float64((m+int(seed))%5) / 2,
			Bytes: int64((m*7+int(seed))%13) << 14}
		if m == 300 {
			x.Seconds, x.Bytes = 74, 96*mib
		}
		c.Lag = append(c.Lag, x)
	}
	for i := range 30 {
		started := now.Add(-time.Duration(30-i)*24*time.Hour + 2*time.Hour)
		c.Backups = append(c.Backups, BackupPointVM{ID: int64(100 + i), StartedAt: started,
			Duration: time.Duration(240+(i*37+int(seed))%90) * time.Second, SourceBytes: 3*gib + int64(i)*40*mib,
			StoredNewBytes: int64(60+(i*13+int(seed))%50) * mib})
	}
	return c
}

// sampleIntegritySources are the overview's sources with what issue 8 adds: whether each
// can be restored now, its lag against the objective, the RTO its last drill proved, its
// last verification and charts.
func sampleIntegritySources(now time.Time) []SourceSummary {
	sources := sampleSources(now)
	lagOK := &LagVM{State: "streaming", Since: now.Add(-26 * time.Hour), Seconds: 2 * time.Second, Bytes: 48 << 10,
		Objective: time.Minute, ObjectiveBytes: 64 * mib}
	passed := &DrillRow{ID: 7, JobID: 61, State: "passed", TargetAt: now.Add(-30 * time.Hour), BackupID: 14,
		StartedAt: now.Add(-5*time.Hour - 2*time.Minute), FinishedAt: now.Add(-5 * time.Hour), RTO: 94 * time.Second}
	clean := &VerifyRunRow{ID: 12, JobID: 60, State: "clean", StartedAt: now.Add(-3*time.Hour - time.Minute),
		FinishedAt: now.Add(-3 * time.Hour), PacksChecked: 41, PacksTotal: 212, BytesRead: 5 * gib}

	// orders-db: healthy, restorable now, drilled and verified.
	o := &sources[0]
	o.Health = &HealthVM{Level: "ok", Word: "Healthy", Reason: "WAL streaming, 48.0 KiB behind; newest backup 4 h old."}
	o.Restore = &RestoreAnswerVM{Level: AnswerYes, Why: "Restorable to " + UTC(o.LatestRestorable) + "."}
	o.Lag, o.ProvenDrill, o.Verification = lagOK, passed, clean
	o.Charts = sampleCharts(now, 1)

	// billing: a deep verification found damaged objects, its last backup failed and the
	// lag is over the objective.
	b := &sources[1]
	b.Health = &HealthVM{Level: "broken", Word: "Broken", Reason: "Verification found 2 damaged or missing objects: backup 14, base/16384/24576: does not authenticate",
		Do: "Start a backup: it stores good copies of the damaged blocks. Then run a deep verification."}
	b.Restore = &RestoreAnswerVM{Level: AnswerNo, Why: b.Health.Reason}
	b.EarliestRestorable, b.LatestRestorable = now.Add(-20*24*time.Hour), now.Add(-3*time.Minute)
	b.Lag = &LagVM{State: "behind", Since: now.Add(-10 * time.Minute), Seconds: 3 * time.Minute, Bytes: 210 * mib,
		Objective: time.Minute, ObjectiveBytes: 64 * mib, Over: true}
	b.ProvenDrill = &DrillRow{ID: 5, State: "passed", TargetAt: now.Add(-12 * 24 * time.Hour), FinishedAt: now.Add(-9 * 24 * time.Hour),
		RTO: 41 * time.Second}
	b.FailedDrill = &DrillRow{ID: 6, State: "failed", TargetAt: now.Add(-2 * 24 * time.Hour), FinishedAt: now.Add(-26 * time.Hour),
		Error: "pg_amcheck: index \"invoices_pkey\" is corrupted"}
	b.Verification = &VerifyRunRow{ID: 9, State: "findings", Deep: true, StartedAt: now.Add(-27 * time.Hour),
		FinishedAt: now.Add(-26 * time.Hour), BytesRead: 2 * gib, Findings: 2}
	b.Charts = sampleCharts(now, 4)

	// analytics-warehouse: nothing restorable; archiving stopped.
	a := &sources[2]
	a.Health = &HealthVM{Level: "broken", Word: "Broken", Reason: "No complete backup, and the last attempt failed: this source cannot be restored.",
		Do: "See backup 15 for the error, fix it and start a backup."}
	a.Restore = &RestoreAnswerVM{Level: AnswerNo, Why: "Nothing is restorable yet."}
	a.Lag = &LagVM{State: "stopped", Since: now.Add(-40 * time.Minute), Objective: time.Minute, ObjectiveBytes: 64 * mib}
	a.Charts = &SourceChartsVM{LagPeriod: 24 * time.Hour}

	// inventory: restorable, never drilled, never verified, no archiver (wal-push).
	i := &sources[3]
	i.Health = &HealthVM{Level: "warning", Word: "Warning", Reason: "WAL archiving has not started for this source.",
		Do: "Run backstop serve: it archives the WAL of every source."}
	i.EarliestRestorable, i.LatestRestorable = now.Add(-3*time.Hour+40*time.Second), now.Add(-90*time.Second)
	i.Restore = &RestoreAnswerVM{Level: AnswerCaveat, Why: i.Health.Reason}
	i.WALArchivedAt = now.Add(-90 * time.Second)
	i.Charts = &SourceChartsVM{LagPeriod: 24 * time.Hour, Backups: sampleCharts(now, 2).Backups[29:]}
	return sources
}

// sampleIntegritySource is orders-db's page with its verifications and drills.
func sampleIntegritySource(now time.Time) SourceVM {
	src := sampleIntegritySources(now)[0]
	return SourceVM{
		Now: now, ID: 1, Name: "orders-db", MaskedDSN: src.MaskedDSN, SystemIdentifier: "7312455870123456789",
		PGVersion: "15.18", Timeline: 1, DataChecksums: true, CreatedAt: now.Add(-40 * 24 * time.Hour),
		Backups: []BackupRow{sampleBackups(now)[2]}, EarliestRestorable: src.EarliestRestorable, LatestRestorable: src.LatestRestorable,
		Health: src.Health,
		VerifyRuns: []VerifyRunRow{
			*src.Verification,
			{ID: 11, JobID: 58, Deep: true, State: "findings", StartedAt: now.Add(-26*time.Hour - 20*time.Minute), FinishedAt: now.Add(-26 * time.Hour),
				PacksChecked: 212, PacksTotal: 212, BytesRead: 24 * gib, BlobsChecked: 1_284_112, ManifestsChecked: 14, WALChecked: 2210, Findings: 7,
				FindingRows: []VerifyFindingRow{
					{BackupID: 16, Kind: "corrupt-blob", Path: "base/16384/24576.1", Object: "7c1f0e9a4d2b8e6f3a5c9d0e1b2a4c6f8e0d2b4a6c8e0f2a",
						Pack: "pk-3f2a9c", Reason: "authentication failed: the stored bytes were changed"},
					{Kind: "wal-gap", Path: "0000000100000000000000A3", FromLSN: "0/A3000000", ToLSN: "0/A4000000", Reason: "segment missing from the repository"},
				}},
			{ID: 10, JobID: 55, State: "failed", StartedAt: now.Add(-50 * time.Hour), FinishedAt: now.Add(-50*time.Hour + 3*time.Second),
				Error: "repository locked by a prune for more than 10 min"},
		},
		Drills: []DrillRow{
			{ID: 8, JobID: 63, State: "running", TargetAt: now.Add(-7 * time.Hour), StartedAt: now.Add(-40 * time.Second)},
			*src.ProvenDrill,
			{ID: 6, JobID: 57, State: "failed", TargetAt: now.Add(-3 * 24 * time.Hour), BackupID: 12, StartedAt: now.Add(-2 * 24 * time.Hour),
				FinishedAt: now.Add(-2*24*time.Hour + 50*time.Second), Checks: []string{"reached consistency and promoted"},
				Error: "pg_amcheck: index \"invoices_pkey\" is corrupted"},
		},
		DrillJob: &JobProgressVM{JobID: 63, State: "running", Phase: "replaying"},
	}
}

// integritySamplePages are the overview and a source page with verification and drills.
func integritySamplePages(now time.Time) []page {
	src := sampleIntegritySource(now)
	src.Drills[1].Checks = []string{"reached consistency and promoted", "pg_amcheck on 3 databases: no corruption",
		"last commit at or before the target", "row counts of 41 tables recorded"}
	src.Drills[1].Tables = 41
	idle := src
	idle.VerifyRuns, idle.Drills, idle.DrillJob = nil, nil, nil
	return []page{
		{"overview-integrity", layout("Overview", NavOverview, OverviewPage(OverviewVM{Now: now, Sources: sampleIntegritySources(now)}))},
		{"source-integrity", layout("orders-db", NavSources, SourcePage(src))},
		{"source-integrity-empty", layout("orders-db", NavSources, SourcePage(idle))},
	}
}

func TestOverviewAnswers(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	d := parse(t, OverviewPage(OverviewVM{Now: now, Sources: sampleIntegritySources(now)}))
	cards := d.testIDs("source-card")
	if len(cards) != 4 {
		t.Fatalf("cards = %d, want 4", len(cards))
	}
	type want struct{ answer, level, window, rpo, rto, verified string }
	wants := []want{
		{"Yes", AnswerYes, "→", "2 s · 48 KiB behind objective 1 min", "1 min 34 s proven 5 h ago", "3 h ago Clean"},
		{"No", AnswerNo, "20 d ago → to 3 min ago", "3 min · 210 MiB behind", "The last drill failed 1 d ago", "1 d ago 2 findings Deep"},
		{"No", AnswerNo, "Nothing yet", "Archiving stopped 40 min ago", "Never drilled", "Never verified"},
		{"Yes, with a warning", AnswerCaveat, "2 h ago → to 1 min ago", "WAL archived 1 min ago", "Never drilled", "Never verified"},
	}
	for i, c := range cards {
		card := doc{t: t, root: c, src: d.src}
		w := wants[i]
		a := card.one("restore-answer")
		if got, _ := attr(a, "data-level"); got != w.level {
			t.Errorf("card %d: answer level = %q, want %q", i, got, w.level)
		}
		if got := words(a); !strings.Contains(got, "Can I restore now? "+w.answer) {
			t.Errorf("card %d: answer = %q, want %q", i, got, w.answer)
		}
		for id, sub := range map[string]string{"restorable": w.window, "rpo": w.rpo, "rto": w.rto, "last-verification": w.verified} {
			if got := words(card.one(id)); !strings.Contains(got, sub) {
				t.Errorf("card %d: %s = %q, want it to contain %q", i, id, got, sub)
			}
		}
	}
	// Relative times carry the exact UTC time on hover.
	o := doc{t: t, root: cards[0], src: d.src}
	times := o.all(tag("time"))
	if len(times) < 4 {
		t.Fatalf("<time> elements on the first card = %d, want the window, drill, verification and backup", len(times))
	}
	for _, tm := range times {
		if title, _ := attr(tm, "title"); !strings.HasSuffix(title, " UTC") {
			t.Errorf("<time> %q has title %q, want the exact UTC time", text(tm), title)
		}
	}
	// The lag over its objective reads in the warning colour, and says so.
	if over, _ := attr(doc{t: t, root: cards[1], src: d.src}.all(hasAttr("data-over", ""))[0], "data-over"); over != "true" {
		t.Errorf("billing's lag data-over = %q, want true", over)
	}
}

func TestOverviewCharts(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	d := parse(t, OverviewPage(OverviewVM{Now: now, Sources: sampleIntegritySources(now)}))
	first := doc{t: t, root: d.testIDs("source-card")[0], src: d.src}
	for _, id := range []string{"lag-chart", "duration-chart", "size-chart"} {
		c := first.one(id)
		if _, ok := attr(c, "data-chart"); !ok {
			t.Errorf("%s has no data-chart", id)
		}
		if l, _ := attr(c, "data-chart-label"); l == "" {
			t.Errorf("%s has no label", id)
		}
		cd := doc{t: t, root: c, src: d.src}
		scripts := cd.all(tag("script"))
		if len(scripts) != 1 {
			t.Fatalf("%s: %d data scripts, want 1", id, len(scripts))
		}
		var spec struct {
			Series []struct{ Label, Unit string }
			X      []int64
			Y      [][]*float64
		}
		if err := json.Unmarshal([]byte(text(scripts[0])), &spec); err != nil {
			t.Fatalf("%s: data = %v", id, err)
		}
		if len(spec.Y) != len(spec.Series) || len(spec.X) < 2 {
			t.Errorf("%s: %d series, %d y, %d x", id, len(spec.Series), len(spec.Y), len(spec.X))
		}
		for i, ys := range spec.Y {
			if len(ys) != len(spec.X) {
				t.Errorf("%s: series %d has %d values for %d times", id, i, len(ys), len(spec.X))
			}
		}
		for i := 1; i < len(spec.X); i++ {
			if spec.X[i] <= spec.X[i-1] {
				t.Errorf("%s: x not ascending at %d", id, i)
				break
			}
		}
		// The fallback says the same in words and a table, with nothing focusable.
		if len(cd.all(tag("p"))) != 1 || len(cd.all(tag("table"))) != 1 {
			t.Errorf("%s: fallback = %d sentences, %d tables, want 1 and 1", id, len(cd.all(tag("p"))), len(cd.all(tag("table"))))
		}
		if n := len(cd.all(tag("a"))) + len(cd.all(tag("button"))); n != 0 {
			t.Errorf("%s: fallback holds %d focusable elements", id, n)
		}
		if id == "lag-chart" {
			if len(spec.X) > lagChartPoints+5 {
				t.Errorf("lag chart has %d points, want at most about %d", len(spec.X), lagChartPoints)
			}
			var gaps, spike int
			for i, y := range spec.Y[0] {
				if y == nil {
					gaps++
				} else if *y == 74 {
					spike = i
				}
			}
			if gaps != 1 {
				t.Errorf("lag chart breaks = %d, want 1 (the pause in sampling)", gaps)
			}
			if spike == 0 {
				t.Error("lag chart lost the 74 s spike to thinning")
			}
			first.containsIn(c, "at most 1 min 14 s (96 MiB)")
		}
	}
	first.containsIn(first.one("duration-chart"), "The newest backup, ")
	first.containsIn(first.one("size-chart"), "The newest backup read 4.1 GiB")
	// A source without samples or backups shows the words alone, and no data to draw.
	empty := doc{t: t, root: d.testIDs("source-card")[2], src: d.src}
	if n := len(empty.all(tag("script"))); n != 0 {
		t.Errorf("empty charts carry %d data scripts", n)
	}
	empty.containsIn(empty.one("lag-chart"), "No lag measured in the last 24 h")
	empty.containsIn(empty.one("duration-chart"), "No complete backup yet.")
}

// containsIn fails the test unless n's text holds s.
func (d doc) containsIn(n *html.Node, s string) {
	d.t.Helper()
	if got := text(n); !strings.Contains(got, s) {
		d.t.Errorf("%q does not contain %q", got, s)
	}
}

// words is the text of n with a space between elements, as a reader hears it.
func words(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode {
			b.WriteByte(' ')
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// parseCtx is parse, rendering with ctx.
func parseCtx(t *testing.T, ctx context.Context, c templ.Component) doc {
	t.Helper()
	var b strings.Builder
	if err := c.Render(ctx, &b); err != nil {
		t.Fatalf("Render() = %v", err)
	}
	root, err := html.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("html.Parse() = %v", err)
	}
	return doc{t: t, root: root, src: b.String()}
}

func TestSourceIntegritySections(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	src := sampleIntegritySource(now)
	d := parse(t, SourcePage(src))
	runs := d.testIDs("verify-run")
	if len(runs) != 3 {
		t.Fatalf("verification runs = %d, want 3", len(runs))
	}
	for i, w := range []string{"Run 12 3 h ago", "Run 11 1 d ago", "Run 10 2 d ago"} {
		if got := words(runs[i]); !strings.HasPrefix(got, w) {
			t.Errorf("run %d = %q, want it to start %q", i, got, w)
		}
	}
	if got := text(runs[1]); !strings.Contains(got, "Deep") || !strings.Contains(got, "212 of 212") || !strings.Contains(got, "7 findings") {
		t.Errorf("deep run = %q, want Deep, 212 of 212 packs and 7 findings", got)
	}
	if got := text(runs[2]); !strings.Contains(got, "Could not finish") || !strings.Contains(got, "repository locked") {
		t.Errorf("failed run = %q", got)
	}
	fs := d.testIDs("verify-finding")
	if len(fs) != 2 {
		t.Fatalf("findings = %d, want 2", len(fs))
	}
	if got := text(fs[0]); !strings.Contains(got, "Backup 16") || !strings.Contains(got, "base/16384/24576.1") ||
		!strings.Contains(got, "7c1f0e9a4d2b8e6f") || !strings.Contains(got, "pk-3f2a9c") || !strings.Contains(got, "authentication failed") {
		t.Errorf("finding = %q, want the backup, file, object, pack and reason", got)
	}
	d.contains("and 5 more")
	drills := d.testIDs("drill")
	if len(drills) != 3 {
		t.Fatalf("drills = %d, want 3", len(drills))
	}
	if got := text(drills[1]); !strings.Contains(got, "1 min 34 s") || !strings.Contains(got, UTC(src.Drills[1].TargetAt)) ||
		!strings.Contains(got, "Backup 14") || !strings.Contains(got, "Passed") {
		t.Errorf("passed drill = %q, want its RTO, the second proved, the backup and Passed", got)
	}
	if got := text(drills[2]); !strings.Contains(got, "Failed") || !strings.Contains(got, "invoices_pkey") {
		t.Errorf("failed drill = %q, want Failed with the error", got)
	}
	// A drill runs: its button links to the job; verification can start, routine or deep.
	if h, _ := attr(d.one("drill-job"), "href"); h != "/jobs/63" {
		t.Errorf("drill-job href = %q", h)
	}
	if a, _ := attr(d.one("verify-now").Parent, "action"); a != "/sources/1/verify" {
		t.Errorf("verify-now posts to %q", a)
	}
	if a, _ := attr(d.one("verify-deep").Parent, "action"); a != "/sources/1/verify?deep=1" {
		t.Errorf("verify-deep posts to %q", a)
	}

	idle := src
	idle.VerifyRuns, idle.Drills, idle.DrillJob = nil, nil, nil
	i := parse(t, SourcePage(idle))
	i.contains("No verification of orders-db yet", "orders-db has never been drilled")
	if a, _ := attr(i.one("drill-now").Parent, "action"); a != "/sources/1/drill" {
		t.Errorf("drill-now posts to %q", a)
	}
	nothing := idle
	nothing.LatestRestorable, nothing.EarliestRestorable = time.Time{}, time.Time{}
	n := parse(t, SourcePage(nothing))
	if _, ok := attr(n.one("drill-now"), "disabled"); !ok {
		t.Error("Run a drill is enabled with nothing restorable")
	}
}

func TestIntegrityControlsByRole(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	vm := sampleIntegritySource(now)
	vm.DrillJob = nil
	for _, c := range []struct {
		name    string
		allowed Allowed
		want    int
	}{
		{"auditor", Allowed{}, 0},
		{"oncall", Allowed{CanStartVerify: true, CanStartDrill: true}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := parseCtx(t, WithAllowed(t.Context(), c.allowed), SourcePage(vm))
			got := len(d.testIDs("verify-now")) + len(d.testIDs("verify-deep")) + len(d.testIDs("drill-now"))
			if got != c.want {
				t.Errorf("verify and drill buttons = %d, want %d", got, c.want)
			}
			// The history reads the same for every role.
			if n := len(d.testIDs("verify-run")) + len(d.testIDs("drill")); n != 6 {
				t.Errorf("rows = %d, want 6", n)
			}
		})
	}
}

func TestLagChartThinning(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var xs []LagSampleVM
	for m := range 1441 {
		xs = append(xs, LagSampleVM{At: now.Add(time.Duration(m-1440) * time.Minute), Seconds: 1, Bytes: 1})
	}
	xs[700].Seconds, xs[900].Bytes = 30, 5000
	spec := lagChart(SourceChartsVM{Lag: xs, LagPeriod: 24 * time.Hour})
	if len(spec.X) > lagChartPoints {
		t.Errorf("points = %d, want at most %d", len(spec.X), lagChartPoints)
	}
	var maxS, maxB float64
	for i := range spec.X {
		maxS, maxB = max(maxS, *spec.Y[0][i]), max(maxB, *spec.Y[1][i])
	}
	if maxS != 30 || maxB != 5000 {
		t.Errorf("thinned maxima = %v s, %v bytes, want 30 and 5000", maxS, maxB)
	}
	if last := spec.X[len(spec.X)-1]; last != now.Unix() {
		t.Errorf("last point at %d, want the newest sample %d", last, now.Unix())
	}
	if got := fmt.Sprint(lagChart(SourceChartsVM{}).X); got != "[]" {
		t.Errorf("no samples: x = %s", got)
	}
}
