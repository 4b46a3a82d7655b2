package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ScheduleRun is one run of a source's schedule: when it was due and when it was queued.
type ScheduleRun struct {
	ID       int64
	SourceID int64
	// Kind is what the schedule starts: "backup".
	Kind     string
	DueAt    time.Time
	QueuedAt time.Time
	// Late is true when the run was queued more than a minute after it was due; Missed
	// counts the earlier due times, missed while Backstop was down, folded into it.
	Late   bool
	Missed int
	// JobID is the job queued, 0 when none was (Note says why) or it was pruned.
	JobID int64
	Note  string
}

const scheduleRunColumns = `id, source_id, kind, due_at, queued_at, late, missed, job_id, note`

func scanScheduleRun(r rowScanner) (ScheduleRun, error) {
	var x ScheduleRun
	err := r.Scan(&x.ID, &x.SourceID, &x.Kind, scanTime(&x.DueAt), scanTime(&x.QueuedAt), &x.Late, &x.Missed,
		orZero(&x.JobID), orZero(&x.Note))
	return x, err
}

// LastScheduleRun returns the newest run of source sourceID's schedule of kind; ErrNotFound
// when it never ran.
func (s *Store) LastScheduleRun(ctx context.Context, sourceID int64, kind string) (ScheduleRun, error) {
	x, err := scanScheduleRun(s.db.QueryRowContext(ctx, `SELECT `+scheduleRunColumns+` FROM schedule_runs
		WHERE source_id = ? AND kind = ? ORDER BY due_at DESC LIMIT 1`, sourceID, kind))
	if errors.Is(err, sql.ErrNoRows) {
		return ScheduleRun{}, fmt.Errorf("last %s run of source %d: %w", kind, sourceID, ErrNotFound)
	}
	if err != nil {
		return ScheduleRun{}, fmt.Errorf("last %s run of source %d: %w", kind, sourceID, err)
	}
	return x, nil
}

// ScheduleRuns returns source sourceID's newest schedule runs, newest first, at most limit.
func (s *Store) ScheduleRuns(ctx context.Context, sourceID int64, limit int) ([]ScheduleRun, error) {
	xs, err := queryAll(ctx, s.db, scanScheduleRun, `SELECT `+scheduleRunColumns+` FROM schedule_runs
		WHERE source_id = ? ORDER BY due_at DESC LIMIT ?`, sourceID, limit)
	if err != nil {
		return nil, fmt.Errorf("schedule runs of source %d: %w", sourceID, err)
	}
	return xs, nil
}

// RecordScheduleRun records a run. A run of the same source, kind and due time already
// recorded (by another process sharing the catalog) is ErrConflict: that process ran it.
func (s *Store) RecordScheduleRun(ctx context.Context, x ScheduleRun) (ScheduleRun, error) {
	if x.QueuedAt.IsZero() {
		x.QueuedAt = s.clock()
	}
	out, err := scanScheduleRun(s.wdb.QueryRowContext(ctx, `INSERT INTO schedule_runs
		(source_id, kind, due_at, queued_at, late, missed, job_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+scheduleRunColumns,
		x.SourceID, x.Kind, formatTime(x.DueAt), formatTime(x.QueuedAt), x.Late, x.Missed, nullID(x.JobID), nullString(x.Note)))
	if isUnique(err, "schedule_runs.source_id") {
		return ScheduleRun{}, fmt.Errorf("record %s run of source %d due %s: %w", x.Kind, x.SourceID, formatTime(x.DueAt), ErrConflict)
	}
	if err != nil {
		return ScheduleRun{}, fmt.Errorf("record %s run of source %d: %w", x.Kind, x.SourceID, err)
	}
	return out, nil
}

// SetScheduleRunJob records the job queued for run id, or why none was.
func (s *Store) SetScheduleRunJob(ctx context.Context, id, jobID int64, note string) error {
	if _, err := s.wdb.ExecContext(ctx, `UPDATE schedule_runs SET job_id = ?, note = ? WHERE id = ?`, nullID(jobID), nullString(note), id); err != nil {
		return fmt.Errorf("schedule run %d: %w", id, err)
	}
	return nil
}

// nullID stores 0 as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
