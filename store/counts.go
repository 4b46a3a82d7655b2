package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Counts for /metrics, which is read every few seconds: each is one aggregate query, so a
// scrape costs the same with ten backups or ten thousand.

// BackupCount is the number of backups of one source in one state.
type BackupCount struct {
	SourceID int64
	State    BackupState
	N        int
}

// BackupCounts returns the number of backups of every source by state; states a source
// has no backup in are left out.
func (s *Store) BackupCounts(ctx context.Context) ([]BackupCount, error) {
	out, err := queryAll(ctx, s.db, func(r rowScanner) (BackupCount, error) {
		var c BackupCount
		return c, r.Scan(&c.SourceID, &c.State, &c.N)
	}, `SELECT source_id, state, count(*) FROM backups GROUP BY source_id, state ORDER BY source_id, state`)
	if err != nil {
		return nil, fmt.Errorf("backup counts: %w", err)
	}
	return out, nil
}

// JobCount is the number of jobs of one kind in one state.
type JobCount struct {
	Kind  string
	State JobState
	N     int
}

// JobCounts returns the number of jobs by kind and state; pairs with no job are left out.
func (s *Store) JobCounts(ctx context.Context) ([]JobCount, error) {
	out, err := queryAll(ctx, s.db, func(r rowScanner) (JobCount, error) {
		var c JobCount
		return c, r.Scan(&c.Kind, &c.State, &c.N)
	}, `SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state`)
	if err != nil {
		return nil, fmt.Errorf("job counts: %w", err)
	}
	return out, nil
}

// LatestStorageSample returns the newest sample of the repository's size; ErrNotFound
// when none was taken.
func (s *Store) LatestStorageSample(ctx context.Context) (StorageSample, error) {
	var x StorageSample
	err := s.db.QueryRowContext(ctx, `SELECT at, packs, bytes, dead_bytes FROM storage_samples ORDER BY at DESC LIMIT 1`).
		Scan(scanTime(&x.At), &x.Packs, &x.Bytes, &x.DeadBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return StorageSample{}, fmt.Errorf("latest storage sample: %w", ErrNotFound)
	}
	if err != nil {
		return StorageSample{}, fmt.Errorf("latest storage sample: %w", err)
	}
	return x, nil
}
