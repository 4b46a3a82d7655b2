package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// TestArchiverStreamsWALIntoTheRepository: completed segments and pieces of the current
// one reach the repository byte for byte, are recorded with the commit times read from the
// WAL, and leave the spool once stored.
func TestArchiverStreamsWALIntoTheRepository(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t)
	dsn := cl.DSN("postgres")
	// A second slot keeps the server's own segments, to compare ours with.
	if _, _, err := pg.CreatePhysicalSlot(ctx, dsn, "holder"); err != nil {
		t.Fatal(err)
	}
	e := setup(t, jobs.Options{})
	src := e.register(t, "archived", dsn)
	spool := t.TempDir()
	a := jobs.NewArchiver(e.store, e.repo, spool, testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, src) }()

	conn := connect(t, dsn)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("Exec(%s) = %v", sql, err)
		}
	}
	before := time.Now()
	exec(`CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	for range 3 {
		for range 20 {
			exec(`INSERT INTO ticks DEFAULT VALUES`)
		}
		exec(`SELECT pg_switch_wal()`)
	}
	after := time.Now()
	waitFor(t, "three archived segments", time.Minute, func() (bool, error) {
		fs, err := e.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID, Kinds: []store.WALKind{store.WALSegment}})
		return len(fs) >= 3, err
	})
	segs, err := e.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID, Kinds: []store.WALKind{store.WALSegment}})
	if err != nil {
		t.Fatal(err)
	}
	var commits int64
	for _, f := range segs {
		var got bytes.Buffer
		if err := e.repo.ReadWAL(ctx, src.SystemIdentifier, f.Name, &got); err != nil {
			t.Fatalf("ReadWAL(%s) = %v", f.Name, err)
		}
		want, err := os.ReadFile(filepath.Join(cl.DataDir(), "pg_wal", f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("segment %s in the repository differs from the server's (%d vs %d bytes)", f.Name, got.Len(), len(want))
		}
		if _, err := os.Stat(filepath.Join(spool, fmt.Sprint(src.ID), f.Name)); err == nil {
			t.Errorf("segment %s is stored but still in the spool", f.Name)
		}
		commits += f.Commits
		if f.Commits > 0 && (f.LastCommitAt.Before(before.Add(-time.Second)) || f.LastCommitAt.After(after.Add(time.Second))) {
			t.Errorf("segment %s: last commit at %s, want between %s and %s", f.Name, f.LastCommitAt, before, after)
		}
	}
	if commits < 60 {
		t.Errorf("commits recorded in the archived segments = %d, want at least the 60 inserts", commits)
	}

	// A commit without a segment switch reaches the repository as a piece of the segment.
	exec(`INSERT INTO ticks DEFAULT VALUES`)
	flushLSN, err := pglogrepl.ParseLSN(queryValue(t, conn, `SELECT pg_current_wal_flush_lsn()::text`))
	if err != nil {
		t.Fatal(err)
	}
	var piece store.WALFile
	waitFor(t, "a piece holding the last commit", time.Minute, func() (bool, error) {
		fs, err := e.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID, Kinds: []store.WALKind{store.WALPartial}})
		if err != nil || len(fs) == 0 {
			return false, err
		}
		piece = fs[len(fs)-1]
		end, err := pglogrepl.ParseLSN(piece.EndLSN)
		return err == nil && end >= flushLSN, err
	})
	var got bytes.Buffer
	if err := e.repo.ReadWAL(ctx, src.SystemIdentifier, piece.Name, &got); err != nil {
		t.Fatalf("ReadWAL(%s) = %v", piece.Name, err)
	}
	segName := piece.Name[:24]
	server, err := os.ReadFile(filepath.Join(cl.DataDir(), "pg_wal", segName))
	if err != nil {
		t.Fatal(err)
	}
	if int64(got.Len()) != piece.Size || !bytes.Equal(got.Bytes(), server[:got.Len()]) {
		t.Errorf("piece %s (%d bytes) is not a prefix of the server's segment %s", piece.Name, got.Len(), segName)
	}
	if piece.Commits == 0 {
		t.Errorf("piece %s records no commit, want the last insert's", piece.Name)
	}

	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("Run() after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run() did not return within 30 s of cancel")
	}
}
