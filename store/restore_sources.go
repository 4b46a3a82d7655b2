package store

import (
	"context"
	"database/sql"
	"fmt"
)

// RestoreScope is which sources a user may restore, when their role lets them restore at
// all. Admins restore every source whatever their scope says.
type RestoreScope struct {
	// Limited is false when the user may restore every source, present and future.
	Limited bool
	// SourceIDs are the sources a limited user may restore; none means no source.
	SourceIDs []int64
}

// Allows reports whether the scope lets its user restore source sourceID.
func (sc RestoreScope) Allows(sourceID int64) bool {
	if !sc.Limited {
		return true
	}
	for _, id := range sc.SourceIDs {
		if id == sourceID {
			return true
		}
	}
	return false
}

// RestoreScope returns which sources user userID may restore.
func (s *Store) RestoreScope(ctx context.Context, userID int64) (RestoreScope, error) {
	var sc RestoreScope
	if err := s.db.QueryRowContext(ctx, `SELECT restore_limited FROM users WHERE id = ?`, userID).Scan(&sc.Limited); err != nil {
		if err == sql.ErrNoRows {
			return RestoreScope{}, fmt.Errorf("restore scope: user %d: %w", userID, ErrNotFound)
		}
		return RestoreScope{}, fmt.Errorf("restore scope: %w", err)
	}
	scan := func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}
	ids, err := queryAll(ctx, s.db, scan, `SELECT source_id FROM user_restore_sources WHERE user_id = ? ORDER BY source_id`, userID)
	if err != nil {
		return RestoreScope{}, fmt.Errorf("restore scope: %w", err)
	}
	if sc.Limited {
		sc.SourceIDs = ids
	}
	return sc, nil
}

// SetRestoreScope replaces which sources user userID may restore. A source that does not
// exist is ErrNotFound, and nothing changes.
func (s *Store) SetRestoreScope(ctx context.Context, userID int64, sc RestoreScope) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET restore_limited = ? WHERE id = ?`, sc.Limited, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("user %d: %w", userID, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_restore_sources WHERE user_id = ?`, userID); err != nil {
			return err
		}
		if !sc.Limited {
			return nil
		}
		for _, id := range sc.SourceIDs {
			_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO user_restore_sources (user_id, source_id) VALUES (?, ?)`, userID, id)
			if isForeignKey(err) {
				return fmt.Errorf("source %d: %w", id, ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set restore scope: %w", err)
	}
	return nil
}
