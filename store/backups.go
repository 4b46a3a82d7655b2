package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BackupState is where a backup is in its life.
type BackupState string

// Backup states. Only a complete backup can be restored.
const (
	BackupRunning     BackupState = "running"
	BackupComplete    BackupState = "complete"
	BackupFailed      BackupState = "failed"
	BackupCancelled   BackupState = "cancelled"
	BackupInterrupted BackupState = "interrupted"
)

// Backup is a base backup of a source, stored in the repository.
type Backup struct {
	ID       int64
	SourceID int64
	// JobID is the job that took the backup, 0 when unknown (the job was
	// pruned, or the catalog was rebuilt from the repository).
	JobID int64
	// RepoID is the manifest id in the repository, such as
	// "20261125T094735Z-3fa2c1d0".
	RepoID     string
	State      BackupState
	Label      string
	StartedAt  time.Time
	FinishedAt *time.Time
	// StartLSN and EndLSN are in PostgreSQL's text form, such as
	// "0/3A000028"; empty until known.
	StartLSN         string
	EndLSN           string
	Timeline         int64
	PGVersion        int
	SystemIdentifier string
	// The statistics below are 0 until the backup completes.
	Stats BackupStats
	// Error says why the backup failed, was cancelled or interrupted.
	Error string
	// Pin is set while the backup is pinned (legal hold): expiry never deletes it.
	Pin *Pin
	// VerifiedAt is when a verification last read the backup whole; VerifyState what it
	// found: "ok", "corrupt", or "" while never verified.
	VerifiedAt  *time.Time
	VerifyState string
}

// Pin is who pinned a backup, when and why.
type Pin struct {
	At   time.Time
	By   string
	Note string
}

// BackupStats are the sizes and counts of a completed backup.
type BackupStats struct {
	// SourceBytes is the size of the data directory read.
	SourceBytes int64
	// StoredBytesNew is what the backup added to the repository.
	StoredBytesNew int64
	// StoredBytesReferenced is what it reuses of earlier backups.
	StoredBytesReferenced int64
	// WALBytes is the WAL needed to make the backup consistent.
	WALBytes          int64
	WALStoredBytesNew int64
	FileCount         int64
	BlockCount        int64
	BlockCountNew     int64
}

// BackupFile is one entry of a backup's file list.
type BackupFile struct {
	// Path is relative to the data directory.
	Path string
	// Type is the kind of entry, such as "file", "dir" or "symlink".
	Type string
	// Mode is the permission bits, as in a tar header.
	Mode   int64
	Size   int64
	Blocks int64
}

// BackupParams describe a backup that is starting.
type BackupParams struct {
	SourceID int64
	// JobID is the job taking the backup, 0 for none.
	JobID  int64
	RepoID string
	Label  string
	// StartedAt defaults to now.
	StartedAt        time.Time
	StartLSN         string
	Timeline         int64
	PGVersion        int
	SystemIdentifier string
}

// BackupCompletion is what is known once a backup is durable in the
// repository.
type BackupCompletion struct {
	// StartLSN, Timeline, PGVersion and SystemIdentifier replace the values
	// given at creation when not zero.
	StartLSN         string
	EndLSN           string
	Timeline         int64
	PGVersion        int
	SystemIdentifier string
	Stats            BackupStats
	Files            []BackupFile
}

// BackupFilter selects backups. Zero fields select everything.
type BackupFilter struct {
	SourceID int64
	States   []BackupState
	// Limit caps the number of backups returned, 0 for no cap.
	Limit int
}

const backupColumns = `id, source_id, job_id, repo_id, state, label, started_at, finished_at, start_lsn, end_lsn,
	timeline, pg_version, system_identifier, source_bytes, stored_bytes_new, stored_bytes_referenced, wal_bytes,
	wal_stored_bytes_new, file_count, block_count, block_count_new, error, pinned_at, pinned_by, pin_note, verified_at, verify_state`

// scanBackup scans a row of backupColumns.
func scanBackup(r rowScanner) (Backup, error) {
	var b Backup
	var pinnedAt *time.Time
	var pin Pin
	err := r.Scan(&b.ID, &b.SourceID, orZero(&b.JobID), &b.RepoID, &b.State, orZero(&b.Label),
		scanTime(&b.StartedAt), scanNullTime(&b.FinishedAt), orZero(&b.StartLSN), orZero(&b.EndLSN),
		orZero(&b.Timeline), orZero(&b.PGVersion), orZero(&b.SystemIdentifier),
		&b.Stats.SourceBytes, &b.Stats.StoredBytesNew, &b.Stats.StoredBytesReferenced, &b.Stats.WALBytes,
		&b.Stats.WALStoredBytesNew, &b.Stats.FileCount, &b.Stats.BlockCount, &b.Stats.BlockCountNew, orZero(&b.Error),
		scanNullTime(&pinnedAt), orZero(&pin.By), orZero(&pin.Note), scanNullTime(&b.VerifiedAt), orZero(&b.VerifyState))
	if pinnedAt != nil {
		pin.At = *pinnedAt
		b.Pin = &pin
	}
	return b, err
}

// backupByID returns backup id as seen by q.
func backupByID(ctx context.Context, q querier, id int64) (Backup, error) {
	b, err := scanBackup(q.QueryRowContext(ctx, `SELECT `+backupColumns+` FROM backups WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Backup{}, fmt.Errorf("backup %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Backup{}, fmt.Errorf("backup %d: %w", id, err)
	}
	return b, nil
}

// CreateBackup records a backup that is starting, in state running.
func (s *Store) CreateBackup(ctx context.Context, p BackupParams) (Backup, error) {
	if p.RepoID == "" {
		return Backup{}, fmt.Errorf("create backup: %w", invalid("repo_id", "is required"))
	}
	if p.StartedAt.IsZero() {
		p.StartedAt = s.clock()
	}
	var b Backup
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := sourceExists(ctx, tx, p.SourceID); err != nil {
			return err
		}
		if p.JobID != 0 {
			if _, err := jobByID(ctx, tx, p.JobID); err != nil {
				return err
			}
		}
		var err error
		b, err = scanBackup(tx.QueryRowContext(ctx, `
			INSERT INTO backups (source_id, job_id, repo_id, state, label, started_at, start_lsn, timeline, pg_version, system_identifier)
			VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)
			RETURNING `+backupColumns,
			p.SourceID, nullIfZero(p.JobID), p.RepoID, nullIfZero(p.Label), formatTime(p.StartedAt), nullIfZero(p.StartLSN),
			nullIfZero(p.Timeline), nullIfZero(p.PGVersion), nullIfZero(p.SystemIdentifier)))
		if isUnique(err, "backups.repo_id") {
			return fmt.Errorf("repository id %q is already in the catalog: %w", p.RepoID, ErrConflict)
		}
		return err
	})
	if err != nil {
		return Backup{}, fmt.Errorf("create backup: %w", err)
	}
	return b, nil
}

// sourceExists returns nil if source id exists, and an error matching
// ErrNotFound otherwise.
func sourceExists(ctx context.Context, q querier, id int64) error {
	var ok bool
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sources WHERE id = ?)`, id).Scan(&ok); err != nil {
		return fmt.Errorf("source %d: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	return nil
}

// Backup returns the backup with the given id.
func (s *Store) Backup(ctx context.Context, id int64) (Backup, error) {
	return backupByID(ctx, s.db, id)
}

// Backups returns the backups that f selects, newest first.
func (s *Store) Backups(ctx context.Context, f BackupFilter) ([]Backup, error) {
	var where []string
	var args []any
	if f.SourceID != 0 {
		where = append(where, `source_id = ?`)
		args = append(args, f.SourceID)
	}
	if len(f.States) > 0 {
		where = append(where, `state IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(f.States))
	}
	query := `SELECT ` + backupColumns + ` FROM backups`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY started_at DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	bs, err := queryAll(ctx, s.db, scanBackup, query, args...)
	if err != nil {
		return nil, fmt.Errorf("backups: %w", err)
	}
	return bs, nil
}

// LatestBackup returns the newest backup of source sourceID in state st
// (in any state when st is empty). ErrNotFound means there is none.
func (s *Store) LatestBackup(ctx context.Context, sourceID int64, st BackupState) (Backup, error) {
	b, err := scanBackup(s.db.QueryRowContext(ctx, `
		SELECT `+backupColumns+` FROM backups
		WHERE source_id = ? AND (? = '' OR state = ?)
		ORDER BY started_at DESC, id DESC
		LIMIT 1`, sourceID, st, st))
	if errors.Is(err, sql.ErrNoRows) {
		return Backup{}, fmt.Errorf("latest backup of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return Backup{}, fmt.Errorf("latest backup of source %d: %w", sourceID, err)
	}
	return b, nil
}

// backupNotRunning returns the error for a change that needs backup id
// running, by looking at its state in tx.
func backupNotRunning(ctx context.Context, tx *sql.Tx, id int64) error {
	b, err := backupByID(ctx, tx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("backup %d is %s, not running: %w", id, b.State, ErrConflict)
}

// CompleteBackup records running backup id as complete, with its file list
// and statistics, in one transaction. A backup that is not running is
// ErrConflict.
func (s *Store) CompleteBackup(ctx context.Context, id int64, c BackupCompletion) error {
	if c.EndLSN == "" {
		return fmt.Errorf("complete backup %d: %w", id, invalid("end_lsn", "is required"))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		b, err := backupByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if b.State != BackupRunning {
			return fmt.Errorf("backup %d is %s, not running: %w", id, b.State, ErrConflict)
		}
		if b.StartLSN == "" && c.StartLSN == "" {
			return invalid("start_lsn", "is required")
		}
		_, err = tx.ExecContext(ctx, `
			UPDATE backups
			SET state = 'complete', finished_at = ?,
				start_lsn = coalesce(?, start_lsn), end_lsn = ?, timeline = coalesce(?, timeline),
				pg_version = coalesce(?, pg_version), system_identifier = coalesce(?, system_identifier),
				source_bytes = ?, stored_bytes_new = ?, stored_bytes_referenced = ?, wal_bytes = ?,
				wal_stored_bytes_new = ?, file_count = ?, block_count = ?, block_count_new = ?
			WHERE id = ?`,
			formatTime(s.clock()),
			nullIfZero(c.StartLSN), c.EndLSN, nullIfZero(c.Timeline), nullIfZero(c.PGVersion), nullIfZero(c.SystemIdentifier),
			c.Stats.SourceBytes, c.Stats.StoredBytesNew, c.Stats.StoredBytesReferenced, c.Stats.WALBytes,
			c.Stats.WALStoredBytesNew, c.Stats.FileCount, c.Stats.BlockCount, c.Stats.BlockCountNew,
			id)
		if err != nil {
			return err
		}
		if err := insertBackupFiles(ctx, tx, id, c.Files); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("complete backup %d: %w", id, err)
	}
	return nil
}

// FailBackup ends running backup id in state st (failed, cancelled or
// interrupted), with errText saying why. A backup that is not running is
// ErrConflict.
func (s *Store) FailBackup(ctx context.Context, id int64, st BackupState, errText string) error {
	if st != BackupFailed && st != BackupCancelled && st != BackupInterrupted {
		return fmt.Errorf("fail backup %d: %w", id, invalid("state", "must be %s, %s or %s, not %q",
			BackupFailed, BackupCancelled, BackupInterrupted, st))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE backups SET state = ?, error = ?, finished_at = ?
			WHERE id = ? AND state = 'running'`,
			st, nullIfZero(errText), formatTime(s.clock()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return backupNotRunning(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("fail backup %d: %w", id, err)
	}
	return nil
}

// BackupFiles returns the file list of backup backupID by path, limit
// entries (0 for all) from offset.
func (s *Store) BackupFiles(ctx context.Context, backupID int64, limit, offset int) ([]BackupFile, error) {
	query := `SELECT path, type, mode, size, blocks FROM backup_files WHERE backup_id = ? ORDER BY path LIMIT ? OFFSET ?`
	if limit <= 0 {
		limit = -1 // no limit
	}
	files, err := queryAll(ctx, s.db, func(r rowScanner) (BackupFile, error) {
		var f BackupFile
		err := r.Scan(&f.Path, &f.Type, &f.Mode, &f.Size, &f.Blocks)
		return f, err
	}, query, backupID, limit, max(offset, 0))
	if err != nil {
		return nil, fmt.Errorf("backup %d files: %w", backupID, err)
	}
	if len(files) == 0 {
		if _, err := backupByID(ctx, s.db, backupID); err != nil {
			return nil, fmt.Errorf("backup files: %w", err)
		}
	}
	return files, nil
}

// insertBackupFiles records the files of backup id; a path listed twice is a
// *ValidationError on "files".
func insertBackupFiles(ctx context.Context, tx *sql.Tx, id int64, files []BackupFile) error {
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO backup_files (backup_id, path, type, mode, size, blocks) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, f := range files {
		_, err := stmt.ExecContext(ctx, id, f.Path, f.Type, f.Mode, f.Size, f.Blocks)
		if isPrimaryKey(err) {
			return invalid("files", "path %q is listed twice", f.Path)
		}
		if err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
	}
	return nil
}
