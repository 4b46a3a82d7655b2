package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
)

// SourceFacts gathers from the catalog what health needs to judge src: its newest
// backups and its archiver's state.
func SourceFacts(ctx context.Context, st *store.Store, src store.Source, now time.Time) (health.Facts, error) {
	var f health.Facts
	if b, err := st.LatestBackup(ctx, src.ID, store.BackupComplete); err == nil {
		f.LastComplete = healthBackup(b)
	} else if !errors.Is(err, store.ErrNotFound) {
		return f, err
	}
	if b, err := st.LatestBackup(ctx, src.ID, ""); err == nil {
		f.LastAttempt = healthBackup(b)
	} else if !errors.Is(err, store.ErrNotFound) {
		return f, err
	}
	a, err := st.ArchiverState(ctx, src.ID)
	switch {
	case err == nil:
		f.Archiver = HealthArchiver(a, now)
	case !errors.Is(err, store.ErrNotFound):
		return f, err
	}
	return f, nil
}

// SourceHealth is the health of src now, as every page, the CLI and /metrics show it: from
// the same facts and thresholds as the alerts (GatherFacts; windows may be nil to leave
// out what needs the window), except the lag measured from the source and the WAL rate,
// which only the evaluator watches.
func SourceHealth(ctx context.Context, st *store.Store, windows *WindowCache, src store.Source, now time.Time) (health.Health, error) {
	f, p, err := GatherFacts(ctx, st, windows, src, now)
	if err != nil {
		return health.Health{}, err
	}
	return health.Of(f, now, p), nil
}

// HealthArchiver turns the archiver's saved state into health's facts.
func HealthArchiver(a store.ArchiverState, now time.Time) *health.Archiver {
	h := &health.Archiver{State: string(a.State), Since: a.Since, Reason: a.Reason, Cause: a.Cause,
		BehindBytes: a.BehindBytes, BehindSeconds: a.BehindSeconds(now), SlotWALStatus: a.SlotWALStatus,
		SlotRetainedBytes: a.SlotRetainedBytes, UpdatedAt: a.UpdatedAt}
	if a.GapAt != nil {
		h.GapAt = *a.GapAt
	}
	if a.NeedsBackupSince != nil {
		h.NeedsBackupSince = *a.NeedsBackupSince
	}
	return h
}

func healthBackup(b store.Backup) *health.Backup {
	h := &health.Backup{ID: b.ID, State: string(b.State), StartedAt: b.StartedAt}
	if b.FinishedAt != nil {
		h.FinishedAt = *b.FinishedAt
	}
	return h
}
