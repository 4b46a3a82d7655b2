package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// JobState is where a job is in its life.
type JobState string

// Job states. Queued and running are active; the others are final.
const (
	JobQueued      JobState = "queued"
	JobRunning     JobState = "running"
	JobSucceeded   JobState = "succeeded"
	JobFailed      JobState = "failed"
	JobCancelled   JobState = "cancelled"
	JobInterrupted JobState = "interrupted"
)

// Final reports whether a job in state st is over.
func (st JobState) Final() bool {
	return st != JobQueued && st != JobRunning
}

// Owner identifies the process running a job.
type Owner struct {
	// Host is the host name.
	Host string
	// PID is the operating system process id.
	PID int
	// ID tells apart processes that could share a host and pid, such as a
	// random id chosen at start.
	ID string
}

// Job is a unit of long work (a backup, a restore, a verification),
// recorded so that it survives restarts and is visible to every process.
type Job struct {
	ID   int64
	Kind string
	// SourceID is the source the job works on, 0 for none.
	SourceID int64
	// LockKey, when not empty, excludes every other queued or running job
	// with the same key.
	LockKey string
	// Args are the kind-specific arguments, as JSON.
	Args        json.RawMessage
	State       JobState
	CreatedAt   time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	HeartbeatAt *time.Time
	// Owner is the process that runs or ran the job, zero while queued.
	Owner           Owner
	CancelRequested bool
	Phase           string
	BytesDone       int64
	// BytesTotal is 0 while unknown.
	BytesTotal int64
	// Error says why the job failed, was cancelled or interrupted.
	Error string
	// Result is the kind-specific outcome, as JSON; nil until finished.
	Result json.RawMessage
	// RequestedBy is who asked for the job: a user name, "cli:<os user>",
	// or "schedule".
	RequestedBy string
}

// JobParams describe a job to insert.
type JobParams struct {
	Kind     string
	SourceID int64
	LockKey  string
	// Args default to {}.
	Args json.RawMessage
	// State is JobQueued (the default), for a worker to claim, or
	// JobRunning, for a process that runs the job itself and so must set
	// Owner.
	State       JobState
	Owner       Owner
	RequestedBy string
}

// JobFilter selects jobs. Zero fields select everything.
type JobFilter struct {
	States   []JobState
	Kinds    []string
	SourceID int64
	// BeforeID, when not 0, selects jobs older than that job, for paging.
	BeforeID int64
	// Limit caps the number of jobs returned, 0 for no cap.
	Limit int
}

const jobColumns = `id, kind, source_id, lock_key, args, state, created_at, started_at, finished_at, heartbeat_at,
	owner_host, owner_pid, owner_id, cancel_requested, phase, bytes_done, bytes_total, error, result, requested_by`

// scanJob scans a row of jobColumns.
func scanJob(r rowScanner) (Job, error) {
	var j Job
	err := r.Scan(&j.ID, &j.Kind, orZero(&j.SourceID), orZero(&j.LockKey), scanJSON(&j.Args), &j.State,
		scanTime(&j.CreatedAt), scanNullTime(&j.StartedAt), scanNullTime(&j.FinishedAt), scanNullTime(&j.HeartbeatAt),
		orZero(&j.Owner.Host), orZero(&j.Owner.PID), orZero(&j.Owner.ID), &j.CancelRequested, orZero(&j.Phase),
		&j.BytesDone, &j.BytesTotal, orZero(&j.Error), scanJSON(&j.Result), orZero(&j.RequestedBy))
	return j, err
}

// jobByID returns job id as seen by q.
func jobByID(ctx context.Context, q querier, id int64) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
}

// activeJobByLock returns the queued or running job holding lockKey.
func activeJobByLock(ctx context.Context, q querier, lockKey string) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `
		SELECT `+jobColumns+` FROM jobs
		WHERE lock_key = ? AND state IN ('queued', 'running')`, lockKey))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job holding lock %q: %w", lockKey, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("job holding lock %q: %w", lockKey, err)
	}
	return j, nil
}

// InsertJob records a new job. When another queued or running job holds
// p.LockKey, it returns a *LockedError, which matches ErrLocked.
func (s *Store) InsertJob(ctx context.Context, p JobParams) (Job, error) {
	if p.State == "" {
		p.State = JobQueued
	}
	switch {
	case p.Kind == "":
		return Job{}, fmt.Errorf("insert job: %w", invalid("kind", "is required"))
	case p.State != JobQueued && p.State != JobRunning:
		return Job{}, fmt.Errorf("insert job: %w", invalid("state", "must be %s or %s, not %q", JobQueued, JobRunning, p.State))
	case p.State == JobRunning && p.Owner.ID == "":
		return Job{}, fmt.Errorf("insert job: %w", invalid("owner", "is required for a running job"))
	}
	args, err := jsonArg("args", p.Args)
	if err != nil {
		return Job{}, fmt.Errorf("insert job: %w", err)
	}
	if args == nil {
		args = "{}"
	}
	now := s.clock()
	var started any
	var owner Owner
	if p.State == JobRunning {
		started, owner = formatTime(now), p.Owner
	}

	var j Job
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `
			INSERT INTO jobs (kind, source_id, lock_key, args, state, created_at, started_at, heartbeat_at,
				owner_host, owner_pid, owner_id, requested_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+jobColumns,
			p.Kind, nullIfZero(p.SourceID), nullIfZero(p.LockKey), args, p.State, formatTime(now), started, started,
			nullIfZero(owner.Host), nullIfZero(owner.PID), nullIfZero(owner.ID), nullIfZero(p.RequestedBy)))
		switch {
		case isUnique(err, "jobs.lock_key"):
			holder, herr := activeJobByLock(ctx, tx, p.LockKey)
			if herr != nil {
				return herr
			}
			return &LockedError{LockKey: p.LockKey, JobID: holder.ID}
		case isForeignKey(err):
			return fmt.Errorf("source %d: %w", p.SourceID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("insert job: %w", err)
	}
	return j, nil
}

// ClaimJob hands the oldest queued job of one of kinds (of any kind when
// kinds is empty) to owner: the job becomes running. ErrNotFound means
// nothing is waiting.
func (s *Store) ClaimJob(ctx context.Context, owner Owner, kinds []string) (Job, error) {
	if owner.ID == "" {
		return Job{}, fmt.Errorf("claim job: %w", invalid("owner", "is required"))
	}
	// No lock check is needed: the jobs_active_lock_key index keeps a queued
	// job from sharing its lock key with a running one.
	query := `SELECT id FROM jobs WHERE state = 'queued'`
	args := []any{}
	if len(kinds) > 0 {
		query += ` AND kind IN (SELECT value FROM json_each(?))`
		args = append(args, jsonList(kinds))
	}
	query += ` ORDER BY id LIMIT 1`

	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, query, args...).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		now := formatTime(s.clock())
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `
			UPDATE jobs
			SET state = 'running', started_at = ?, heartbeat_at = ?, owner_host = ?, owner_pid = ?, owner_id = ?
			WHERE id = ?
			RETURNING `+jobColumns,
			now, now, nullIfZero(owner.Host), nullIfZero(owner.PID), owner.ID, id))
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("claim job: %w", err)
	}
	return j, nil
}

// Job returns the job with the given id.
func (s *Store) Job(ctx context.Context, id int64) (Job, error) {
	return jobByID(ctx, s.db, id)
}

// Jobs returns the jobs that f selects, newest first.
func (s *Store) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, `state IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(f.States))
	}
	if len(f.Kinds) > 0 {
		where = append(where, `kind IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(f.Kinds))
	}
	if f.SourceID != 0 {
		where = append(where, `source_id = ?`)
		args = append(args, f.SourceID)
	}
	if f.BeforeID != 0 {
		where = append(where, `id < ?`)
		args = append(args, f.BeforeID)
	}
	query := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	jobs, err := queryAll(ctx, s.db, scanJob, query, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return jobs, nil
}

// ActiveJobByLock returns the queued or running job holding lockKey;
// ErrNotFound means the lock is free.
func (s *Store) ActiveJobByLock(ctx context.Context, lockKey string) (Job, error) {
	return activeJobByLock(ctx, s.db, lockKey)
}

// notRunning returns the error for a change that needs job id running, by
// looking at its state in tx.
func notRunning(ctx context.Context, tx *sql.Tx, id int64) error {
	j, err := jobByID(ctx, tx, id)
	if err != nil {
		return err
	}
	return fmt.Errorf("job %d is %s, not running: %w", id, j.State, ErrConflict)
}

// UpdateJobProgress records the phase and bytes of running job id, which
// also counts as a heartbeat. ErrConflict means the job is no longer
// running (it may have been marked interrupted): its worker should stop.
func (s *Store) UpdateJobProgress(ctx context.Context, id int64, phase string, done, total int64) error {
	if done < 0 || total < 0 {
		return fmt.Errorf("update job %d progress: %w", id, invalid("bytes", "must not be negative"))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE jobs SET phase = ?, bytes_done = ?, bytes_total = ?, heartbeat_at = ?
			WHERE id = ? AND state = 'running'`,
			nullIfZero(phase), done, total, formatTime(s.clock()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return notRunning(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("update job %d progress: %w", id, err)
	}
	return nil
}

// Heartbeat records that ownerID is still working on jobIDs. It returns the
// ids it could not refresh because the job is no longer running under
// ownerID (for example, another process marked it interrupted): their
// workers should stop.
func (s *Store) Heartbeat(ctx context.Context, ownerID string, jobIDs []int64) (lost []int64, err error) {
	if len(jobIDs) == 0 {
		return nil, nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			UPDATE jobs SET heartbeat_at = ?
			WHERE id IN (SELECT value FROM json_each(?)) AND state = 'running' AND owner_id = ?
			RETURNING id`,
			formatTime(s.clock()), jsonList(jobIDs), ownerID)
		if err != nil {
			return err
		}
		defer rows.Close()
		kept := make(map[int64]bool, len(jobIDs))
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			kept[id] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range jobIDs {
			if !kept[id] {
				lost = append(lost, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return lost, nil
}

// RequestCancel cancels job id: a queued job becomes cancelled at once; a
// running one is flagged, for its worker to notice through CancelRequested
// and stop. It returns the job as changed. Cancelling a finished job is
// ErrConflict.
func (s *Store) RequestCancel(ctx context.Context, id int64) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cur, err := jobByID(ctx, tx, id)
		if err != nil {
			return err
		}
		switch cur.State {
		case JobQueued:
			j, err = scanJob(tx.QueryRowContext(ctx, `
				UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, error = 'cancelled before it started'
				WHERE id = ?
				RETURNING `+jobColumns,
				formatTime(s.clock()), id))
			return err
		case JobRunning:
			j, err = scanJob(tx.QueryRowContext(ctx, `
				UPDATE jobs SET cancel_requested = 1 WHERE id = ? RETURNING `+jobColumns, id))
			return err
		default:
			return fmt.Errorf("job %d already %s: %w", id, cur.State, ErrConflict)
		}
	})
	if err != nil {
		return Job{}, fmt.Errorf("cancel job %d: %w", id, err)
	}
	return j, nil
}

// CancelRequested returns those of ids that are running and have been asked
// to stop.
func (s *Store) CancelRequested(ctx context.Context, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT id FROM jobs
		WHERE id IN (SELECT value FROM json_each(?)) AND state = 'running' AND cancel_requested = 1
		ORDER BY id`, jsonList(ids))
	if err != nil {
		return nil, fmt.Errorf("cancel requested: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("cancel requested: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cancel requested: %w", err)
	}
	return out, nil
}

// FinishJob ends running job id in final state st (succeeded, failed,
// cancelled, or interrupted when its own process stops it), with errText
// saying why when it did not succeed, and result as the kind's outcome (may
// be nil). A job that is not running is ErrConflict.
func (s *Store) FinishJob(ctx context.Context, id int64, st JobState, errText string, result json.RawMessage) error {
	if st != JobSucceeded && st != JobFailed && st != JobCancelled && st != JobInterrupted {
		return fmt.Errorf("finish job %d: %w", id, invalid("state", "must be %s, %s, %s or %s, not %q", JobSucceeded, JobFailed, JobCancelled, JobInterrupted, st))
	}
	res, err := jsonArg("result", result)
	if err != nil {
		return fmt.Errorf("finish job %d: %w", id, err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `
			UPDATE jobs SET state = ?, error = ?, result = ?, finished_at = ?
			WHERE id = ? AND state = 'running'`,
			st, nullIfZero(errText), res, formatTime(s.clock()), id)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return notRunning(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("finish job %d: %w", id, err)
	}
	return nil
}

// MarkInterrupted ends the running jobs whose process is gone: those owned
// by a process on host that alive reports dead, and those of any host whose
// last heartbeat is older than staleAfter (0 turns that check off). Running
// backups of those jobs become interrupted too, and each job gets an event
// saying what happened. It returns how many jobs it marked.
//
// alive is called with the write lock held, so it must be quick (such as
// signal 0); nil skips the process check.
func (s *Store) MarkInterrupted(ctx context.Context, host string, alive func(pid int) bool, staleAfter time.Duration) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		running, err := queryAll(ctx, tx, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE state = 'running' ORDER BY id`)
		if err != nil {
			return err
		}
		now := s.clock()
		for _, j := range running {
			var msg string
			switch {
			case alive != nil && host != "" && j.Owner.Host == host && j.Owner.PID != 0 && !alive(j.Owner.PID):
				msg = fmt.Sprintf("interrupted: the process running this job stopped (pid %d)", j.Owner.PID)
			case staleAfter > 0 && j.HeartbeatAt != nil && now.Sub(*j.HeartbeatAt) > staleAfter:
				msg = fmt.Sprintf("interrupted: the process running this job (pid %d on %s) sent no heartbeat since %s",
					j.Owner.PID, j.Owner.Host, formatTime(*j.HeartbeatAt))
			default:
				continue
			}
			if err := interruptJob(ctx, tx, j, now, msg); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("mark interrupted jobs: %w", err)
	}
	return n, nil
}

// interruptJob marks running job j and its running backups interrupted,
// with an event saying msg.
func interruptJob(ctx context.Context, tx *sql.Tx, j Job, now time.Time, msg string) error {
	at := formatTime(now)
	if _, err := tx.ExecContext(ctx, `
		UPDATE jobs SET state = 'interrupted', finished_at = ?, error = ?
		WHERE id = ? AND state = 'running'`, at, msg, j.ID); err != nil {
		return fmt.Errorf("job %d: %w", j.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE backups SET state = 'interrupted', finished_at = ?, error = ?
		WHERE job_id = ? AND state = 'running'`, at, msg, j.ID); err != nil {
		return fmt.Errorf("job %d backups: %w", j.ID, err)
	}
	ev := JobEvent{JobID: j.ID, At: now, Level: EventError, Phase: j.Phase, Message: msg}
	if _, err := insertJobEvent(ctx, tx, ev); err != nil {
		return fmt.Errorf("job %d: %w", j.ID, err)
	}
	return auditInterrupted(ctx, tx, j, now, msg)
}

// auditInterrupted records, in the audit log, the end of a job whose process is gone: the
// runner that would have recorded it (jobs.Runner.auditEnd) went with the process.
func auditInterrupted(ctx context.Context, tx *sql.Tx, j Job, now time.Time, msg string) error {
	e := AuditEntry{At: now, Actor: j.RequestedBy, Action: "job.interrupted"}
	if e.Actor == "" {
		e.Actor = "system"
	}
	if j.SourceID != 0 {
		if err := tx.QueryRowContext(ctx, `SELECT name FROM sources WHERE id = ?`, j.SourceID).Scan(&e.Target); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("job %d: %w", j.ID, err)
		}
	}
	detail := map[string]any{"job_id": j.ID, "kind": j.Kind, "state": JobInterrupted, "error": msg}
	if len(j.Args) > 0 {
		detail["args"] = j.Args
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	d, err := canonicalJSON(b)
	if err != nil {
		return err
	}
	if _, err := appendAudit(ctx, tx, e, sql.NullString{String: d, Valid: true}); err != nil {
		return fmt.Errorf("job %d: audit: %w", j.ID, err)
	}
	return nil
}
