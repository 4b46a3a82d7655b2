package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// pgVersion formats server_version_num as PostgreSQL prints its version: 150018 → "15.18".
func pgVersion(num int) string {
	if num <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d", num/10000, num%10000)
}

// jobBackupID is the backup a backup job produced, from its recorded result.
func jobBackupID(j store.Job) int64 {
	var res struct {
		BackupID int64 `json:"backup_id"`
	}
	if len(j.Result) > 0 && json.Unmarshal(j.Result, &res) == nil {
		return res.BackupID
	}
	return 0
}

func jobProgress(j store.Job) web.JobProgressVM {
	return web.JobProgressVM{JobID: j.ID, State: string(j.State), Phase: j.Phase, Done: j.BytesDone,
		Total: j.BytesTotal, Message: j.Error, BackupID: jobBackupID(j)}
}

func jobRow(j store.Job, sourceName string) web.JobRow {
	r := web.JobRow{ID: j.ID, Kind: j.Kind, SourceID: j.SourceID, SourceName: sourceName, State: string(j.State),
		Phase: j.Phase, Done: j.BytesDone, Total: j.BytesTotal, Message: j.Error, BackupID: jobBackupID(j),
		CreatedAt: j.CreatedAt}
	if j.StartedAt != nil {
		r.StartedAt = *j.StartedAt
	}
	if j.FinishedAt != nil {
		r.FinishedAt = *j.FinishedAt
	}
	return r
}

func backupRow(b store.Backup, sourceName string) web.BackupRow {
	r := web.BackupRow{ID: b.ID, SourceID: b.SourceID, SourceName: sourceName, State: string(b.State),
		StartedAt: b.StartedAt, SourceBytes: b.Stats.SourceBytes, StoredNewBytes: b.Stats.StoredBytesNew,
		StoredRefBytes: b.Stats.StoredBytesReferenced, BlocksNew: b.Stats.BlockCountNew,
		BlocksTotal: b.Stats.BlockCount, StartLSN: b.StartLSN, EndLSN: b.EndLSN}
	if b.FinishedAt != nil {
		r.FinishedAt = *b.FinishedAt
	}
	return r
}

// withProgress attaches the live progress of a running backup's job.
func (h *Handler) withProgress(ctx context.Context, r web.BackupRow, b store.Backup) web.BackupRow {
	if b.State != store.BackupRunning || b.JobID == 0 {
		return r
	}
	if j, err := h.store.Job(ctx, b.JobID); err == nil {
		p := jobProgress(j)
		r.Progress = &p
	}
	return r
}

// sourceNames maps source IDs to names for the lists.
func (h *Handler) sourceNames(ctx context.Context) (map[int64]string, error) {
	srcs, err := h.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[int64]string, len(srcs))
	for _, s := range srcs {
		m[s.ID] = s.Name
	}
	return m, nil
}

// activeJob is the live progress of a source's queued or running backup, if any.
func (h *Handler) activeJob(ctx context.Context, sourceID int64) (*web.JobProgressVM, error) {
	j, err := h.store.ActiveJobByLock(ctx, backupLockKey(sourceID))
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	p := jobProgress(j)
	return &p, nil
}

// sourceSummary is a source as the overview card shows it: its health and whether it
// can be restored now, its window, lag, drills, verification, newest backups and charts.
// Every fact comes from the catalog's rows for the source, read by index, and from the
// window cache: nothing here reads every WAL row.
func (h *Handler) sourceSummary(ctx context.Context, s store.Source) (web.SourceSummary, error) {
	return h.summarize(ctx, s, true)
}

// summarize is sourceSummary, without the overview's drills, verification and charts
// unless full.
func (h *Handler) summarize(ctx context.Context, s store.Source, full bool) (web.SourceSummary, error) {
	sum := web.SourceSummary{ID: s.ID, Name: s.Name, MaskedDSN: usecase.MaskDSN(s.DSN), PGVersion: pgVersion(s.PGVersion)}
	now := h.now()
	f, p, err := jobs.GatherFacts(ctx, h.store, h.svc.Windows(), s, now)
	if err != nil {
		return sum, err
	}
	hv := health.Of(f, now, p)
	rememberHealth(ctx, s.ID, hv)
	sum.Health = healthVM(hv)
	limit := 1
	if full {
		limit = chartBackups
	}
	newest, err := h.store.Backups(ctx, store.BackupFilter{SourceID: s.ID, States: []store.BackupState{store.BackupComplete}, Limit: limit})
	if err != nil {
		return sum, err
	}
	if len(newest) > 0 {
		r := backupRow(newest[0], s.Name)
		sum.LastComplete = &r
	}
	if la := f.LastAttempt; la != nil {
		if sum.LastComplete != nil && la.ID == sum.LastComplete.ID {
			sum.LastAttempt = sum.LastComplete
		} else if b, err := h.store.Backup(ctx, la.ID); err == nil {
			r := backupRow(b, s.Name)
			sum.LastAttempt = &r
		} else if !isNotFound(err) {
			return sum, err
		}
	}
	if sum.ActiveJob, err = h.activeJob(ctx, s.ID); err != nil {
		return sum, err
	}
	w, unknown, err := h.keptWindow(ctx, s)
	if err != nil {
		return sum, err
	}
	sum.EarliestRestorable, sum.LatestRestorable = w.Earliest, w.Latest
	sum.Window = windowStateVM(w, unknown)
	sum.Lag = lagVM(f.Archiver, p)
	if sum.Lag == nil {
		// No archiver has run: say when WAL last arrived (wal-push), from the newest row.
		if wf, err := h.store.LatestWAL(ctx, s.ID); err == nil {
			sum.WALArchivedAt = wf.ArchivedAt
		} else if !isNotFound(err) {
			return sum, err
		}
	}
	if !full {
		return sum, nil
	}
	answer := restoreAnswer(hv, w, unknown)
	sum.Restore = &answer
	if err := h.withDrills(ctx, &sum, f); err != nil {
		return sum, err
	}
	if err := h.withVerification(ctx, &sum, f); err != nil {
		return sum, err
	}
	sum.Charts, err = h.charts(ctx, s, newest)
	return sum, err
}

// sourceSummaries summarizes every source, as the overview shows them.
func (h *Handler) sourceSummaries(ctx context.Context) ([]web.SourceSummary, error) {
	return h.summaries(ctx, true)
}

func (h *Handler) summaries(ctx context.Context, full bool) ([]web.SourceSummary, error) {
	srcs, err := h.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]web.SourceSummary, 0, len(srcs))
	for _, s := range srcs {
		sum, err := h.summarize(ctx, s, full)
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// keptWindow is s's restorable window as the pages show it: the last one computed in the
// background, or unknown (and no error) while none is.
func (h *Handler) keptWindow(ctx context.Context, s store.Source) (w jobs.Window, unknown bool, err error) {
	w, err = h.svc.RestorableWindow(ctx, s)
	if errors.Is(err, jobs.ErrWindowUnknown) {
		return jobs.Window{}, true, nil
	}
	return w, false, err
}

func windowStateVM(w jobs.Window, unknown bool) web.WindowStateVM {
	return web.WindowStateVM{Unknown: unknown, ComputedAt: w.ComputedAt}
}
