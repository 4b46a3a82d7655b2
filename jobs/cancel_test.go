package jobs_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// runResult is what Runner.Run returned.
type runResult struct {
	job store.Job
	err error
}

// startBackup runs a backup of src on a goroutine and waits until it is copying files. It
// returns the running job and the channel that receives Run's result.
func startBackup(t *testing.T, e *env, src store.Source) (store.Job, <-chan runResult) {
	t.Helper()
	ctx := context.Background()
	done := make(chan runResult, 1)
	go func() {
		job, err := e.runner.Run(ctx, backupParams(src))
		done <- runResult{job, err}
	}()
	var job store.Job
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		job, err = e.store.ActiveJobByLock(ctx, jobs.BackupLockKey(src.ID))
		if err == nil && job.Phase == "copying files" {
			break
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ActiveJobByLock() = %v", err)
		}
		select {
		case r := <-done:
			t.Fatalf("the backup ended (%s, %v) before it was seen copying files", r.job.State, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup was not copying files within a minute (phase %q)", job.Phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return job, done
}

// wait returns Run's result, failing the test if it takes more than a minute.
func wait(t *testing.T, done <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		t.Fatal("Run() did not return within a minute")
		return runResult{}
	}
}

// jobBackup returns the single backup that job took.
func jobBackup(t *testing.T, st *store.Store, job store.Job) store.Backup {
	t.Helper()
	bs, err := st.Backups(context.Background(), store.BackupFilter{SourceID: job.SourceID})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Backup
	for _, b := range bs {
		if b.JobID == job.ID {
			out = append(out, b)
		}
	}
	if len(out) != 1 {
		t.Fatalf("job %d has %d backups, want 1", job.ID, len(out))
	}
	return out[0]
}

// wantNothingComplete checks that no backup of src is complete, in the catalog or in the
// repository.
func wantNothingComplete(t *testing.T, e *env, src store.Source) {
	t.Helper()
	ctx := context.Background()
	if bs, err := e.store.Backups(ctx, store.BackupFilter{SourceID: src.ID, States: []store.BackupState{store.BackupComplete}}); err != nil || len(bs) != 0 {
		t.Errorf("Backups(complete) = %d backups, %v, want none", len(bs), err)
	}
	if b, err := e.store.LatestBackup(ctx, src.ID, store.BackupComplete); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestBackup(complete) = backup %d, %v, want store.ErrNotFound", b.ID, err)
	}
	if ids, err := e.repo.Manifests(ctx); err != nil || len(ids) != 0 {
		t.Errorf("repository Manifests() = %v, %v, want none", ids, err)
	}
}

// wantServerDone waits until the source no longer runs the backup labelled with repoID.
func wantServerDone(t *testing.T, dsn, repoID string) {
	t.Helper()
	conn := connect(t, dsn)
	waitFor(t, "the server to drop the backup's WAL sender", 30*time.Second, func() (bool, error) {
		n, err := strconv.Atoi(queryValue(t, conn,
			`SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender' AND query LIKE '%' || $1 || '%'`, repoID))
		return n == 0, err
	})
}

func TestBackupCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := bigCluster(t)
	e := setup(t, jobs.Options{})
	src := e.register(t, "big", c.DSN(""))

	running, done := startBackup(t, e, src)
	// A second backup of the source is refused while this one copies.
	_, err := e.runner.Run(ctx, backupParams(src))
	wantLocked(t, "Run(backup of src, one copying)", err, running.ID)

	cancelled := time.Now()
	if err := e.runner.Cancel(ctx, running.ID); err != nil {
		t.Fatalf("Cancel(%d) = %v", running.ID, err)
	}
	r := wait(t, done)
	t.Logf("Run() returned %v after Cancel: %v", time.Since(cancelled).Round(time.Millisecond), r.err)
	if r.err == nil {
		t.Errorf("Run(cancelled backup) returned no error")
	}
	if r.job.State != store.JobCancelled || !r.job.CancelRequested || r.job.Error != "cancelled on request" || r.job.FinishedAt == nil {
		t.Errorf("cancelled job = %s, cancel requested %v, error %q, finished %v; want cancelled, true, %q, set",
			r.job.State, r.job.CancelRequested, r.job.Error, r.job.FinishedAt, "cancelled on request")
	}
	if r.job.BytesTotal > 0 && r.job.BytesDone >= r.job.BytesTotal {
		t.Errorf("cancelled job copied %d of %d bytes: it was not cancelled mid-copy", r.job.BytesDone, r.job.BytesTotal)
	}
	b := jobBackup(t, e.store, r.job)
	if b.State != store.BackupCancelled || b.Error == "" || b.FinishedAt == nil {
		t.Errorf("cancelled job's backup = %s, error %q, finished %v; want cancelled with an error and a finish time",
			b.State, b.Error, b.FinishedAt)
	}
	wantNothingComplete(t, e, src)
	wantServerDone(t, c.DSN(""), b.RepoID)

	// The next backup succeeds, and is the only complete one.
	_, next := e.backup(t, src)
	if bs, err := e.store.Backups(ctx, store.BackupFilter{SourceID: src.ID, States: []store.BackupState{store.BackupComplete}}); err != nil || len(bs) != 1 || bs[0].ID != next.ID {
		t.Errorf("Backups(complete) = %d backups, %v, want only backup %d", len(bs), err, next.ID)
	}
	if ids, err := e.repo.Manifests(ctx); err != nil || len(ids) != 1 || ids[0] != next.RepoID {
		t.Errorf("repository Manifests() = %v, %v, want [%s]", ids, err, next.RepoID)
	}
}

// TestBackupCancelFromAnotherProcess cancels a backup through another runner on the same
// catalog, as the dashboard cancels a backup that a CLI command runs: the runner running
// it notices within a heartbeat.
func TestBackupCancelFromAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := bigCluster(t)
	e := setup(t, jobs.Options{Heartbeat: 20 * time.Millisecond})
	src := e.register(t, "big", c.DSN(""))

	running, done := startBackup(t, e, src)
	_, other := e.otherProcess(t)
	cancelled := time.Now()
	if err := other.Cancel(ctx, running.ID); err != nil {
		t.Fatalf("Cancel(%d) from another process = %v", running.ID, err)
	}
	r := wait(t, done)
	t.Logf("Run() returned %v after Cancel: %v", time.Since(cancelled).Round(time.Millisecond), r.err)
	if r.job.State != store.JobCancelled {
		t.Errorf("job cancelled from another process ended %s (%q), want cancelled", r.job.State, r.job.Error)
	}
	if b := jobBackup(t, e.store, r.job); b.State != store.BackupCancelled {
		t.Errorf("backup of the job cancelled from another process = %s, want cancelled", b.State)
	}
	wantNothingComplete(t, e, src)
}

// TestBackupRunnerStop stops the runner (as the server does on shutdown) while a backup
// copies: the job and its backup end interrupted, and the source's lock is free at once
// for the next runner on the same catalog.
func TestBackupRunnerStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := bigCluster(t)
	e := setup(t, jobs.Options{})
	src := e.register(t, "big", c.DSN(""))

	running, done := startBackup(t, e, src)
	e.runner.Stop()
	r := wait(t, done)
	if r.err == nil {
		t.Errorf("Run(backup stopped by Runner.Stop) returned no error")
	}
	job, err := e.store.Job(ctx, running.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != store.JobInterrupted || job.FinishedAt == nil {
		t.Errorf("job after Runner.Stop = %s (finished %v, error %q), want interrupted", job.State, job.FinishedAt, job.Error)
	}
	if b := jobBackup(t, e.store, job); b.State != store.BackupInterrupted {
		t.Errorf("backup after Runner.Stop = %s (%q), want interrupted", b.State, b.Error)
	}
	wantNothingComplete(t, e, src)

	// A new runner on the same catalog, in the same (live) process, backs the source up.
	next := jobs.NewRunner(e.store, nil, testLogger(t), jobs.Options{}, jobs.NewBackupWorker(e.store, e.repo))
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer next.Stop()
	nj, err := next.Run(ctx, backupParams(src))
	if err != nil || nj.State != store.JobSucceeded {
		t.Errorf("Run(backup) after Runner.Stop = %s, %v, want succeeded", nj.State, err)
	}
}
