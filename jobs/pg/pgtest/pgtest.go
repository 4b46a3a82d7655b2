// Package pgtest starts throwaway PostgreSQL clusters for tests.
//
// A cluster costs about a second to create and start, so a package's tests
// should share one where isolation allows:
//
//	var shared = pgtest.NewShared()
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		shared.Close()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) {
//		c := shared.Cluster(t)
//		...
//	}
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg"
)

// Option changes the options of a test cluster.
type Option func(*pg.ClusterOptions)

// Password turns on scram-sha-256 authentication with pw as the
// superuser's password.
func Password(pw string) Option {
	return func(o *pg.ClusterOptions) { o.Password = pw }
}

// Setting sets a postgresql.conf parameter.
func Setting(name, value string) Option {
	return func(o *pg.ClusterOptions) {
		if o.Settings == nil {
			o.Settings = make(map[string]string)
		}
		o.Settings[name] = value
	}
}

// DataChecksums turns data page checksums on or off (on by default).
func DataChecksums(on bool) Option {
	return func(o *pg.ClusterOptions) { o.DataChecksums = on }
}

// Major picks the PostgreSQL major version (0, the default, is the newest
// installed).
func Major(major int) Option {
	return func(o *pg.ClusterOptions) { o.Bin.Major = major }
}

// testSettings keep clusters small and quick to start, without touching
// durability (fsync stays on: backups must be tested against real flushes).
func testSettings() map[string]string {
	return map[string]string{
		"shared_buffers":   "32MB",
		"max_connections":  "40",
		"log_min_messages": "warning",
		"log_checkpoints":  "off",
	}
}

func options(dir string, opts []Option) pg.ClusterOptions {
	o := pg.ClusterOptions{Dir: dir, DataChecksums: true, Settings: testSettings()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// newCluster creates and starts a cluster in dir.
func newCluster(ctx context.Context, dir string, opts []Option) (*pg.Cluster, error) {
	o := options(dir, opts)
	bin, err := pg.FindBinaries(ctx, o.Bin.Major)
	if err != nil {
		return nil, err
	}
	o.Bin = bin
	c, err := pg.InitCluster(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Start creates a cluster in a fresh directory under t.TempDir(), starts it
// and stops it (immediate mode) when the test ends. By default it trusts
// connections from 127.0.0.1 and has data checksums on.
func Start(t testing.TB, opts ...Option) *pg.Cluster {
	t.Helper()
	dir := t.TempDir()
	if err := Reachable(dir); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := newCluster(ctx, filepath.Join(dir, "pg"), opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx, "immediate"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// Reachable lets the server's OS user enter dir and the directories above
// it that a test created (everything below the system's temporary
// directory), by adding search permission for others: t.TempDir() is
// owned by root with mode 0700 when tests run as root.
func Reachable(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; d != tmp && d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
	}
	return nil
}

// Shared is a cluster shared by the tests of a package: started by the
// first test that asks for it, stopped by Close from TestMain.
type Shared struct {
	opts    []Option
	once    sync.Once
	dir     string
	cluster *pg.Cluster
	err     error
}

// NewShared returns a shared cluster with the given options; nothing is
// started until Cluster is called.
func NewShared(opts ...Option) *Shared {
	return &Shared{opts: opts}
}

// Cluster returns the shared cluster, starting it on the first call.
func (s *Shared) Cluster(t testing.TB) *pg.Cluster {
	t.Helper()
	s.once.Do(func() {
		s.dir, s.err = os.MkdirTemp("", "pgtest-")
		if s.err != nil {
			return
		}
		if s.err = Reachable(s.dir); s.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.cluster, s.err = newCluster(ctx, filepath.Join(s.dir, "pg"), s.opts)
	})
	if s.err != nil {
		t.Fatalf("pgtest: shared cluster: %v", s.err)
	}
	return s.cluster
}

// Close stops the shared cluster, if it was started, and removes its
// directory. Call it from TestMain after m.Run.
func (s *Shared) Close() {
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.cluster.Stop(ctx, "immediate"); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: shared cluster: %v\n", err)
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Exec runs each SQL statement in turn on a new connection to dsn, failing
// the test on the first error.
func Exec(t testing.TB, dsn string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("pgtest: Exec(%q) = %v", q, err)
		}
	}
}
