package wal_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/pg/wal"
	"github.com/backstop/backstop/store/pgwal"
)

// shared is the cluster whose WAL the tests read. Two-phase commit needs
// prepared transactions; the transactions with thousands of
// subtransactions hold one lock per subtransaction.
// wal_keep_size keeps the checkpoints of the workload from recycling the
// segments before they are copied.
var shared = pgtest.NewShared(
	pgtest.Setting("max_prepared_transactions", "5"),
	pgtest.Setting("max_locks_per_transaction", "256"),
	pgtest.Setting("wal_keep_size", "1GB"),
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	if fx.dir != "" {
		os.RemoveAll(fx.dir)
	}
	os.Exit(code)
}

const segSize = pgwal.DefaultSegmentSize

// Sizes of the workload.
const (
	smallCommits = 60
	// bigSubxacts makes a commit record of about 10 kB, longer than a page.
	bigSubxacts = 2500
	// bulkRows of bulkPayload bytes make about 20 MB of WAL.
	bulkRows    = 36000
	bulkPayload = 500
)

// segment is a completed WAL segment copied out of the cluster's pg_wal.
type segment struct {
	name  string
	segNo uint64
	path  string
}

func (s segment) start() pglogrepl.LSN { return pgwal.SegmentStart(s.segNo, segSize) }
func (s segment) end() pglogrepl.LSN   { return pgwal.SegmentStart(s.segNo+1, segSize) }

func (s segment) read(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is WAL written by a known workload, copied out of the cluster,
// with what pg_waldump makes of it.
type fixture struct {
	dir      string
	cluster  *pg.Cluster
	segments []segment
	// systemID is the cluster's system identifier.
	systemID uint64
	// rpBefore and rpAfter bracket the creation of the restore point.
	rpBefore, rpAfter time.Time
	err               error
}

var (
	fx     fixture
	fxOnce sync.Once
)

// setup runs the workload once for all tests and returns its WAL.
func setup(t testing.TB) *fixture {
	t.Helper()
	c := shared.Cluster(t)
	fxOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		fx.cluster = c
		fx.err = fx.build(ctx, c)
	})
	if fx.err != nil {
		t.Fatalf("WAL fixture: %v", fx.err)
	}
	return &fx
}

func (f *fixture) build(ctx context.Context, c *pg.Cluster) error {
	dsn := c.DSN("")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	exec := func(sql ...string) error {
		for _, q := range sql {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%.60s: %w", q, err)
			}
		}
		return nil
	}
	if err := exec(
		"CREATE TABLE small (id int, payload text)",
		"CREATE TABLE bulk (id int, payload text)",
		"CREATE TABLE fill (id int, payload text)",
	); err != nil {
		return err
	}
	// Many small commits, some a few milliseconds apart.
	for i := range smallCommits {
		if err := exec(fmt.Sprintf("INSERT INTO small VALUES (%d, 'row %d')", i, i)); err != nil {
			return err
		}
		if i%4 == 0 {
			if err := exec("SELECT pg_sleep(0.01)"); err != nil {
				return err
			}
		}
	}
	// Full-page images, with holes, as they are and compressed each way:
	// the first change to a page after a checkpoint writes its image.
	for _, method := range []string{"off", "pglz", "lz4", "zstd"} {
		if err := exec(
			"SET wal_compression = "+method,
			"CHECKPOINT",
			"UPDATE small SET payload = payload || '!' WHERE id % 10 = 0",
		); err != nil {
			return err
		}
	}
	// An abort, and a two-phase commit of each outcome.
	if err := exec(
		"BEGIN", "INSERT INTO small VALUES (-1, 'rolled back')", "ROLLBACK",
		"BEGIN", "INSERT INTO small VALUES (-2, 'prepared')", "PREPARE TRANSACTION 'p1'",
		"COMMIT PREPARED 'p1'",
		"BEGIN", "INSERT INTO small VALUES (-3, 'prepared, rolled back')", "PREPARE TRANSACTION 'p2'",
		"ROLLBACK PREPARED 'p2'",
	); err != nil {
		return err
	}
	// A commit record longer than a page.
	if err := exec("BEGIN", subxactsSQL(bigSubxacts), "COMMIT"); err != nil {
		return err
	}
	f.rpBefore = time.Now()
	if err := exec("SELECT pg_create_restore_point('before-x')"); err != nil {
		return err
	}
	f.rpAfter = time.Now()
	// About 20 MB of WAL: records and commits cross segment boundaries.
	if err := exec("SELECT pg_switch_wal()"); err != nil {
		return err
	}
	for i := range 4 {
		if err := exec(fmt.Sprintf("INSERT INTO bulk SELECT g, repeat('b', %d) FROM generate_series(%d, %d) g",
			bulkPayload, i*bulkRows/4, (i+1)*bulkRows/4-1)); err != nil {
			return err
		}
	}
	// A commit record that starts in one segment and ends in the next.
	if err := commitAcrossSegments(ctx, dsn); err != nil {
		return err
	}
	if err := exec(
		"INSERT INTO small VALUES (100, 'after')",
		"BEGIN", "INSERT INTO small VALUES (-4, 'rolled back')", "ROLLBACK",
		"SELECT pg_switch_wal()",
	); err != nil {
		return err
	}
	var insert pglogrepl.LSN
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn(), system_identifier FROM pg_control_system()").Scan(&insert, &f.systemID); err != nil {
		return err
	}
	return f.copySegments(c, pgwal.SegmentOf(insert, segSize))
}

// subxactsSQL returns a DO block that runs n subtransactions, each of which
// writes and so gets its own transaction ID.
func subxactsSQL(n int) string {
	return fmt.Sprintf(`DO $$ BEGIN
		FOR i IN 1..%d LOOP
			BEGIN INSERT INTO small VALUES (i, 'sub'); EXCEPTION WHEN others THEN NULL; END;
		END LOOP; END $$`, n)
}

// commitAcrossSegments commits a transaction with many subtransactions
// when the WAL insert position is a few kilobytes before the end of a
// segment, so that its commit record (about 10 kB) runs on into the next.
func commitAcrossSegments(ctx context.Context, dsn string) error {
	big, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer big.Close(ctx)
	filler, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer filler.Close(ctx)
	insertLSN := func() (pglogrepl.LSN, error) {
		var lsn pglogrepl.LSN
		err := filler.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()").Scan(&lsn)
		return lsn, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		if _, err := big.Exec(ctx, "BEGIN"); err != nil {
			return err
		}
		if _, err := big.Exec(ctx, subxactsSQL(bigSubxacts)); err != nil {
			return err
		}
		var before pglogrepl.LSN
		for {
			lsn, err := insertLSN()
			if err != nil {
				return err
			}
			rem := int64(pgwal.SegmentStart(pgwal.SegmentOf(lsn, segSize)+1, segSize) - lsn)
			var q string
			switch {
			case rem >= 2000 && rem <= 8000:
				before = lsn
			case rem < 2000:
				q = fmt.Sprintf("INSERT INTO fill SELECT g, repeat('f', 1000) FROM generate_series(1, %d) g", 8)
			case rem > 64<<10:
				q = fmt.Sprintf("INSERT INTO fill SELECT g, repeat('f', 1000) FROM generate_series(1, %d) g", max(1, (rem-32<<10)/1200))
			default:
				q = fmt.Sprintf("INSERT INTO fill VALUES (0, repeat('f', %d))", min(1500, max(1, rem-6000)))
			}
			if before != 0 {
				break
			}
			if _, err := filler.Exec(ctx, q); err != nil {
				return err
			}
		}
		if _, err := big.Exec(ctx, "COMMIT"); err != nil {
			return err
		}
		after, err := insertLSN()
		if err != nil {
			return err
		}
		if pgwal.SegmentOf(after, segSize) == pgwal.SegmentOf(before, segSize)+1 &&
			pgwal.SegmentOffset(after, segSize) < 16<<10 {
			return nil
		}
	}
	return errors.New("could not place a commit record across a segment boundary in 5 attempts")
}

// copySegments copies the segments before segment current out of pg_wal,
// before a checkpoint can recycle them.
func (f *fixture) copySegments(c *pg.Cluster, current uint64) error {
	dir, err := os.MkdirTemp("", "wal-test-")
	if err != nil {
		return err
	}
	f.dir = dir
	walDir := filepath.Join(c.DataDir(), "pg_wal")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		tli, segNo, err := pgwal.ParseSegmentName(e.Name(), segSize)
		if err != nil || tli != 1 || segNo >= current {
			continue
		}
		b, err := os.ReadFile(filepath.Join(walDir, e.Name()))
		if err != nil {
			return err
		}
		p := filepath.Join(dir, e.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		f.segments = append(f.segments, segment{name: e.Name(), segNo: segNo, path: p})
	}
	sort.Slice(f.segments, func(i, j int) bool { return f.segments[i].segNo < f.segments[j].segNo })
	for i, s := range f.segments {
		if i > 0 && s.segNo != f.segments[i-1].segNo+1 {
			return fmt.Errorf("segment %s does not follow %s", s.name, f.segments[i-1].name)
		}
	}
	if len(f.segments) < 3 {
		return fmt.Errorf("only %d completed segments", len(f.segments))
	}
	return nil
}

// dumped is one record as pg_waldump prints it.
type dumped struct {
	LSN      pglogrepl.LSN
	RMID     uint8
	XID      uint32
	TotalLen uint32
	// ImageLen is the length of the full-page images in the record.
	ImageLen uint32
	// Kind and Desc are the record's description, for Transaction and XLOG
	// records only.
	Kind, Desc string
}

// rmNames are PostgreSQL 15's resource managers, by ID (rmgrlist.h).
var rmNames = []string{
	"XLOG", "Transaction", "Storage", "CLOG", "Database", "Tablespace", "MultiXact", "RelMap",
	"Standby", "Heap2", "Heap", "Btree", "Hash", "Gin", "Gist", "Sequence", "SPGist", "BRIN",
	"CommitTs", "ReplicationOrigin", "Generic", "LogicalMessage",
}

var dumpLine = regexp.MustCompile(`^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (\S+) ?(.*)$`)

// waldump runs pg_waldump on the segments from first to last (names in
// f.dir) and parses what it prints.
func (f *fixture) waldump(t testing.TB, first, last string) []dumped {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.cluster.Binaries().Path("pg_waldump"), "--path="+f.dir, first, last)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var recs []dumped
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		m := dumpLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("pg_waldump printed %.200q", sc.Text())
		}
		rm := -1
		for i, n := range rmNames {
			if n == m[1] {
				rm = i
			}
		}
		if rm < 0 {
			t.Fatalf("pg_waldump printed unknown resource manager %q", m[1])
		}
		rec, _ := strconv.ParseUint(m[2], 10, 32)
		tot, _ := strconv.ParseUint(m[3], 10, 32)
		xid, _ := strconv.ParseUint(m[4], 10, 32)
		lsn, err := pglogrepl.ParseLSN(m[5])
		if err != nil {
			t.Fatal(err)
		}
		d := dumped{LSN: lsn, RMID: uint8(rm), XID: uint32(xid), TotalLen: uint32(tot), ImageLen: uint32(tot - rec)}
		if rm == wal.RMXLOG || rm == wal.RMTransaction {
			d.Kind, d.Desc = m[6], m[7]
		}
		recs = append(recs, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pg_waldump %s %s: %v: %s", first, last, err, stderr.String())
	}
	return recs
}

var commitDesc = regexp.MustCompile(`^(?:(\d+): )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) UTC(;|$)`)

// oracle returns the commits and restore points among records that
// pg_waldump printed, as Summarize should find them.
func oracle(t testing.TB, recs []dumped) ([]wal.Commit, []wal.RestorePoint) {
	t.Helper()
	var commits []wal.Commit
	var points []wal.RestorePoint
	kinds := map[string]wal.Kind{
		"COMMIT": wal.KindCommit, "ABORT": wal.KindAbort,
		"COMMIT_PREPARED": wal.KindCommitPrepared, "ABORT_PREPARED": wal.KindAbortPrepared,
	}
	for _, r := range recs {
		switch {
		case r.RMID == wal.RMTransaction:
			kind, ok := kinds[r.Kind]
			if !ok {
				continue
			}
			m := commitDesc.FindStringSubmatch(r.Desc)
			if m == nil {
				t.Fatalf("pg_waldump: %s at %s: unexpected description %.100q", r.Kind, r.LSN, r.Desc)
			}
			xid := r.XID
			if m[1] != "" {
				x, _ := strconv.ParseUint(m[1], 10, 32)
				xid = uint32(x)
			}
			tm, err := time.ParseInLocation("2006-01-02 15:04:05.000000", m[2], time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			commits = append(commits, wal.Commit{LSN: r.LSN, XID: xid, Time: tm, Kind: kind})
		case r.RMID == wal.RMXLOG && r.Kind == "RESTORE_POINT":
			points = append(points, wal.RestorePoint{LSN: r.LSN, Name: r.Desc})
		}
	}
	return commits, points
}

// scanned is what Scan passes for a record, without the main data.
type scanned struct {
	LSN, EndLSN pglogrepl.LSN
	RMID        uint8
	XID         uint32
	TotalLen    uint32
}

// scanAll scans r and returns its records.
func scanAll(t testing.TB, r io.Reader, opts wal.ScanOptions) ([]scanned, wal.ScanResult) {
	t.Helper()
	var recs []scanned
	res, err := wal.Scan(r, opts, func(rec wal.Record) error {
		recs = append(recs, scanned{LSN: rec.LSN, EndLSN: rec.EndLSN, RMID: rec.RMID, XID: rec.XID, TotalLen: rec.TotalLen})
		return nil
	})
	if err != nil {
		t.Fatalf("Scan() = %v", err)
	}
	return recs, res
}

// withNext returns segment i followed by segment i+1, if there is one, and
// the options that keep a scan to the records that start in segment i.
func (f *fixture) withNext(t testing.TB, i int) (io.Reader, wal.ScanOptions) {
	t.Helper()
	s := f.segments[i]
	opts := wal.ScanOptions{StartLSN: s.start(), EndLSN: s.end()}
	r := io.Reader(bytes.NewReader(s.read(t)))
	if i+1 < len(f.segments) {
		r = io.MultiReader(r, bytes.NewReader(f.segments[i+1].read(t)))
	}
	return r, opts
}
