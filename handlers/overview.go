package handlers

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// showOverview answers, per source: can it be restored now and to when, the RPO now, the
// RTO its last drill proved, its last verification and newest backup, with small charts.
func (h *Handler) showOverview(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(withHealthMemo(r.Context()))
	sums, err := h.sourceSummaries(r.Context())
	if err != nil {
		return err
	}
	vm := web.OverviewVM{Now: h.now(), Sources: sums}
	if vm.Storage, err = h.storage(r.Context()); err != nil {
		return err
	}
	return h.page(w, r, "Overview", web.NavOverview, web.OverviewPage(vm))
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func backupLockKey(sourceID int64) string { return jobs.BackupLockKey(sourceID) }

// chartBackups is how many of the newest complete backups an overview card charts.
const chartBackups = 30

// lagPeriod is how far back an overview card charts the archiving lag.
const lagPeriod = 24 * time.Hour

// restoreAnswer answers "can I restore this source right now?" from its health and its
// window: no when nothing is restorable or the health is broken (the archive stopped, a
// gap, a damaged object, a failed drill: the newest times may not restore); yes, with a
// warning, when something needs attention; not known yet while the window is unknown.
func restoreAnswer(hv health.Health, w jobs.Window, unknown bool) web.RestoreAnswerVM {
	switch {
	case unknown:
		return web.RestoreAnswerVM{Level: web.AnswerUnknown, Why: "Backstop is computing the restorable window."}
	case w.Latest.IsZero():
		return web.RestoreAnswerVM{Level: web.AnswerNo, Why: "Nothing is restorable yet."}
	case hv.Level == health.Broken:
		return web.RestoreAnswerVM{Level: web.AnswerNo, Why: hv.Reason}
	case hv.Level == health.Warning:
		return web.RestoreAnswerVM{Level: web.AnswerCaveat, Why: hv.Reason}
	}
	return web.RestoreAnswerVM{Level: web.AnswerYes, Why: "Restorable to " + web.UTC(w.Latest) + "."}
}

// lagVM is the archiving lag now, against the policy's RPO objective.
func lagVM(a *health.Archiver, p health.Policy) *web.LagVM {
	if a == nil {
		return nil
	}
	l := &web.LagVM{State: a.State, Since: a.Since, Seconds: a.BehindSeconds, Bytes: a.BehindBytes,
		Objective: p.LagSeconds, ObjectiveBytes: p.LagBytes}
	if l.Objective <= 0 {
		l.Objective = health.DefaultPolicy.LagSeconds
	}
	if l.ObjectiveBytes <= 0 {
		l.ObjectiveBytes = health.DefaultPolicy.LagBytes
	}
	l.Over = l.Seconds > l.Objective || l.Bytes > l.ObjectiveBytes
	return l
}

func drillRow(d store.Drill) web.DrillRow {
	r := web.DrillRow{ID: d.ID, JobID: d.JobID, State: d.State, TargetAt: d.TargetAt, BackupID: d.BackupID,
		StartedAt: d.StartedAt, RTO: d.RTO, Checks: d.Checks, Tables: len(d.Tables), Error: d.Error}
	if d.FinishedAt != nil {
		r.FinishedAt = *d.FinishedAt
	}
	return r
}

func verifyRunRow(v store.VerifyRun) web.VerifyRunRow {
	r := web.VerifyRunRow{ID: v.ID, JobID: v.JobID, Deep: v.Deep, State: v.State, StartedAt: v.StartedAt,
		PacksChecked: v.PacksChecked, PacksTotal: v.PacksTotal, BytesRead: v.BytesRead, BlobsChecked: v.BlobsChecked,
		ManifestsChecked: v.ManifestsChecked, WALChecked: v.WALChecked, Findings: v.Findings, Error: v.Error}
	if v.FinishedAt != nil {
		r.FinishedAt = *v.FinishedAt
	}
	return r
}

func findingRow(f store.VerifyFinding) web.VerifyFindingRow {
	return web.VerifyFindingRow{BackupID: f.BackupID, Kind: f.Kind, Path: f.Path, Object: f.Object, Pack: f.Pack,
		FromLSN: f.FromLSN, ToLSN: f.ToLSN, Reason: f.Reason}
}

// withDrills fills in the RTO the newest passing drill proved, and the newest drill when it
// failed since.
func (h *Handler) withDrills(ctx context.Context, sum *web.SourceSummary, f health.Facts) error {
	if d := f.LastPassedDrill; d != nil {
		full, err := h.store.Drill(ctx, d.ID)
		if err != nil {
			return err
		}
		r := drillRow(full)
		sum.ProvenDrill = &r
	}
	if d := f.Drill; d != nil && !d.Passed && (f.LastPassedDrill == nil || d.ID > f.LastPassedDrill.ID) {
		sum.FailedDrill = &web.DrillRow{ID: d.ID, State: store.DrillFailed, TargetAt: d.Target, FinishedAt: d.At, Error: d.Error}
	}
	return nil
}

// withVerification fills in the newest finished verification.
func (h *Handler) withVerification(ctx context.Context, sum *web.SourceSummary, f health.Facts) error {
	if f.Verification == nil {
		return nil
	}
	v, err := h.store.VerifyRun(ctx, f.Verification.RunID)
	if err != nil {
		return err
	}
	r := verifyRunRow(v)
	sum.Verification = &r
	return nil
}

// charts is what an overview card charts: the lag over the last lagPeriod, and the
// newest backups (newest first, as the catalog lists them).
func (h *Handler) charts(ctx context.Context, s store.Source, newest []store.Backup) (*web.SourceChartsVM, error) {
	c := &web.SourceChartsVM{LagPeriod: lagPeriod}
	xs, err := h.lagSamples.get(ctx, h.store, s.ID, h.now().Add(-lagPeriod))
	if err != nil {
		return nil, err
	}
	c.Lag = make([]web.LagSampleVM, len(xs))
	for i, x := range xs {
		c.Lag[i] = web.LagSampleVM{At: x.At, Seconds: x.LagSeconds, Bytes: x.LagBytes}
	}
	for _, b := range slices.Backward(newest) {
		p := web.BackupPointVM{ID: b.ID, StartedAt: b.StartedAt, SourceBytes: b.Stats.SourceBytes, StoredNewBytes: b.Stats.StoredBytesNew}
		if b.FinishedAt != nil {
			p.Duration = b.FinishedAt.Sub(b.StartedAt)
		}
		c.Backups = append(c.Backups, p)
	}
	return c, nil
}

// sampleCache keeps each source's recent lag samples, so that a page reads only the
// samples taken since it last looked (one a minute) rather than a day of them.
type sampleCache struct {
	mu sync.Mutex
	m  map[int64][]store.SourceSample
}

// Warm reads into the cache the lag samples the overview charts, for every source: serve
// does it before it serves, so that the first overview does not read a day of samples for
// each.
func (h *Handler) Warm(ctx context.Context) error {
	srcs, err := h.store.Sources(ctx)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		if _, err := h.lagSamples.get(ctx, h.store, s.ID, h.now().Add(-lagPeriod)); err != nil {
			return err
		}
	}
	return nil
}

// sampleMargin is how much older than asked the cache keeps, so that the next read, a
// moment later, still finds its start in the cache.
const sampleMargin = time.Hour

// get returns source sourceID's samples taken at or after since, oldest first.
func (c *sampleCache) get(ctx context.Context, st *store.Store, sourceID int64, since time.Time) ([]store.SourceSample, error) {
	c.mu.Lock()
	have := c.m[sourceID]
	c.mu.Unlock()
	var all []store.SourceSample
	if len(have) > 0 && !have[0].At.After(since) {
		newer, err := st.SourceSamples(ctx, sourceID, have[len(have)-1].At.Add(time.Microsecond))
		if err != nil {
			return nil, err
		}
		all = append(slices.Clip(have), newer...) // a copy when there is anything newer
	} else {
		xs, err := st.SourceSamples(ctx, sourceID, since.Add(-sampleMargin))
		if err != nil {
			return nil, err
		}
		all = xs
	}
	all = all[sampleIndex(all, since.Add(-sampleMargin)):]
	c.mu.Lock()
	if c.m == nil {
		c.m = map[int64][]store.SourceSample{}
	}
	c.m[sourceID] = slices.Clip(all)
	c.mu.Unlock()
	return all[sampleIndex(all, since):], nil
}

// sampleIndex is the index of the first of xs (oldest first) taken at or after t.
func sampleIndex(xs []store.SourceSample, t time.Time) int {
	i, _ := slices.BinarySearchFunc(xs, t, func(x store.SourceSample, t time.Time) int { return x.At.Compare(t) })
	return i
}
