package store

import (
	"errors"
	"testing"
	"time"
)

func TestRestoreLifecycle(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := t.Context()
	src := createSource(t, s, "orders")
	x, err := s.CreateRestore(ctx, RestoreParams{SourceID: src.ID, Target: "latest", DataDir: "/srv/r1", Port: 5433, PGMajor: 15})
	if err != nil {
		t.Fatal(err)
	}
	if x.State != RestoreRestoring || x.Port != 5433 || x.DataDir != "/srv/r1" {
		t.Errorf("CreateRestore() = %+v, want restoring on 5433 in /srv/r1", x)
	}
	var ve *ValidationError
	_, err = s.CreateRestore(ctx, RestoreParams{SourceID: src.ID, Target: "latest", DataDir: "/srv/r1", PGMajor: 15})
	if !errors.As(err, &ve) || ve.Field != "dir" {
		t.Errorf("CreateRestore(same live directory) = %v, want a ValidationError on dir", err)
	}
	_, err = s.CreateRestore(ctx, RestoreParams{SourceID: src.ID, Target: "latest", DataDir: "/srv/r2", Port: 5433, PGMajor: 15})
	if !errors.As(err, &ve) || ve.Field != "port" {
		t.Errorf("CreateRestore(same port) = %v, want a ValidationError on port", err)
	}

	at := time.Date(2026, 11, 25, 9, 30, 0, 123456000, time.UTC)
	x, err = s.UpdateRestore(ctx, x.ID, RestoreUpdate{State: RestoreRunning, StopLine: "recovery stopping before commit", LastCommitAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if x.State != RestoreRunning || x.LastCommitAt == nil || !x.LastCommitAt.Equal(at) || x.StopLine == "" {
		t.Errorf("UpdateRestore() = %+v, want running with the stop line and last commit", x)
	}
	x, err = s.UpdateRestore(ctx, x.ID, RestoreUpdate{State: RestoreDeleted})
	if err != nil {
		t.Fatal(err)
	}
	if x.StopLine == "" || x.LastCommitAt == nil {
		t.Errorf("UpdateRestore(state only) cleared other fields: %+v", x)
	}
	// Deleted: its directory and port are free again.
	if _, err := s.CreateRestore(ctx, RestoreParams{SourceID: src.ID, Target: "latest", DataDir: "/srv/r1", Port: 5433, PGMajor: 15}); err != nil {
		t.Errorf("CreateRestore(directory of a deleted restore) = %v", err)
	}
	live, err := s.Restores(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Restores(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || len(all) != 2 {
		t.Errorf("Restores() = %d live, %d in all; want 1 and 2", len(live), len(all))
	}
	if _, err := s.Restore(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("Restore(999) = %v, want ErrNotFound", err)
	}
}
