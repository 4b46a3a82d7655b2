package jobs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// gateWorker holds each job at the start of Work until release is closed, then lets the
// real worker run it: a job that is certainly running, for as long as the test needs.
type gateWorker struct {
	jobs.Worker
	started chan int64
	release chan struct{}
}

func newGate() *gateWorker {
	return &gateWorker{started: make(chan int64, 10), release: make(chan struct{})}
}

func (w *gateWorker) Work(ctx context.Context, job *jobs.Job) error {
	w.started <- job.ID
	select {
	case <-w.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.Worker.Work(ctx, job)
}

// otherProcess opens the env's catalog a second time, as another Backstop process (a CLI
// command next to the server) would, with a runner of its own.
func (e *env) otherProcess(t *testing.T) (*store.Store, *jobs.Runner) {
	t.Helper()
	st, err := store.Open(context.Background(), e.catalog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, jobs.NewRunner(st, nil, testLogger(t), jobs.Options{}, jobs.NewBackupWorker(st, e.repo))
}

// wantLocked checks that err reports the lock of job holder.
func wantLocked(t *testing.T, what string, err error, holder int64) {
	t.Helper()
	var le *store.LockedError
	if !errors.Is(err, store.ErrLocked) || !errors.As(err, &le) || le.JobID != holder {
		t.Errorf("%s = %v, want store.ErrLocked held by job %d", what, err, holder)
	}
}

func TestBackupLockQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "lock_queued")
	e := setup(t, jobs.Options{}) // no workers: nothing claims the queued job
	src := e.register(t, "src", dsn)
	// A second source (the same server, another name) has a lock of its own.
	other := e.register(t, "other", dsn)

	queued, err := e.runner.Enqueue(ctx, backupParams(src))
	if err != nil {
		t.Fatalf("Enqueue(backup of src) = %v", err)
	}
	if queued.State != store.JobQueued {
		t.Fatalf("Enqueue(backup of src).State = %s, want queued", queued.State)
	}

	_, err = e.runner.Run(ctx, backupParams(src))
	wantLocked(t, "Run(backup of src, one queued)", err, queued.ID)
	_, err = e.runner.Enqueue(ctx, backupParams(src))
	wantLocked(t, "Enqueue(backup of src, one queued)", err, queued.ID)
	_, otherRunner := e.otherProcess(t)
	_, err = otherRunner.Run(ctx, backupParams(src))
	wantLocked(t, "Run(backup of src, one queued, from another process)", err, queued.ID)

	// The refused jobs left nothing behind.
	all, err := e.store.Jobs(ctx, store.JobFilter{})
	if err != nil || len(all) != 1 || all[0].ID != queued.ID {
		t.Errorf("Jobs() = %d jobs, %v, want only the queued job %d", len(all), err, queued.ID)
	}
	if bs, err := e.store.Backups(ctx, store.BackupFilter{}); err != nil || len(bs) != 0 {
		t.Errorf("Backups() = %d backups, %v, want none", len(bs), err)
	}

	// Another source's backup is not held up.
	e.backup(t, other)

	// Once the queued job is cancelled, the source can be backed up again.
	if err := e.runner.Cancel(ctx, queued.ID); err != nil {
		t.Fatalf("Cancel(%d) = %v", queued.ID, err)
	}
	if j, err := e.store.Job(ctx, queued.ID); err != nil || j.State != store.JobCancelled {
		t.Errorf("Job(%d) = %s, %v, want cancelled", queued.ID, j.State, err)
	}
	e.backup(t, src)
}

func TestBackupLockRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "lock_running")
	gate := newGate()
	e := setup(t, jobs.Options{},
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			gate.Worker = jobs.NewBackupWorker(st, repo)
			return gate
		})
	src := e.register(t, "src", dsn)

	type result struct {
		job store.Job
		err error
	}
	done := make(chan result, 1)
	go func() {
		job, err := e.runner.Run(ctx, backupParams(src))
		done <- result{job, err}
	}()
	var running int64
	select {
	case running = <-gate.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the backup job did not start within 30 s")
	}
	if j, err := e.store.Job(ctx, running); err != nil || j.State != store.JobRunning {
		t.Fatalf("Job(%d) = %s, %v, want running", running, j.State, err)
	}

	// Should a second job get through, it would wait at the gate: bound the wait.
	tryCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := e.runner.Run(tryCtx, backupParams(src))
	wantLocked(t, "Run(backup of src, one running)", err, running)
	_, err = e.runner.Enqueue(tryCtx, backupParams(src))
	wantLocked(t, "Enqueue(backup of src, one running)", err, running)
	_, otherRunner := e.otherProcess(t)
	_, err = otherRunner.Run(tryCtx, backupParams(src))
	wantLocked(t, "Run(backup of src, one running, from another process)", err, running)

	close(gate.release)
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the backup did not end within 2 min")
	}
	if r.err != nil || r.job.ID != running || r.job.State != store.JobSucceeded {
		t.Fatalf("Run(backup of src) = job %d %s, %v, want job %d succeeded", r.job.ID, r.job.State, r.err, running)
	}
	// Only the one job ran; the lock is free again.
	if all, err := e.store.Jobs(ctx, store.JobFilter{}); err != nil || len(all) != 1 {
		t.Errorf("Jobs() = %d jobs, %v, want 1", len(all), err)
	}
	e.backup(t, src)
}
