package jobs_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

// roundTripSQL builds tables of varied types: NULLs, numerics, time stamps, arrays, JSON,
// bytea, a TOASTed column of large text, an empty table, and btree indexes.
var roundTripSQL = []string{
	`CREATE EXTENSION amcheck`,
	`CREATE TABLE customers (
		id int PRIMARY KEY, name text NOT NULL, email text, created timestamptz NOT NULL,
		balance numeric(12,2), tags text[], meta jsonb)`,
	`INSERT INTO customers
		SELECT g, 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'c' || g || '@example.com' END,
			timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes', (g * 12.34) % 100000,
			ARRAY['t' || (g % 5), 't' || (g % 11)], jsonb_build_object('g', g, 'even', g % 2 = 0, 'name', 'ü' || g)
		FROM generate_series(1, 5000) g`,
	`CREATE INDEX customers_email ON customers (email)`,
	`CREATE TABLE orders (
		id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, amount numeric(10,2) NOT NULL,
		placed date NOT NULL, note text, payload bytea)`,
	`INSERT INTO orders (customer_id, amount, placed, note, payload)
		SELECT 1 + g % 5000, (g % 997) * 1.5, date '2024-01-01' + g % 365,
			CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('n', g % 50) END, decode(md5(g::text), 'hex')
		FROM generate_series(1, 8000) g`,
	`CREATE INDEX orders_customer ON orders (customer_id, placed)`,
	// About 100 kB of hexadecimal text per row: stored out of line, in the TOAST table.
	`CREATE TABLE documents (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)`,
	`INSERT INTO documents
		SELECT g, 'doc ' || g, (SELECT string_agg(md5(g || ':' || i), ' ') FROM generate_series(1, 3000) i)
		FROM generate_series(1, 40) g`,
	`CREATE TABLE empty_table (id int, v text)`,
	`ANALYZE`,
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "roundtrip")
	execSQL(t, dsn, roundTripSQL...)
	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)

	conn := connect(t, dsn)
	if got := queryValue(t, conn, `SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'documents'::regclass`); got == "0" {
		t.Fatalf("documents' TOAST table is empty: the test does not exercise TOAST")
	}
	// The source takes no writes after this point, so these are the hashes at backup time.
	want := tableHashes(t, conn)
	if len(want) != 4 {
		t.Fatalf("tableHashes(source) has %d tables, want 4: %v", len(want), want)
	}
	sysID := queryValue(t, conn, `SELECT system_identifier FROM pg_control_system()`)
	versionNum, _ := strconv.Atoi(queryValue(t, conn, `SELECT current_setting('server_version_num')`))
	dbSize, _ := strconv.ParseInt(queryValue(t, conn, `SELECT pg_database_size(current_database())`), 10, 64)

	job, b := e.backup(t, src)
	t.Logf("source tables: %v", want)
	t.Logf("backup %d: %+v", b.ID, b.Stats)

	// The backup row is complete and its numbers add up.
	var res jobs.BackupResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(jobs.BackupResult{BackupID: b.ID, RepoID: b.RepoID}, res); diff != "" {
		t.Errorf("backup job result mismatch (-want +got):\n%s", diff)
	}
	if b.JobID != job.ID || b.SourceID != src.ID {
		t.Errorf("backup job, source = %d, %d, want %d, %d", b.JobID, b.SourceID, job.ID, src.ID)
	}
	if b.SystemIdentifier != sysID || b.PGVersion != versionNum || b.Timeline != 1 {
		t.Errorf("backup system, version, timeline = %s, %d, %d, want %s, %d, 1",
			b.SystemIdentifier, b.PGVersion, b.Timeline, sysID, versionNum)
	}
	if b.FinishedAt == nil || b.FinishedAt.Before(b.StartedAt) {
		t.Errorf("backup started %v, finished %v: want a finish after the start", b.StartedAt, b.FinishedAt)
	}
	if b.Error != "" {
		t.Errorf("backup error = %q, want none", b.Error)
	}
	start, serr := pglogrepl.ParseLSN(b.StartLSN)
	end, eerr := pglogrepl.ParseLSN(b.EndLSN)
	if serr != nil || eerr != nil || start == 0 || end < start {
		t.Errorf("backup LSNs %q to %q: want valid, non-zero and ordered", b.StartLSN, b.EndLSN)
	}
	s := b.Stats
	if s.SourceBytes < dbSize || s.WALBytes <= 0 || s.WALBytes%(16<<20) != 0 || s.WALBytes >= s.SourceBytes {
		t.Errorf("backup source bytes %d, WAL bytes %d: want at least the database's %d bytes, and whole 16 MB WAL segments",
			s.SourceBytes, s.WALBytes, dbSize)
	}
	if s.StoredBytesNew <= 0 || s.StoredBytesNew > s.StoredBytesReferenced || s.StoredBytesReferenced > s.SourceBytes {
		t.Errorf("backup stored new %d, referenced %d, source %d: want 0 < new <= referenced <= source (compressed)",
			s.StoredBytesNew, s.StoredBytesReferenced, s.SourceBytes)
	}
	if s.WALStoredBytesNew <= 0 || s.WALStoredBytesNew > s.StoredBytesNew {
		t.Errorf("backup WAL stored new %d, stored new %d: want 0 < WAL <= all", s.WALStoredBytesNew, s.StoredBytesNew)
	}
	if s.BlockCountNew <= 0 || s.BlockCountNew > s.BlockCount || s.BlockCount < s.SourceBytes>>20 {
		t.Errorf("backup blocks new %d, all %d: want 0 < new <= all, and at least one per MB of %d bytes",
			s.BlockCountNew, s.BlockCount, s.SourceBytes)
	}
	files, err := e.store.BackupFiles(ctx, b.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(files)) != s.FileCount {
		t.Errorf("BackupFiles(%d) lists %d files, FileCount = %d", b.ID, len(files), s.FileCount)
	}
	m, err := e.repo.Manifest(ctx, b.RepoID)
	if err != nil {
		t.Fatalf("repository Manifest(%s) = %v", b.RepoID, err)
	}
	if len(m.Files) != len(files) || m.SystemIdentifier != sysID || m.StartLSN != b.StartLSN || m.EndLSN != b.EndLSN {
		t.Errorf("repository manifest: %d files, system %s, LSN %s to %s; catalog: %d files, system %s, LSN %s to %s",
			len(m.Files), m.SystemIdentifier, m.StartLSN, m.EndLSN, len(files), sysID, b.StartLSN, b.EndLSN)
	}

	// Restore it.
	dir := reachableDir(t)
	into := filepath.Join(dir, "data")
	rjob, err := e.runner.Run(ctx, restoreParams(b.ID, into))
	if err != nil {
		t.Fatalf("Run(restore of backup %d) = %v", b.ID, err)
	}
	if rjob.State != store.JobSucceeded {
		t.Fatalf("restore job ended %s, want %s", rjob.State, store.JobSucceeded)
	}
	var rres jobs.RestoreResult
	if err := json.Unmarshal(rjob.Result, &rres); err != nil {
		t.Fatal(err)
	}
	wantRes := jobs.RestoreResult{Into: into, Files: len(files), Bytes: s.SourceBytes, Verified: true}
	if diff := cmp.Diff(wantRes, rres); diff != "" {
		t.Errorf("restore result mismatch (-want +got):\n%s", diff)
	}

	// The directory holds exactly the backup's files, owned by the server's user, and
	// pg_verifybackup agrees (checked here too, not only by the job); beside them only
	// the marker naming the restore, which Backstop owns.
	if !dest.Owned(into, rjobMarker(t, rjob)) {
		t.Errorf("%s carries no marker of its restore job", into)
	}
	os.Remove(filepath.Join(into, dest.MarkerName))
	if diff := cmp.Diff(files, listTree(t, into)); diff != "" {
		t.Errorf("restored tree differs from the backup's file list (-want +got):\n%s", diff)
	}
	checkOwner(t, into)
	bin, err := pg.FindBinaries(ctx, versionNum/10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.VerifyBackup(ctx, bin, into); err != nil {
		t.Errorf("VerifyBackup(restored) = %v", err)
	}

	// Start it and compare every table.
	restored := startRestored(t, bin, into)
	rconn := connect(t, restored.DSN("roundtrip"))
	if got := queryValue(t, rconn, `SELECT system_identifier FROM pg_control_system()`); got != sysID {
		t.Errorf("restored system identifier = %s, want %s", got, sysID)
	}
	if got := queryValue(t, rconn, `SELECT pg_is_in_recovery()`); got != "false" {
		t.Errorf("restored pg_is_in_recovery() = %s, want false", got)
	}
	if diff := cmp.Diff(want, tableHashes(t, rconn)); diff != "" {
		t.Errorf("restored tables differ from the source at backup time (-want +got):\n%s", diff)
	}
	// Every btree index matches its table (heapallindexed), and index scans find rows.
	if got := queryValue(t, rconn, `SELECT count(bt_index_check(c.oid, true)) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
		WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`); got != "5" {
		t.Errorf("bt_index_check ran on %s indexes, want 5", got)
	}
	if _, err := rconn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	if got := queryValue(t, rconn, `SELECT count(*) FROM customers WHERE email = 'c43@example.com'`); got != "1" {
		t.Errorf("index scan on customers_email found %s rows, want 1", got)
	}
	if got := queryValue(t, rconn, `SELECT nextval('orders_id_seq') > (SELECT max(id) FROM orders)`); got != "true" {
		t.Errorf("restored orders_id_seq is behind the table's ids")
	}
	// The source itself is unchanged by the backup.
	if diff := cmp.Diff(want, tableHashes(t, conn)); diff != "" {
		t.Errorf("source tables changed (-want +got):\n%s", diff)
	}
}

// listTree lists the entries below dir as the catalog lists a backup's files.
func listTree(t *testing.T, dir string) []store.BackupFile {
	t.Helper()
	var out []store.BackupFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f := store.BackupFile{Path: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm())}
		switch {
		case fi.IsDir():
			f.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			f.Type = "symlink"
		default:
			f.Type, f.Size = "file", fi.Size()
			// Relation files are stored in chunks of two pages, the rest in 1 MiB blocks.
			chunk := int64(1 << 20)
			if strings.HasPrefix(f.Path, "base/") || strings.HasPrefix(f.Path, "global/") || strings.HasPrefix(f.Path, "pg_tblspc/") {
				chunk = 16 << 10
			}
			f.Blocks = (f.Size + chunk - 1) / chunk
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	// The catalog sorts by path, byte-wise; WalkDir goes directory by directory.
	slices.SortFunc(out, func(a, b store.BackupFile) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// checkOwner checks that dir and everything in it belongs to the OS user that runs
// PostgreSQL (when the tests run as root).
func checkOwner(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	var wrong []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			wrong = append(wrong, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if len(wrong) > 0 {
		t.Errorf("restored entries not owned by postgres (uid %d): %d, first %q", uid, len(wrong), wrong[0])
	}
}

// rjobMarker is the marker token a restore job was given.
func rjobMarker(t *testing.T, j store.Job) string {
	t.Helper()
	var args jobs.RestoreArgs
	if err := json.Unmarshal(j.Args, &args); err != nil {
		t.Fatal(err)
	}
	return args.Marker
}
