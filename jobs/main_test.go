package jobs_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// shared is the small cluster that most tests back up: each test works in its own
// database, so tests that write do not see each other's tables. Tests that need a cluster
// nobody else writes to (dedupe) or a large one (cancellation) start their own.
var shared = pgtest.NewShared()

// big is a cluster holding about 100 MB, loaded once, for the tests that must catch a
// backup in the middle of copying.
var big = pgtest.NewShared()

// s3 is the object storage server the repositories of the tests live in when
// BACKSTOP_TEST_STORAGE=s3 (make test runs this package both ways); nil for local
// directories.
var s3 *s3test.Server

func TestMain(m *testing.M) {
	if os.Getenv("BACKSTOP_TEST_STORAGE") == "s3" {
		srv, err := s3test.NewServer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s3 = srv
	}
	code := m.Run()
	shared.Close()
	big.Close()
	if s3 != nil {
		s3.Close()
	}
	os.Exit(code)
}

// newRepo initializes a repository for a test: in t.TempDir()/repository, or below a
// prefix of its own in the S3 server.
func newRepo(t *testing.T, key []byte) *repository.Repo {
	t.Helper()
	return newRepoWith(t, key, repository.Options{})
}

// newRepoWith is newRepo with opts.
func newRepoWith(t *testing.T, key []byte, opts repository.Options) *repository.Repo {
	t.Helper()
	var st storage.Storage
	var err error
	if s3 == nil {
		st, err = storage.NewLocal(filepath.Join(t.TempDir(), "repository"))
	} else {
		st, err = storage.NewS3(t.Context(), s3test.Config(s3.Endpoint, s3.Access, s3.Secret, s3.Bucket, "t/"+rand.Text()))
	}
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.InitStorage(t.Context(), st, key, opts)
	if err != nil {
		t.Fatalf("repository.InitStorage() = %v", err)
	}
	return repo
}

// env is a fresh catalog and repository with a started runner that runs backups and
// restores, as the server and the CLI build them.
type env struct {
	store   *store.Store
	repo    *repository.Repo
	catalog string // the catalog's file
	runner  *jobs.Runner
}

// setup returns a new env in t.TempDir(), stopped and closed when the test ends. workers
// replace the real backup and restore workers when given.
func setup(t *testing.T, opts jobs.Options, workers ...func(*store.Store, *repository.Repo) jobs.Worker) *env {
	t.Helper()
	return setupWith(t, opts, repository.Options{}, workers...)
}

// setupWith is setup with the repository opened with repoOpts.
func setupWith(t *testing.T, opts jobs.Options, repoOpts repository.Options, workers ...func(*store.Store, *repository.Repo) jobs.Worker) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog.db")
	st, err := store.Open(ctx, catalog)
	if err != nil {
		t.Fatalf("store.Open() = %v", err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo := newRepoWith(t, key, repoOpts)
	t.Cleanup(func() { repo.Close() })
	var ws []jobs.Worker
	if len(workers) == 0 {
		ws = []jobs.Worker{jobs.NewBackupWorker(st, repo), jobs.NewRestoreWorker(st, repo)}
	}
	for _, w := range workers {
		ws = append(ws, w(st, repo))
	}
	r := jobs.NewRunner(st, nil, testLogger(t), opts, ws...)
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Runner.Start() = %v", err)
	}
	t.Cleanup(r.Stop)
	return &env{store: st, repo: repo, catalog: catalog, runner: r}
}

// testLogger logs into the test's output, shown with -v or on failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// register registers the database dsn as a source named name.
func (e *env) register(t *testing.T, name, dsn string) store.Source {
	t.Helper()
	src, err := jobs.RegisterSource(context.Background(), e.store, name, dsn)
	if err != nil {
		t.Fatalf("RegisterSource(%q) = %v", name, err)
	}
	return src
}

// backupParams are the parameters of a backup job of src, as the CLI and the server build them.
func backupParams(src store.Source) jobs.Params {
	return jobs.Params{
		Kind: jobs.KindBackup, SourceID: src.ID, LockKey: jobs.BackupLockKey(src.ID),
		Args: jobs.BackupArgs{SourceID: src.ID}, RequestedBy: "test",
	}
}

// backup runs a backup job of src to the end and returns the job and its complete backup.
func (e *env) backup(t *testing.T, src store.Source) (store.Job, store.Backup) {
	t.Helper()
	ctx := context.Background()
	job, err := e.runner.Run(ctx, backupParams(src))
	if err != nil {
		t.Fatalf("Run(backup of %s) = %v", src.Name, err)
	}
	if job.State != store.JobSucceeded {
		t.Fatalf("Run(backup of %s) ended %s, want %s", src.Name, job.State, store.JobSucceeded)
	}
	var res jobs.BackupResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatalf("backup job result %s: %v", job.Result, err)
	}
	b, err := e.store.Backup(ctx, res.BackupID)
	if err != nil {
		t.Fatalf("Backup(%d) = %v", res.BackupID, err)
	}
	if b.State != store.BackupComplete {
		t.Fatalf("Backup(%d).State = %s, want %s (error %q)", b.ID, b.State, store.BackupComplete, b.Error)
	}
	return job, b
}

// restoreParams are the parameters of a restore job: files owned by the OS user that runs
// PostgreSQL, checked with pg_verifybackup.
func restoreParams(backupID int64, into string) jobs.Params {
	owner := ""
	if os.Geteuid() == 0 {
		owner = "postgres"
	}
	return jobs.Params{
		Kind:        jobs.KindRestore,
		Args:        jobs.RestoreArgs{BackupID: backupID, Into: into, Owner: owner, Verify: true, Marker: dest.NewToken()},
		RequestedBy: "test",
	}
}

// reachableDir returns a new directory that the server's OS user can enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// createDatabase (re)creates database name on c and returns its DSN.
func createDatabase(t *testing.T, c *pg.Cluster, name string) string {
	t.Helper()
	pgtest.Exec(t, c.DSN(""),
		fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name),
		fmt.Sprintf("CREATE DATABASE %s", name))
	return c.DSN(name)
}

// connect opens a connection to dsn, closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryValue returns the single value of sql as text.
func queryValue(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT ("+sql+")::text", args...).Scan(&v); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return v
}

// tableHashes returns, for every user table of the connection's database, its row count
// and an ordered hash of its rows.
func tableHashes(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	out := make(map[string]string, len(tables))
	for _, tbl := range tables {
		out[tbl] = queryValue(t, conn, fmt.Sprintf(
			`SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM %s t`, tbl))
	}
	return out
}

// startRestored starts a server on a restored data directory, stopped when the test ends.
func startRestored(t *testing.T, bin pg.Binaries, dataDir string) *pg.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pg.StartDataDir(ctx, pg.ServerOptions{
		Bin:     bin,
		DataDir: dataDir,
		LogFile: filepath.Join(filepath.Dir(dataDir), "log", "postgresql.log"),
	})
	if err != nil {
		t.Fatalf("StartDataDir(%s) = %v", dataDir, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx, "immediate"); err != nil {
			t.Errorf("stop restored server: %v", err)
		}
	})
	return c
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still not true after %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bigOnce loads the big cluster's data once.
var (
	bigOnce sync.Once
	bigErr  error
)

// bigRows is how many rows of 256 hexadecimal characters the big cluster holds: about
// 120 MB of table, which compresses to about half.
const bigRows = 400_000

// bigCluster returns the big cluster, loading its data on first use.
func bigCluster(t *testing.T) *pg.Cluster {
	t.Helper()
	c := big.Cluster(t)
	bigOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN(""))
		if err != nil {
			bigErr = err
			return
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			`CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)`,
			fmt.Sprintf(`INSERT INTO big SELECT g, encode(sha512(g::text::bytea), 'hex') || encode(sha512((-g)::text::bytea), 'hex')
				FROM generate_series(1, %d) g`, bigRows),
			`VACUUM (FREEZE, ANALYZE) big`,
			`CHECKPOINT`,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				bigErr = fmt.Errorf("%s: %w", strings.Fields(q)[0], err)
				return
			}
		}
	})
	if bigErr != nil {
		t.Fatalf("load big cluster: %v", bigErr)
	}
	return c
}

// execSQL runs statements on dsn in one session.
func execSQL(t *testing.T, dsn string, sql ...string) {
	t.Helper()
	conn := connect(t, dsn)
	for _, q := range sql {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("Exec(%.60q) = %v", q, err)
		}
	}
}
