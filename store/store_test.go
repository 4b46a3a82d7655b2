package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/backstop/backstop/migrations"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup opens a fresh catalog with cheap password hashing and a fake clock.
func setup(t *testing.T) (*Store, *fakeClock) {
	t.Helper()
	s := openAt(t, filepath.Join(t.TempDir(), "catalog.db"))
	clock := &fakeClock{t: time.Date(2026, 11, 25, 9, 47, 35, 123456789, time.UTC)}
	s.now = clock.Now
	return s, clock
}

// openAt opens the catalog at path, closing it when the test ends.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	s.bcryptCost = bcrypt.MinCost
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// latestVersion returns the number of embedded migrations.
func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := readMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// wantErr fails the test unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s = %v, want %v", what, err, target)
	}
}

// wantValidation fails the test unless err is a *ValidationError on field
// with message msg.
func wantValidation(t *testing.T, what string, err error, field, msg string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("%s = %v, want a *ValidationError", what, err)
		return
	}
	if ve.Field != field || ve.Message != msg {
		t.Errorf("%s = %q: %q, want %q: %q", what, ve.Field, ve.Message, field, msg)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "catalog.db")
	s := openAt(t, path)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("catalog mode = %v, want 0600", got)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != latestVersion(t) {
		t.Errorf("SchemaVersion() = %d, %v, want %d", v, err, latestVersion(t))
	}

	pragmas := []struct {
		db   *sql.DB
		name string
		want string
	}{
		{s.wdb, "journal_mode", "wal"},
		{s.wdb, "foreign_keys", "1"},
		{s.wdb, "synchronous", "2"}, // FULL
		{s.wdb, "busy_timeout", "10000"},
		{s.db, "busy_timeout", "10000"},
		{s.db, "query_only", "1"},
	}
	for _, p := range pragmas {
		var got string
		if err := p.db.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != p.want {
			t.Errorf("PRAGMA %s = %q, want %q", p.name, got, p.want)
		}
	}
}

func TestOpenInvalidPath(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := s.CreateSource(ctx, testSourceParams("orders-db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path)
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != latestVersion(t) {
		t.Errorf("schema_migrations has %d rows after reopening, want %d", n, latestVersion(t))
	}
	if _, err := s.Source(ctx, src.ID); err != nil {
		t.Errorf("Source(%d) after reopening = %v", src.ID, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		latestVersion(t)+1, formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, path)
	if err == nil {
		s.Close()
	}
	wantErr(t, "Open(newer catalog)", err, ErrSchemaTooNew)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	fsys := fstest.MapFS{
		"0001_one.sql": {Data: []byte(`CREATE TABLE one (x INTEGER);`)},
		"0002_two.sql": {Data: []byte(`CREATE TABLE two (x INTEGER); INSERT INTO nowhere VALUES (1);`)},
	}
	if err := s.migrate(ctx, fsys); err == nil {
		t.Fatal("migrate(broken 0002) succeeded, want an error")
	}
	if v, _ := schemaVersion(ctx, s.db); v != 1 {
		t.Errorf("after a failed 0002, version = %d, want 1", v)
	}
	tables := func() []string {
		var names []string
		rows, err := s.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name IN ('one', 'two') ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			rows.Scan(&n)
			names = append(names, n)
		}
		return names
	}
	if got := fmt.Sprint(tables()); got != "[one]" {
		t.Errorf("after a failed 0002, tables = %s, want [one] (0002 rolled back)", got)
	}

	fsys["0002_two.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE two (x INTEGER);`)}
	if err := s.migrate(ctx, fsys); err != nil {
		t.Fatalf("migrate(fixed 0002) = %v", err)
	}
	if err := s.migrate(ctx, fsys); err != nil {
		t.Fatalf("migrate again = %v", err)
	}
	if got := fmt.Sprint(tables()); got != "[one two]" {
		t.Errorf("tables = %s, want [one two]", got)
	}
}

func TestReadMigrations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fsys fs.FS
		ok   bool
	}{
		{"ordered", fstest.MapFS{"0002_b.sql": {}, "0001_a.sql": {}}, true},
		{"gap", fstest.MapFS{"0001_a.sql": {}, "0003_c.sql": {}}, false},
		{"duplicate", fstest.MapFS{"0001_a.sql": {}, "0001_b.sql": {}}, false},
		{"bad name", fstest.MapFS{"0001_a.sql": {}, "2_b.sql": {}}, false},
		{"not from one", fstest.MapFS{"0002_b.sql": {}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMigrations(tc.fsys)
			if (err == nil) != tc.ok {
				t.Errorf("readMigrations() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "catalog.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := Open(t.Context(), path)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Open() concurrently = %v", err)
		}
	}
}

// TestConcurrentWriters has two stores on one file, as the server and a CLI
// command would, write at once: no SQLITE_BUSY may surface.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	stores := []*Store{openAt(t, path), openAt(t, path)}
	src, err := stores[0].CreateSource(ctx, testSourceParams("orders-db"))
	if err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*workers*rounds)
	for i, s := range stores {
		for w := range workers {
			owner := Owner{Host: "h", PID: 1, ID: fmt.Sprintf("store%d-worker%d", i, w)}
			wg.Go(func() {
				for r := range rounds {
					if err := concurrentRound(ctx, s, src.ID, owner, r); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent writer: %v", err)
	}

	jobs, err := stores[1].Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(stores) * workers * rounds; len(jobs) != want {
		t.Errorf("%d jobs, want %d", len(jobs), want)
	}
	for _, j := range jobs {
		if j.State != JobQueued && j.State != JobSucceeded {
			t.Errorf("job %d is %s, want queued or succeeded", j.ID, j.State)
		}
	}
}

// TestConcurrentProcesses has child processes (this test binary, run
// again) and this one write to one catalog at once, as `serve` and CLI
// commands do.
func TestConcurrentProcesses(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	s := openAt(t, path)
	src, err := s.CreateSource(ctx, testSourceParams("orders-db"))
	if err != nil {
		t.Fatal(err)
	}

	const children, rounds = 2, 20
	cmds := make([]*exec.Cmd, children)
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			"BACKSTOP_STORE_HELPER="+path,
			fmt.Sprintf("BACKSTOP_STORE_HELPER_ARGS=%d,%d,child%d", src.ID, rounds, i))
		cmds[i] = cmd
	}
	var wg sync.WaitGroup
	outs := make([][]byte, children)
	errs := make([]error, children)
	for i, cmd := range cmds {
		wg.Go(func() { outs[i], errs[i] = cmd.CombinedOutput() })
	}
	owner := Owner{Host: "h", PID: os.Getpid(), ID: "parent"}
	for r := range rounds {
		if err := concurrentRound(ctx, s, src.ID, owner, r); err != nil {
			t.Errorf("parent round %d: %v", r, err)
			break
		}
	}
	wg.Wait()
	for i := range cmds {
		if errs[i] != nil {
			t.Errorf("child %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	jobs, err := s.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (children + 1) * rounds; len(jobs) != want {
		t.Errorf("%d jobs, want %d", len(jobs), want)
	}
}

// TestHelperProcess is the child of TestConcurrentProcesses.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("BACKSTOP_STORE_HELPER")
	if path == "" {
		t.Skip("helper process for TestConcurrentProcesses")
	}
	var sourceID int64
	var rounds int
	var id string
	if _, err := fmt.Sscanf(strings.ReplaceAll(os.Getenv("BACKSTOP_STORE_HELPER_ARGS"), ",", " "), "%d %d %s", &sourceID, &rounds, &id); err != nil {
		t.Fatal(err)
	}
	s := openAt(t, path)
	owner := Owner{Host: "h", PID: os.Getpid(), ID: id}
	for r := range rounds {
		if err := concurrentRound(t.Context(), s, sourceID, owner, r); err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
	}
}

// concurrentRound does one round of typical writes for TestConcurrentWriters.
func concurrentRound(ctx context.Context, s *Store, sourceID int64, owner Owner, r int) error {
	lock := fmt.Sprintf("%s-%d", owner.ID, r)
	if _, err := s.InsertJob(ctx, JobParams{Kind: "backup", SourceID: sourceID, LockKey: lock, RequestedBy: owner.ID}); err != nil {
		return err
	}
	// Claim some queued job, maybe another worker's.
	j, err := s.ClaimJob(ctx, owner, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := s.AddJobEvent(ctx, JobEvent{JobID: j.ID, Message: "started"}); err != nil {
		return err
	}
	if err := s.UpdateJobProgress(ctx, j.ID, "copy", 10, 100); err != nil {
		return err
	}
	if _, err := s.Heartbeat(ctx, owner.ID, []int64{j.ID}); err != nil {
		return err
	}
	if err := s.Audit(ctx, AuditEntry{Actor: owner.ID, Action: "backup.start"}); err != nil {
		return err
	}
	if _, err := s.MarkInterrupted(ctx, "other-host", nil, time.Hour); err != nil {
		return err
	}
	return s.FinishJob(ctx, j.ID, JobSucceeded, "", nil)
}

func TestTimeRoundTrip(t *testing.T) {
	t.Parallel()
	in := time.Date(2026, 11, 25, 10, 47, 35, 123456789, time.FixedZone("CET", 3600))
	got, err := parseTime(formatTime(in))
	if err != nil {
		t.Fatal(err)
	}
	want := in.UTC().Truncate(time.Microsecond)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("parseTime(formatTime(%v)) = %v, want %v", in, got, want)
	}
	if s := formatTime(in); s != "2026-11-25T09:47:35.123456Z" {
		t.Errorf("formatTime(%v) = %q", in, s)
	}
}
