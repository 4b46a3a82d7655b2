package repository

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSourceRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, err := Init(t.TempDir(), make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	created := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	rec := SourceRecord{Name: "orders-db", DSN: "postgres://backstop:secret@db1/postgres", SystemIdentifier: "7312345678901234567",
		PGVersion: 150004, Timeline: 1, CreatedAt: created, UpdatedAt: created}
	if err := r.PutSource(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Replaced, not refused: the record is the latest word on the source.
	removed := created.Add(time.Hour)
	rec.RemovedAt, rec.UpdatedAt = &removed, removed
	if err := r.PutSource(ctx, rec); err != nil {
		t.Fatalf("PutSource again = %v, want the record replaced", err)
	}
	got, err := r.Source(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	rec.Format = SourceFormat
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("Source(orders-db) (-want +got):\n%s", diff)
	}
	if names, err := r.SourceNames(ctx); err != nil || !cmp.Equal(names, []string{"orders-db"}) {
		t.Errorf("SourceNames() = %v, %v; want [orders-db]", names, err)
	}
	if _, err := r.Source(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Source(other) = %v, want ErrNotFound", err)
	}
	// Sealed with the name as associated data: a record moved to another name fails.
	sealed, err := r.st.Get(ctx, sourceKey("orders-db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.Put(ctx, sourceKey("other"), sealed, false); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, err := r.Source(ctx, "other"); !errors.As(err, &ce) {
		t.Errorf("Source(other) holding orders-db's record = %v, want a *CorruptError", err)
	}
	if err := r.PutSource(ctx, SourceRecord{Name: "../x", DSN: "x", SystemIdentifier: "1", PGVersion: 1, CreatedAt: created}); err == nil {
		t.Errorf("PutSource(../x) succeeded, want an invalid name refused")
	}
}
