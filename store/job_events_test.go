package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJobEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	j := insertJob(t, s, JobParams{Kind: "backup"})

	if evs, err := s.JobEvents(ctx, j.ID, 0); err != nil || len(evs) != 0 {
		t.Errorf("JobEvents(no events) = %v, %v, want none", evs, err)
	}

	e1, err := s.AddJobEvent(ctx, JobEvent{JobID: j.ID, Message: "queued"})
	if err != nil {
		t.Fatalf("AddJobEvent() = %v", err)
	}
	want1 := JobEvent{ID: e1.ID, JobID: j.ID, At: now, Level: EventInfo, Message: "queued"}
	if diff := cmp.Diff(want1, e1); diff != "" {
		t.Errorf("AddJobEvent() mismatch (-want +got):\n%s", diff)
	}
	at := now.Add(-time.Second)
	e2, err := s.AddJobEvent(ctx, JobEvent{JobID: j.ID, At: at, Level: EventWarn, Phase: "copy", Message: "slow disk"})
	if err != nil {
		t.Fatalf("AddJobEvent() = %v", err)
	}
	want2 := JobEvent{ID: e2.ID, JobID: j.ID, At: at, Level: EventWarn, Phase: "copy", Message: "slow disk"}

	got, err := s.JobEvents(ctx, j.ID, 0)
	if err != nil {
		t.Fatalf("JobEvents() = %v", err)
	}
	if diff := cmp.Diff([]JobEvent{want1, want2}, got); diff != "" {
		t.Errorf("JobEvents(0) mismatch (-want +got):\n%s", diff)
	}
	got, err = s.JobEvents(ctx, j.ID, e1.ID)
	if err != nil {
		t.Fatalf("JobEvents() = %v", err)
	}
	if diff := cmp.Diff([]JobEvent{want2}, got); diff != "" {
		t.Errorf("JobEvents(after %d) mismatch (-want +got):\n%s", e1.ID, diff)
	}

	_, err = s.AddJobEvent(ctx, JobEvent{JobID: 99, Message: "x"})
	wantErr(t, "AddJobEvent(job 99)", err, ErrNotFound)
	_, err = s.JobEvents(ctx, 99, 0)
	wantErr(t, "JobEvents(job 99)", err, ErrNotFound)
	_, err = s.AddJobEvent(ctx, JobEvent{JobID: j.ID, Level: "debug", Message: "x"})
	wantValidation(t, "AddJobEvent(debug)", err, "level", `must be info, warn or error, not "debug"`)
	_, err = s.AddJobEvent(ctx, JobEvent{JobID: j.ID})
	wantValidation(t, "AddJobEvent(no message)", err, "message", "is required")
}
