// Package jobs runs Backstop's long work (backups, restores) as durable jobs: rows in the
// catalog that survive a restart, claimed by workers in this process, cancellable, with at
// most one active job per lock key (one backup per source), and progress published on a hub.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/backstop/backstop/store"
)

// Worker runs one kind of job. Work must return promptly once ctx is done.
type Worker interface {
	Kind() string
	Work(ctx context.Context, job *Job) error
}

// Options tune a Runner. Zero values mean the defaults.
type Options struct {
	// Workers is how many queued jobs run at once. 0 claims none: a CLI process runs only the
	// jobs it starts itself with Run.
	Workers int
	// Poll is how often idle workers look for queued jobs inserted by other processes.
	Poll time.Duration
	// Heartbeat is how often running jobs are marked alive and checked for cancellation.
	Heartbeat time.Duration
	// StaleAfter is how old a running job's heartbeat may be before the job is taken to be
	// orphaned (its process is gone, perhaps on another host) and marked interrupted.
	StaleAfter time.Duration
}

func (o Options) withDefaults() Options {
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 2 * time.Second
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	return o
}

// Runner claims and runs jobs. Start it once; Stop cancels what runs and waits for it.
type Runner struct {
	store   *store.Store
	hub     *Hub
	log     *slog.Logger
	opts    Options
	workers map[string]Worker
	owner   store.Owner
	wake    chan struct{}

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// Reasons a running job's context is cancelled.
var (
	errCancelRequested = errors.New("cancelled on request")
	errShutdown        = errors.New("backstop is shutting down")
	errLost            = errors.New("this process no longer owns the job")
)

// NewRunner returns a runner for the given workers. hub may be nil (CLI without live view).
func NewRunner(st *store.Store, hub *Hub, log *slog.Logger, opts Options, workers ...Worker) *Runner {
	host, _ := os.Hostname()
	r := &Runner{
		store:   st,
		hub:     hub,
		log:     log,
		opts:    opts.withDefaults(),
		workers: make(map[string]Worker, len(workers)),
		owner:   store.Owner{Host: host, PID: os.Getpid(), ID: fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano())},
		wake:    make(chan struct{}, 1),
		running: make(map[int64]context.CancelCauseFunc),
	}
	for _, w := range workers {
		r.workers[w.Kind()] = w
	}
	return r
}

// Start marks jobs orphaned by a dead process as interrupted, then starts the heartbeat loop
// and Options.Workers claiming loops. They run until Stop.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.sweep(ctx); err != nil {
		return err
	}
	ctx, r.stop = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.heartbeatLoop(ctx)
	}()
	for range r.opts.Workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.claimLoop(ctx)
		}()
	}
	if r.hub != nil && r.opts.Workers > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watchOthers(ctx)
		}()
	}
	return nil
}

// watchOthers relays to the hub what jobs run by other processes (a `backstop backup` in a
// shell) do, read from the catalog once a Poll interval, so that the dashboard shows them
// live as well: their progress while they run and their state when it changes.
func (r *Runner) watchOthers(ctx context.Context) {
	seen := make(map[int64]store.Job)
	t := time.NewTicker(r.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		active, err := r.store.Jobs(ctx, store.JobFilter{States: []store.JobState{store.JobQueued, store.JobRunning}})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("watch other processes' jobs", "err", err)
			}
			continue
		}
		now := make(map[int64]store.Job, len(active))
		for _, j := range active {
			if j.Owner.ID == r.owner.ID || (j.State == store.JobQueued && j.Owner.ID == "") {
				continue // ours, or a queued job this process may claim: published already
			}
			now[j.ID] = j
			prev, ok := seen[j.ID]
			if !ok || prev.State != j.State {
				r.publishState(j)
			}
			if j.State == store.JobRunning && (!ok || prev.BytesDone != j.BytesDone || prev.Phase != j.Phase) {
				r.hub.Publish(Event{Type: EventProgress, JobID: j.ID, JobKind: j.Kind, SourceID: j.SourceID, State: j.State,
					Progress: Progress{Phase: j.Phase, Done: j.BytesDone, Total: j.BytesTotal}})
			}
		}
		for id := range seen {
			if _, ok := now[id]; !ok {
				if j, err := r.store.Job(ctx, id); err == nil {
					r.publishState(j)
				}
			}
		}
		seen = now
	}
}

// Stop cancels every running job (they end as interrupted) and waits for the loops to exit.
func (r *Runner) Stop() {
	r.mu.Lock()
	for _, cancel := range r.running {
		cancel(errShutdown)
	}
	r.mu.Unlock()
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
}

// Params describe a job to enqueue or run.
type Params struct {
	Kind        string
	SourceID    int64  // 0: none
	LockKey     string // jobs with the same key never run at once; "" for none
	Args        any    // marshalled to JSON
	RequestedBy string
}

// Enqueue inserts a queued job for a claiming loop (in this or another process) to run.
// A job holding the same lock key returns an error wrapping store.ErrLocked.
func (r *Runner) Enqueue(ctx context.Context, p Params) (store.Job, error) {
	job, err := r.insert(ctx, p, store.JobQueued)
	if err != nil {
		return store.Job{}, err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	r.publishState(job)
	return job, nil
}

// Run inserts a job already claimed by this runner and runs it to the end in the calling
// goroutine: the CLI's way, which works whether or not a server is running and respects the
// same locks. The returned job is the finished row; its error is also returned.
func (r *Runner) Run(ctx context.Context, p Params) (store.Job, error) {
	job, err := r.insert(ctx, p, store.JobRunning)
	if err != nil {
		return store.Job{}, err
	}
	r.publishState(job)
	return r.execute(ctx, job)
}

func (r *Runner) insert(ctx context.Context, p Params, state store.JobState) (store.Job, error) {
	if _, ok := r.workers[p.Kind]; !ok {
		return store.Job{}, fmt.Errorf("jobs: no worker for %q", p.Kind)
	}
	args, err := json.Marshal(p.Args)
	if err != nil {
		return store.Job{}, fmt.Errorf("jobs: args: %w", err)
	}
	return r.store.InsertJob(ctx, store.JobParams{
		Kind:        p.Kind,
		SourceID:    p.SourceID,
		LockKey:     p.LockKey,
		Args:        args,
		State:       state,
		Owner:       r.owner,
		RequestedBy: p.RequestedBy,
	})
}

// Cancel asks a job to stop: a queued job is cancelled at once; a running one is cancelled
// by the process running it, within a heartbeat.
func (r *Runner) Cancel(ctx context.Context, id int64) error {
	job, err := r.store.RequestCancel(ctx, id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if cancel, ok := r.running[id]; ok {
		cancel(errCancelRequested)
	}
	r.mu.Unlock()
	r.publishState(job)
	return nil
}

func (r *Runner) claimLoop(ctx context.Context) {
	kinds := make([]string, 0, len(r.workers))
	for k := range r.workers {
		kinds = append(kinds, k)
	}
	for {
		job, err := r.store.ClaimJob(ctx, r.owner, kinds)
		switch {
		case err == nil:
			r.publishState(job)
			r.execute(ctx, job)
			continue
		case errors.Is(err, store.ErrNotFound):
		case ctx.Err() != nil:
			return
		default:
			r.log.Error("claim job", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-time.After(r.opts.Poll):
		}
	}
}

// execute runs a claimed job and records how it ended.
func (r *Runner) execute(parent context.Context, row store.Job) (store.Job, error) {
	w := r.workers[row.Kind]
	// The job outlives a cancelled parent only long enough to record its end.
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	r.mu.Lock()
	r.running[row.ID] = cancel
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, row.ID)
		r.mu.Unlock()
	}()

	job := &Job{Job: row, r: r}
	log := r.log.With("job", row.ID, "kind", row.Kind)
	log.Info("job started")
	err := runWorker(ctx, w, job)

	state := store.JobSucceeded
	var errText string
	if err != nil {
		errText = err.Error()
		state = store.JobFailed
		switch cause := context.Cause(ctx); {
		case ctx.Err() == nil:
		case errors.Is(cause, errCancelRequested):
			state, errText = store.JobCancelled, "cancelled on request"
		case errors.Is(cause, errShutdown), parent.Err() != nil:
			state, errText = store.JobInterrupted, "interrupted: Backstop stopped while this job ran"
		}
	}
	// Record the end even when the job's context is gone.
	endCtx, endCancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer endCancel()
	if err != nil {
		job.Logf(endCtx, LevelError, job.phase, "%s", errText)
	}
	if ferr := r.store.FinishJob(endCtx, row.ID, state, errText, job.result); ferr != nil {
		log.Error("record job end", "err", ferr)
	}
	log.Info("job ended", "state", state, "err", errText)
	final, ferr := r.store.Job(endCtx, row.ID)
	if ferr != nil {
		final = row
		final.State, final.Error, final.Result = state, errText, job.result
	}
	r.auditEnd(endCtx, final)
	r.publishState(final)
	if err != nil && state != store.JobFailed {
		err = fmt.Errorf("%s: %w", errText, err)
	}
	return final, err
}

// runWorker calls the worker, turning a panic into an error so one bad job cannot take the
// server down with it.
func runWorker(ctx context.Context, w Worker, job *Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job panicked: %v", p)
		}
	}()
	return w.Work(ctx, job)
}

func (r *Runner) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]int64, 0, len(r.running))
		for id := range r.running {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		if len(ids) > 0 {
			// A job lost to another process (marked interrupted while this one stalled) must
			// stop here, or two backups of one source could run at once.
			lost, err := r.store.Heartbeat(ctx, r.owner.ID, ids)
			if err != nil && ctx.Err() == nil {
				r.log.Error("job heartbeat", "err", err)
			}
			cancelled, err := r.store.CancelRequested(ctx, ids)
			if err != nil && ctx.Err() == nil {
				r.log.Error("check job cancellation", "err", err)
			}
			r.mu.Lock()
			for _, id := range cancelled {
				if cancel, ok := r.running[id]; ok {
					cancel(errCancelRequested)
				}
			}
			for _, id := range lost {
				if cancel, ok := r.running[id]; ok {
					cancel(errLost)
				}
			}
			r.mu.Unlock()
		}
		if time.Since(lastSweep) > r.opts.StaleAfter/2 {
			lastSweep = time.Now()
			if err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("sweep orphaned jobs", "err", err)
			}
		}
	}
}

// DefaultStaleAfter is how long a running job may go without a heartbeat before it is taken
// to be orphaned.
const DefaultStaleAfter = time.Minute

// Sweep marks running jobs whose process is gone as interrupted, with their backups: a job
// of this host whose process no longer exists, or any job whose heartbeat is older than
// staleAfter. Restores left by such jobs are resolved too (SweepRestores). Every command
// sweeps before it reads, so that nothing shows as running forever.
func Sweep(ctx context.Context, st *store.Store, staleAfter time.Duration) (int, error) {
	host, _ := os.Hostname()
	n, err := st.MarkInterrupted(ctx, host, processAlive, staleAfter)
	if err != nil {
		return 0, fmt.Errorf("jobs: sweep: %w", err)
	}
	if _, err := SweepRestores(ctx, st); err != nil {
		return n, fmt.Errorf("jobs: sweep restores: %w", err)
	}
	return n, nil
}

// sweep marks running jobs whose process is gone as interrupted.
func (r *Runner) sweep(ctx context.Context) error {
	n, err := Sweep(ctx, r.store, r.opts.StaleAfter)
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Warn("marked orphaned jobs interrupted", "count", n)
		if r.hub != nil {
			r.hub.Publish(Event{Type: EventState, State: store.JobInterrupted})
		}
	}
	return nil
}

// processAlive reports whether a process with this PID exists on this host.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (r *Runner) publishState(job store.Job) {
	if r.hub == nil {
		return
	}
	r.hub.Publish(Event{Type: EventState, JobID: job.ID, JobKind: job.Kind, SourceID: job.SourceID, State: job.State})
}
