package jobs_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

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
