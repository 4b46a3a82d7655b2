package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// VerifyRun is one verification of a source's backups and WAL (and of the repository's
// packs it read).
type VerifyRun struct {
	ID       int64
	JobID    int64
	SourceID int64 // 0: the whole repository
	Deep     bool
	// State is running, clean, findings or failed (the run could not finish).
	State            string
	StartedAt        time.Time
	FinishedAt       *time.Time
	PacksChecked     int64
	PacksTotal       int64
	BytesRead        int64
	BlobsChecked     int64
	ManifestsChecked int64
	WALChecked       int64
	Cursor           string
	// NextSince is where the next routine run's reading of new packs starts.
	NextSince *time.Time
	Error     string
	// Findings counts the run's findings (filled by the queries that return runs).
	Findings int
}

// Verify run states.
const (
	VerifyRunning  = "running"
	VerifyClean    = "clean"
	VerifyFindings = "findings"
	VerifyFailed   = "failed"
)

// VerifyFinding is one thing a verification found wrong.
type VerifyFinding struct {
	ID       int64
	RunID    int64
	SourceID int64
	BackupID int64 // 0 when it concerns WAL or a pack only
	// Kind is what is wrong: "corrupt-blob", "missing-blob", "wal-gap", …
	Kind   string
	Object string
	Pack   string
	// Path is the file in the backup, or the WAL file's name.
	Path           string
	FromLSN, ToLSN string
	Reason         string
}

const verifyRunColumns = `r.id, r.job_id, r.source_id, r.deep, r.state, r.started_at, r.finished_at, r.packs_checked,
	r.packs_total, r.bytes_read, r.blobs_checked, r.manifests_checked, r.wal_checked, r.cursor, r.next_since, r.error,
	(SELECT count(*) FROM verify_findings f WHERE f.run_id = r.id)`

func scanVerifyRun(r rowScanner) (VerifyRun, error) {
	var v VerifyRun
	err := r.Scan(&v.ID, orZero(&v.JobID), orZero(&v.SourceID), &v.Deep, &v.State, scanTime(&v.StartedAt), scanNullTime(&v.FinishedAt),
		&v.PacksChecked, &v.PacksTotal, &v.BytesRead, &v.BlobsChecked, &v.ManifestsChecked, &v.WALChecked, orZero(&v.Cursor),
		scanNullTime(&v.NextSince), orZero(&v.Error), &v.Findings)
	return v, err
}

// StartVerifyRun records a verification that is starting.
func (s *Store) StartVerifyRun(ctx context.Context, sourceID, jobID int64, deep bool) (VerifyRun, error) {
	var id int64
	err := s.wdb.QueryRowContext(ctx, `INSERT INTO verify_runs (job_id, source_id, deep, state, started_at)
		VALUES (?, ?, ?, 'running', ?) RETURNING id`, nullID(jobID), nullID(sourceID), deep, formatTime(s.clock())).Scan(&id)
	if err != nil {
		return VerifyRun{}, fmt.Errorf("start verify run: %w", err)
	}
	return s.VerifyRun(ctx, id)
}

// FinishVerifyRun records a run's counts and findings, and its state: clean without
// findings, findings with them, failed when errText is not empty. Backups it checked
// whole (checked) are marked verified, ok or corrupt by the findings.
func (s *Store) FinishVerifyRun(ctx context.Context, run VerifyRun, findings []VerifyFinding, checked []int64, errText string) (VerifyRun, error) {
	now := formatTime(s.clock())
	state := VerifyClean
	switch {
	case errText != "":
		state = VerifyFailed
	case len(findings) > 0:
		state = VerifyFindings
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE verify_runs SET state = ?, finished_at = ?, packs_checked = ?, packs_total = ?,
			bytes_read = ?, blobs_checked = ?, manifests_checked = ?, wal_checked = ?, cursor = ?, next_since = ?, error = ? WHERE id = ?`,
			state, now, run.PacksChecked, run.PacksTotal, run.BytesRead, run.BlobsChecked, run.ManifestsChecked, run.WALChecked,
			nullString(run.Cursor), nullTimePtr(run.NextSince), nullString(errText), run.ID); err != nil {
			return err
		}
		corrupt := map[int64]bool{}
		for _, f := range findings {
			if _, err := tx.ExecContext(ctx, `INSERT INTO verify_findings (run_id, source_id, backup_id, kind, object, pack, path,
				from_lsn, to_lsn, reason) SELECT ?, ?, (SELECT id FROM backups WHERE id = ?), ?, ?, ?, ?, ?, ?, ?`,
				run.ID, nullID(f.SourceID), nullID(f.BackupID), f.Kind, f.Object, nullString(f.Pack), nullString(f.Path),
				nullString(f.FromLSN), nullString(f.ToLSN), f.Reason); err != nil {
				return err
			}
			if f.BackupID != 0 {
				corrupt[f.BackupID] = true
			}
		}
		for _, id := range checked {
			st := "ok"
			if corrupt[id] {
				st = "corrupt"
			}
			if _, err := tx.ExecContext(ctx, `UPDATE backups SET verified_at = ?, verify_state = ? WHERE id = ?`, now, st, id); err != nil {
				return err
			}
		}
		for id := range corrupt {
			if _, err := tx.ExecContext(ctx, `UPDATE backups SET verify_state = 'corrupt' WHERE id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return VerifyRun{}, fmt.Errorf("finish verify run %d: %w", run.ID, err)
	}
	return s.VerifyRun(ctx, run.ID)
}

// VerifyRun returns run id.
func (s *Store) VerifyRun(ctx context.Context, id int64) (VerifyRun, error) {
	v, err := scanVerifyRun(s.db.QueryRowContext(ctx, `SELECT `+verifyRunColumns+` FROM verify_runs r WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return VerifyRun{}, fmt.Errorf("verify run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return VerifyRun{}, fmt.Errorf("verify run %d: %w", id, err)
	}
	return v, nil
}

// VerifyRuns returns source sourceID's newest runs (0: every source's), newest first.
func (s *Store) VerifyRuns(ctx context.Context, sourceID int64, limit int) ([]VerifyRun, error) {
	q := `SELECT ` + verifyRunColumns + ` FROM verify_runs r`
	var args []any
	if sourceID != 0 {
		q += ` WHERE r.source_id = ?`
		args = append(args, sourceID)
	}
	q += ` ORDER BY r.id DESC LIMIT ?`
	args = append(args, limit)
	vs, err := queryAll(ctx, s.db, scanVerifyRun, q, args...)
	if err != nil {
		return nil, fmt.Errorf("verify runs: %w", err)
	}
	return vs, nil
}

// LatestVerifyRun returns source sourceID's newest finished run; ErrNotFound when none.
func (s *Store) LatestVerifyRun(ctx context.Context, sourceID int64) (VerifyRun, error) {
	v, err := scanVerifyRun(s.db.QueryRowContext(ctx, `SELECT `+verifyRunColumns+` FROM verify_runs r
		WHERE r.source_id = ? AND r.state <> 'running' ORDER BY r.id DESC LIMIT 1`, sourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return VerifyRun{}, fmt.Errorf("latest verify run of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return VerifyRun{}, fmt.Errorf("latest verify run of source %d: %w", sourceID, err)
	}
	return v, nil
}

// VerifyFindings returns run runID's findings, at most limit.
func (s *Store) VerifyFindings(ctx context.Context, runID int64, limit int) ([]VerifyFinding, error) {
	fs, err := queryAll(ctx, s.db, func(r rowScanner) (VerifyFinding, error) {
		var f VerifyFinding
		err := r.Scan(&f.ID, &f.RunID, orZero(&f.SourceID), orZero(&f.BackupID), &f.Kind, &f.Object, orZero(&f.Pack),
			orZero(&f.Path), orZero(&f.FromLSN), orZero(&f.ToLSN), &f.Reason)
		return f, err
	}, `SELECT id, run_id, source_id, backup_id, kind, object, pack, path, from_lsn, to_lsn, reason FROM verify_findings
		WHERE run_id = ? ORDER BY id LIMIT ?`, runID, limit)
	if err != nil {
		return nil, fmt.Errorf("findings of verify run %d: %w", runID, err)
	}
	return fs, nil
}

func nullTimePtr(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return formatTime(*t)
}
