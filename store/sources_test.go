package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testSourceParams returns valid parameters for a source named name.
func testSourceParams(name string) SourceParams {
	on := true
	return SourceParams{
		Name:             name,
		DSN:              "host=localhost user=backstop password=secret dbname=postgres",
		SystemIdentifier: "7310000000000000001",
		PGVersion:        150004,
		Timeline:         1,
		DataChecksums:    &on,
	}
}

// createSource creates a source named name or fails the test.
func createSource(t *testing.T, s *Store, name string) Source {
	t.Helper()
	src, err := s.CreateSource(t.Context(), testSourceParams(name))
	if err != nil {
		t.Fatalf("CreateSource(%q) = %v", name, err)
	}
	return src
}

func TestSources(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)

	p := testSourceParams("orders-db")
	src, err := s.CreateSource(ctx, p)
	if err != nil {
		t.Fatalf("CreateSource() = %v", err)
	}
	want := Source{
		ID: src.ID, Name: p.Name, DSN: p.DSN, SystemIdentifier: p.SystemIdentifier, PGVersion: p.PGVersion,
		Timeline: 1, DataChecksums: p.DataChecksums, CreatedAt: now, UpdatedAt: now,
	}
	if diff := cmp.Diff(want, src); diff != "" {
		t.Errorf("CreateSource() mismatch (-want +got):\n%s", diff)
	}

	got, err := s.Source(ctx, src.ID)
	if err != nil {
		t.Fatalf("Source(%d) = %v", src.ID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Source() mismatch (-want +got):\n%s", diff)
	}
	got, err = s.SourceByName(ctx, "orders-db")
	if err != nil {
		t.Fatalf("SourceByName() = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SourceByName() mismatch (-want +got):\n%s", diff)
	}

	// Unknown timeline and checksums.
	bare := testSourceParams("accounts")
	bare.Timeline, bare.DataChecksums = 0, nil
	acc, err := s.CreateSource(ctx, bare)
	if err != nil {
		t.Fatalf("CreateSource(no timeline) = %v", err)
	}
	if acc.Timeline != 0 || acc.DataChecksums != nil {
		t.Errorf("CreateSource(no timeline) = timeline %d, checksums %v, want 0, nil", acc.Timeline, acc.DataChecksums)
	}

	all, err := s.Sources(ctx)
	if err != nil {
		t.Fatalf("Sources() = %v", err)
	}
	if diff := cmp.Diff([]Source{acc, want}, all); diff != "" {
		t.Errorf("Sources() mismatch (-want +got):\n%s", diff)
	}

	clock.Advance(time.Minute)
	p.DSN = "host=db2"
	p.PGVersion = 160001
	off := false
	p.DataChecksums = &off
	upd, err := s.UpdateSource(ctx, src.ID, p)
	if err != nil {
		t.Fatalf("UpdateSource() = %v", err)
	}
	want.DSN, want.PGVersion, want.DataChecksums, want.UpdatedAt = "host=db2", 160001, &off, now.Add(time.Minute)
	if diff := cmp.Diff(want, upd); diff != "" {
		t.Errorf("UpdateSource() mismatch (-want +got):\n%s", diff)
	}

	_, err = s.UpdateSource(ctx, src.ID, testSourceParams("accounts"))
	wantValidation(t, "UpdateSource(taken name)", err, "name", `a source named "accounts" already exists`)

	if err := s.DeleteSource(ctx, acc.ID); err != nil {
		t.Errorf("DeleteSource() = %v", err)
	}
	_, err = s.Source(ctx, acc.ID)
	wantErr(t, "Source(deleted)", err, ErrNotFound)
}

func TestSourcesNotFound(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	_, err := s.Source(ctx, 42)
	wantErr(t, "Source(42)", err, ErrNotFound)
	_, err = s.SourceByName(ctx, "nope")
	wantErr(t, "SourceByName(nope)", err, ErrNotFound)
	_, err = s.UpdateSource(ctx, 42, testSourceParams("x"))
	wantErr(t, "UpdateSource(42)", err, ErrNotFound)
	wantErr(t, "DeleteSource(42)", s.DeleteSource(ctx, 42), ErrNotFound)
	all, err := s.Sources(ctx)
	if err != nil || len(all) != 0 {
		t.Errorf("Sources() = %v, %v, want none", all, err)
	}
}

func TestCreateSourceValidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	createSource(t, s, "orders-db")

	const badName = "must be 1 to 63 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit"
	long := "a123456789b123456789c123456789d123456789e123456789f123456789abc" // 63
	for _, tc := range []struct {
		name    string
		edit    func(*SourceParams)
		field   string
		message string
	}{
		{"empty name", func(p *SourceParams) { p.Name = "" }, "name", "is required"},
		{"upper case", func(p *SourceParams) { p.Name = "Orders" }, "name", badName},
		{"leading dash", func(p *SourceParams) { p.Name = "-orders" }, "name", badName},
		{"dot", func(p *SourceParams) { p.Name = "orders.db" }, "name", badName},
		{"too long", func(p *SourceParams) { p.Name = long + "x" }, "name", badName},
		{"taken", func(p *SourceParams) { p.Name = "orders-db" }, "name", `a source named "orders-db" already exists`},
		{"no dsn", func(p *SourceParams) { p.DSN = "" }, "dsn", "is required"},
		{"no system identifier", func(p *SourceParams) { p.SystemIdentifier = "" }, "system_identifier", "is required"},
		{"no version", func(p *SourceParams) { p.PGVersion = 0 }, "pg_version", "must be a server_version_num such as 150004"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testSourceParams("fresh")
			tc.edit(&p)
			_, err := s.CreateSource(ctx, p)
			wantValidation(t, "CreateSource()", err, tc.field, tc.message)
		})
	}
	if _, err := s.CreateSource(ctx, testSourceParams(long)); err != nil {
		t.Errorf("CreateSource(63-character name) = %v", err)
	}
}
