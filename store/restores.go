package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RestoreState is where a restored instance is in its life.
type RestoreState string

// Restore states.
const (
	RestoreRestoring RestoreState = "restoring" // the restore job is writing or replaying
	RestoreRunning   RestoreState = "running"   // the instance accepts connections
	RestoreStopped   RestoreState = "stopped"   // the instance was stopped; it can be started again
	RestoreReady     RestoreState = "ready"     // a data directory only, never started by Backstop
	RestoreFailed    RestoreState = "failed"    // the restore did not complete
	// RestoreInterrupted is a restore whose process died before it ended.
	RestoreInterrupted RestoreState = "interrupted"
	RestoreDeleted     RestoreState = "deleted" // the data directory was removed
)

// Restore is what a point-in-time restore produced: a data directory, and an instance on
// it when one was started.
type Restore struct {
	ID       int64
	SourceID int64
	JobID    int64 // 0 when unknown
	BackupID int64 // 0 when unknown
	// Target is the normalized target: "latest", "immediate", "time …", "lsn …", "name …".
	Target  string
	DataDir string
	// Port is the instance's TCP port on 127.0.0.1; 0 for a directory only.
	Port    int
	PGMajor int
	State   RestoreState
	// StopLine is the server's log line saying where replay stopped, when it said.
	StopLine     string
	LastCommitAt *time.Time
	Error        string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Marker is the token in the marker file of the data directory Backstop claimed for
	// this restore; "" for restores made before markers existed, never removed.
	Marker string
	// CreatedDir says the restore created its data directory, so Delete may remove it
	// whole; otherwise only what the restore wrote into it goes.
	CreatedDir bool
}

// RestoreParams describe a restore that is starting.
type RestoreParams struct {
	SourceID, JobID, BackupID int64
	Target                    string
	DataDir                   string
	Port                      int
	PGMajor                   int
	// Marker is the token the restore writes into the directory it claims.
	Marker string
}

// RestoreUpdate changes a restore; zero fields are left as they are.
type RestoreUpdate struct {
	State        RestoreState
	BackupID     int64
	StopLine     string
	LastCommitAt time.Time
	Error        string
	// CreatedDir records that the restore created its data directory.
	CreatedDir bool
}

const restoreColumns = `id, source_id, job_id, backup_id, target, data_dir, port, pg_major, state, stop_line,
	last_commit_at, error, created_at, updated_at, marker, created_dir`

func scanRestore(r rowScanner) (Restore, error) {
	var x Restore
	err := r.Scan(&x.ID, &x.SourceID, orZero(&x.JobID), orZero(&x.BackupID), &x.Target, &x.DataDir, orZero(&x.Port),
		&x.PGMajor, &x.State, orZero(&x.StopLine), scanNullTime(&x.LastCommitAt), orZero(&x.Error),
		scanTime(&x.CreatedAt), scanTime(&x.UpdatedAt), orZero(&x.Marker), &x.CreatedDir)
	return x, err
}

// CreateRestore records a restore that is starting, in state restoring. A live restore
// (not deleted) with the same data directory, or an instance on the same port, is a
// *ValidationError on "dir" or "port".
func (s *Store) CreateRestore(ctx context.Context, p RestoreParams) (Restore, error) {
	now := formatTime(s.clock())
	x, err := scanRestore(s.wdb.QueryRowContext(ctx, `
		INSERT INTO restores (source_id, job_id, backup_id, target, data_dir, port, pg_major, state, created_at, updated_at, marker)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'restoring', ?, ?, ?)
		RETURNING `+restoreColumns,
		p.SourceID, nullIfZero(p.JobID), nullIfZero(p.BackupID), p.Target, p.DataDir, nullIfZero(p.Port), p.PGMajor, now, now,
		nullIfZero(p.Marker)))
	switch {
	case isUnique(err, "restores.data_dir"):
		return Restore{}, fmt.Errorf("create restore: %w", invalid("dir", "restore %s is already in that directory", p.DataDir))
	case isUnique(err, "restores.port"):
		return Restore{}, fmt.Errorf("create restore: %w", invalid("port", "a restored instance already uses port %d", p.Port))
	case err != nil:
		return Restore{}, fmt.Errorf("create restore: %w", err)
	}
	return x, nil
}

// Restore returns the restore with the given id.
func (s *Store) Restore(ctx context.Context, id int64) (Restore, error) {
	x, err := scanRestore(s.db.QueryRowContext(ctx, `SELECT `+restoreColumns+` FROM restores WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Restore{}, fmt.Errorf("restore %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Restore{}, fmt.Errorf("restore %d: %w", id, err)
	}
	return x, nil
}

// RestoreByJob returns the restore that job made.
func (s *Store) RestoreByJob(ctx context.Context, jobID int64) (Restore, error) {
	x, err := scanRestore(s.db.QueryRowContext(ctx, `SELECT `+restoreColumns+` FROM restores WHERE job_id = ?`, jobID))
	if errors.Is(err, sql.ErrNoRows) {
		return Restore{}, fmt.Errorf("restore of job %d: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return Restore{}, fmt.Errorf("restore of job %d: %w", jobID, err)
	}
	return x, nil
}

// Restores returns every restore, newest first; deleted ones only with withDeleted.
func (s *Store) Restores(ctx context.Context, withDeleted bool) ([]Restore, error) {
	q := `SELECT ` + restoreColumns + ` FROM restores`
	if !withDeleted {
		q += ` WHERE state <> 'deleted'`
	}
	xs, err := queryAll(ctx, s.db, scanRestore, q+` ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("restores: %w", err)
	}
	return xs, nil
}

// UpdateRestore applies u to restore id.
func (s *Store) UpdateRestore(ctx context.Context, id int64, u RestoreUpdate) (Restore, error) {
	var last any
	if !u.LastCommitAt.IsZero() {
		last = formatTime(u.LastCommitAt)
	}
	x, err := scanRestore(s.wdb.QueryRowContext(ctx, `
		UPDATE restores SET
			state = coalesce(?, state), backup_id = coalesce(?, backup_id), stop_line = coalesce(?, stop_line),
			last_commit_at = coalesce(?, last_commit_at), error = coalesce(?, error), updated_at = ?,
			created_dir = max(created_dir, ?)
		WHERE id = ?
		RETURNING `+restoreColumns,
		nullIfZero(string(u.State)), nullIfZero(u.BackupID), nullIfZero(u.StopLine), last, nullIfZero(u.Error),
		formatTime(s.clock()), u.CreatedDir, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Restore{}, fmt.Errorf("update restore %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Restore{}, fmt.Errorf("update restore %d: %w", id, err)
	}
	return x, nil
}

// OrphanedRestores returns the restores still marked restoring whose job has ended or is
// gone: the process that ran them died (or ended without saying), so nobody will finish
// them.
func (s *Store) OrphanedRestores(ctx context.Context) ([]Restore, error) {
	xs, err := queryAll(ctx, s.db, scanRestore, `SELECT `+restoreColumns+` FROM restores
		WHERE state = 'restoring'
		  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = restores.job_id AND j.state IN ('queued', 'running'))
		ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("orphaned restores: %w", err)
	}
	return xs, nil
}
