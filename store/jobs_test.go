package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	ownerA = Owner{Host: "host-a", PID: 100, ID: "a"}
	ownerB = Owner{Host: "host-b", PID: 200, ID: "b"}
)

// insertJob inserts a job or fails the test.
func insertJob(t *testing.T, s *Store, p JobParams) Job {
	t.Helper()
	j, err := s.InsertJob(t.Context(), p)
	if err != nil {
		t.Fatalf("InsertJob(%+v) = %v", p, err)
	}
	return j
}

func TestInsertJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")

	queued := insertJob(t, s, JobParams{Kind: "backup", SourceID: src.ID, LockKey: "source:1", RequestedBy: "alice"})
	want := Job{
		ID: queued.ID, Kind: "backup", SourceID: src.ID, LockKey: "source:1", Args: json.RawMessage(`{}`),
		State: JobQueued, CreatedAt: now, RequestedBy: "alice",
	}
	if diff := cmp.Diff(want, queued); diff != "" {
		t.Errorf("InsertJob(queued) mismatch (-want +got):\n%s", diff)
	}
	got, err := s.Job(ctx, queued.ID)
	if err != nil {
		t.Fatalf("Job(%d) = %v", queued.ID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Job() mismatch (-want +got):\n%s", diff)
	}

	running := insertJob(t, s, JobParams{
		Kind: "verify", Args: json.RawMessage(`{"deep":true}`), State: JobRunning, Owner: ownerA, RequestedBy: "cli:root",
	})
	want = Job{
		ID: running.ID, Kind: "verify", Args: json.RawMessage(`{"deep":true}`), State: JobRunning,
		CreatedAt: now, StartedAt: &now, HeartbeatAt: &now, Owner: ownerA, RequestedBy: "cli:root",
	}
	if diff := cmp.Diff(want, running); diff != "" {
		t.Errorf("InsertJob(running) mismatch (-want +got):\n%s", diff)
	}

	_, err = s.InsertJob(ctx, JobParams{Kind: "backup", SourceID: 99})
	wantErr(t, "InsertJob(unknown source)", err, ErrNotFound)
	_, err = s.Job(ctx, 99)
	wantErr(t, "Job(99)", err, ErrNotFound)

	for _, tc := range []struct {
		name    string
		p       JobParams
		field   string
		message string
	}{
		{"no kind", JobParams{}, "kind", "is required"},
		{"bad state", JobParams{Kind: "x", State: JobFailed}, "state", `must be queued or running, not "failed"`},
		{"running without owner", JobParams{Kind: "x", State: JobRunning}, "owner", "is required for a running job"},
		{"bad args", JobParams{Kind: "x", Args: json.RawMessage(`{`)}, "args", "is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.InsertJob(ctx, tc.p)
			wantValidation(t, "InsertJob()", err, tc.field, tc.message)
		})
	}
}

func TestJobLock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)

	first := insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1"})
	_, err := s.InsertJob(ctx, JobParams{Kind: "backup", LockKey: "source:1"})
	wantErr(t, "InsertJob(same lock, first queued)", err, ErrLocked)
	var le *LockedError
	if !errors.As(err, &le) || le.JobID != first.ID || le.LockKey != "source:1" {
		t.Errorf("InsertJob(same lock) = %v, want a *LockedError naming job %d", err, first.ID)
	}
	holder, err := s.ActiveJobByLock(ctx, "source:1")
	if err != nil || holder.ID != first.ID {
		t.Errorf("ActiveJobByLock() = %d, %v, want job %d", holder.ID, err, first.ID)
	}

	// Other keys and jobs without a key are free.
	insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:2"})
	insertJob(t, s, JobParams{Kind: "verify"})
	insertJob(t, s, JobParams{Kind: "verify"})

	claimed, err := s.ClaimJob(ctx, ownerA, []string{"backup"})
	if err != nil || claimed.ID != first.ID {
		t.Fatalf("ClaimJob() = %d, %v, want job %d", claimed.ID, err, first.ID)
	}
	_, err = s.InsertJob(ctx, JobParams{Kind: "backup", LockKey: "source:1", State: JobRunning, Owner: ownerB})
	wantErr(t, "InsertJob(same lock, first running)", err, ErrLocked)

	if err := s.FinishJob(ctx, first.ID, JobSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.ActiveJobByLock(ctx, "source:1")
	wantErr(t, "ActiveJobByLock(released)", err, ErrNotFound)
	second := insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1"})
	if second.ID == first.ID {
		t.Errorf("second job reuses id %d", first.ID)
	}
}

func TestClaimJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)

	_, err := s.ClaimJob(ctx, ownerA, nil)
	wantErr(t, "ClaimJob(empty queue)", err, ErrNotFound)

	j1 := insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1"})
	j2 := insertJob(t, s, JobParams{Kind: "restore"})
	j3 := insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:2"})
	clock.Advance(time.Second)
	now := clock.Now().UTC().Truncate(time.Microsecond)

	got, err := s.ClaimJob(ctx, ownerA, []string{"restore", "verify"})
	if err != nil || got.ID != j2.ID {
		t.Fatalf("ClaimJob(restore, verify) = %d, %v, want job %d", got.ID, err, j2.ID)
	}
	want := j2
	want.State, want.StartedAt, want.HeartbeatAt, want.Owner = JobRunning, &now, &now, ownerA
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ClaimJob() mismatch (-want +got):\n%s", diff)
	}

	for _, wantID := range []int64{j1.ID, j3.ID} {
		got, err := s.ClaimJob(ctx, ownerB, nil)
		if err != nil || got.ID != wantID {
			t.Errorf("ClaimJob(any) = %d, %v, want oldest job %d", got.ID, err, wantID)
		}
		if got.Owner != ownerB {
			t.Errorf("ClaimJob(any).Owner = %+v, want %+v", got.Owner, ownerB)
		}
	}
	_, err = s.ClaimJob(ctx, ownerA, nil)
	wantErr(t, "ClaimJob(all claimed)", err, ErrNotFound)

	_, err = s.ClaimJob(ctx, Owner{}, nil)
	wantValidation(t, "ClaimJob(no owner)", err, "owner", "is required")
}

func TestJobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")

	j1 := insertJob(t, s, JobParams{Kind: "backup", SourceID: src.ID})
	j2 := insertJob(t, s, JobParams{Kind: "restore", SourceID: src.ID, State: JobRunning, Owner: ownerA})
	j3 := insertJob(t, s, JobParams{Kind: "backup"})

	ids := func(js []Job) []int64 {
		var out []int64
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    JobFilter
		want []int64
	}{
		{"all", JobFilter{}, []int64{j3.ID, j2.ID, j1.ID}},
		{"queued", JobFilter{States: []JobState{JobQueued}}, []int64{j3.ID, j1.ID}},
		{"queued or running", JobFilter{States: []JobState{JobQueued, JobRunning}}, []int64{j3.ID, j2.ID, j1.ID}},
		{"source", JobFilter{SourceID: src.ID}, []int64{j2.ID, j1.ID}},
		{"kind", JobFilter{Kinds: []string{"backup"}}, []int64{j3.ID, j1.ID}},
		{"limit", JobFilter{Limit: 2}, []int64{j3.ID, j2.ID}},
		{"before", JobFilter{BeforeID: j3.ID, Limit: 1}, []int64{j2.ID}},
		{"none", JobFilter{States: []JobState{JobFailed}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Jobs(ctx, tc.f)
			if err != nil {
				t.Fatalf("Jobs(%+v) = %v", tc.f, err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("Jobs(%+v) mismatch (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}

func TestUpdateJobProgress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	j := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})

	clock.Advance(time.Second)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	if err := s.UpdateJobProgress(ctx, j.ID, "copy", 512, 2048); err != nil {
		t.Fatalf("UpdateJobProgress() = %v", err)
	}
	got, err := s.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := j
	want.Phase, want.BytesDone, want.BytesTotal, want.HeartbeatAt = "copy", 512, 2048, &now
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after UpdateJobProgress() mismatch (-want +got):\n%s", diff)
	}

	wantErr(t, "UpdateJobProgress(99)", s.UpdateJobProgress(ctx, 99, "copy", 1, 2), ErrNotFound)
	queued := insertJob(t, s, JobParams{Kind: "backup"})
	wantErr(t, "UpdateJobProgress(queued)", s.UpdateJobProgress(ctx, queued.ID, "copy", 1, 2), ErrConflict)
	if err := s.FinishJob(ctx, j.ID, JobFailed, "disk full", nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "UpdateJobProgress(finished)", s.UpdateJobProgress(ctx, j.ID, "copy", 1, 2), ErrConflict)
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	mine := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})
	theirs := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerB})
	done := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})
	if err := s.FinishJob(ctx, done.ID, JobSucceeded, "", nil); err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Minute)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	lost, err := s.Heartbeat(ctx, ownerA.ID, []int64{mine.ID, theirs.ID, done.ID, 99})
	if err != nil {
		t.Fatalf("Heartbeat() = %v", err)
	}
	if diff := cmp.Diff([]int64{theirs.ID, done.ID, 99}, lost); diff != "" {
		t.Errorf("Heartbeat() lost mismatch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		id   int64
		want time.Time
	}{{mine.ID, now}, {theirs.ID, *theirs.HeartbeatAt}} {
		j, err := s.Job(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !j.HeartbeatAt.Equal(tc.want) {
			t.Errorf("job %d heartbeat = %v, want %v", tc.id, j.HeartbeatAt, tc.want)
		}
	}
	if lost, err := s.Heartbeat(ctx, ownerA.ID, nil); err != nil || lost != nil {
		t.Errorf("Heartbeat(no jobs) = %v, %v, want nil, nil", lost, err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)

	queued := insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1"})
	got, err := s.RequestCancel(ctx, queued.ID)
	if err != nil {
		t.Fatalf("RequestCancel(queued) = %v", err)
	}
	want := queued
	want.State, want.CancelRequested, want.FinishedAt, want.Error = JobCancelled, true, &now, "cancelled before it started"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RequestCancel(queued) mismatch (-want +got):\n%s", diff)
	}
	// The lock is free again.
	insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1", State: JobRunning, Owner: ownerA})

	running := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})
	other := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})
	if ids, err := s.CancelRequested(ctx, []int64{running.ID, other.ID}); err != nil || len(ids) != 0 {
		t.Errorf("CancelRequested() before cancelling = %v, %v, want none", ids, err)
	}
	got, err = s.RequestCancel(ctx, running.ID)
	if err != nil {
		t.Fatalf("RequestCancel(running) = %v", err)
	}
	if got.State != JobRunning || !got.CancelRequested {
		t.Errorf("RequestCancel(running) = %s, cancel requested %v, want running, true", got.State, got.CancelRequested)
	}
	ids, err := s.CancelRequested(ctx, []int64{running.ID, other.ID, 99})
	if err != nil {
		t.Fatalf("CancelRequested() = %v", err)
	}
	if diff := cmp.Diff([]int64{running.ID}, ids); diff != "" {
		t.Errorf("CancelRequested() mismatch (-want +got):\n%s", diff)
	}

	if err := s.FinishJob(ctx, running.ID, JobCancelled, "cancelled by alice", nil); err != nil {
		t.Fatalf("FinishJob(cancelled) = %v", err)
	}
	if ids, err := s.CancelRequested(ctx, []int64{running.ID}); err != nil || len(ids) != 0 {
		t.Errorf("CancelRequested(finished) = %v, %v, want none", ids, err)
	}
	_, err = s.RequestCancel(ctx, running.ID)
	wantErr(t, "RequestCancel(finished)", err, ErrConflict)
	_, err = s.RequestCancel(ctx, 99)
	wantErr(t, "RequestCancel(99)", err, ErrNotFound)
}

func TestFinishJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	j := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: ownerA})

	clock.Advance(time.Minute)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	if err := s.FinishJob(ctx, j.ID, JobSucceeded, "", json.RawMessage(`{"backup_id":7}`)); err != nil {
		t.Fatalf("FinishJob() = %v", err)
	}
	got, err := s.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := j
	want.State, want.FinishedAt, want.Result = JobSucceeded, &now, json.RawMessage(`{"backup_id":7}`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after FinishJob() mismatch (-want +got):\n%s", diff)
	}

	wantErr(t, "FinishJob(finished)", s.FinishJob(ctx, j.ID, JobFailed, "x", nil), ErrConflict)
	queued := insertJob(t, s, JobParams{Kind: "backup"})
	wantErr(t, "FinishJob(queued)", s.FinishJob(ctx, queued.ID, JobFailed, "x", nil), ErrConflict)
	wantErr(t, "FinishJob(99)", s.FinishJob(ctx, 99, JobFailed, "x", nil), ErrNotFound)
	wantValidation(t, "FinishJob(queued state)", s.FinishJob(ctx, queued.ID, JobQueued, "", nil),
		"state", `must be succeeded, failed, cancelled or interrupted, not "queued"`)
	wantValidation(t, "FinishJob(bad result)", s.FinishJob(ctx, queued.ID, JobSucceeded, "", json.RawMessage(`nope`)),
		"result", "is not valid JSON")
}

func TestMarkInterrupted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	src := createSource(t, s, "orders-db")

	dead := insertJob(t, s, JobParams{Kind: "backup", SourceID: src.ID, LockKey: "source:1", State: JobRunning,
		Owner: Owner{Host: "here", PID: 100, ID: "p100"}})
	alive := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: Owner{Host: "here", PID: 200, ID: "p200"}})
	remote := insertJob(t, s, JobParams{Kind: "backup", State: JobRunning, Owner: Owner{Host: "there", PID: 100, ID: "r100"}})
	queued := insertJob(t, s, JobParams{Kind: "backup"})

	deadBackup, err := s.CreateBackup(ctx, BackupParams{SourceID: src.ID, JobID: dead.ID, RepoID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	aliveBackup, err := s.CreateBackup(ctx, BackupParams{SourceID: src.ID, JobID: alive.ID, RepoID: "r2"})
	if err != nil {
		t.Fatal(err)
	}

	clock.Advance(30 * time.Second)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	isAlive := func(pid int) bool { return pid != 100 }
	n, err := s.MarkInterrupted(ctx, "here", isAlive, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("MarkInterrupted(fresh heartbeats) = %d, %v, want 1", n, err)
	}
	// The runner that would have recorded the job's end is gone: the sweep records it.
	if es, err := s.AuditPage(ctx, AuditFilter{ActionPrefix: "job.interrupted"}); err != nil || len(es) != 1 ||
		es[0].Actor != "system" || es[0].Target != "orders-db" || !strings.Contains(string(es[0].Detail), fmt.Sprintf(`"job_id":%d`, dead.ID)) {
		t.Errorf("job.interrupted entries = %+v, %v, want the dead job's, on orders-db", es, err)
	}

	const msg = "interrupted: the process running this job stopped (pid 100)"
	got, err := s.Job(ctx, dead.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := dead
	want.State, want.FinishedAt, want.Error = JobInterrupted, &now, msg
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead job mismatch (-want +got):\n%s", diff)
	}
	b, err := s.Backup(ctx, deadBackup.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != BackupInterrupted || b.Error != msg || b.FinishedAt == nil || !b.FinishedAt.Equal(now) {
		t.Errorf("dead job's backup = %s %q at %v, want interrupted %q at %v", b.State, b.Error, b.FinishedAt, msg, now)
	}
	evs, err := s.JobEvents(ctx, dead.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantEvs := []JobEvent{{ID: evs[0].ID, JobID: dead.ID, At: now, Level: EventError, Message: msg}}
	if diff := cmp.Diff(wantEvs, evs); diff != "" {
		t.Errorf("dead job events mismatch (-want +got):\n%s", diff)
	}
	// The lock is released.
	insertJob(t, s, JobParams{Kind: "backup", LockKey: "source:1"})

	for _, j := range []Job{alive, remote, queued} {
		got, err := s.Job(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(j, got); diff != "" {
			t.Errorf("job %d changed (-want +got):\n%s", j.ID, diff)
		}
	}

	// Heartbeats go stale: "alive" keeps beating, "remote" does not.
	clock.Advance(time.Minute)
	if _, err := s.Heartbeat(ctx, "p200", []int64{alive.ID}); err != nil {
		t.Fatal(err)
	}
	n, err = s.MarkInterrupted(ctx, "here", isAlive, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("MarkInterrupted(stale heartbeat) = %d, %v, want 1", n, err)
	}
	got, err = s.Job(ctx, remote.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := "interrupted: the process running this job (pid 100 on there) sent no heartbeat since 2026-11-25T09:47:35.123456Z"
	if got.State != JobInterrupted || got.Error != wantMsg {
		t.Errorf("remote job = %s %q, want interrupted %q", got.State, got.Error, wantMsg)
	}
	for id, want := range map[int64]JobState{alive.ID: JobRunning, queued.ID: JobQueued} {
		if got, _ := s.Job(ctx, id); got.State != want {
			t.Errorf("job %d = %s, want %s", id, got.State, want)
		}
	}
	if b, _ := s.Backup(ctx, aliveBackup.ID); b.State != BackupRunning {
		t.Errorf("live job's backup = %s, want running", b.State)
	}

	// The stale check can be turned off, and alive may be nil.
	clock.Advance(time.Hour)
	if n, err := s.MarkInterrupted(ctx, "here", nil, 0); err != nil || n != 0 {
		t.Errorf("MarkInterrupted(no checks) = %d, %v, want 0", n, err)
	}
}
