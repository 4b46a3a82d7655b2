package jobs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// tablespaceDir makes a directory for a tablespace, owned by the server's OS user.
func tablespaceDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(reachableDir(t), name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v: %s", dir, err, out)
		}
	}
	return dir
}

// treeHashes returns the SHA-256 of every file below dir (and the target of every link),
// by path relative to dir.
func treeHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "link " + target
			return err
		case d.IsDir():
			out[rel+"/"] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatalf("hash %s: %v", dir, err)
	}
	return out
}

// sameTree fails the test if the hashes of a tree changed.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s: %s changed (%s -> %q)", what, p, h, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// tablespaceEnv is a source with WAL archiving and the workers that back it up and
// restore it.
func tablespaceEnv(t *testing.T, ctx context.Context) (*env, *pg.Cluster, store.Source) {
	t.Helper()
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	backstop, err := buildBackstop(t)
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, jobs.Options{},
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewRestoreWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			return jobs.NewPITRWorker(st, repo, backstop)
		})
	src := e.register(t, "spaces", cl.DSN("postgres"))
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	go a.Run(ctx, src)
	return e, cl, src
}

// commitRows inserts rows from..to into table, one transaction each, and returns the
// commit time of the last.
func commitRows(t *testing.T, conn *pgx.Conn, table string, from, to int) time.Time {
	t.Helper()
	for id := from; id <= to; id++ {
		if _, err := conn.Exec(context.Background(), fmt.Sprintf(`INSERT INTO %s (id) VALUES ($1)`, table), id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var at time.Time
	if err := conn.QueryRow(context.Background(),
		fmt.Sprintf(`SELECT pg_xact_commit_timestamp(xmin) FROM %s WHERE id = $1`, table), to).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// waitArchived waits until the window of src reaches last.
func waitArchived(t *testing.T, ctx context.Context, e *env, src store.Source, last time.Time) {
	t.Helper()
	waitFor(t, "the archive to hold the commit of "+last.String(), time.Minute, func() (bool, error) {
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		return err == nil && !jobs.ComputeWindow(in).Latest.Before(last), err
	})
}

// TestRestoreTablespaceInsideRestore: a source whose table lives in a tablespace is
// backed up and restored to a point in time (instance started) and into a directory
// (verified with pg_verifybackup): the tablespace is a directory inside the restore, the
// restored instance sees the rows, and writes and a TRUNCATE there leave every file of the
// source's tablespace directory byte-identical.
func TestRestoreTablespaceInsideRestore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, cl, src := tablespaceEnv(t, ctx)
	dsn := cl.DSN("postgres")
	loc := tablespaceDir(t, "ts1")
	execSQL(t, dsn, `CREATE TABLESPACE ts1 LOCATION '`+loc+`'`,
		`CREATE TABLE ticks (id bigint PRIMARY KEY) TABLESPACE ts1`)
	conn := connect(t, dsn)
	commitRows(t, conn, "ticks", 1, 100)
	_, b := e.backup(t, src)
	last := commitRows(t, conn, "ticks", 101, 120) // replayed into the tablespace
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	waitArchived(t, ctx, e, src, last)
	execSQL(t, dsn, `CHECKPOINT`)
	before := treeHashes(t, loc)

	into := filepath.Join(reachableDir(t), "restored")
	job, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
		Args: jobs.PITRArgs{SourceID: src.ID, Target: "latest", Into: into, Port: freePort(t), Owner: ownerName()}})
	if err != nil {
		t.Fatalf("restore to latest: %v", err)
	}
	t.Cleanup(func() { stopRestored(t, cl.Binaries(), into) })
	var res jobs.PITRResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	if got := restoredIDs(t, res.DSN); len(got) != 120 || got[119] != 120 {
		t.Errorf("restored rows %s, want 1..120", span(got))
	}
	checkInside(t, into, oid)
	rc := connect(t, res.DSN)
	var where string
	if err := rc.QueryRow(ctx, `SELECT pg_tablespace_location($1)`, oid).Scan(&where); err != nil {
		t.Fatal(err)
	}
	if where == loc || filepath.IsAbs(where) && !strings.HasPrefix(where, into+"/") {
		t.Errorf("pg_tablespace_location(%d) in the restored instance = %q, want a place inside %s", oid, where, into)
	}
	for _, q := range []string{`INSERT INTO ticks SELECT generate_series(1000, 2000)`, `CHECKPOINT`, `TRUNCATE ticks`, `CHECKPOINT`} {
		if _, err := rc.Exec(ctx, q); err != nil {
			t.Fatalf("restored instance: %s: %v", q, err)
		}
	}
	sameTree(t, "the source's tablespace after a restore, writes and a TRUNCATE in the copy", before, treeHashes(t, loc))
	if n := queryValue(t, conn, `SELECT count(*) FROM ticks`); n != "120" {
		t.Errorf("the source holds %s rows after the copy's TRUNCATE, want 120", n)
	}

	t.Run("directory restore, verified", func(t *testing.T) {
		into := filepath.Join(reachableDir(t), "dir")
		job, err := e.runner.Run(ctx, restoreParams(b.ID, into))
		if err != nil {
			t.Fatalf("restore of backup %d into a directory: %v", b.ID, err)
		}
		var res jobs.RestoreResult
		if err := json.Unmarshal(job.Result, &res); err != nil {
			t.Fatal(err)
		}
		if !res.Verified {
			t.Errorf("restore of backup %d: not verified with pg_verifybackup", b.ID)
		}
		checkInside(t, into, oid)
		sameTree(t, "the source's tablespace after a directory restore", before, treeHashes(t, loc))
	})
}

// checkInside checks that tablespace oid of a restored directory is a directory of its
// own, holding the tablespace's files, with no tablespace_map and no link anywhere.
func checkInside(t *testing.T, into string, oid uint32) {
	t.Helper()
	ts := filepath.Join(into, "pg_tblspc", fmt.Sprint(oid))
	fi, err := os.Lstat(ts)
	if err != nil || !fi.IsDir() {
		t.Fatalf("pg_tblspc/%d in the restore: %v, %v; want a directory", oid, fi, err)
	}
	versions, _ := filepath.Glob(filepath.Join(ts, "PG_15_*", "*", "*"))
	if len(versions) == 0 {
		t.Errorf("pg_tblspc/%d in the restore holds no relation files", oid)
	}
	if b, err := os.ReadFile(filepath.Join(into, "tablespace_map")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("the restore holds a tablespace_map %q", b)
	}
	filepath.WalkDir(into, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			t.Errorf("the restore holds a link %s -> %s", p, target)
		}
		return nil
	})
}

// TestRestoreRefusesTablespaceCreatedInWAL: a tablespace created after the newest backup
// is in the WAL a restore past it would replay, which would create it at the source's own
// directory: the plan is refused, naming the tablespace, its location and the LSN, nothing
// is written at the destination, and the source's tablespace is untouched. A target
// before the creation, and the nearest choice the refusal gives, are restorable.
func TestRestoreRefusesTablespaceCreatedInWAL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, cl, src := tablespaceEnv(t, ctx)
	dsn := cl.DSN("postgres")
	execSQL(t, dsn, `CREATE TABLE ticks (id bigint PRIMARY KEY)`)
	conn := connect(t, dsn)
	commitRows(t, conn, "ticks", 1, 10)
	e.backup(t, src)
	row19 := commitRows(t, conn, "ticks", 11, 19)
	row20 := commitRows(t, conn, "ticks", 20, 20)
	loc := tablespaceDir(t, "late")
	execSQL(t, dsn, `CREATE TABLESPACE late LOCATION '`+loc+`'`,
		`CREATE TABLE in_late (id bigint PRIMARY KEY) TABLESPACE late`, `INSERT INTO in_late SELECT generate_series(1, 500)`)
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT oid FROM pg_tablespace WHERE spcname = 'late'`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	last := commitRows(t, conn, "ticks", 21, 30)
	waitArchived(t, ctx, e, src, last)
	var created []store.TablespaceCreation
	waitFor(t, "the archiver to record the tablespace creation", time.Minute, func() (bool, error) {
		var err error
		created, err = e.store.TablespaceCreations(ctx, src.ID)
		return len(created) > 0, err
	})
	if len(created) != 1 || created[0].OID != oid || created[0].Location != loc {
		t.Fatalf("TablespaceCreations() = %+v, want tablespace %d at %s", created, oid, loc)
	}
	lsn := created[0].LSN
	execSQL(t, dsn, `CHECKPOINT`)
	before := treeHashes(t, loc)

	in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"latest", last.Format(time.RFC3339Nano), "lsn:" + lsn} {
		tg, err := jobs.ParseTarget(target)
		if err != nil {
			t.Fatal(err)
		}
		_, err = jobs.PlanRestore(in, tg, 0)
		var te *jobs.TargetError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), fmt.Sprintf("tablespace %d at %s (record at %s", oid, loc, lsn)) ||
			!strings.Contains(err.Error(), "take a new base backup") {
			t.Errorf("PlanRestore(%s) = %v, want a TargetError naming tablespace %d at %s, LSN %s and what to do", target, err, oid, loc, lsn)
			continue
		}
		t.Logf("PlanRestore(%s) refused: %v", target, err)
		if te.NearestTime.IsZero() && te.NearestLSN == 0 {
			t.Errorf("PlanRestore(%s): no nearest valid choice", target)
			continue
		}
		near := jobs.Target{Kind: jobs.TargetTime, Time: te.NearestTime, Inclusive: true}
		if te.NearestTime.IsZero() {
			near = jobs.Target{Kind: jobs.TargetLSN, LSN: te.NearestLSN, Inclusive: true}
		}
		if _, err := jobs.PlanRestore(in, near, 0); err != nil {
			t.Errorf("PlanRestore(the nearest choice %s, given for %s) = %v, want a plan", near, target, err)
		}
	}
	// The tablespace's record precedes its transaction's commit: a target at row 20's
	// commit (the last before it) replays it, one just before does not.
	if _, err := jobs.PlanRestore(in, jobs.Target{Kind: jobs.TargetTime, Time: row20, Inclusive: true}, 0); err == nil {
		t.Errorf("PlanRestore(row 20's commit, just before CREATE TABLESPACE commits) = a plan, want a refusal")
	}
	if _, err := jobs.PlanRestore(in, jobs.Target{Kind: jobs.TargetTime, Time: row19, Inclusive: true}, 0); err != nil {
		t.Errorf("PlanRestore(row 19's commit) = %v, want a plan", err)
	}

	into := filepath.Join(reachableDir(t), "restored")
	_, err = e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
		Args: jobs.PITRArgs{SourceID: src.ID, Target: "latest", Into: into, Port: freePort(t), Owner: ownerName()}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("tablespace %d at %s", oid, loc)) {
		t.Errorf("restore job to latest = %v, want it refused naming tablespace %d at %s", err, oid, loc)
	}
	if entries, err := os.ReadDir(into); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused restore left %s: %d entries, %v", into, len(entries), err)
	}
	sameTree(t, "the source's tablespace after a refused restore", before, treeHashes(t, loc))
	if n := queryValue(t, conn, `SELECT count(*) FROM in_late`); n != "500" {
		t.Errorf("the source's table in the tablespace holds %s rows, want 500", n)
	}
}
