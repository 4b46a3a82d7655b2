package pg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// dirHandler writes a base backup into a directory, as a plain data
// directory, and records what it saw.
type dirHandler struct {
	dir string
	// onFile, if set, is called before each entry is written.
	onFile func(e pg.Entry)

	mu       sync.Mutex
	start    pg.BackupStart
	started  int
	files    map[string]int64
	progress []int64
	manifest int
}

func newDirHandler(dir string) *dirHandler {
	return &dirHandler{dir: dir, files: make(map[string]int64)}
}

func (h *dirHandler) Start(_ context.Context, s pg.BackupStart) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.start = s
	h.started++
	return nil
}

func (h *dirHandler) File(_ context.Context, e pg.Entry, r io.Reader) error {
	if h.onFile != nil {
		h.onFile(e)
	}
	p := filepath.Join(h.dir, filepath.FromSlash(e.Path))
	switch e.Type {
	case pg.Dir:
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		return os.Chmod(p, e.Mode)
	case pg.File:
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, e.Mode)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if n != e.Size {
			return fmt.Errorf("%s: got %d bytes, want %d", e.Path, n, e.Size)
		}
		h.mu.Lock()
		h.files[e.Path] = n
		h.mu.Unlock()
		return os.Chtimes(p, e.ModTime, e.ModTime)
	default:
		return fmt.Errorf("%s: unexpected %v", e.Path, e.Type)
	}
}

func (h *dirHandler) Progress(_ context.Context, done int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress = append(h.progress, done)
}

func (h *dirHandler) Manifest(_ context.Context, r io.Reader) error {
	h.mu.Lock()
	h.manifest++
	h.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(h.dir, "backup_manifest"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// discardHandler reads and drops everything.
type discardHandler struct{}

func (discardHandler) Start(context.Context, pg.BackupStart) error { return nil }
func (discardHandler) File(_ context.Context, _ pg.Entry, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (discardHandler) Progress(context.Context, int64) {}
func (discardHandler) Manifest(_ context.Context, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// tempDir returns a directory the server's OS user can reach.
func tempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fingerprint summarizes the test table's content.
func fingerprint(t *testing.T, ctx context.Context, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var count int64
	var sum string
	err = conn.QueryRow(ctx, `SELECT count(*), md5(string_agg(id::text || ':' || payload, ',' ORDER BY id)) FROM orders`).Scan(&count, &sum)
	if err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	return fmt.Sprintf("%d rows, md5 %s", count, sum)
}

func TestBaseBackup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := shared.Cluster(t)
	pgtest.Exec(t, c.DSN(""), `DROP DATABASE IF EXISTS bb_full WITH (FORCE)`, `CREATE DATABASE bb_full`)
	pgtest.Exec(t, c.DSN("bb_full"),
		`CREATE TABLE orders (id int PRIMARY KEY, payload text NOT NULL)`,
		`INSERT INTO orders SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 50000) i`,
		`CREATE INDEX ON orders (payload)`)
	want := fingerprint(t, ctx, c.DSN("bb_full"))

	root := tempDir(t)
	dir := filepath.Join(root, "backup")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := newDirHandler(dir)
	began := time.Now()
	res, err := pg.BaseBackup(ctx, c.DSN(""), pg.BackupOptions{Label: "it's a test", Fast: true, WAL: true}, h)
	if err != nil {
		t.Fatalf("BaseBackup() = %v", err)
	}
	t.Logf("base backup of %d files took %v", len(h.files), time.Since(began))

	if h.started != 1 || h.manifest != 1 {
		t.Errorf("BaseBackup() called Start %d and Manifest %d times, want 1 and 1", h.started, h.manifest)
	}
	if h.start.StartLSN != res.StartLSN || h.start.Timeline != 1 || res.Timeline != 1 || res.EndLSN <= res.StartLSN {
		t.Errorf("BaseBackup() start %s tli %d, result %s-%s tli %d, want matching LSNs on timeline 1",
			h.start.StartLSN, h.start.Timeline, res.StartLSN, res.EndLSN, res.Timeline)
	}
	if len(h.start.Tablespaces) != 1 || h.start.Tablespaces[0].OID != 0 || h.start.TotalBytes < 5<<20 {
		t.Errorf("BaseBackup() start tablespaces %+v, total %d, want only the main one and over 5 MiB", h.start.Tablespaces, h.start.TotalBytes)
	}
	if len(h.progress) == 0 {
		t.Errorf("BaseBackup() never called Progress")
	}
	for i := 1; i < len(h.progress); i++ {
		if h.progress[i] < h.progress[i-1] {
			t.Errorf("BaseBackup() progress went back: %v", h.progress)
			break
		}
	}

	// Every file in the server's manifest arrived, with its size.
	f, err := os.Open(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pg.ParseServerManifest(f)
	f.Close()
	if err != nil {
		t.Fatalf("ParseServerManifest(backup_manifest) = %v", err)
	}
	if diff := cmp.Diff(m, res.Manifest); diff != "" {
		t.Errorf("BaseBackup().Manifest differs from the stored manifest (-stored +result):\n%s", diff)
	}
	for _, mf := range m.Files {
		if size, ok := h.files[mf.Path]; !ok || size != mf.Size {
			t.Errorf("manifest file %s (%d bytes): received %d bytes (present %v)", mf.Path, mf.Size, size, ok)
		}
	}
	walSeg := filepath.Join(dir, "pg_wal", fmt.Sprintf("%08X%08X%08X", res.Timeline, 0, uint64(res.StartLSN)/(16<<20)))
	if fi, err := os.Stat(walSeg); err != nil || fi.Size() != 16<<20 {
		t.Errorf("WAL segment %s: %v, want a 16 MiB file", walSeg, err)
	}
	label, err := os.ReadFile(filepath.Join(dir, "backup_label"))
	if err != nil || !bytes.Contains(label, []byte("LABEL: it's a test\n")) {
		t.Errorf("backup_label = %q, %v, want it to hold the label", label, err)
	}

	// pg_verifybackup checks every file's checksum and the WAL.
	bin := c.Binaries()
	out, err := exec.CommandContext(ctx, bin.Path("pg_verifybackup"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_verifybackup %s = %v: %s", dir, err, out)
	}

	// The backup starts as a server of its own and holds the same data.
	restored, err := pg.StartDataDir(ctx, pg.ServerOptions{
		Bin: bin, DataDir: dir, LogFile: filepath.Join(root, "log", "restored.log"), Password: sharedPassword,
	})
	if err != nil {
		t.Fatalf("StartDataDir(backup) = %v", err)
	}
	defer restored.Stop(context.Background(), "immediate")
	if restored.Port() == c.Port() {
		t.Errorf("StartDataDir() port = %d, the source's", restored.Port())
	}
	if got := fingerprint(t, ctx, restored.DSN("bb_full")); got != want {
		t.Errorf("restored data = %s, want %s", got, want)
	}
	if err := restored.Stop(ctx, "fast"); err != nil {
		t.Errorf("Stop(restored) = %v", err)
	}
}

// backupsRunning counts the server's WAL senders running a backup with label.
func backupsRunning(t *testing.T, ctx context.Context, dsn, label string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender' AND query LIKE '%' || $1 || '%'`, label).Scan(&n)
	if err != nil {
		t.Fatalf("count backups: %v", err)
	}
	return n
}

func TestBaseBackupCancel(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	tests := []struct {
		name string
		opts pg.BackupOptions
		// cancelAt arranges for cancel to be called mid-stream.
		cancelAt func(h *dirHandler, cancel func())
	}{
		{
			name: "in-handler",
			opts: pg.BackupOptions{Label: "cancel-in-handler", Fast: true, WAL: true},
			cancelAt: func(h *dirHandler, cancel func()) {
				n := 0
				h.onFile = func(pg.Entry) {
					if n++; n == 50 {
						cancel()
					}
				}
			},
		},
		{
			name: "while-receiving",
			// A slow transfer, so that the cancel arrives while waiting
			// for the server.
			opts: pg.BackupOptions{Label: "cancel-while-receiving", Fast: true, MaxRate: 32},
			cancelAt: func(h *dirHandler, cancel func()) {
				time.AfterFunc(500*time.Millisecond, cancel)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newDirHandler(tempDir(t))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var canceledAt time.Time
			var once sync.Once
			tt.cancelAt(h, func() {
				once.Do(func() { canceledAt = time.Now() })
				cancel()
			})
			_, err := pg.BaseBackup(ctx, c.DSN(""), tt.opts, h)
			returned := time.Now()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("BaseBackup(canceled) = %v, want context.Canceled", err)
			}
			if canceledAt.IsZero() {
				t.Fatalf("BaseBackup() finished before the cancel")
			}
			if d := returned.Sub(canceledAt); d > 2*time.Second {
				t.Errorf("BaseBackup() returned %v after the cancel, want promptly", d)
			}
			t.Logf("returned %v after the cancel", returned.Sub(canceledAt))

			// The server drops its side of the backup and can take another.
			check, stop := context.WithTimeout(context.Background(), 2*time.Minute)
			defer stop()
			deadline := time.Now().Add(30 * time.Second)
			for backupsRunning(t, check, c.DSN(""), tt.opts.Label) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the server still runs backup %q 30 s after the cancel", tt.opts.Label)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if _, err := pg.BaseBackup(check, c.DSN(""), pg.BackupOptions{Label: tt.opts.Label + "-again", Fast: true}, discardHandler{}); err != nil {
				t.Errorf("BaseBackup() after a canceled one = %v", err)
			}
		})
	}
}

// TestBaseBackupTablespaces: a source with a tablespace is registered and
// backed up whole: the tablespace's files arrive below pg_tblspc/<oid>, where
// the server's manifest lists them (checked by size and presence), and
// base.tar carries a tablespace_map rather than a link to the source's path.
func TestBaseBackupTablespaces(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := pgtest.Start(t)
	loc := filepath.Join(tempDir(t), "ts1")
	if err := os.Mkdir(loc, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.CommandContext(ctx, "chown", "postgres:", loc).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	pgtest.Exec(t, c.DSN(""), `CREATE TABLESPACE ts1 LOCATION '`+loc+`'`,
		`CREATE TABLE in_ts (id int) TABLESPACE ts1`, `INSERT INTO in_ts SELECT generate_series(1, 1000)`, `CHECKPOINT`)

	info, err := pg.CheckSource(ctx, c.DSN(""))
	if err != nil {
		t.Fatalf("CheckSource(with tablespace) = %v, want it accepted", err)
	}
	if len(info.Tablespaces) != 1 || info.Tablespaces[0].Name != "ts1" || info.Tablespaces[0].Location != loc {
		t.Fatalf("CheckSource().Tablespaces = %+v, want ts1 at %s", info.Tablespaces, loc)
	}
	oid := info.Tablespaces[0].OID
	dir := tempDir(t)
	h := newDirHandler(dir)
	res, err := pg.BaseBackup(ctx, c.DSN(""), pg.BackupOptions{Fast: true}, h)
	if err != nil {
		t.Fatalf("BaseBackup(with tablespace) = %v", err)
	}
	if len(h.start.Tablespaces) != 2 || h.start.Tablespaces[0].OID != oid || h.start.Tablespaces[0].Location != loc {
		t.Errorf("BaseBackup() start tablespaces = %+v, want %d at %s and the main one", h.start.Tablespaces, oid, loc)
	}
	prefix := fmt.Sprintf("pg_tblspc/%d/PG_15_", oid)
	var listed int
	for _, f := range res.Manifest.Files {
		if strings.HasPrefix(f.Path, prefix) {
			listed++
			if size, ok := h.files[f.Path]; !ok || size != f.Size {
				t.Errorf("tablespace file %s: received %d bytes (%t), the manifest says %d", f.Path, size, ok, f.Size)
			}
		}
	}
	if listed == 0 {
		t.Errorf("the server's manifest lists no file below %s", prefix)
	}
	tsDir := filepath.Join(dir, "pg_tblspc", fmt.Sprint(oid))
	if fi, err := os.Lstat(tsDir); err != nil || !fi.IsDir() {
		t.Errorf("pg_tblspc/%d in the backup: %v, %v; want a directory", oid, fi, err)
	}
	m, err := os.ReadFile(filepath.Join(dir, "tablespace_map"))
	if err != nil || string(m) != fmt.Sprintf("%d %s\n", oid, loc) {
		t.Errorf("tablespace_map = %q, %v; want %q", m, err, fmt.Sprintf("%d %s\n", oid, loc))
	}
}

func TestBaseBackupOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts pg.BackupOptions
		want string
	}{
		{"label-newline", pg.BackupOptions{Label: "a\nSTART WAL LOCATION: 0/0"}, "control character"},
		{"label-too-long", pg.BackupOptions{Label: strings.Repeat("x", 1025)}, "longer than 1024"},
		{"max-rate-low", pg.BackupOptions{MaxRate: 31}, "max rate"},
		{"max-rate-high", pg.BackupOptions{MaxRate: 1048577}, "max rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The options are checked before connecting.
			_, err := pg.BaseBackup(context.Background(), "postgres://127.0.0.1:1/x", tt.opts, discardHandler{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("BaseBackup(%+v) = %v, want an error mentioning %q", tt.opts, err, tt.want)
			}
		})
	}
}
