package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// TestPruneDuringBackup deletes a backup and prunes over and over while the next backup of
// the same cluster runs and deduplicates against the deleted one's blocks: the running
// backup copies out what it found in packs marked for deletion, the packs go only after
// it ends, and it restores exactly.
func TestPruneDuringBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := bigCluster(t)
	conn := connect(t, c.DSN(""))
	want := tableHashes(t, conn)
	e := setup(t, jobs.Options{Workers: 1},
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewRestoreWorker(st, repo) },
		func(_ *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewPruneWorker(repo) })
	src := e.register(t, "big", c.DSN(""))
	_, first := e.backup(t, src)

	job, err := e.runner.Enqueue(ctx, backupParams(src))
	if err != nil {
		t.Fatal(err)
	}
	var prunes, marked, deleted atomic.Int64
	stop := make(chan struct{})
	pruned := make(chan error, 1)
	go func() {
		del := []string{first.RepoID}
		for {
			res, err := e.repo.Prune(ctx, repository.PruneOptions{Backups: del, Grace: -1, Delay: -1})
			if err != nil && !errors.Is(err, repository.ErrPruneBusy) {
				pruned <- err
				return
			}
			del = nil
			prunes.Add(1)
			marked.Add(int64(res.PacksMarked))
			deleted.Add(int64(res.PacksDeleted))
			select {
			case <-stop:
				pruned <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var second store.Job
	waitFor(t, "the second backup", 3*time.Minute, func() (bool, error) {
		var err error
		second, err = e.store.Job(ctx, job.ID)
		return second.State.Final(), err
	})
	close(stop)
	if err := <-pruned; err != nil {
		t.Fatalf("Prune = %v", err)
	}
	if second.State != store.JobSucceeded {
		t.Fatalf("backup while pruning ended %s: %s", second.State, second.Error)
	}
	t.Logf("%d prunes ran during the backup: %d packs marked, %d deleted", prunes.Load(), marked.Load(), deleted.Load())
	if marked.Load() == 0 {
		t.Errorf("no pack was marked during the backup: the test did not prune what the backup reused")
	}
	// Now nothing runs: the deleted backup's packs go, the new backup's stay.
	res, err := e.repo.Prune(ctx, repository.PruneOptions{Grace: -1, Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prune after the backup: %+v", res)
	// The maintenance job (default grace: nothing young is touched) runs and reports.
	pj, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPrune, LockKey: jobs.PruneLockKey, Args: jobs.PruneArgs{}, RequestedBy: "test"})
	var pres repository.PruneResult
	if err != nil || pj.State != store.JobSucceeded || json.Unmarshal(pj.Result, &pres) != nil {
		t.Errorf("prune job = %s, result %s, %v; want succeeded with a result", pj.State, pj.Result, err)
	}
	if total := deleted.Load() + int64(res.PacksDeleted); total == 0 {
		t.Errorf("no pack of the deleted backup was ever deleted")
	}

	var br jobs.BackupResult
	if err := json.Unmarshal(second.Result, &br); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(reachableDir(t), "data")
	rjob, err := e.runner.Run(ctx, restoreParams(br.BackupID, into))
	if err != nil || rjob.State != store.JobSucceeded {
		t.Fatalf("Run(restore of the backup taken while pruning) = %v, %v", rjob.State, err)
	}
	bin, err := pg.FindBinaries(ctx, 15)
	if err != nil {
		t.Fatal(err)
	}
	restored := startRestored(t, bin, into)
	if diff := cmp.Diff(want, tableHashes(t, connect(t, restored.DSN("")))); diff != "" {
		t.Errorf("restored tables differ from the source (-want +got):\n%s", diff)
	}
}
