package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// TestJobEndsAreAudited: the runner records how every job ended, with who started it, the
// source, the arguments (the backup a restore used) and the result (the backup taken),
// whether it succeeded or failed.
func TestJobEndsAreAudited(t *testing.T) {
	t.Parallel()
	e := setup(t, jobs.Options{})
	src := e.register(t, "audited", shared.Cluster(t).DSN("postgres"))
	_, b := e.backup(t, src)

	into := reachableDir(t)
	if err := os.WriteFile(filepath.Join(into, "somebody-elses"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := restoreParams(b.ID, into)
	p.RequestedBy = "" // a job nobody asked for by name: the system's
	if job, err := e.runner.Run(context.Background(), p); err == nil || job.State != store.JobFailed {
		t.Fatalf("restore into a non-empty directory = %s, %v; want it failed", job.State, err)
	}

	es, err := e.store.AuditPage(t.Context(), store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	type detail struct {
		JobID  int64          `json:"job_id"`
		State  store.JobState `json:"state"`
		Error  string         `json:"error"`
		Args   map[string]any `json:"args"`
		Result map[string]any `json:"result"`
	}
	got := map[string]store.AuditEntry{}
	for _, e := range es {
		got[e.Action] = e
	}
	var d detail
	be, ok := got["backup.end"]
	if !ok || json.Unmarshal(be.Detail, &d) != nil || be.Actor != "test" || be.Target != "audited" ||
		d.State != store.JobSucceeded || d.Result["backup_id"] != float64(b.ID) {
		t.Errorf("backup.end entry = %+v (%s), want test's backup of audited, succeeded, with backup %d", be, be.Detail, b.ID)
	}
	d = detail{}
	re, ok := got["restore.end"]
	if !ok || json.Unmarshal(re.Detail, &d) != nil || re.Actor != "system" || d.State != store.JobFailed || d.Error == "" ||
		d.Args["backup_id"] != float64(b.ID) {
		t.Errorf("restore.end entry = %+v (%s), want the system's failed restore of backup %d with its error", re, re.Detail, b.ID)
	}
	if c, err := e.store.CheckAuditChain(t.Context()); err != nil || c.Problem != nil {
		t.Errorf("CheckAuditChain() = %+v, %v", c, err)
	}
}

// TestAuditHeadIsNotReplacedByAnOlderCatalog: the head written to the repository moves
// forward with the catalog, and a catalog that does not hold it (an older copy) neither
// passes the check nor overwrites it, however often serve tries.
func TestAuditHeadIsNotReplacedByAnOlderCatalog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := setup(t, jobs.Options{})
	add := func(st *store.Store, n int) {
		t.Helper()
		for range n {
			if err := st.Audit(ctx, store.AuditEntry{Actor: "alice", Action: "policy.set", Target: "orders"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(e.store, 2)
	older := filepath.Join(t.TempDir(), "older.db")
	db, err := sql.Open("sqlite", e.catalog)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", older); err != nil {
		t.Fatal(err)
	}
	db.Close()
	add(e.store, 3)
	head, err := jobs.WriteAuditHead(ctx, e.store, e.repo, time.Now())
	if err != nil || head.ID != 5 {
		t.Fatalf("WriteAuditHead() = %+v, %v, want entry 5", head, err)
	}

	old, err := store.Open(ctx, older)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	add(old, 4) // entries 3 to 6 again, with other hashes
	var he *jobs.AuditHeadError
	for range 2 {
		if _, err := jobs.WriteAuditHead(ctx, old, e.repo, time.Now()); !errors.As(err, &he) || he.Head.ID != 5 {
			t.Errorf("WriteAuditHead(older catalog) = %v, want an *AuditHeadError naming entry 5", err)
		}
	}
	if stored, err := e.repo.AuditHead(ctx); err != nil || stored.ID != 5 || stored.Hash != head.Hash {
		t.Errorf("repository head after the older catalog tried = %+v, %v; want entry 5 unchanged", stored, err)
	}
	if _, err := jobs.CheckAuditHead(ctx, e.store, e.repo); err != nil {
		t.Errorf("CheckAuditHead(the catalog that wrote it) = %v", err)
	}
}
