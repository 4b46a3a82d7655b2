package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Drill is a restore drill: a restore of a source to a random second of its window into a
// sandbox, checked and torn down, proving that second restorable and how long it took.
type Drill struct {
	ID       int64
	SourceID int64
	JobID    int64
	// State is running, passed or failed.
	State      string
	TargetAt   time.Time
	BackupID   int64
	StartedAt  time.Time
	FinishedAt *time.Time
	// RTO is the time from the start to a restored instance that passed its checks.
	RTO          time.Duration
	LastCommitAt *time.Time
	// Tables are the row counts of every table, by "database.schema.table".
	Tables map[string]int64
	// Checks say what was checked, in words, in order.
	Checks []string
	Error  string
}

// Drill states.
const (
	DrillRunning = "running"
	DrillPassed  = "passed"
	DrillFailed  = "failed"
)

const drillColumns = `id, source_id, job_id, state, target_at, backup_id, started_at, finished_at, rto_ms, last_commit_at,
	tables, checks, error`

func scanDrill(r rowScanner) (Drill, error) {
	var d Drill
	var rto int64
	var tables, checks string
	err := r.Scan(&d.ID, &d.SourceID, orZero(&d.JobID), &d.State, scanTime(&d.TargetAt), orZero(&d.BackupID),
		scanTime(&d.StartedAt), scanNullTime(&d.FinishedAt), orZero(&rto), scanNullTime(&d.LastCommitAt), orZero(&tables),
		orZero(&checks), orZero(&d.Error))
	d.RTO = time.Duration(rto) * time.Millisecond
	if err == nil && tables != "" {
		err = json.Unmarshal([]byte(tables), &d.Tables)
	}
	if err == nil && checks != "" {
		err = json.Unmarshal([]byte(checks), &d.Checks)
	}
	return d, err
}

// StartDrill records a drill that is starting.
func (s *Store) StartDrill(ctx context.Context, sourceID, jobID int64, target time.Time) (Drill, error) {
	var id int64
	err := s.wdb.QueryRowContext(ctx, `INSERT INTO drills (source_id, job_id, state, target_at, started_at)
		VALUES (?, ?, 'running', ?, ?) RETURNING id`, sourceID, nullID(jobID), formatTime(target), formatTime(s.clock())).Scan(&id)
	if err != nil {
		return Drill{}, fmt.Errorf("start drill: %w", err)
	}
	return s.Drill(ctx, id)
}

// FinishDrill records how drill d ended: passed when d.Error is empty.
func (s *Store) FinishDrill(ctx context.Context, d Drill) (Drill, error) {
	state := DrillPassed
	if d.Error != "" {
		state = DrillFailed
	}
	tables, err := json.Marshal(d.Tables)
	if err != nil {
		return Drill{}, err
	}
	checks, err := json.Marshal(d.Checks)
	if err != nil {
		return Drill{}, err
	}
	var lastCommit any
	if d.LastCommitAt != nil {
		lastCommit = formatTime(*d.LastCommitAt)
	}
	var rto any
	if state == DrillPassed {
		rto = d.RTO.Milliseconds()
	}
	_, err = s.wdb.ExecContext(ctx, `UPDATE drills SET state = ?, finished_at = ?, backup_id = (SELECT id FROM backups WHERE id = ?),
		rto_ms = ?, last_commit_at = ?, tables = ?, checks = ?, error = ? WHERE id = ? AND state = 'running'`,
		state, formatTime(s.clock()), nullID(d.BackupID), rto, lastCommit, string(tables), string(checks), nullString(d.Error), d.ID)
	if err != nil {
		return Drill{}, fmt.Errorf("finish drill %d: %w", d.ID, err)
	}
	return s.Drill(ctx, d.ID)
}

// Drill returns drill id.
func (s *Store) Drill(ctx context.Context, id int64) (Drill, error) {
	d, err := scanDrill(s.db.QueryRowContext(ctx, `SELECT `+drillColumns+` FROM drills WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Drill{}, fmt.Errorf("drill %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Drill{}, fmt.Errorf("drill %d: %w", id, err)
	}
	return d, nil
}

// Drills returns source sourceID's newest drills (0: every source's), newest first.
func (s *Store) Drills(ctx context.Context, sourceID int64, limit int) ([]Drill, error) {
	q := `SELECT ` + drillColumns + ` FROM drills`
	var args []any
	if sourceID != 0 {
		q += ` WHERE source_id = ?`
		args = append(args, sourceID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	ds, err := queryAll(ctx, s.db, scanDrill, q, args...)
	if err != nil {
		return nil, fmt.Errorf("drills: %w", err)
	}
	return ds, nil
}

// LatestDrill returns source sourceID's newest finished drill, or, with passed, its newest
// passing one; ErrNotFound when there is none.
func (s *Store) LatestDrill(ctx context.Context, sourceID int64, passed bool) (Drill, error) {
	q := `SELECT ` + drillColumns + ` FROM drills WHERE source_id = ? AND state <> 'running'`
	if passed {
		q += ` AND state = 'passed'`
	}
	d, err := scanDrill(s.db.QueryRowContext(ctx, q+` ORDER BY id DESC LIMIT 1`, sourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Drill{}, fmt.Errorf("latest drill of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return Drill{}, fmt.Errorf("latest drill of source %d: %w", sourceID, err)
	}
	return d, nil
}
