package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ImportedSource is a source read back from the repository by a catalog rebuild.
type ImportedSource struct {
	SourceParams
	CreatedAt time.Time
	UpdatedAt time.Time
	// RemovedAt is when it was removed, nil for an active source.
	RemovedAt *time.Time
}

// ImportSource records a source read back from the repository, with its original times
// and, for a removed source, its removal. A name already in use is a *ValidationError.
func (s *Store) ImportSource(ctx context.Context, p ImportedSource) (Source, error) {
	if err := p.validate(); err != nil {
		return Source{}, fmt.Errorf("import source: %w", err)
	}
	if p.CreatedAt.IsZero() {
		return Source{}, fmt.Errorf("import source: %w", invalid("created_at", "is required"))
	}
	if p.UpdatedAt.Before(p.CreatedAt) {
		p.UpdatedAt = p.CreatedAt
	}
	dsn, err := s.sealDSN(p.Name, p.DSN)
	if err != nil {
		return Source{}, fmt.Errorf("import source: %w", err)
	}
	var removed any
	if p.RemovedAt != nil {
		removed = formatTime(*p.RemovedAt)
	}
	src, err := s.scanSource(s.wdb.QueryRowContext(ctx, `
		INSERT INTO sources (name, dsn, system_identifier, pg_version, timeline, data_checksums, created_at, updated_at, removed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+sourceColumns,
		p.Name, dsn, p.SystemIdentifier, p.PGVersion, nullIfZero(p.Timeline), p.DataChecksums,
		formatTime(p.CreatedAt), formatTime(p.UpdatedAt), removed))
	if isUnique(err, "sources.name") {
		return Source{}, fmt.Errorf("import source: %w", sourceNameTaken(p.Name))
	}
	if err != nil {
		return Source{}, fmt.Errorf("import source: %w", err)
	}
	return src, nil
}

// ImportedBackup is a complete backup read back from its manifest by a catalog rebuild.
type ImportedBackup struct {
	SourceID   int64
	RepoID     string
	Label      string
	StartedAt  time.Time
	FinishedAt time.Time
	// StartLSN and EndLSN are required.
	StartLSN         string
	EndLSN           string
	Timeline         int64
	PGVersion        int
	SystemIdentifier string
	Stats            BackupStats
	Files            []BackupFile
}

// ImportBackup records a complete backup read back from the repository, with its file
// list, in one transaction. It has no job. A repository id already in the catalog is
// ErrConflict.
func (s *Store) ImportBackup(ctx context.Context, p ImportedBackup) (Backup, error) {
	switch {
	case p.RepoID == "":
		return Backup{}, fmt.Errorf("import backup: %w", invalid("repo_id", "is required"))
	case p.StartLSN == "" || p.EndLSN == "":
		return Backup{}, fmt.Errorf("import backup %s: %w", p.RepoID, invalid("end_lsn", "start and end LSN are required"))
	case p.StartedAt.IsZero():
		return Backup{}, fmt.Errorf("import backup %s: %w", p.RepoID, invalid("started_at", "is required"))
	}
	var finished any
	if !p.FinishedAt.IsZero() {
		finished = formatTime(p.FinishedAt)
	}
	var b Backup
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := sourceExists(ctx, tx, p.SourceID); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRowContext(ctx, `
			INSERT INTO backups (source_id, repo_id, state, label, started_at, finished_at, start_lsn, end_lsn, timeline,
				pg_version, system_identifier, source_bytes, stored_bytes_new, stored_bytes_referenced, wal_bytes,
				wal_stored_bytes_new, file_count, block_count, block_count_new)
			VALUES (?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING id`,
			p.SourceID, p.RepoID, nullIfZero(p.Label), formatTime(p.StartedAt), finished, p.StartLSN, p.EndLSN,
			nullIfZero(p.Timeline), nullIfZero(p.PGVersion), nullIfZero(p.SystemIdentifier),
			p.Stats.SourceBytes, p.Stats.StoredBytesNew, p.Stats.StoredBytesReferenced, p.Stats.WALBytes,
			p.Stats.WALStoredBytesNew, p.Stats.FileCount, p.Stats.BlockCount, p.Stats.BlockCountNew).Scan(&id)
		if isUnique(err, "backups.repo_id") {
			return fmt.Errorf("repository id %q is already in the catalog: %w", p.RepoID, ErrConflict)
		}
		if err != nil {
			return err
		}
		if err := insertBackupFiles(ctx, tx, id, p.Files); err != nil {
			return err
		}
		b, err = backupByID(ctx, tx, id)
		return err
	})
	if err != nil {
		return Backup{}, fmt.Errorf("import backup %s: %w", p.RepoID, err)
	}
	return b, nil
}

// Empty reports whether the catalog holds no source and no backup, so that a rebuild
// from the repository may fill it.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var held bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sources) OR EXISTS (SELECT 1 FROM backups)`).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("catalog empty: %w", err)
	}
	return !held, nil
}
