package jobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// pitr is a source cluster with a base backup taken before any table, then ten rows
// committed in segments that are archived whole, and five more committed in the segment
// being written, archived as a partial piece. stamps[i] is row i's commit time.
type pitr struct {
	e        *env
	source   *pg.Cluster
	backup   store.Backup
	sysID    string
	segSize  int64
	stamps   [16]time.Time
	complete []string // archived segments, the last one ended by pg_switch_wal()
	current  string   // the segment rows 11 to 15 went to
	partial  string   // its archived piece
	backstop string   // the backstop binary, which the server's OS user can run
	uid, gid int      // the server's OS user, -1 when not running as root
}

// buildBackstop builds the backstop command into a directory the server's OS user can
// enter, for restore_command.
func buildBackstop(t *testing.T) (string, error) {
	dir := reachableDir(t)
	path := filepath.Join(dir, "backstop")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/backstop/backstop/cmd/backstop").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, os.Chmod(path, 0o755)
}

func serverOwner(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return -1, -1
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

func newPITR(t *testing.T) *pitr {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	built := make(chan error, 1)
	p := &pitr{}
	go func() {
		var err error
		p.backstop, err = buildBackstop(t)
		built <- err
	}()
	p.uid, p.gid = serverOwner(t)

	// Commit timestamps give each row's exact commit time; wal_keep_size keeps every
	// segment in pg_wal for archiving by hand.
	p.source = pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"), pgtest.Setting("wal_keep_size", "1GB"))
	dsn := p.source.DSN("")
	p.e = setup(t, jobs.Options{})
	src := p.e.register(t, "pitr", dsn)
	_, p.backup = p.e.backup(t, src)
	p.sysID = p.backup.SystemIdentifier

	conn := connect(t, dsn)
	p.segSize, _ = strconv.ParseInt(queryValue(t, conn, `SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'`), 10, 64)
	execSQL(t, dsn, `CREATE TABLE pitr (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`)
	insert := func(id int) {
		t.Helper()
		if _, err := conn.Exec(ctx, `INSERT INTO pitr (id) VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_xact_commit_timestamp(xmin) FROM pitr WHERE id = $1`, id).Scan(&p.stamps[id]); err != nil {
			t.Fatal(err)
		}
		if !p.stamps[id].After(p.stamps[id-1]) {
			t.Fatalf("row %d committed at %v, not after row %d (%v)", id, p.stamps[id], id-1, p.stamps[id-1])
		}
	}
	for id := 1; id <= 10; id++ {
		insert(id)
	}
	lastComplete := queryValue(t, conn, `SELECT pg_walfile_name(pg_switch_wal())`)
	for id := 11; id <= 15; id++ {
		insert(id)
	}
	flush, err := pglogrepl.ParseLSN(queryValue(t, conn, `SELECT pg_current_wal_flush_lsn()`))
	if err != nil {
		t.Fatal(err)
	}

	// Archive by hand: every segment up to the switched one, and the first bytes of the
	// current one, up to what the server has flushed.
	walDir := filepath.Join(p.source.DataDir(), "pg_wal")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(name string, path string, size int64) {
		t.Helper()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, _, err := p.e.repo.PutWAL(ctx, p.sysID, name, io.LimitReader(f, size), size); err != nil {
			t.Fatalf("PutWAL(%s) = %v", name, err)
		}
	}
	for _, ent := range entries {
		if n := ent.Name(); len(n) == 24 && n <= lastComplete {
			put(n, filepath.Join(walDir, n), p.segSize)
			p.complete = append(p.complete, n)
		}
	}
	p.current = pgwal.SegmentName(1, pgwal.SegmentOf(flush, p.segSize), p.segSize)
	end := pgwal.SegmentOffset(flush, p.segSize)
	if p.current <= lastComplete || end == 0 {
		t.Fatalf("flushed up to %s: segment %s offset %d, want inside the segment after %s", flush, p.current, end, lastComplete)
	}
	p.partial = repository.PartialWALName(p.current, end)
	put(p.partial, filepath.Join(walDir, p.current), end)

	if err := <-built; err != nil {
		t.Fatal(err)
	}
	t.Logf("source, backup, 15 rows and %d segments + %s archived in %v", len(p.complete), p.partial, time.Since(start).Round(time.Millisecond))
	return p
}

// files maps WAL file names to what the repository holds, without the partial piece
// unless withPartial.
func (p *pitr) files(t *testing.T, withPartial bool) map[string]jobs.WALSource {
	t.Helper()
	names, err := p.e.repo.WALNames(context.Background(), p.sysID)
	if err != nil {
		t.Fatal(err)
	}
	if !withPartial {
		names = slicesDelete(names, p.partial)
	}
	return jobs.WALSources(names, p.segSize)
}

func slicesDelete(names []string, drop string) []string {
	var out []string
	for _, n := range names {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

// serveWAL runs a WAL server for files of repo on a socket in a new directory, stopped
// when the test ends, and returns it with its socket.
func serveWAL(t *testing.T, repo *repository.Repo, sysID string, files map[string]jobs.WALSource, uid, gid int) (*jobs.WALServer, string) {
	t.Helper()
	srv := jobs.NewWALServer(repo, sysID, files)
	socket := filepath.Join(reachableDir(t), "wal", "s")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, socket, uid, gid) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Serve() = %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v after ctx is done, want nil", err)
		}
		if _, err := os.Stat(filepath.Dir(socket)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket directory after Serve: Stat() = %v, want it removed", err)
		}
	})
	return srv, socket
}

// restored is a point-in-time restore in progress or done.
type restored struct {
	srv     *jobs.WALServer
	cluster *pg.Cluster // nil when the server did not start
	logFile string
	fetched map[string]int64 // OnFetch's calls
	last    pg.RecoveryProgress
	calls   int // progress calls
}

// restore restores the base backup into a new directory, serves files to it, recovers it
// to target and waits for the end of recovery; the error is StartDataDir's or WaitRecovery's.
// With hold, restore_command waits before fetching the file of that name until the server
// has started.
func (p *pitr) restore(t *testing.T, files map[string]jobs.WALSource, target time.Time, hold string) (*restored, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := reachableDir(t)
	dataDir := filepath.Join(dir, "data")
	m, err := p.e.repo.Manifest(ctx, p.backup.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dest.ClaimDir(dataDir, dest.NewToken(), t.Name(), p.uid, p.gid); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RestoreFiles(ctx, p.e.repo, m, dataDir, jobs.RestoreOptions{UID: p.uid, GID: p.gid}); err != nil {
		t.Fatalf("RestoreFiles() = %v", err)
	}
	r := &restored{logFile: filepath.Join(dir, "log", "postgresql.log"), fetched: make(map[string]int64)}
	var mu sync.Mutex
	srv := jobs.NewWALServer(p.e.repo, p.sysID, files)
	srv.OnFetch = func(name string, n int64) {
		mu.Lock()
		defer mu.Unlock()
		r.fetched[name] += n
	}
	socket := filepath.Join(dir, "wal", "s")
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, socket, p.uid, p.gid) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Serve() = %v", err)
	}
	r.srv = srv

	command := jobs.RestoreCommand(p.backstop, socket)
	flag := filepath.Join(dir, "started")
	if hold != "" {
		command = fmt.Sprintf(`case %%f in %s) for i in $(seq 1200); do [ -e '%s' ] && break; sleep 0.05; done;; esac; %s`,
			hold, flag, command)
	}
	err = pg.WriteRecoveryConfig(dataDir, 0, map[string]string{
		"restore_command":      command,
		"recovery_target_time": target.Format(time.RFC3339Nano), // 'Z': normalized
	})
	if err != nil {
		t.Fatalf("WriteRecoveryConfig() = %v", err)
	}
	started := time.Now()
	c, err := pg.StartDataDir(ctx, pg.ServerOptions{Bin: p.source.Binaries(), DataDir: dataDir, LogFile: r.logFile})
	if err != nil {
		return r, err
	}
	r.cluster = c
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx, "immediate"); err != nil {
			t.Errorf("stop restored server: %v", err)
		}
	})
	r.last, err = pg.WaitRecovery(ctx, c, func(pg.RecoveryProgress) { r.calls++ })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("started and recovered in %v: %+v; WAL server %+v", time.Since(started).Round(time.Millisecond), r.last, srv.Stats())
	return r, err
}

// rows returns the ids in the restored table, in order.
func (r *restored) rows(t *testing.T) string {
	t.Helper()
	return queryValue(t, connect(t, r.cluster.DSN("")), `SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr`)
}

func idList(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(ids, ",")
}

// TestPointInTimeRestore restores a base backup to points in time, with WAL served by
// jobs.WALServer to `backstop wal-fetch` run by PostgreSQL as restore_command.
func TestPointInTimeRestore(t *testing.T) {
	t.Parallel()
	p := newPITR(t)

	// The target is row 6's exact commit time: inclusive, so row 6 is in, row 7 out.
	t.Run("target in archived segments", func(t *testing.T) {
		t.Parallel()
		r, err := p.restore(t, p.files(t, false), p.stamps[6], "")
		if err != nil {
			t.Fatalf("restore to row 6's commit = %v", err)
		}
		if got, want := r.rows(t), idList(6); got != want {
			t.Errorf("restored rows = %s, want %s", got, want)
		}
		if r.last.InRecovery || !r.last.ReplayedAt.Equal(p.stamps[6]) || r.last.ReplayLSN == 0 || r.calls == 0 {
			t.Errorf("WaitRecovery() = %+v after %d progress calls, want promoted, last replayed commit at %v",
				r.last, r.calls, p.stamps[6])
		}
		line, err := pg.ReplayStopLine(r.logFile)
		if err != nil || !strings.Contains(line, "recovery stopping before commit of transaction") {
			t.Errorf("ReplayStopLine() = %q, %v, want the line saying replay stopped before a commit", line, err)
		}
		st := r.srv.Stats()
		if st.Served == 0 || st.Bytes != st.Served*p.segSize || st.NotFound == 0 || st.Failed != 0 ||
			st.Requests != st.Served+st.NotFound {
			t.Errorf("WAL server stats = %+v, want whole segments served, some names not found (PostgreSQL asks for 00000002.history), no failure", st)
		}
		var sum int64
		for _, n := range r.fetched {
			sum += n
		}
		if sum != st.Bytes {
			t.Errorf("OnFetch reported %d bytes (%v), Stats %d", sum, r.fetched, st.Bytes)
		}
	})

	// Rows 11 to 15 are only in the current segment, archived as a partial piece: served
	// under the segment's name, padded to its size.
	t.Run("target in a partial segment", func(t *testing.T) {
		t.Parallel()
		r, err := p.restore(t, p.files(t, true), p.stamps[13], "")
		if err != nil {
			t.Fatalf("restore to row 13's commit = %v", err)
		}
		if got, want := r.rows(t), idList(13); got != want {
			t.Errorf("restored rows = %s, want %s", got, want)
		}
		if got := r.fetched[p.current]; got != p.segSize {
			t.Errorf("served %s (from %s): %d bytes, want the segment size %d", p.current, p.partial, got, p.segSize)
		}
	})

	// Without the partial piece, the archive ends at row 10: a later target cannot be
	// reached, and the server stops. It would stop within milliseconds of being ready, often
	// before pg_ctl sees it ready (StartDataDir then fails, and RecoveryLogError explains):
	// restore_command holds the fetch of the segment after the archive until the server has
	// started, so that WaitRecovery sees the server stop.
	t.Run("target after the archive", func(t *testing.T) {
		t.Parallel()
		r, err := p.restore(t, p.files(t, false), p.stamps[10].Add(time.Millisecond), p.current)
		if r.cluster == nil {
			t.Fatalf("StartDataDir() = %v, want a started server (RecoveryLogError: %v)", err, pg.RecoveryLogError(r.logFile))
		}
		if !errors.Is(err, pg.ErrTargetNotReached) || !strings.Contains(err.Error(), "FATAL:  recovery ended before configured recovery target was reached") {
			t.Fatalf("restore past the archive = %v, want ErrTargetNotReached quoting the server's log", err)
		}
		t.Logf("error: %v", err)
		if r.cluster != nil && r.cluster.Running(context.Background()) {
			t.Errorf("server still running after recovery ended before its target")
		}
	})

	t.Run("wal-fetch", func(t *testing.T) {
		t.Parallel()
		testWALFetch(t, p)
	})
}

// walFetch runs `backstop wal-fetch` and returns its exit status and stderr.
func walFetch(t *testing.T, backstop, socket, name, dest string) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(backstop, "wal-fetch", "--socket", socket, name, dest)
	cmd.Stderr = &stderr
	cmd.Dir = t.TempDir() // no home, no catalog: nothing but the socket
	home := filepath.Join(t.TempDir(), "no-home")
	cmd.Env = append(os.Environ(), "BACKSTOP_HOME="+home)
	err := cmd.Run()
	if _, serr := os.Lstat(home); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("wal-fetch touched the home directory %s: %v", home, serr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), stderr.String()
	}
	t.Fatalf("run wal-fetch: %v", err)
	return 0, ""
}

// wantAbsent fails unless neither dest nor dest.tmp exists.
func wantAbsent(t *testing.T, dest string) {
	t.Helper()
	for _, p := range []string{dest, dest + ".tmp"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Lstat(%s) = %v, want no such file", p, err)
		}
	}
}

func testWALFetch(t *testing.T, p *pitr) {
	ctx := context.Background()
	srv, socket := serveWAL(t, p.e.repo, p.sysID, p.files(t, true), -1, -1)
	dest := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "pg_wal")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "RECOVERYXLOG")
	}

	t.Run("segment", func(t *testing.T) {
		d := dest(t)
		// Left over from an earlier fetch: replaced.
		os.WriteFile(d, []byte("old"), 0o600)
		os.WriteFile(d+".tmp", []byte("torn"), 0o600)
		name := p.complete[len(p.complete)-1]
		code, stderr := walFetch(t, p.backstop, socket, name, d)
		if code != 0 || stderr != "" {
			t.Fatalf("wal-fetch %s = exit %d, stderr %q, want 0 and nothing", name, code, stderr)
		}
		var want bytes.Buffer
		if err := p.e.repo.ReadWAL(ctx, p.sysID, name, &want); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("fetched %s: %d bytes (%v), want the archived %d bytes", name, len(got), err, want.Len())
		}
		if _, err := os.Lstat(d + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.tmp left behind: %v", d, err)
		}
	})

	t.Run("partial padded", func(t *testing.T) {
		d := dest(t)
		if code, stderr := walFetch(t, p.backstop, socket, p.current, d); code != 0 || stderr != "" {
			t.Fatalf("wal-fetch %s = exit %d, stderr %q, want 0 and nothing", p.current, code, stderr)
		}
		var piece bytes.Buffer
		if err := p.e.repo.ReadWAL(ctx, p.sysID, p.partial, &piece); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != p.segSize || !bytes.Equal(got[:piece.Len()], piece.Bytes()) ||
			!bytes.Equal(got[piece.Len():], make([]byte, len(got)-piece.Len())) {
			t.Errorf("fetched %s: %d bytes, want the %d bytes of %s then zeros up to %d", p.current, len(got), piece.Len(), p.partial, p.segSize)
		}
	})

	t.Run("not archived", func(t *testing.T) {
		d := dest(t)
		before := srv.Stats().NotFound
		for _, name := range []string{"00000002.history", "0000000100000000000000FF", "../../etc/passwd"} {
			code, stderr := walFetch(t, p.backstop, socket, name, d)
			want := 1
			if strings.Contains(name, "/") {
				want = 255 // refused before asking
			}
			if code != want || (want == 1 && stderr != "") {
				t.Errorf("wal-fetch %s = exit %d, stderr %q, want %d, quietly when not archived", name, code, stderr, want)
			}
			wantAbsent(t, d)
		}
		if got := srv.Stats().NotFound - before; got != 2 {
			t.Errorf("Stats().NotFound grew by %d, want 2", got)
		}
	})

	t.Run("piece pruned while served", func(t *testing.T) {
		// A repository of its own: a recovering server was told to fetch a piece, and
		// pruning deleted it once a longer piece was archived.
		key, err := repository.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		repo := newRepo(t, key)
		defer repo.Close()
		const sysID, seg = "7000000000000000002", "000000010000000000000004"
		data := make([]byte, 16<<20)
		rand.Read(data[:3<<20])
		short, long := repository.PartialWALName(seg, 1<<20), repository.PartialWALName(seg, 3<<20)
		if _, _, err := repo.PutWAL(ctx, sysID, short, bytes.NewReader(data[:1<<20]), 1<<20); err != nil {
			t.Fatal(err)
		}
		_, csocket := serveWAL(t, repo, sysID, map[string]jobs.WALSource{seg: {File: short, SegmentSize: 16 << 20}}, -1, -1)
		if _, _, err := repo.PutWAL(ctx, sysID, long, bytes.NewReader(data[:3<<20]), 3<<20); err != nil {
			t.Fatal(err)
		}
		if res, err := repo.Prune(ctx, repository.PruneOptions{Grace: -1, Delay: -1}); err != nil || res.PiecesDeleted != 1 {
			t.Fatalf("Prune = %+v, %v, want the short piece deleted", res, err)
		}
		d := dest(t)
		if code, stderr := walFetch(t, p.backstop, csocket, seg, d); code != 0 || stderr != "" {
			t.Fatalf("wal-fetch %s after its piece was pruned = exit %d, stderr %q, want 0 and nothing", seg, code, stderr)
		}
		got, err := os.ReadFile(d)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("fetched %s: %d bytes (%v), want the longer piece's 3 MiB then zeros to 16 MiB", seg, len(got), err)
		}
	})

	t.Run("corrupt object", func(t *testing.T) {
		// A repository of its own: blocks are shared, and this one is damaged.
		key, err := repository.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		repo := newRepo(t, key)
		defer repo.Close()
		const sysID, name = "7000000000000000001", "000000010000000000000002"
		seg := make([]byte, 16<<20)
		rand.Read(seg)
		if _, _, err := repo.PutWAL(ctx, sysID, name, bytes.NewReader(seg), int64(len(seg))); err != nil {
			t.Fatal(err)
		}
		f, err := repo.WAL(ctx, sysID, name)
		if err != nil {
			t.Fatal(err)
		}
		// The last block: the first fifteen verify and must not be sent either.
		last := f.Blocks[len(f.Blocks)-1]
		flipBlob(t, repo, last)
		csrv, csocket := serveWAL(t, repo, sysID, map[string]jobs.WALSource{name: {File: name}}, -1, -1)
		d := dest(t)
		code, stderr := walFetch(t, p.backstop, csocket, name, d)
		if code != 255 || !strings.Contains(stderr, last) {
			t.Errorf("wal-fetch of a corrupt segment = exit %d, stderr %q, want 2 and a message naming object %s", code, stderr, last)
		}
		wantAbsent(t, d)
		if st := csrv.Stats(); st.Failed != 1 || st.Served != 0 || st.Bytes != 0 || !strings.Contains(st.LastError, last) {
			t.Errorf("WAL server stats = %+v, want one failure naming %s, nothing sent", st, last)
		}
	})

	// A body cut short (a server that dies mid-file) leaves nothing behind.
	t.Run("truncated body", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "s")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 500))
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		d := dest(t)
		code, stderr := walFetch(t, p.backstop, sock, p.current, d)
		if code != 255 || stderr == "" {
			t.Errorf("wal-fetch from a server dying mid-file = exit %d, stderr %q, want 2 and a message", code, stderr)
		}
		wantAbsent(t, d)
	})

	t.Run("no server", func(t *testing.T) {
		d := dest(t)
		code, stderr := walFetch(t, p.backstop, filepath.Join(t.TempDir(), "nothing"), p.current, d)
		if code != 255 || !strings.Contains(stderr, "cannot reach") {
			t.Errorf("wal-fetch without a server = exit %d, stderr %q, want 2 and a message", code, stderr)
		}
		wantAbsent(t, d)
	})
}

func TestWALSources(t *testing.T) {
	t.Parallel()
	const seg = 16 << 20
	got := jobs.WALSources([]string{
		"000000010000000000000002",
		"000000010000000000000003",
		"000000010000000000000003.partial.00100000", // superseded by the complete segment
		"000000010000000000000004.partial.00001000",
		"000000010000000000000004.partial.00A3C000",
		"000000010000000000000004.partial.00200000",
		"00000002.history",
	}, seg)
	want := map[string]jobs.WALSource{
		"000000010000000000000002": {File: "000000010000000000000002"},
		"000000010000000000000003": {File: "000000010000000000000003"},
		"000000010000000000000004": {File: "000000010000000000000004.partial.00A3C000", SegmentSize: seg},
		"00000002.history":         {File: "00000002.history"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("WALSources() = %v, want %v", got, want)
	}
}

func TestRestoreCommand(t *testing.T) {
	t.Parallel()
	got := jobs.RestoreCommand("/opt/back stop/backstop", "/run/it's 100%/s")
	want := `'/opt/back stop/backstop' wal-fetch --socket '/run/it'\''s 100%%/s' %f %p`
	if got != want {
		t.Errorf("RestoreCommand() = %s, want %s", got, want)
	}
}

func TestWALServerRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, key)
	defer repo.Close()
	// A partial piece needs the size to pad it to.
	srv := jobs.NewWALServer(repo, "7000000000000000001", map[string]jobs.WALSource{
		"000000010000000000000004": {File: "000000010000000000000004.partial.00A3C000"},
	})
	if err := srv.Serve(ctx, filepath.Join(t.TempDir(), "wal", "s"), -1, -1); err == nil || !strings.Contains(err.Error(), "segment size") {
		t.Errorf("Serve(partial without a segment size) = %v, want an error asking for it", err)
	}
	// The socket's directory must be new: one that exists may be open to others.
	srv = jobs.NewWALServer(repo, "7000000000000000001", nil)
	if err := srv.Serve(ctx, filepath.Join(t.TempDir(), "s"), -1, -1); err == nil || !errors.Is(err, os.ErrExist) {
		t.Errorf("Serve(socket in an existing directory) = %v, want ErrExist", err)
	}
	srv = jobs.NewWALServer(repo, "7000000000000000001", nil)
	if err := srv.Serve(ctx, filepath.Join(t.TempDir(), strings.Repeat("x", 100), "s"), -1, -1); err == nil || !strings.Contains(err.Error(), "Unix sockets allow") {
		t.Errorf("Serve(long path) = %v, want an error about its length", err)
	}
}
