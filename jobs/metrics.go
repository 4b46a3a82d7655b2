package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
)

// metric is one metric family the collector exposes: every one is a gauge, read from
// the catalog at scrape time.
type metric struct {
	name, help string
	labels     []string
}

// The metrics. Per-source metrics carry a "source" label with the source's name; removed
// sources are left out. A fact that does not exist (no complete backup, nothing restorable,
// no verification or drill yet) is a missing series, never a zero that looks like a time.
var (
	metricBackupLastSuccess = metric{"backstop_backup_last_success_timestamp_seconds",
		"When the newest complete base backup finished, in seconds since the epoch.", []string{"source"}}
	metricBackupLastDuration = metric{"backstop_backup_last_duration_seconds",
		"How long the newest complete base backup took, from start to durable.", []string{"source"}}
	metricBackupLastSize = metric{"backstop_backup_last_size_bytes",
		"What the newest complete base backup read from the source: the cluster's size.", []string{"source"}}
	metricBackupLastStored = metric{"backstop_backup_last_stored_bytes",
		"What the newest complete base backup added to the repository (new blocks, after dedupe and compression).", []string{"source"}}
	metricBackups = metric{"backstop_backups",
		"Backups in the catalog, by state.", []string{"source", "state"}}
	metricLagSeconds = metric{"backstop_wal_archive_lag_seconds",
		"How long ago the WAL archiver last held everything the source had written (0 when it is current).", []string{"source"}}
	metricLagBytes = metric{"backstop_wal_archive_lag_bytes",
		"WAL the source has written that the archiver has not made durable yet.", []string{"source"}}
	metricArchiverUp = metric{"backstop_wal_archiver_up",
		"1 while the WAL archiver is receiving WAL (streaming or catching up), 0 otherwise.", []string{"source"}}
	metricRPOObjective = metric{"backstop_rpo_objective_seconds",
		"The recovery point objective: the most WAL archiving may lag before an alert (the source's policy, else the default).", []string{"source"}}
	metricWindowStart = metric{"backstop_restorable_window_start_timestamp_seconds",
		"The earliest restorable time, in seconds since the epoch; absent while nothing is restorable.", []string{"source"}}
	metricWindowEnd = metric{"backstop_restorable_window_end_timestamp_seconds",
		"The latest restorable time (the newest archived commit), in seconds since the epoch; absent while nothing is restorable.", []string{"source"}}
	metricSourceHealth = metric{"backstop_source_health",
		"1 for the source's current health level (ok, warning or broken), 0 for the others.", []string{"source", "level"}}
	metricVerifyLast = metric{"backstop_verify_last_timestamp_seconds",
		"When the newest finished verification of the source ended, in seconds since the epoch.", []string{"source"}}
	metricVerifyFindings = metric{"backstop_verify_last_findings",
		"Findings (corrupt or missing objects, WAL gaps) of the newest finished verification.", []string{"source"}}
	metricVerifyOK = metric{"backstop_verify_last_ok",
		"1 when the newest finished verification was clean, 0 when it had findings or could not finish.", []string{"source"}}
	metricDrillLast = metric{"backstop_drill_last_timestamp_seconds",
		"When the newest finished restore drill ended, in seconds since the epoch.", []string{"source"}}
	metricDrillOK = metric{"backstop_drill_last_ok",
		"1 when the newest finished restore drill passed, 0 when it failed.", []string{"source"}}
	metricDrillRTO = metric{"backstop_drill_last_rto_seconds",
		"Time to restore proven by the newest passing drill: from its start to a checked, running instance.", []string{"source"}}
	metricAlertsOpen = metric{"backstop_alerts_open",
		"Open (firing or acknowledged) alerts, by severity.", []string{"severity"}}
	metricJobs = metric{"backstop_jobs",
		"Jobs in the catalog, by kind and state.", []string{"kind", "state"}}
	metricRepositoryStored = metric{"backstop_repository_stored_bytes",
		"The repository's size at its newest sample (after the last backup or prune).", nil}
	metricScrapeErrors = metric{"backstop_scrape_errors",
		"Facts this scrape could not read from the catalog or the repository (the server log says which); their series are missing.", nil}
)

// allMetrics lists every metric the collector may expose.
var allMetrics = []metric{
	metricBackupLastSuccess, metricBackupLastDuration, metricBackupLastSize, metricBackupLastStored, metricBackups,
	metricLagSeconds, metricLagBytes, metricArchiverUp, metricRPOObjective, metricWindowStart, metricWindowEnd,
	metricSourceHealth, metricVerifyLast, metricVerifyFindings, metricVerifyOK, metricDrillLast, metricDrillOK,
	metricDrillRTO, metricAlertsOpen, metricJobs, metricRepositoryStored, metricScrapeErrors,
}

// The label values always present, so that a count of zero is a 0 and not a missing series.
var (
	backupStates = []store.BackupState{store.BackupRunning, store.BackupComplete, store.BackupFailed,
		store.BackupCancelled, store.BackupInterrupted}
	jobStates = []store.JobState{store.JobQueued, store.JobRunning, store.JobSucceeded, store.JobFailed,
		store.JobCancelled, store.JobInterrupted}
	jobKinds      = []string{KindBackup, KindRestore, KindPITR, KindInstance, KindExpire, KindPrune, KindVerify, KindDrill}
	healthLevels  = []health.Level{health.OK, health.Warning, health.Broken}
	alertSeverity = []string{store.SeverityCritical, store.SeverityWarning, store.SeverityInfo}
)

// Metrics is the Prometheus collector of Backstop's facts. On each scrape it reads the
// catalog, and each source's restorable window from the window cache, and reports them;
// it keeps nothing between scrapes and runs nothing in the background. Health comes from
// SourceHealth, as on every page.
type Metrics struct {
	store   *store.Store
	windows *WindowCache
	log     *slog.Logger
	now     func() time.Time
	descs   map[string]*prometheus.Desc
	// Timeout bounds one scrape's reads.
	Timeout time.Duration
}

// NewMetrics returns the collector over st, reading windows from windows (nil: no window
// metrics).
func NewMetrics(st *store.Store, windows *WindowCache, log *slog.Logger) *Metrics {
	m := &Metrics{store: st, windows: windows, log: log, now: time.Now, descs: map[string]*prometheus.Desc{},
		Timeout: 10 * time.Second}
	for _, x := range allMetrics {
		m.descs[x.name] = prometheus.NewDesc(x.name, x.help, x.labels, nil)
	}
	return m
}

// MetricsRegistry returns the registry /metrics serves: m, and the Go runtime's and this
// process's own collectors.
func MetricsRegistry(m *Metrics) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{m, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics registry: %w", err)
		}
	}
	return reg, nil
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range allMetrics {
		ch <- m.descs[x.name]
	}
}

// Collect implements prometheus.Collector: it reads the facts now. A catalog that cannot
// list its sources fails the scrape; any other fact that cannot be read is logged, left
// out and counted in backstop_scrape_errors.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	s := &scrape{m: m, ch: ch, ctx: ctx, now: m.now()}
	srcs, err := m.store.Sources(ctx)
	if err == nil {
		var removed map[int64]bool
		if removed, err = m.store.RemovedSourceIDs(ctx); err == nil {
			srcs = slices.DeleteFunc(srcs, func(src store.Source) bool { return removed[src.ID] })
		}
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.descs[metricScrapeErrors.name], err)
		return
	}
	for _, src := range srcs {
		s.source(src)
	}
	s.backupCounts(srcs)
	s.alerts()
	s.jobs()
	s.repository()
	s.gauge(metricScrapeErrors, float64(s.errors))
}

// scrape is one run of Collect.
type scrape struct {
	m      *Metrics
	ch     chan<- prometheus.Metric
	ctx    context.Context
	now    time.Time
	errors int
}

func (s *scrape) gauge(x metric, v float64, labels ...string) {
	s.ch <- prometheus.MustNewConstMetric(s.m.descs[x.name], prometheus.GaugeValue, v, labels...)
}

// read reports whether err is nil, logging and counting any error but not-found (a fact
// that does not exist yet).
func (s *scrape) read(what string, err error) bool {
	if err == nil {
		return true
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.errors++
		s.m.log.Warn("metrics: read "+what, "err", err)
	}
	return false
}

// source reports src's backups, WAL archiving, window, health, verification and drills.
func (s *scrape) source(src store.Source) {
	ctx, st, name := s.ctx, s.m.store, src.Name

	last, err := st.LatestBackup(ctx, src.ID, store.BackupComplete)
	hasBackup := s.read("latest backup of "+name, err)
	if hasBackup {
		if last.FinishedAt != nil {
			s.gauge(metricBackupLastSuccess, unixSeconds(*last.FinishedAt), name)
			s.gauge(metricBackupLastDuration, last.FinishedAt.Sub(last.StartedAt).Seconds(), name)
		}
		s.gauge(metricBackupLastSize, float64(last.Stats.SourceBytes), name)
		s.gauge(metricBackupLastStored, float64(last.Stats.StoredBytesNew), name)
	}

	up := 0.0
	if a, err := st.ArchiverState(ctx, src.ID); s.read("archiver state of "+name, err) {
		s.gauge(metricLagSeconds, a.BehindSeconds(s.now).Seconds(), name)
		s.gauge(metricLagBytes, float64(a.BehindBytes), name)
		if a.State == store.ArchiverStreaming || a.State == store.ArchiverBehind {
			up = 1
		}
	}
	s.gauge(metricArchiverUp, up, name)
	// The objective lag alerts hold archiving to: the policy's, else health's default.
	rpo := health.DefaultPolicy.LagSeconds
	if p, err := st.Policy(ctx, src.ID); s.read("policy of "+name, err) && p.RPO > 0 {
		rpo = p.RPO
	}
	s.gauge(metricRPOObjective, rpo.Seconds(), name)

	// Without a complete backup nothing is restorable: the window is not even looked up.
	if hasBackup && s.m.windows != nil {
		// A window not computed yet (after start-up) is left out; health reports it.
		w, _, err := s.m.windows.Window(ctx, src)
		if !errors.Is(err, ErrWindowUnknown) && s.read("window of "+name, err) && !w.Earliest.IsZero() {
			s.gauge(metricWindowStart, unixSeconds(w.Earliest), name)
			s.gauge(metricWindowEnd, unixSeconds(w.Latest), name)
		}
	}

	if h, err := SourceHealth(ctx, st, s.m.windows, src, s.now); s.read("health of "+name, err) {
		for _, l := range healthLevels {
			s.gauge(metricSourceHealth, boolGauge(h.Level == l), name, string(l))
		}
	}

	if v, err := st.LatestVerifyRun(ctx, src.ID); s.read("latest verification of "+name, err) {
		s.gauge(metricVerifyLast, unixSeconds(finishedAt(v.StartedAt, v.FinishedAt)), name)
		s.gauge(metricVerifyFindings, float64(v.Findings), name)
		s.gauge(metricVerifyOK, boolGauge(v.State == store.VerifyClean), name)
	}
	if d, err := st.LatestDrill(ctx, src.ID, false); s.read("latest drill of "+name, err) {
		s.gauge(metricDrillLast, unixSeconds(finishedAt(d.StartedAt, d.FinishedAt)), name)
		s.gauge(metricDrillOK, boolGauge(d.State == store.DrillPassed), name)
	}
	if d, err := st.LatestDrill(ctx, src.ID, true); s.read("latest passing drill of "+name, err) {
		s.gauge(metricDrillRTO, d.RTO.Seconds(), name)
	}
}

// backupCounts reports every state of every source in srcs, 0 when it has none.
func (s *scrape) backupCounts(srcs []store.Source) {
	counts, err := s.m.store.BackupCounts(s.ctx)
	if !s.read("backup counts", err) {
		return
	}
	n := map[int64]map[store.BackupState]int{}
	for _, c := range counts {
		if n[c.SourceID] == nil {
			n[c.SourceID] = map[store.BackupState]int{}
		}
		n[c.SourceID][c.State] = c.N
	}
	for _, src := range srcs {
		for _, st := range backupStates {
			s.gauge(metricBackups, float64(n[src.ID][st]), src.Name, string(st))
		}
	}
}

// alerts reports the open alerts of every severity, 0 when there are none.
func (s *scrape) alerts() {
	counts, err := s.m.store.OpenAlertCounts(s.ctx)
	if !s.read("open alert counts", err) {
		return
	}
	for _, sev := range union(alertSeverity, counts) {
		s.gauge(metricAlertsOpen, float64(counts[sev]), sev)
	}
}

// jobs reports the jobs of every kind in every state, 0 when there are none.
func (s *scrape) jobs() {
	counts, err := s.m.store.JobCounts(s.ctx)
	if !s.read("job counts", err) {
		return
	}
	n := map[string]map[store.JobState]int{}
	for _, c := range counts {
		if n[c.Kind] == nil {
			n[c.Kind] = map[store.JobState]int{}
		}
		n[c.Kind][c.State] = c.N
	}
	for _, kind := range union(jobKinds, n) {
		for _, st := range union(jobStates, n[kind]) {
			s.gauge(metricJobs, float64(n[kind][st]), kind, string(st))
		}
	}
}

// repository reports the repository's size at its newest sample.
func (s *scrape) repository() {
	if x, err := s.m.store.LatestStorageSample(s.ctx); s.read("latest storage sample", err) {
		s.gauge(metricRepositoryStored, float64(x.Bytes))
	}
}

// union returns known followed by the other keys of seen, sorted: every label value that
// must always be present, and any the catalog holds beyond them.
func union[K ~string, V any](known []K, seen map[K]V) []K {
	out := slices.Clone(known)
	var more []K
	for k := range seen {
		if !slices.Contains(known, k) {
			more = append(more, k)
		}
	}
	slices.Sort(more)
	return append(out, more...)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

func finishedAt(started time.Time, finished *time.Time) time.Time {
	if finished != nil {
		return *finished
	}
	return started
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
