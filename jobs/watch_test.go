package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// TestJobsOfOtherProcessesReachTheHub: a backup run by another process (the CLI) shows on
// the server's hub, which feeds the dashboard: while it runs, and when it ends.
func TestJobsOfOtherProcessesReachTheHub(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cli := setup(t, jobs.Options{})
	src := cli.register(t, "watched", createDatabase(t, shared.Cluster(t), "watched"))

	st, err := store.Open(ctx, cli.catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub := jobs.NewHub()
	go hub.Run(ctx)
	server := jobs.NewRunner(st, hub, testLogger(t), jobs.Options{Workers: 1, Poll: 50 * time.Millisecond},
		jobs.NewBackupWorker(st, cli.repo))
	if err := server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	sub := hub.Subscribe()
	defer hub.Unsubscribe(sub)

	job, _ := cli.backup(t, src)
	var sawRunning bool
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.JobID != job.ID {
				continue
			}
			if ev.State == store.JobRunning {
				sawRunning = true
			}
			if ev.Type == jobs.EventState && ev.State == store.JobSucceeded {
				if !sawRunning {
					t.Errorf("the server's hub saw job %d end but never saw it running", job.ID)
				}
				return
			}
		case <-timeout:
			t.Fatalf("the server's hub never saw job %d (run by another process) succeed", job.ID)
		}
	}
}
