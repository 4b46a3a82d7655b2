package jobs_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// runVerify runs a verify job of src and returns its result.
func (e *env) runVerify(t *testing.T, src store.Source, deep bool) jobs.VerifyResult {
	t.Helper()
	job, err := e.runner.Run(context.Background(), jobs.Params{Kind: jobs.KindVerify, SourceID: src.ID,
		LockKey: jobs.VerifyLockKey(src.ID), Args: jobs.VerifyArgs{SourceID: src.ID, Deep: deep}, RequestedBy: "test"})
	if err != nil || job.State != store.JobSucceeded {
		t.Fatalf("Run(verify) = %s, %v", job.State, err)
	}
	var res jobs.VerifyResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestVerifyFindsAndHeals: a deep verification of an intact repository finds nothing and
// raises no alert; one flipped bit in a random stored block of a backup is found by the
// next verification, which names the backup, the file and the object, marks the copy bad
// and raises a critical alert; the next backup stores a good copy, after which a deep
// verification is clean, the alert resolves, and the older backup restores exactly.
func TestVerifyFindsAndHeals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "verified")
	execSQL(t, dsn,
		`CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL)`,
		`INSERT INTO accounts SELECT g, md5(g::text) FROM generate_series(1, 20000) g`,
		`CHECKPOINT`)
	want := tableHashes(t, connect(t, dsn))
	relPath := queryValue(t, connect(t, dsn), `SELECT pg_relation_filepath('accounts')`)
	windows := jobs.NewWindowCache(nil, nil)
	e := setup(t, jobs.Options{},
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewRestoreWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			windows = jobs.NewWindowCache(st, repo)
			return jobs.NewVerifyWorker(st, repo, windows)
		})
	src := e.register(t, "verified", dsn)
	_, b1 := e.backup(t, src)
	ev := jobs.NewEvaluator(e.store, windows, testLogger(t))

	res := e.runVerify(t, src, true)
	if res.State != store.VerifyClean || len(res.Findings) != 0 || res.PacksChecked == 0 || res.PacksChecked != res.PacksTotal ||
		res.BlobsChecked == 0 || res.BlobsRehashed != res.BlobsChecked {
		t.Fatalf("deep verify of an intact repository = %+v, want clean, every pack read, every blob rehashed (none proven yet)", res)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if open, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true}); slices.ContainsFunc(open, func(a store.Alert) bool { return a.Rule == "verify-finding" }) {
		t.Fatalf("alerts after a clean deep verify = %+v, want no verification alert", open)
	}

	// One bit of a random block of the table, in the backup's only copy.
	m, err := e.repo.Manifest(ctx, b1.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	uses := map[string]int{}
	var candidates []string
	for _, f := range m.Files {
		blocks, err := e.repo.FileBlocks(ctx, &f, m.BlockSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range blocks {
			uses[name]++
		}
		if f.Path == relPath {
			candidates = blocks
		}
	}
	candidates = slices.DeleteFunc(candidates, func(n string) bool { return uses[n] != 1 })
	if len(candidates) == 0 {
		t.Fatalf("no block of %s is stored once", relPath)
	}
	object := candidates[rand.IntN(len(candidates))]
	flipBlob(t, e.repo, object)

	res = e.runVerify(t, src, false)
	if res.State != store.VerifyFindings || !slices.ContainsFunc(res.Findings, func(f store.VerifyFinding) bool {
		return f.Kind == repository.FindingCorruptBlob && f.Object == object && f.BackupID == b1.ID && f.Path == relPath
	}) {
		t.Fatalf("verify after flipping a bit of %s = %+v, want a corrupt-blob finding naming backup %d, %s and the object", object, res, b1.ID, relPath)
	}
	if bad, err := e.repo.BadObjects(ctx); err != nil || !slices.ContainsFunc(bad, func(b repository.BadObject) bool { return b.Name == object }) {
		t.Errorf("BadObjects() = %v, %v; want the corrupt copy marked", bad, err)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	open, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true})
	i := slices.IndexFunc(open, func(a store.Alert) bool { return a.Rule == "verify-finding" })
	if i < 0 || open[i].Severity != store.SeverityCritical || !strings.Contains(open[i].Explanation, relPath) ||
		!strings.Contains(open[i].Explanation, "backup "+itoa(b1.ID)) {
		t.Fatalf("alerts after the finding = %+v, want a critical verification alert naming backup %d and %s", open, b1.ID, relPath)
	}
	t.Logf("alert: %s — %s", open[i].Title, open[i].Explanation)

	// The next backup stores a good copy; then everything is clean again.
	e.backup(t, src)
	res = e.runVerify(t, src, true)
	if res.State != store.VerifyClean {
		t.Fatalf("deep verify after the next backup = %+v, want clean", res)
	}
	if _, err := ev.Evaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if open, _ := e.store.Alerts(ctx, store.AlertFilter{Open: true}); slices.ContainsFunc(open, func(a store.Alert) bool { return a.Rule == "verify-finding" }) {
		t.Errorf("the verification alert is still open after a clean deep verify: %+v", open)
	}
	into := filepath.Join(reachableDir(t), "data")
	if job, err := e.runner.Run(ctx, restoreParams(b1.ID, into)); err != nil || job.State != store.JobSucceeded {
		t.Fatalf("restore of the older backup after healing = %s, %v", job.State, err)
	}
	restored := startRestored(t, c.Binaries(), into)
	if diff := cmp.Diff(want, tableHashes(t, connect(t, restored.DSN("verified")))); diff != "" {
		t.Errorf("the older backup restored after healing differs (-want +got):\n%s", diff)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
