// Package store is the Backstop catalog: sources, jobs and their events,
// backups and their files, users, sessions and the audit log, kept in one
// SQLite file through modernc.org/sqlite.
//
// Several processes (the server and CLI commands) may open the same file at
// once. SQLite allows one writer at a time: within a process, writes go
// through a single connection and so queue in Go; across processes, write
// transactions begin IMMEDIATE and wait up to busyTimeout for the lock
// instead of failing with SQLITE_BUSY.
//
// Column values that may be NULL are exposed as the Go zero value when zero
// is never a valid value (text, ids, process ids, timelines, versions) and
// as pointers otherwise (times, booleans).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/backstop/backstop/migrations"
)

// busyTimeout is how long a statement waits for another process's lock on
// the catalog before giving up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is the catalog. It is safe for concurrent use.
type Store struct {
	// db serves reads: many connections, query-only, reading concurrently
	// with the writer thanks to WAL.
	db *sql.DB
	// wdb serves writes: one connection, so that writers of this process
	// queue in Go rather than in SQLite's busy loop.
	wdb *sql.DB

	// now is the clock, replaced in tests.
	now func() time.Time
	// bcryptCost is the cost of new password hashes, lowered in tests.
	bcryptCost int
	// dummyHash is compared against when a user does not exist, so that an
	// unknown name costs as much time as a wrong password.
	dummyHash func() ([]byte, error)
	// sealer seals source secrets; nil keeps them as given (see WithSealer).
	sealer Sealer
}

// Open opens the catalog at path, creating it (mode 0600, and its directory,
// mode 0700) if needed, and applies pending migrations. It refuses a catalog
// whose schema is newer than this binary knows, with ErrSchemaTooNew, and one
// whose sealed secrets do not open with the WithSealer option's key, with
// ErrSecretsUnreadable.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	s, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.migrate(ctx, migrations.FS); err != nil {
		s.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	if err := s.sealSources(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	if err := s.sealAudit(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return s, nil
}

// open opens the catalog at path without migrating it.
func open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("open catalog: invalid path %q: want a plain file name", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	// SQLite creates the -wal and -shm files with the mode of the database
	// file, so creating it first keeps all three private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}

	busy := fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())
	writeParams := url.Values{
		"_pragma": {busy, "foreign_keys(on)", "journal_mode(WAL)", "synchronous(FULL)"},
		// BEGIN IMMEDIATE takes the write lock up front, where busy_timeout
		// applies; a deferred transaction that reads and then writes fails
		// at once with SQLITE_BUSY when another process wrote in between.
		"_txlock": {"immediate"},
	}
	readParams := url.Values{
		"_pragma":     {busy},
		"_query_only": {"1"},
	}

	wdb, err := sql.Open("sqlite", path+"?"+writeParams.Encode())
	if err != nil {
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	// Open the writer first: it switches a new file to WAL, which the
	// readers need. That switch needs the file to itself and answers
	// SQLITE_BUSY at once, without the busy timeout, while another process
	// opens the same new file: retry it within the timeout.
	for deadline := time.Now().Add(busyTimeout); ; {
		err := wdb.PingContext(ctx)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			wdb.Close()
			return nil, fmt.Errorf("open catalog %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	db, err := sql.Open("sqlite", path+"?"+readParams.Encode())
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open catalog: %w", err)
	}
	db.SetMaxIdleConns(4)

	s := &Store{
		db:         db,
		wdb:        wdb,
		now:        time.Now,
		bcryptCost: defaultBcryptCost,
	}
	s.dummyHash = sync.OnceValues(func() ([]byte, error) { return newDummyHash(s.bcryptCost) })
	return s, nil
}

// Close closes the catalog.
func (s *Store) Close() error {
	return errors.Join(s.db.Close(), s.wdb.Close())
}

// tx runs fn in a write transaction, committing if fn returns nil and
// rolling back otherwise.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// clock returns the current time as stored: UTC, to the microsecond.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// WithClock makes the catalog read the time from now rather than the system clock: for
// tests and benchmarks that record history at chosen times.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}
