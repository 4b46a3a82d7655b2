package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/backstop/backstop/store"
)

// Levels of job log entries.
const (
	LevelInfo  = store.EventInfo
	LevelWarn  = store.EventWarn
	LevelError = store.EventError
)

// How often progress reaches the hub (live views) and the catalog (other processes, reloads).
const (
	publishEvery = 250 * time.Millisecond
	persistEvery = time.Second
)

// Job is a running job as its worker sees it: the catalog row, and the means to report.
type Job struct {
	store.Job
	r      *Runner
	result json.RawMessage

	phase                 string
	done, total           int64
	rate                  float64
	sampleAt              time.Time
	sampleDone            int64
	publishedAt, storedAt time.Time
}

// Args decodes the job's arguments into v.
func (j *Job) Args(v any) error {
	if err := json.Unmarshal(j.Job.Args, v); err != nil {
		return fmt.Errorf("job %d: args: %w", j.ID, err)
	}
	return nil
}

// SetResult records what the job produced (for instance the backup's ID); it is stored with
// the job's end.
func (j *Job) SetResult(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("job %d: result: %w", j.ID, err)
	}
	j.result = b
	return nil
}

// Phase starts a new phase of the job; what happens in it is logged with Logf.
func (j *Job) Phase(ctx context.Context, phase string, total int64) {
	j.phase, j.done, j.total = phase, 0, total
	j.rate, j.sampleAt, j.sampleDone = 0, time.Now(), 0
	j.report(ctx, true)
}

// Progress reports bytes done (and the total, when it changes) in the current phase.
// It is cheap to call often: it publishes at most a few times a second.
func (j *Job) Progress(ctx context.Context, done, total int64) {
	j.done, j.total = done, total
	j.report(ctx, false)
}

// Snapshot returns the job's current progress.
func (j *Job) Snapshot() Progress {
	p := Progress{Phase: j.phase, Done: j.done, Total: j.total, Rate: j.rate}
	if j.rate > 0 && j.total > j.done {
		p.ETA = time.Duration(float64(j.total-j.done) / j.rate * float64(time.Second))
	}
	return p
}

func (j *Job) report(ctx context.Context, force bool) {
	now := time.Now()
	if dt := now.Sub(j.sampleAt).Seconds(); dt >= 0.5 {
		inst := float64(j.done-j.sampleDone) / dt
		if j.rate == 0 {
			j.rate = inst
		} else {
			j.rate = 0.7*j.rate + 0.3*inst
		}
		j.sampleAt, j.sampleDone = now, j.done
	}
	if !force && now.Sub(j.publishedAt) < publishEvery {
		return
	}
	j.publishedAt = now
	if j.r.hub != nil {
		j.r.hub.Publish(Event{Type: EventProgress, JobID: j.ID, JobKind: j.Kind, SourceID: j.SourceID,
			State: store.JobRunning, Progress: j.Snapshot()})
	}
	if force || now.Sub(j.storedAt) >= persistEvery {
		j.storedAt = now
		if err := j.r.store.UpdateJobProgress(ctx, j.ID, j.phase, j.done, j.total); err != nil && ctx.Err() == nil {
			j.r.log.Warn("record job progress", "job", j.ID, "err", err)
		}
	}
}

// Logf adds an entry to the job's event log and publishes it.
func (j *Job) Logf(ctx context.Context, level store.EventLevel, phase, format string, args ...any) {
	ev, err := j.r.store.AddJobEvent(ctx, store.JobEvent{JobID: j.ID, Level: level, Phase: phase, Message: fmt.Sprintf(format, args...)})
	if err != nil {
		j.r.log.Warn("record job event", "job", j.ID, "err", err)
		return
	}
	if j.r.hub != nil {
		j.r.hub.Publish(Event{Type: EventLog, JobID: j.ID, JobKind: j.Kind, SourceID: j.SourceID, State: store.JobRunning, Log: &ev})
	}
}
