package jobs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// restoreRow records a restore of a fake source whose directory dir was claimed with its
// marker (when claim), in state.
func restoreRow(t *testing.T, e *env, dir string, claim bool, state store.RestoreState, jobID int64) store.Restore {
	t.Helper()
	ctx := context.Background()
	src, err := e.store.SourceByName(ctx, "fake")
	if err != nil {
		src, err = e.store.CreateSource(ctx, store.SourceParams{Name: "fake", DSN: "postgres://x@127.0.0.1:1/postgres",
			SystemIdentifier: "7300000000000000002", PGVersion: 150004})
		if err != nil {
			t.Fatal(err)
		}
	}
	token := dest.NewToken()
	created := false
	if claim {
		c, err := dest.ClaimDir(dir, token, "test", -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		created = c.Created()
		if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	x, err := e.store.CreateRestore(ctx, store.RestoreParams{SourceID: src.ID, JobID: jobID, Target: "latest", DataDir: dir,
		PGMajor: 15, Marker: token})
	if err != nil {
		t.Fatal(err)
	}
	if x, err = e.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{CreatedDir: created}); err != nil {
		t.Fatal(err)
	}
	if state != store.RestoreRestoring {
		if x, err = e.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: state}); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func instanceWorker(st *store.Store, _ *repository.Repo) jobs.Worker {
	return jobs.NewInstanceWorker(st)
}

// TestDeleteLeavesWhatBackstopDidNotCreate: Delete of a restored instance removes its
// directory when the restore's marker is there; a directory placed at the same path since
// (on the old code, removed by Delete) survives, and the restore is still marked deleted
// with a note.
func TestDeleteLeavesWhatBackstopDidNotCreate(t *testing.T) {
	e := setup(t, jobs.Options{}, instanceWorker)
	ctx := context.Background()
	base := t.TempDir()

	ours := restoreRow(t, e, filepath.Join(base, "ours"), true, store.RestoreReady, 0)
	if _, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindInstance, Args: jobs.InstanceArgs{RestoreID: ours.ID, Action: jobs.InstanceDelete}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := os.Stat(ours.DataDir); !os.IsNotExist(err) {
		t.Errorf("stat %s after Delete = %v, want it gone", ours.DataDir, err)
	}

	theirs := restoreRow(t, e, filepath.Join(base, "theirs"), true, store.RestoreReady, 0)
	// The restore's directory was removed by hand and someone else's put in its place.
	os.RemoveAll(theirs.DataDir)
	os.MkdirAll(theirs.DataDir, 0o755)
	os.WriteFile(filepath.Join(theirs.DataDir, "precious"), []byte("not Backstop's"), 0o600)
	if _, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindInstance, Args: jobs.InstanceArgs{RestoreID: theirs.ID, Action: jobs.InstanceDelete}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(theirs.DataDir, "precious")); err != nil || string(b) != "not Backstop's" {
		t.Errorf("the directory placed at the deleted restore's path lost its file: %q, %v", b, err)
	}
	x, err := e.store.Restore(ctx, theirs.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x.State != store.RestoreDeleted || x.Error == "" {
		t.Errorf("restore after Delete = %s (%q), want deleted with a note that the directory was left", x.State, x.Error)
	}
}

// TestSweepResolvesOrphanedRestores: a restore still "restoring" whose job has ended
// (its process was killed) becomes interrupted and what it had written is removed; on the
// old code it stayed restoring forever and could be neither cancelled nor deleted.
func TestSweepResolvesOrphanedRestores(t *testing.T) {
	e := setup(t, jobs.Options{}, instanceWorker)
	ctx := context.Background()
	base := t.TempDir()
	// A job that has ended without finishing its restore, as a killed process leaves it.
	j, _ := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindInstance, Args: jobs.InstanceArgs{RestoreID: 999, Action: "stop"}})
	if j.State != store.JobFailed {
		t.Fatalf("job = %s, want failed", j.State)
	}
	orphan := restoreRow(t, e, filepath.Join(base, "half-written"), true, store.RestoreRestoring, j.ID)
	n, err := jobs.SweepRestores(ctx, e.store)
	if err != nil || n != 1 {
		t.Fatalf("SweepRestores() = %d, %v; want 1, nil", n, err)
	}
	x, err := e.store.Restore(ctx, orphan.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x.State != store.RestoreInterrupted {
		t.Errorf("orphaned restore = %s, want interrupted", x.State)
	}
	if _, err := os.Stat(orphan.DataDir); !os.IsNotExist(err) {
		t.Errorf("stat %s after the sweep = %v, want the half-written directory gone", orphan.DataDir, err)
	}
	if n, err := jobs.SweepRestores(ctx, e.store); err != nil || n != 0 {
		t.Errorf("second SweepRestores() = %d, %v; want 0", n, err)
	}
}
