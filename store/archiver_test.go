package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestArchiverState(t *testing.T) {
	t.Parallel()
	s, clock := setup(t)
	ctx := t.Context()
	src := createSource(t, s, "orders")
	if _, err := s.ArchiverState(ctx, src.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ArchiverState(no row) = %v, want ErrNotFound", err)
	}
	now := clock.Now().UTC().Truncate(time.Microsecond)
	gapAt := now.Add(-time.Minute)
	want := ArchiverState{SourceID: src.ID, State: ArchiverStreaming, Since: now.Add(-time.Hour),
		ReceivedLSN: "0/3000100", FlushedLSN: "0/3000000", ServerLSN: "0/3000100", BehindBytes: 256,
		CaughtUpAt: &now, SlotName: "backstop_orders", SlotWALStatus: "reserved", SlotRetainedBytes: 1 << 20,
		GapFromLSN: "0/1000000", GapToLSN: "0/2000000", GapAt: &gapAt, NeedsBackupSince: &gapAt, Recoveries: 1,
		UpdatedAt: now}
	if err := s.SaveArchiverState(ctx, want); err != nil {
		t.Fatalf("SaveArchiverState() = %v", err)
	}
	got, err := s.ArchiverState(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ArchiverState() mismatch (-want +got):\n%s", diff)
	}

	// A stopped archiver needs a reason; the new state replaces the old.
	stopped := ArchiverState{SourceID: src.ID, State: ArchiverStopped, Since: now}
	var ve *ValidationError
	if err := s.SaveArchiverState(ctx, stopped); !errors.As(err, &ve) || ve.Field != "reason" {
		t.Errorf("SaveArchiverState(stopped, no reason) = %v, want a validation error on reason", err)
	}
	stopped.Reason, stopped.Cause = "connection refused", CauseUnreachable
	if err := s.SaveArchiverState(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	all, err := s.ArchiverStates(ctx)
	if err != nil || len(all) != 1 || all[0].State != ArchiverStopped || all[0].Reason != "connection refused" || all[0].NeedsBackupSince != nil {
		t.Errorf("ArchiverStates() = %+v, %v, want the stopped state alone", all, err)
	}
}

func TestWALGaps(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := t.Context()
	src := createSource(t, s, "orders")
	g, err := s.RecordWALGap(ctx, WALGap{SourceID: src.ID, Timeline: 1, FromLSN: "0/1000000", ToLSN: "0/5000000", Reason: "slot lost"})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := s.WALGaps(ctx, src.ID)
	if err != nil || len(gs) != 1 || gs[0] != g {
		t.Errorf("WALGaps() = %+v, %v, want [%+v]", gs, err, g)
	}
}

func TestProbeWriteAndFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s := openAt(t, path)
	if err := s.ProbeWrite(t.Context()); err != nil {
		t.Errorf("ProbeWrite() = %v", err)
	}
	if f, err := s.File(t.Context()); err != nil || f != path {
		t.Errorf("File() = %q, %v, want %q", f, err, path)
	}
}
