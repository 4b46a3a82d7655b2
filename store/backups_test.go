package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// createBackup creates a running backup or fails the test.
func createBackup(t *testing.T, s *Store, p BackupParams) Backup {
	t.Helper()
	b, err := s.CreateBackup(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateBackup(%+v) = %v", p, err)
	}
	return b
}

func TestBackupLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")
	job := insertJob(t, s, JobParams{Kind: "backup", SourceID: src.ID, State: JobRunning, Owner: ownerA})

	b, err := s.CreateBackup(ctx, BackupParams{
		SourceID: src.ID, JobID: job.ID, RepoID: "20261125T094735Z-3fa2c1d0", Label: "nightly",
		StartLSN: "0/3A000028", Timeline: 1, PGVersion: 150004, SystemIdentifier: "7310000000000000001",
	})
	if err != nil {
		t.Fatalf("CreateBackup() = %v", err)
	}
	want := Backup{
		ID: b.ID, SourceID: src.ID, JobID: job.ID, RepoID: "20261125T094735Z-3fa2c1d0", State: BackupRunning,
		Label: "nightly", StartedAt: now, StartLSN: "0/3A000028", Timeline: 1, PGVersion: 150004,
		SystemIdentifier: "7310000000000000001",
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("CreateBackup() mismatch (-want +got):\n%s", diff)
	}

	files := []BackupFile{
		{Path: "base/5/16384", Type: "file", Mode: 0o600, Size: 8192 * 3, Blocks: 3},
		{Path: "PG_VERSION", Type: "file", Mode: 0o600, Size: 3, Blocks: 1},
		{Path: "base", Type: "dir", Mode: 0o700},
	}
	stats := BackupStats{
		SourceBytes: 24579, StoredBytesNew: 1000, StoredBytesReferenced: 2000, WALBytes: 16 << 20,
		WALStoredBytesNew: 300, FileCount: 2, BlockCount: 4, BlockCountNew: 1,
	}
	clock.Advance(time.Minute)
	done := now.Add(time.Minute)
	if err := s.CompleteBackup(ctx, b.ID, BackupCompletion{EndLSN: "0/3A000100", Stats: stats, Files: files}); err != nil {
		t.Fatalf("CompleteBackup() = %v", err)
	}
	got, err := s.Backup(ctx, b.ID)
	if err != nil {
		t.Fatalf("Backup(%d) = %v", b.ID, err)
	}
	want.State, want.FinishedAt, want.EndLSN, want.Stats = BackupComplete, &done, "0/3A000100", stats
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after CompleteBackup() mismatch (-want +got):\n%s", diff)
	}

	gotFiles, err := s.BackupFiles(ctx, b.ID, 0, 0)
	if err != nil {
		t.Fatalf("BackupFiles() = %v", err)
	}
	wantFiles := []BackupFile{files[1], files[2], files[0]} // by path
	if diff := cmp.Diff(wantFiles, gotFiles); diff != "" {
		t.Errorf("BackupFiles() mismatch (-want +got):\n%s", diff)
	}
	gotFiles, err = s.BackupFiles(ctx, b.ID, 1, 1)
	if err != nil {
		t.Fatalf("BackupFiles(1, 1) = %v", err)
	}
	if diff := cmp.Diff(wantFiles[1:2], gotFiles); diff != "" {
		t.Errorf("BackupFiles(1, 1) mismatch (-want +got):\n%s", diff)
	}

	err = s.CompleteBackup(ctx, b.ID, BackupCompletion{EndLSN: "0/3A000100"})
	wantErr(t, "CompleteBackup(complete)", err, ErrConflict)
	wantErr(t, "FailBackup(complete)", s.FailBackup(ctx, b.ID, BackupFailed, "x"), ErrConflict)

	// A source with backups cannot be deleted.
	wantErr(t, "DeleteSource(with backups)", s.DeleteSource(ctx, src.ID), ErrConflict)
}

func TestCompleteBackupValidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")
	b := createBackup(t, s, BackupParams{SourceID: src.ID, RepoID: "r1"})

	err := s.CompleteBackup(ctx, b.ID, BackupCompletion{})
	wantValidation(t, "CompleteBackup(no end LSN)", err, "end_lsn", "is required")
	err = s.CompleteBackup(ctx, b.ID, BackupCompletion{EndLSN: "0/2"})
	wantValidation(t, "CompleteBackup(no start LSN)", err, "start_lsn", "is required")

	err = s.CompleteBackup(ctx, b.ID, BackupCompletion{StartLSN: "0/1", EndLSN: "0/2", Files: []BackupFile{
		{Path: "PG_VERSION", Type: "file"}, {Path: "PG_VERSION", Type: "file"},
	}})
	wantValidation(t, "CompleteBackup(duplicate path)", err, "files", `path "PG_VERSION" is listed twice`)
	// Nothing of the failed completion remains.
	got, err := s.Backup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("backup changed by a failed completion (-want +got):\n%s", diff)
	}
	if files, err := s.BackupFiles(ctx, b.ID, 0, 0); err != nil || len(files) != 0 {
		t.Errorf("BackupFiles() after a failed completion = %v, %v, want none", files, err)
	}

	// StartLSN may come at completion.
	if err := s.CompleteBackup(ctx, b.ID, BackupCompletion{StartLSN: "0/1", EndLSN: "0/2", Timeline: 2}); err != nil {
		t.Fatalf("CompleteBackup(start LSN at completion) = %v", err)
	}
	got, err = s.Backup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.StartLSN != "0/1" || got.EndLSN != "0/2" || got.Timeline != 2 {
		t.Errorf("Backup() = LSNs %s-%s timeline %d, want 0/1-0/2 timeline 2", got.StartLSN, got.EndLSN, got.Timeline)
	}
}

func TestFailBackup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")

	for i, st := range []BackupState{BackupFailed, BackupCancelled, BackupInterrupted} {
		b := createBackup(t, s, BackupParams{SourceID: src.ID, RepoID: string(st)})
		if err := s.FailBackup(ctx, b.ID, st, "why "+string(st)); err != nil {
			t.Fatalf("FailBackup(%s) = %v", st, err)
		}
		got, err := s.Backup(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := b
		want.State, want.Error, want.FinishedAt = st, "why "+string(st), &now
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d: after FailBackup(%s) mismatch (-want +got):\n%s", i, st, diff)
		}
	}
	b := createBackup(t, s, BackupParams{SourceID: src.ID, RepoID: "x"})
	wantValidation(t, "FailBackup(complete)", s.FailBackup(ctx, b.ID, BackupComplete, ""),
		"state", `must be failed, cancelled or interrupted, not "complete"`)
	wantErr(t, "FailBackup(99)", s.FailBackup(ctx, 99, BackupFailed, ""), ErrNotFound)
}

func TestBackupsQueries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	orders := createSource(t, s, "orders-db")
	other := createSource(t, s, "accounts")

	_, err := s.LatestBackup(ctx, orders.ID, "")
	wantErr(t, "LatestBackup(no backups)", err, ErrNotFound)

	complete := func(b Backup) Backup {
		t.Helper()
		if err := s.CompleteBackup(ctx, b.ID, BackupCompletion{StartLSN: "0/1", EndLSN: "0/2"}); err != nil {
			t.Fatal(err)
		}
		b, err := s.Backup(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1 := complete(createBackup(t, s, BackupParams{SourceID: orders.ID, RepoID: "b1"}))
	clock.Advance(time.Hour)
	b2 := complete(createBackup(t, s, BackupParams{SourceID: other.ID, RepoID: "b2"}))
	clock.Advance(time.Hour)
	b3 := complete(createBackup(t, s, BackupParams{SourceID: orders.ID, RepoID: "b3"}))
	clock.Advance(time.Hour)
	b4 := createBackup(t, s, BackupParams{SourceID: orders.ID, RepoID: "b4"})

	for _, tc := range []struct {
		name string
		f    BackupFilter
		want []Backup
	}{
		{"all", BackupFilter{}, []Backup{b4, b3, b2, b1}},
		{"source", BackupFilter{SourceID: orders.ID}, []Backup{b4, b3, b1}},
		{"complete", BackupFilter{SourceID: orders.ID, States: []BackupState{BackupComplete}}, []Backup{b3, b1}},
		{"limit", BackupFilter{Limit: 1}, []Backup{b4}},
		{"none", BackupFilter{States: []BackupState{BackupFailed}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Backups(ctx, tc.f)
			if err != nil {
				t.Fatalf("Backups(%+v) = %v", tc.f, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Backups(%+v) mismatch (-want +got):\n%s", tc.f, diff)
			}
		})
	}

	for _, tc := range []struct {
		source int64
		state  BackupState
		want   Backup
	}{
		{orders.ID, "", b4},
		{orders.ID, BackupComplete, b3},
		{other.ID, BackupComplete, b2},
	} {
		got, err := s.LatestBackup(ctx, tc.source, tc.state)
		if err != nil {
			t.Fatalf("LatestBackup(%d, %q) = %v", tc.source, tc.state, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("LatestBackup(%d, %q) mismatch (-want +got):\n%s", tc.source, tc.state, diff)
		}
	}
	_, err = s.LatestBackup(ctx, other.ID, BackupFailed)
	wantErr(t, "LatestBackup(no failed backup)", err, ErrNotFound)
}

func TestBackupsNotFound(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")

	_, err := s.Backup(ctx, 99)
	wantErr(t, "Backup(99)", err, ErrNotFound)
	_, err = s.BackupFiles(ctx, 99, 0, 0)
	wantErr(t, "BackupFiles(99)", err, ErrNotFound)
	wantErr(t, "CompleteBackup(99)", s.CompleteBackup(ctx, 99, BackupCompletion{StartLSN: "0/1", EndLSN: "0/2"}), ErrNotFound)
	_, err = s.CreateBackup(ctx, BackupParams{SourceID: 99, RepoID: "r"})
	wantErr(t, "CreateBackup(unknown source)", err, ErrNotFound)
	_, err = s.CreateBackup(ctx, BackupParams{SourceID: src.ID, JobID: 99, RepoID: "r"})
	wantErr(t, "CreateBackup(unknown job)", err, ErrNotFound)

	createBackup(t, s, BackupParams{SourceID: src.ID, RepoID: "r"})
	_, err = s.CreateBackup(ctx, BackupParams{SourceID: src.ID, RepoID: "r"})
	wantErr(t, "CreateBackup(same repo id)", err, ErrConflict)
	_, err = s.CreateBackup(ctx, BackupParams{SourceID: src.ID})
	wantValidation(t, "CreateBackup(no repo id)", err, "repo_id", "is required")
}
