package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Expiration kinds.
const (
	ExpireBackup = "backup"
	ExpireWAL    = "wal"
)

// Expiration is a backup or WAL file that expiry deleted, and the rule that allowed it.
// Its catalog row is deleted at once; its repository objects when pruning has deleted
// them (DoneAt).
type Expiration struct {
	ID       int64
	SourceID int64
	// Kind is ExpireBackup or ExpireWAL.
	Kind string
	// Name is the backup's manifest id or the WAL file's name in the repository;
	// SystemID the source's system identifier (WAL names are per system).
	Name     string
	SystemID string
	// BackupID is the backup's catalog id (for a backup).
	BackupID int64
	// StartLSN and EndLSN are the backup's or the WAL file's.
	StartLSN, EndLSN string
	// Bytes is the backup's stored size, or the WAL file's.
	Bytes int64
	// Reason says why no rule keeps it, for the audit log and the policy page.
	Reason    string
	JobID     int64
	ExpiredAt time.Time
	DoneAt    *time.Time
}

const expirationColumns = `id, source_id, kind, name, system_id, backup_id, start_lsn, end_lsn, bytes, reason, job_id,
	expired_at, done_at`

func scanExpiration(r rowScanner) (Expiration, error) {
	var x Expiration
	err := r.Scan(&x.ID, &x.SourceID, &x.Kind, &x.Name, &x.SystemID, orZero(&x.BackupID), orZero(&x.StartLSN),
		orZero(&x.EndLSN), &x.Bytes, &x.Reason, orZero(&x.JobID), scanTime(&x.ExpiredAt), scanNullTime(&x.DoneAt))
	return x, err
}

// Expire records that the given backups and WAL files of a source expire and deletes
// their catalog rows, in one transaction, so that no window or plan counts on them from
// then on. Every backup must still be complete and unpinned, and every WAL file still
// recorded: otherwise nothing changes and the error wraps ErrConflict. Pruning deletes
// their objects later (PendingExpirations, FinishExpirations).
func (s *Store) Expire(ctx context.Context, xs []Expiration) error {
	now := formatTime(s.clock())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, x := range xs {
			switch x.Kind {
			case ExpireBackup:
				b, err := backupByID(ctx, tx, x.BackupID)
				if err != nil {
					return err
				}
				if b.State != BackupComplete || b.RepoID != x.Name || b.SourceID != x.SourceID {
					return fmt.Errorf("backup %d is %s: %w", b.ID, b.State, ErrConflict)
				}
				if b.Pin != nil {
					return fmt.Errorf("backup %d was pinned by %s: %w", b.ID, b.Pin.By, ErrConflict)
				}
				if _, err := tx.ExecContext(ctx, `DELETE FROM backups WHERE id = ?`, b.ID); err != nil {
					return err
				}
			case ExpireWAL:
				res, err := tx.ExecContext(ctx, `DELETE FROM wal_files WHERE source_id = ? AND name = ?`, x.SourceID, x.Name)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 1 {
					return fmt.Errorf("WAL file %s is no longer recorded: %w", x.Name, ErrConflict)
				}
			default:
				return fmt.Errorf("expiration of a %q", x.Kind)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO expirations
				(source_id, kind, name, system_id, backup_id, start_lsn, end_lsn, bytes, reason, job_id, expired_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (kind, system_id, name) DO UPDATE SET done_at = NULL, expired_at = excluded.expired_at,
					reason = excluded.reason, job_id = excluded.job_id`,
				x.SourceID, x.Kind, x.Name, x.SystemID, nullID(x.BackupID), nullString(x.StartLSN), nullString(x.EndLSN),
				x.Bytes, x.Reason, nullID(x.JobID), now)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("expire: %w", err)
	}
	return nil
}

// PendingExpirations returns the expirations whose repository objects pruning has not yet
// confirmed deleted.
func (s *Store) PendingExpirations(ctx context.Context) ([]Expiration, error) {
	xs, err := queryAll(ctx, s.db, scanExpiration, `SELECT `+expirationColumns+` FROM expirations
		WHERE done_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("pending expirations: %w", err)
	}
	return xs, nil
}

// FinishExpirations records that pruning deleted the objects of expirations ids.
func (s *Store) FinishExpirations(ctx context.Context, ids []int64) error {
	now := formatTime(s.clock())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE expirations SET done_at = ? WHERE id = ? AND done_at IS NULL`, now, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish expirations: %w", err)
	}
	return nil
}

// Expirations returns source sourceID's expired backups (kind ExpireBackup), newest
// first, at most limit.
func (s *Store) Expirations(ctx context.Context, sourceID int64, kind string, limit int) ([]Expiration, error) {
	xs, err := queryAll(ctx, s.db, scanExpiration, `SELECT `+expirationColumns+` FROM expirations
		WHERE source_id = ? AND kind = ? ORDER BY id DESC LIMIT ?`, sourceID, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("expirations of source %d: %w", sourceID, err)
	}
	return xs, nil
}

// PinBackup pins complete backup id (legal hold): expiry never deletes it. Pinning a
// pinned backup replaces the note.
func (s *Store) PinBackup(ctx context.Context, id int64, by, note string) (Backup, error) {
	var b Backup
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if b, err = backupByID(ctx, tx, id); err != nil {
			return err
		}
		if b.State != BackupComplete {
			return fmt.Errorf("backup %d is %s, not complete: %w", id, b.State, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE backups SET pinned_at = coalesce(pinned_at, ?), pinned_by = coalesce(pinned_by, ?), pin_note = ?
			WHERE id = ?`, formatTime(s.clock()), by, nullString(note), id); err != nil {
			return err
		}
		b, err = backupByID(ctx, tx, id)
		return err
	})
	if err != nil {
		return Backup{}, fmt.Errorf("pin backup %d: %w", id, err)
	}
	return b, nil
}

// UnpinBackup removes backup id's pin; expiry may then delete it.
func (s *Store) UnpinBackup(ctx context.Context, id int64) (Backup, error) {
	var b Backup
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE backups SET pinned_at = NULL, pinned_by = NULL, pin_note = NULL WHERE id = ?`, id); err != nil {
			return err
		}
		var err error
		b, err = backupByID(ctx, tx, id)
		return err
	})
	if err != nil {
		return Backup{}, fmt.Errorf("unpin backup %d: %w", id, err)
	}
	return b, nil
}

// StorageSample is the repository's size at a moment.
type StorageSample struct {
	At    time.Time
	Packs int64
	Bytes int64
	// DeadBytes is what tombstoned packs still hold.
	DeadBytes int64
}

// RecordStorageSample stores x (at now when x.At is zero).
func (s *Store) RecordStorageSample(ctx context.Context, x StorageSample) error {
	if x.At.IsZero() {
		x.At = s.clock()
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO storage_samples (at, packs, bytes, dead_bytes) VALUES (?, ?, ?, ?)
		ON CONFLICT (at) DO NOTHING`, formatTime(x.At), x.Packs, x.Bytes, x.DeadBytes); err != nil {
		return fmt.Errorf("record storage sample: %w", err)
	}
	return nil
}

// StorageSamples returns the samples taken at or after since, oldest first.
func (s *Store) StorageSamples(ctx context.Context, since time.Time) ([]StorageSample, error) {
	xs, err := queryAll(ctx, s.db, func(r rowScanner) (StorageSample, error) {
		var x StorageSample
		err := r.Scan(scanTime(&x.At), &x.Packs, &x.Bytes, &x.DeadBytes)
		return x, err
	}, `SELECT at, packs, bytes, dead_bytes FROM storage_samples WHERE at >= ? ORDER BY at`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("storage samples: %w", err)
	}
	return xs, nil
}
