package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RemoveSource marks source id removed: it streams no more WAL and takes no backups, while
// its backups and WAL stay listed and restorable. A source with nothing in the catalog is
// deleted outright. It reports whether the row was deleted.
func (s *Store) RemoveSource(ctx context.Context, id int64) (deleted bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM backups WHERE source_id = ?)
			+ (SELECT count(*) FROM wal_files WHERE source_id = ?) + (SELECT count(*) FROM restores WHERE source_id = ?)`,
			id, id, id).Scan(&n)
		if err != nil {
			return err
		}
		if n == 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE id = ?`, id)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 0 {
				return fmt.Errorf("source %d: %w", id, ErrNotFound)
			}
			deleted = true
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE sources SET removed_at = ?, updated_at = ? WHERE id = ? AND removed_at IS NULL`,
			formatTime(s.clock()), formatTime(s.clock()), id)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return fmt.Errorf("source %d: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("remove source: %w", err)
	}
	return deleted, nil
}

// SourceRemovedAt returns when source id was removed, or nil while it is active.
func (s *Store) SourceRemovedAt(ctx context.Context, id int64) (*time.Time, error) {
	var at *time.Time
	err := s.db.QueryRowContext(ctx, `SELECT removed_at FROM sources WHERE id = ?`, id).Scan(scanNullTime(&at))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("source %d: %w", id, err)
	}
	return at, nil
}

// RemovedSourceIDs returns the IDs of removed sources.
func (s *Store) RemovedSourceIDs(ctx context.Context) (map[int64]bool, error) {
	ids, err := queryAll(ctx, s.db, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT id FROM sources WHERE removed_at IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("removed sources: %w", err)
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}
