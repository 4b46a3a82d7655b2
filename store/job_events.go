package store

import (
	"context"
	"fmt"
	"time"
)

// EventLevel is the severity of a job event.
type EventLevel string

// Event levels.
const (
	EventInfo  EventLevel = "info"
	EventWarn  EventLevel = "warn"
	EventError EventLevel = "error"
)

// JobEvent is one line of a job's log.
type JobEvent struct {
	ID    int64
	JobID int64
	At    time.Time
	Level EventLevel
	// Phase is the job's phase when the event happened, if any.
	Phase   string
	Message string
}

const jobEventColumns = `id, job_id, at, level, phase, message`

// scanJobEvent scans a row of jobEventColumns.
func scanJobEvent(r rowScanner) (JobEvent, error) {
	var e JobEvent
	err := r.Scan(&e.ID, &e.JobID, scanTime(&e.At), &e.Level, orZero(&e.Phase), &e.Message)
	return e, err
}

// insertJobEvent inserts e, defaulting its time to now and its level to
// info.
func insertJobEvent(ctx context.Context, q querier, e JobEvent) (JobEvent, error) {
	switch e.Level {
	case "":
		e.Level = EventInfo
	case EventInfo, EventWarn, EventError:
	default:
		return JobEvent{}, invalid("level", "must be %s, %s or %s, not %q", EventInfo, EventWarn, EventError, e.Level)
	}
	if e.Message == "" {
		return JobEvent{}, invalid("message", "is required")
	}
	ev, err := scanJobEvent(q.QueryRowContext(ctx, `
		INSERT INTO job_events (job_id, at, level, phase, message) VALUES (?, ?, ?, ?, ?)
		RETURNING `+jobEventColumns,
		e.JobID, formatTime(e.At), e.Level, nullIfZero(e.Phase), e.Message))
	if isForeignKey(err) {
		return JobEvent{}, fmt.Errorf("job %d: %w", e.JobID, ErrNotFound)
	}
	return ev, err
}

// AddJobEvent appends e to the log of job e.JobID and returns it as stored.
// A zero At means now; an empty Level means info.
func (s *Store) AddJobEvent(ctx context.Context, e JobEvent) (JobEvent, error) {
	if e.At.IsZero() {
		e.At = s.clock()
	}
	ev, err := insertJobEvent(ctx, s.wdb, e)
	if err != nil {
		return JobEvent{}, fmt.Errorf("add job event: %w", err)
	}
	return ev, nil
}

// JobEvents returns the events of job jobID after event afterID (0 for all),
// oldest first.
func (s *Store) JobEvents(ctx context.Context, jobID, afterID int64) ([]JobEvent, error) {
	evs, err := queryAll(ctx, s.db, scanJobEvent, `
		SELECT `+jobEventColumns+` FROM job_events WHERE job_id = ? AND id > ? ORDER BY id`, jobID, afterID)
	if err != nil {
		return nil, fmt.Errorf("job %d events: %w", jobID, err)
	}
	if len(evs) == 0 {
		if _, err := jobByID(ctx, s.db, jobID); err != nil {
			return nil, fmt.Errorf("job events: %w", err)
		}
	}
	return evs, nil
}
