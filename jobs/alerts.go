package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

// Rules are the names of every alert rule the evaluator checks: an open alert of one of
// them whose condition no longer holds resolves by itself.
var Rules = []string{
	"archiver-recovering", "archiver-stopped", "needs-backup", "slot-lost", "backup-failed", "archiver-silent",
	"wal-lag", "slot-retained", "no-backup", "backup-stale", "wal-gap", "verify-finding", "drill-failed",
	"drill-stale", "tablespace", "anomaly-backup-change", "anomaly-wal-rate", "disk-full", "source-unreachable",
	"window-unknown",
}

// Evaluator turns facts into alerts: every interval it gathers each source's facts,
// asks health for its problems, and records them as conditions; the catalog opens,
// refreshes and resolves alerts. What changed goes to notify.
type Evaluator struct {
	store   *store.Store
	windows *WindowCache
	log     *slog.Logger
	now     func() time.Time
	// Service checks the installation (disks nearly full); nil for none.
	Service func(ctx context.Context) error
	// Notify is told what opened and resolved; nil for nobody.
	Notify func(changes []store.AlertChange)
	// Probe returns the source's current WAL position (pg_current_wal_lsn()); nil to
	// trust the archiver's reports alone.
	Probe func(ctx context.Context, src store.Source) (pglogrepl.LSN, error)

	mu      sync.Mutex
	probes  map[int64][]probePoint // by source: earlier positions not yet durable
	sampled map[int64]time.Time    // by source: when its lag was last sampled
	dropped time.Time              // when old samples were last deleted
	rates   map[int64]cachedRate   // by source: the last WAL rate computed
}

// ProbeSource is the evaluator's Probe: a short connection to the source.
func ProbeSource(ctx context.Context, src store.Source) (pglogrepl.LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := pg.ReadSlotStatus(ctx, src.DSN, SlotName(src))
	return st.CurrentLSN, err
}

// NewEvaluator returns an evaluator over st, reading windows from windows.
func NewEvaluator(st *store.Store, windows *WindowCache, log *slog.Logger) *Evaluator {
	return &Evaluator{store: st, windows: windows, log: log, now: time.Now}
}

// Run evaluates at once and then every interval until ctx is done.
func (e *Evaluator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("alerts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Evaluate checks every rule once and returns what opened and resolved.
func (e *Evaluator) Evaluate(ctx context.Context) ([]store.AlertChange, error) {
	now := e.now()
	srcs, err := e.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	var conds []store.Condition
	var errs []error
	pending := false
	for _, src := range srcs {
		if removed, err := e.store.SourceRemovedAt(ctx, src.ID); err != nil || removed != nil {
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		f, p, err := e.Facts(ctx, src, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
			continue
		}
		if f.WindowPending {
			// After start-up, until its first window is computed: its gaps are not
			// known, so its alerts neither open nor resolve yet.
			pending = true
			continue
		}
		for _, pr := range health.Problems(f, now, p) {
			conds = append(conds, condition(src, pr))
		}
		e.sample(ctx, src, f, now)
	}
	e.dropOldSamples(ctx, now)
	if e.Service != nil {
		if err := e.Service(ctx); err != nil {
			conds = append(conds, store.Condition{Rule: "disk-full", DedupeKey: "disk-full", Severity: store.SeverityCritical,
				Title: "Backstop itself: " + err.Error(), Explanation: "Backstop cannot keep its guarantees: " + err.Error() + ".",
				Action: "Free space on the disk, or move the repository; backups and WAL archiving fail when it is full."})
		}
	}
	if len(errs) > 0 {
		// Rules of a source whose facts could not be read are not evaluated this time:
		// its alerts neither open nor resolve on missing facts.
		return nil, errors.Join(errs...)
	}
	if pending {
		return nil, nil
	}
	changes, err := e.store.ObserveConditions(ctx, Rules, conds)
	if err != nil {
		return nil, err
	}
	if e.Notify != nil && len(changes) > 0 {
		e.Notify(changes)
	}
	return changes, nil
}

// sampleEvery is how often a source's lag is sampled for charts; samples older than
// sampleKeep are deleted.
const (
	sampleEvery = time.Minute
	sampleKeep  = 30 * 24 * time.Hour
)

// sample records src's lag at most once a minute, for the overview's charts and the WAL
// rate anomaly.
func (e *Evaluator) sample(ctx context.Context, src store.Source, f health.Facts, now time.Time) {
	e.mu.Lock()
	if e.sampled == nil {
		e.sampled = map[int64]time.Time{}
	}
	due := now.Sub(e.sampled[src.ID]) >= sampleEvery
	if due {
		e.sampled[src.ID] = now
	}
	e.mu.Unlock()
	if !due || f.Archiver == nil {
		return
	}
	x := store.SourceSample{SourceID: src.ID, At: now, LagSeconds: f.Archiver.BehindSeconds.Seconds(), LagBytes: f.Archiver.BehindBytes}
	if st, err := e.store.ArchiverState(ctx, src.ID); err == nil {
		if l, ok := parseLSN(st.FlushedLSN); ok {
			x.WALBytes = int64(l)
		}
	}
	if err := e.store.RecordSourceSample(ctx, x); err != nil {
		e.log.Warn("sample", "source", src.Name, "err", err)
	}
}

// dropOldSamples deletes samples older than sampleKeep, once an hour.
func (e *Evaluator) dropOldSamples(ctx context.Context, now time.Time) {
	e.mu.Lock()
	due := now.Sub(e.dropped) >= time.Hour
	if due {
		e.dropped = now
	}
	e.mu.Unlock()
	if due {
		if _, err := e.store.DeleteSourceSamples(ctx, now.Add(-sampleKeep)); err != nil {
			e.log.Warn("delete old samples", "err", err)
		}
	}
}

// condition is a problem of src as an alert's condition.
func condition(src store.Source, p health.Problem) store.Condition {
	sev := store.SeverityWarning
	if p.Level == health.Broken {
		sev = store.SeverityCritical
	}
	key := fmt.Sprintf("%s/%d", p.Rule, src.ID)
	if p.Key != "" {
		key += "/" + p.Key
	}
	evidence := map[string]string{"source": src.Name}
	for k, v := range p.Evidence {
		evidence[k] = v
	}
	return store.Condition{Rule: p.Rule, SourceID: src.ID, DedupeKey: key, Severity: sev, Title: src.Name + ": " + firstSentence(p.Reason),
		Explanation: p.Reason, Action: p.Do, Evidence: evidence}
}

func firstSentence(s string) string {
	if i := strings.Index(s, ": "); i > 0 && i < 80 {
		return s[:i]
	}
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// Facts gathers everything health judges src by, as GatherFacts does, plus what only the
// evaluator measures: the lag seen from the source itself, and the WAL rate.
func (e *Evaluator) Facts(ctx context.Context, src store.Source, now time.Time) (health.Facts, health.Policy, error) {
	f, p, err := GatherFacts(ctx, e.store, e.windows, src, now)
	if err != nil {
		return f, p, err
	}
	if err := e.probe(ctx, src, now, &f); err != nil {
		return f, p, err
	}
	rate, err := e.walRate(ctx, src, now)
	if err != nil {
		return f, p, err
	}
	f.WALRate = rate
	return f, p, nil
}

// GatherFacts reads from the catalog everything health judges src by (its backups,
// archiver, window gaps, verification, drills, tablespaces, how much its last backup
// changed) and the thresholds of its policy. windows may be nil: then the facts that
// need the window are left out.
func GatherFacts(ctx context.Context, st *store.Store, windows *WindowCache, src store.Source, now time.Time) (health.Facts, health.Policy, error) {
	f, err := SourceFacts(ctx, st, src, now)
	if err != nil {
		return f, health.Policy{}, err
	}
	p := health.Policy{}
	pol, err := st.Policy(ctx, src.ID)
	switch {
	case err == nil:
		p.LagSeconds = pol.RPO
		if pol.DrillCron != "" {
			p.DrillMaxAge = pol.DrillMaxAge
		}
		if pol.BackupCron != "" {
			if sched, err := ParseSchedule(pol.BackupCron, pol.TimeZone); err == nil {
				// A backup is expected every interval, plus the jitter and an hour to run.
				a := sched.Next(now)
				p.StaleAfter = sched.Next(a).Sub(a) + maxJitter + time.Hour
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return f, p, err
	}

	if windows != nil && f.LastComplete != nil {
		wf, unknown, pending, err := windows.facts(ctx, src)
		if err != nil {
			return f, p, err
		}
		f.Gaps, f.BlockingTablespaces, f.BackupChange = slices.Clone(wf.gaps), slices.Clone(wf.tablespaces), wf.change
		f.WindowUnknown, f.WindowPending = unknown, pending
	}
	if v, err := st.LatestVerifyRun(ctx, src.ID); err == nil {
		hv := &health.Verification{RunID: v.ID, Findings: v.Findings}
		if v.FinishedAt != nil {
			hv.At = *v.FinishedAt
		}
		if v.Findings > 0 {
			fs, err := st.VerifyFindings(ctx, v.ID, 3)
			if err != nil {
				return f, p, err
			}
			var parts []string
			for _, x := range fs {
				part := x.Reason
				if x.BackupID != 0 {
					part = fmt.Sprintf("backup %d, %s: %s", x.BackupID, x.Path, x.Reason)
				}
				parts = append(parts, part)
			}
			hv.Summary = strings.Join(parts, "; ")
		}
		f.Verification = hv
	} else if !errors.Is(err, store.ErrNotFound) {
		return f, p, err
	}
	for _, passed := range []bool{false, true} {
		d, err := st.LatestDrill(ctx, src.ID, passed)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return f, p, err
		}
		hd := &health.Drill{ID: d.ID, Passed: d.State == store.DrillPassed, Target: d.TargetAt, Error: d.Error}
		if d.FinishedAt != nil {
			hd.At = *d.FinishedAt
		}
		if passed {
			f.LastPassedDrill = hd
		} else {
			f.Drill = hd
		}
	}
	return f, p, nil
}

// probe asks the source itself where its WAL is, so that lag is measured from the
// outside, whatever the archiver reports (a stalled stream can leave it believing it is
// current): the lag is the time since the server first held WAL that the archiver has
// still not made durable, from the positions seen at earlier probes. A source that does
// not answer is unreachable.
func (e *Evaluator) probe(ctx context.Context, src store.Source, now time.Time, f *health.Facts) error {
	if e.Probe == nil {
		return nil
	}
	cur, err := e.Probe(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.Unreachable = err.Error()
		return nil
	}
	a := f.Archiver
	st, err := e.store.ArchiverState(ctx, src.ID)
	if errors.Is(err, store.ErrNotFound) || a == nil {
		return nil
	}
	if err != nil {
		return err
	}
	flushed, _ := parseLSN(st.FlushedLSN)

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.probes == nil {
		e.probes = map[int64][]probePoint{}
	}
	// Keep the points the lag may still be measured from: those ahead of what is durable.
	points := slices.DeleteFunc(append(e.probes[src.ID], probePoint{now, cur}), func(p probePoint) bool { return p.lsn <= flushed })
	e.probes[src.ID] = points
	if len(points) == 0 || a.State == "stopped" || a.State == "recovering" {
		return nil
	}
	a.BehindBytes = max(a.BehindBytes, int64(cur-flushed))
	a.BehindSeconds = max(a.BehindSeconds, now.Sub(points[0].at))
	return nil
}

// probePoint is where the source's WAL was at a probe.
type probePoint struct {
	at  time.Time
	lsn pglogrepl.LSN
}

// walRate compares the WAL the source wrote in the last hour with the median of its
// hourly volumes over the week before, from the lag samples; nil with less than a day of
// history. Computed at most every ten minutes per source.
func (e *Evaluator) walRate(ctx context.Context, src store.Source, now time.Time) (*health.Change, error) {
	e.mu.Lock()
	if e.rates == nil {
		e.rates = map[int64]cachedRate{}
	}
	c, ok := e.rates[src.ID]
	e.mu.Unlock()
	if ok && now.Sub(c.at) < 10*time.Minute {
		return c.rate, nil
	}
	xs, err := e.store.SourceSamples(ctx, src.ID, now.Add(-8*24*time.Hour))
	if err != nil {
		return nil, err
	}
	rate := hourlyRate(xs, now)
	e.mu.Lock()
	e.rates[src.ID] = cachedRate{at: now, rate: rate}
	e.mu.Unlock()
	return rate, nil
}

type cachedRate struct {
	at   time.Time
	rate *health.Change
}

// hourlyRate buckets the WAL position samples by hour before now: the newest hour's
// growth against the median of the others.
func hourlyRate(xs []store.SourceSample, now time.Time) *health.Change {
	growth := map[int64]int64{} // hours before now → WAL written in that hour
	first, last := map[int64]int64{}, map[int64]int64{}
	for _, x := range xs {
		if x.WALBytes == 0 {
			continue
		}
		h := int64(now.Sub(x.At) / time.Hour)
		if _, ok := first[h]; !ok {
			first[h] = x.WALBytes
		}
		last[h] = x.WALBytes
	}
	for h := range first {
		growth[h] = max(0, last[h]-first[h])
	}
	cur, ok := growth[0]
	if !ok || len(growth) < 25 {
		return nil
	}
	var past []int64
	for h, g := range growth {
		if h > 0 {
			past = append(past, g)
		}
	}
	slices.Sort(past)
	return &health.Change{Value: float64(cur), Usual: float64(past[len(past)/2]), What: "the last hour"}
}

// backupChange compares the share of blocks the newest complete backup stored anew with
// the median share of the ten before it; nil with fewer than three before it.
func backupChange(backups []store.Backup) *health.Change {
	var done []store.Backup
	for _, b := range backups {
		if b.State == store.BackupComplete && b.Stats.BlockCount > 0 {
			done = append(done, b)
		}
	}
	slices.SortFunc(done, func(a, b store.Backup) int { return int(a.ID - b.ID) })
	if len(done) < 4 {
		return nil
	}
	share := func(b store.Backup) float64 { return float64(b.Stats.BlockCountNew) / float64(b.Stats.BlockCount) }
	newest := done[len(done)-1]
	prev := done[max(0, len(done)-11) : len(done)-1]
	shares := make([]float64, len(prev))
	for i, b := range prev {
		shares[i] = share(b)
	}
	slices.Sort(shares)
	usual := shares[len(shares)/2]
	if usual < 0.001 {
		usual = 0.001 // an unchanged cluster stores almost nothing: any real change is not "far above" nothing
	}
	return &health.Change{Value: share(newest), Usual: usual, What: fmt.Sprintf("Backup %d", newest.ID)}
}
