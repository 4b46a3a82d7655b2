package store

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTablespaceCreations: creations found in a partial piece, then again in
// the complete segment, are recorded once, listed by LSN, and kept when the
// piece they came from is superseded.
func TestTablespaceCreations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")
	other := createSource(t, s, "billing-db")

	if got, err := s.TablespaceCreations(ctx, src.ID); err != nil || len(got) != 0 {
		t.Fatalf("TablespaceCreations(no WAL) = %v, %v, want none", got, err)
	}
	prev := time.Date(2026, 11, 25, 9, 40, 0, 123456000, time.UTC)
	late := TablespaceCreationParams{Timeline: 1, LSN: "0/3a800028", EndLSN: "0/3a800060", PrevLSN: "0/3a800000", OID: 16391, Location: "/srv/ts2"}
	early := TablespaceCreationParams{Timeline: 1, LSN: "0/3a000028", EndLSN: "0/3a000060", PrevLSN: "0/39fffff0", OID: 16390, Location: "/srv/ts", PrevCommitAt: prev}

	piece := partialParams(src.ID, 1, 0x3A, 0x100000)
	piece.Tablespaces = []TablespaceCreationParams{early}
	recordWAL(t, s, piece)
	seg := segParams(src.ID, 1, 0x3A)
	seg.Tablespaces = []TablespaceCreationParams{late, early}
	recordWAL(t, s, seg)
	recordWAL(t, s, seg) // again: harmless
	recordWAL(t, s, segParams(other.ID, 1, 0x3A))

	got, err := s.TablespaceCreations(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []TablespaceCreation{
		{ID: got[0].ID, SourceID: src.ID, Timeline: 1, LSN: "0/3A000028", EndLSN: "0/3A000060", PrevLSN: "0/39FFFFF0", OID: 16390, Location: "/srv/ts",
			PrevCommitAt: &prev, WALFile: piece.Name, RecordedAt: now},
		{ID: got[1].ID, SourceID: src.ID, Timeline: 1, LSN: "0/3A800028", EndLSN: "0/3A800060", PrevLSN: "0/3A800000", OID: 16391, Location: "/srv/ts2",
			WALFile: seg.Name, RecordedAt: now},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TablespaceCreations() mismatch (-want +got):\n%s", diff)
	}
	if got, err := s.TablespaceCreations(ctx, other.ID); err != nil || len(got) != 0 {
		t.Errorf("TablespaceCreations(other source) = %v, %v, want none", got, err)
	}
	if _, err := s.TablespaceCreations(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("TablespaceCreations(unknown source) = %v, want ErrNotFound", err)
	}

	for name, tc := range map[string]TablespaceCreationParams{
		"outside the file": {Timeline: 1, LSN: "0/3C000028", EndLSN: "0/3C000060", PrevLSN: "0/1", OID: 1, Location: "/x"},
		"no OID":           {Timeline: 1, LSN: "0/3B000028", EndLSN: "0/3B000060", PrevLSN: "0/1", Location: "/x"},
		"end before start": {Timeline: 1, LSN: "0/3B000028", EndLSN: "0/3B000028", PrevLSN: "0/1", OID: 1, Location: "/x"},
	} {
		p := segParams(src.ID, 1, 0x3B)
		p.Tablespaces = []TablespaceCreationParams{tc}
		var ve *ValidationError
		if _, err := s.RecordWAL(ctx, p); !errors.As(err, &ve) || ve.Field != "tablespaces[0]" {
			t.Errorf("RecordWAL(tablespace %s) = %v, want a ValidationError on tablespaces[0]", name, err)
		}
	}
}
