package jobs

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// metricsCatalog is a catalog with one of every fact the collector reports.
type metricsCatalog struct {
	st      *store.Store
	repo    *repository.Repo
	windows *WindowCache
	now     time.Time
	// orders has everything; idle has a source row and nothing else; gone was removed.
	orders, idle, gone store.Source
	last               store.Backup // orders' newest complete backup
	verify             store.VerifyRun
	failedDrill        store.Drill
	commits            [2]time.Time // first and last commit times in orders' archived WAL
}

func newMetricsCatalog(t *testing.T) metricsCatalog {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	c := metricsCatalog{st: st, repo: repo, windows: NewWindowCache(st, repo), now: time.Now().UTC().Truncate(time.Microsecond)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	source := func(name, sysID string) store.Source {
		t.Helper()
		src, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://backstop@127.0.0.1:1/postgres",
			SystemIdentifier: sysID, PGVersion: 150004, Timeline: 1})
		must(err)
		return src
	}
	c.orders = source("orders", "7300000000000000001")
	c.idle = source("idle", "7300000000000000002")
	c.gone = source("gone", "7300000000000000003")

	// orders: a failed backup, a complete one, and one running now.
	b, err := st.CreateBackup(ctx, store.BackupParams{SourceID: c.orders.ID, RepoID: "orders-1", StartedAt: c.now.Add(-3 * time.Hour)})
	must(err)
	must(st.FailBackup(ctx, b.ID, store.BackupFailed, "connection lost"))
	b, err = st.CreateBackup(ctx, store.BackupParams{SourceID: c.orders.ID, RepoID: "orders-2", StartedAt: c.now.Add(-90 * time.Second),
		StartLSN: "0/2000028", Timeline: 1})
	must(err)
	must(st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: "0/2000200",
		Stats: store.BackupStats{SourceBytes: 6_100_000_000, StoredBytesNew: 1_400_000_000}}))
	c.last, err = st.Backup(ctx, b.ID)
	must(err)
	_, err = st.CreateBackup(ctx, store.BackupParams{SourceID: c.orders.ID, RepoID: "orders-3", StartedAt: c.now.Add(time.Second)})
	must(err)

	// Its WAL, in the repository and the catalog: segment 2 (holding the backup's end),
	// then the first 8 KiB of segment 3.
	const segSize = 16 << 20
	c.commits = [2]time.Time{c.now.Add(-80 * time.Second), c.now.Add(-5 * time.Second)}
	archive := func(segNo uint64, size int64, first, last time.Time) {
		t.Helper()
		name := pgwal.SegmentName(1, segNo, segSize)
		kind := store.WALSegment
		if size < segSize {
			name, kind = repository.PartialWALName(name, size), store.WALPartial
		}
		_, _, err := repo.PutWAL(ctx, c.orders.SystemIdentifier, name, io.LimitReader(zeros{}, size), size)
		must(err)
		start := pgwal.SegmentStart(segNo, segSize)
		_, err = st.RecordWAL(ctx, store.WALFileParams{SourceID: c.orders.ID, Name: name, Kind: kind, Timeline: 1,
			SegNo: int64(segNo), StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(size)).String(), Size: size,
			Commits: 2, FirstCommitAt: first, LastCommitAt: last, Via: store.WALViaStream})
		must(err)
	}
	archive(2, segSize, c.commits[0], c.now.Add(-60*time.Second))
	archive(3, 8<<10, c.now.Add(-30*time.Second), c.commits[1])

	caughtUp := c.now.Add(-30 * time.Second)
	must(st.SaveArchiverState(ctx, store.ArchiverState{SourceID: c.orders.ID, State: store.ArchiverBehind,
		FlushedLSN: "0/3002000", ServerLSN: "0/3003000", BehindBytes: 4096, CaughtUpAt: &caughtUp}))
	_, err = st.SetPolicy(ctx, store.Policy{SourceID: c.orders.ID, TimeZone: "UTC", RPO: 5 * time.Minute})
	must(err)

	run, err := st.StartVerifyRun(ctx, c.orders.ID, 0, false)
	must(err)
	c.verify, err = st.FinishVerifyRun(ctx, run, []store.VerifyFinding{
		{SourceID: c.orders.ID, BackupID: c.last.ID, Kind: "corrupt-blob", Object: "ab12", Path: "base/1/1259", Reason: "does not authenticate"},
		{SourceID: c.orders.ID, Kind: "wal-gap", Object: "000000010000000000000004", Reason: "missing"},
	}, []int64{c.last.ID}, "")
	must(err)

	d, err := st.StartDrill(ctx, c.orders.ID, 0, c.commits[0])
	must(err)
	d.RTO, d.BackupID = 48*time.Second+500*time.Millisecond, c.last.ID
	_, err = st.FinishDrill(ctx, d)
	must(err)
	d, err = st.StartDrill(ctx, c.orders.ID, 0, c.commits[1])
	must(err)
	d.Error = "pg_amcheck found corruption"
	c.failedDrill, err = st.FinishDrill(ctx, d)
	must(err)

	_, err = st.ObserveConditions(ctx, []string{"backup-failed", "verify-finding", "wal-lag"}, []store.Condition{
		{Rule: "backup-failed", SourceID: c.orders.ID, DedupeKey: "backup-failed/1", Severity: store.SeverityCritical, Title: "failed"},
		{Rule: "verify-finding", SourceID: c.orders.ID, DedupeKey: "verify-finding/1", Severity: store.SeverityCritical, Title: "corrupt"},
		{Rule: "wal-lag", SourceID: c.orders.ID, DedupeKey: "wal-lag/1", Severity: store.SeverityWarning, Title: "behind"},
	})
	must(err)

	_, err = st.InsertJob(ctx, store.JobParams{Kind: KindBackup, SourceID: c.orders.ID})
	must(err)
	_, err = st.InsertJob(ctx, store.JobParams{Kind: KindVerify, SourceID: c.orders.ID, State: store.JobRunning,
		Owner: store.Owner{Host: "test", PID: 1, ID: "test"}})
	must(err)
	j, err := st.InsertJob(ctx, store.JobParams{Kind: "rehearsal", State: store.JobRunning, Owner: store.Owner{ID: "test"}})
	must(err)
	must(st.FinishJob(ctx, j.ID, store.JobSucceeded, "", nil))

	must(st.RecordStorageSample(ctx, store.StorageSample{At: c.now.Add(-time.Hour), Bytes: 1_000}))
	must(st.RecordStorageSample(ctx, store.StorageSample{At: c.now.Add(-time.Minute), Bytes: 123_456_789}))

	// gone: removed, with a backup (so it stays in the catalog) and an alert-free past.
	b, err = st.CreateBackup(ctx, store.BackupParams{SourceID: c.gone.ID, RepoID: "gone-1", StartLSN: "0/1000028", Timeline: 1})
	must(err)
	must(st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: "0/1000100", Stats: store.BackupStats{SourceBytes: 1}}))
	_, err = st.RemoveSource(ctx, c.gone.ID)
	must(err)
	return c
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// scrapeText gathers reg, writes it in Prometheus' text format as /metrics does, and
// parses it back with Prometheus' own text parser.
func scrapeText(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	reg, err := MetricsRegistry(m)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("TextToMetricFamilies() = %v\n%s", err, buf.String())
	}
	return fams
}

// series returns the value of the series of family name with exactly labels (as
// "k=v" pairs), and whether it exists.
func series(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName()+"="+lp.GetValue())
		}
		if slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(labels))) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	c := newMetricsCatalog(t)
	m := NewMetrics(c.st, c.windows, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.now = func() time.Time { return c.now }
	fams := scrapeText(t, m)

	w, _, err := c.windows.Window(t.Context(), c.orders)
	if err != nil {
		t.Fatal(err)
	}
	if w.Earliest.IsZero() || !w.Earliest.Before(w.Latest) {
		t.Fatalf("orders' window = %v to %v, want a range", w.Earliest, w.Latest)
	}
	if !w.Latest.Equal(c.commits[1]) {
		t.Errorf("orders' window ends %v, want the last archived commit %v", w.Latest, c.commits[1])
	}
	ordersHealth, err := SourceHealth(t.Context(), c.st, nil, c.orders, c.now)
	if err != nil {
		t.Fatal(err)
	}
	idleHealth, err := SourceHealth(t.Context(), c.st, nil, c.idle, c.now)
	if err != nil {
		t.Fatal(err)
	}
	level := func(h string, l string) float64 { return boolGauge(h == l) }

	orders, idle := "source=orders", "source=idle"
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"backstop_backup_last_success_timestamp_seconds", []string{orders}, unixSeconds(*c.last.FinishedAt)},
		{"backstop_backup_last_duration_seconds", []string{orders}, c.last.FinishedAt.Sub(c.last.StartedAt).Seconds()},
		{"backstop_backup_last_size_bytes", []string{orders}, 6_100_000_000},
		{"backstop_backup_last_stored_bytes", []string{orders}, 1_400_000_000},
		{"backstop_backups", []string{orders, "state=complete"}, 1},
		{"backstop_backups", []string{orders, "state=failed"}, 1},
		{"backstop_backups", []string{orders, "state=running"}, 1},
		{"backstop_backups", []string{orders, "state=cancelled"}, 0},
		{"backstop_backups", []string{orders, "state=interrupted"}, 0},
		{"backstop_backups", []string{idle, "state=complete"}, 0},
		{"backstop_wal_archive_lag_seconds", []string{orders}, 30},
		{"backstop_wal_archive_lag_bytes", []string{orders}, 4096},
		{"backstop_wal_archiver_up", []string{orders}, 1},
		{"backstop_wal_archiver_up", []string{idle}, 0},
		{"backstop_rpo_objective_seconds", []string{orders}, 300},
		{"backstop_rpo_objective_seconds", []string{idle}, 60},
		{"backstop_restorable_window_start_timestamp_seconds", []string{orders}, unixSeconds(w.Earliest)},
		{"backstop_restorable_window_end_timestamp_seconds", []string{orders}, unixSeconds(c.commits[1])},
		{"backstop_source_health", []string{orders, "level=ok"}, level(string(ordersHealth.Level), "ok")},
		{"backstop_source_health", []string{orders, "level=warning"}, level(string(ordersHealth.Level), "warning")},
		{"backstop_source_health", []string{orders, "level=broken"}, level(string(ordersHealth.Level), "broken")},
		{"backstop_source_health", []string{idle, "level=ok"}, level(string(idleHealth.Level), "ok")},
		{"backstop_source_health", []string{idle, "level=broken"}, level(string(idleHealth.Level), "broken")},
		{"backstop_alerts_open", []string{"severity=critical"}, 2},
		{"backstop_alerts_open", []string{"severity=warning"}, 1},
		{"backstop_alerts_open", []string{"severity=info"}, 0},
		{"backstop_verify_last_timestamp_seconds", []string{orders}, unixSeconds(*c.verify.FinishedAt)},
		{"backstop_verify_last_findings", []string{orders}, 2},
		{"backstop_verify_last_ok", []string{orders}, 0},
		{"backstop_drill_last_timestamp_seconds", []string{orders}, unixSeconds(*c.failedDrill.FinishedAt)},
		{"backstop_drill_last_ok", []string{orders}, 0},
		{"backstop_drill_last_rto_seconds", []string{orders}, 48.5},
		{"backstop_jobs", []string{"kind=backup", "state=queued"}, 1},
		{"backstop_jobs", []string{"kind=verify", "state=running"}, 1},
		{"backstop_jobs", []string{"kind=rehearsal", "state=succeeded"}, 1},
		{"backstop_jobs", []string{"kind=drill", "state=failed"}, 0},
		{"backstop_repository_stored_bytes", nil, 123_456_789},
		{"backstop_scrape_errors", nil, 0},
	}
	for _, tt := range tests {
		got, ok := series(fams, tt.name, tt.labels...)
		switch {
		case !ok:
			t.Errorf("%s{%s} is missing", tt.name, strings.Join(tt.labels, ","))
		case got != tt.want:
			t.Errorf("%s{%s} = %v, want %v", tt.name, strings.Join(tt.labels, ","), got, tt.want)
		}
	}
	if ordersHealth.Level == "" || idleHealth.Level == "" {
		t.Errorf("health levels = %q, %q, want levels", ordersHealth.Level, idleHealth.Level)
	}

	// What does not exist is a missing series, never a zero that reads as 1970.
	for _, name := range []string{"backstop_backup_last_success_timestamp_seconds", "backstop_wal_archive_lag_seconds",
		"backstop_restorable_window_start_timestamp_seconds", "backstop_restorable_window_end_timestamp_seconds",
		"backstop_verify_last_timestamp_seconds", "backstop_drill_last_timestamp_seconds", "backstop_drill_last_rto_seconds"} {
		if v, ok := series(fams, name, idle); ok {
			t.Errorf("%s{%s} = %v, want no series: idle has no such fact", name, idle, v)
		}
	}
	// A removed source is not reported at all.
	for name, mf := range fams {
		for _, x := range mf.GetMetric() {
			for _, lp := range x.GetLabel() {
				if lp.GetName() == "source" && lp.GetValue() == c.gone.Name {
					t.Errorf("%s reports removed source %s", name, c.gone.Name)
				}
			}
		}
	}
	// Every metric is there, a gauge with help; the Go and process collectors too.
	for _, x := range allMetrics {
		mf := fams[x.name]
		if mf == nil {
			t.Errorf("%s is missing from the scrape", x.name)
			continue
		}
		if mf.GetType() != dto.MetricType_GAUGE || mf.GetHelp() == "" {
			t.Errorf("%s is a %v with help %q, want a gauge with help", x.name, mf.GetType(), mf.GetHelp())
		}
		if strings.HasSuffix(x.name, "_total") {
			t.Errorf("%s ends in _total, which is for counters", x.name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s is missing: want the Go and process collectors", name)
		}
	}
}

func TestMetricsScrapeFailsWithoutACatalog(t *testing.T) {
	t.Parallel()
	c := newMetricsCatalog(t)
	m := NewMetrics(c.st, c.windows, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.st.Close()
	reg, err := MetricsRegistry(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err == nil {
		t.Errorf("Gather() on a closed catalog = nil error, want the scrape to fail")
	}
}

// TestGrafanaDashboard checks the dashboard in the repository: valid JSON, and every
// metric its queries name is one the collector (or the Go and process collectors) exposes.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("metrics", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int    `json:"schemaVersion"`
		Title         string `json:"title"`
		Panels        []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dash.SchemaVersion < 39 || dash.Title == "" {
		t.Errorf("dashboard schemaVersion %d, title %q; want 39 or later and a title", dash.SchemaVersion, dash.Title)
	}

	c := newMetricsCatalog(t)
	fams := scrapeText(t, NewMetrics(c.st, c.windows, slog.New(slog.NewTextHandler(io.Discard, nil))))
	exposed := slices.Collect(maps.Keys(fams))

	metricName := regexp.MustCompile(`\b(?:backstop|go|process)_[a-z0-9_]+`)
	exprs := map[string]string{}
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, x := range p.Targets {
			exprs[x.Expr] = "panel " + p.Title
		}
	}
	var source bool
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs[v.Definition] = "variable " + v.Name
		}
		source = source || v.Name == "source" && v.Definition == "label_values(backstop_wal_archive_lag_seconds, source)"
	}
	if !source {
		t.Errorf("dashboard has no source variable from label_values(backstop_wal_archive_lag_seconds, source)")
	}
	used := map[string]bool{}
	for expr, where := range exprs {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: query %q names no metric", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !slices.Contains(exposed, n) {
				t.Errorf("%s: query %q uses %s, which /metrics does not expose", where, expr, n)
			}
		}
	}
	// The issue asks for these on the dashboard.
	for _, n := range []string{"backstop_wal_archive_lag_seconds", "backstop_restorable_window_start_timestamp_seconds",
		"backstop_restorable_window_end_timestamp_seconds", "backstop_backup_last_success_timestamp_seconds",
		"backstop_backup_last_duration_seconds", "backstop_backup_last_size_bytes", "backstop_alerts_open",
		"backstop_verify_last_ok", "backstop_drill_last_ok", "backstop_drill_last_rto_seconds", "backstop_jobs"} {
		if !used[n] {
			t.Errorf("the dashboard does not use %s", n)
		}
	}
}
