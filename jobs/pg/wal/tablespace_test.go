package wal_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/pg/wal"
	"github.com/backstop/backstop/store/pgwal"
)

// tablespaceDump is a line of pg_waldump -r Tablespace about a creation.
var tablespaceDump = regexp.MustCompile(`lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: CREATE (\d+) "(.*)"$`)

// TestSummarizeTablespaces reads the tablespace creations of real WAL (two
// creations and a drop, with a page-crossing path) and compares them with
// what pg_waldump -r Tablespace prints.
func TestSummarizeTablespaces(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := pgtest.Start(t)
	root := t.TempDir()
	if err := pgtest.Reachable(root); err != nil {
		t.Fatal(err)
	}
	// A long location makes a record that may cross a page boundary.
	locs := []string{filepath.Join(root, "ts_a"), filepath.Join(root, strings.Repeat("deep", 60), "ts_b"), filepath.Join(root, "ts_dropped")}
	for _, l := range locs {
		if err := os.MkdirAll(l, 0o700); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if out, err := exec.CommandContext(ctx, "chown", "-R", "postgres:", root).CombinedOutput(); err != nil {
				t.Fatalf("chown: %v: %s", err, out)
			}
		}
	}
	conn, err := pgx.Connect(ctx, c.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var start pglogrepl.LSN
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&startText{&start}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLESPACE ts_a LOCATION '` + locs[0] + `'`,
		`CREATE TABLE filler (x text)`,
		`INSERT INTO filler SELECT repeat('x', 100) FROM generate_series(1, 200)`,
		`CREATE TABLESPACE ts_b LOCATION '` + locs[1] + `'`,
		`CREATE TABLESPACE ts_dropped LOCATION '` + locs[2] + `'`,
		`DROP TABLESPACE ts_dropped`,
		`SELECT pg_switch_wal()`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var end pglogrepl.LSN
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&startText{&end}); err != nil {
		t.Fatal(err)
	}

	// Copy the segments from the one holding start to the one before end's.
	first, last := pgwal.SegmentOf(start, segSize), pgwal.SegmentOf(end, segSize)-1
	dir := t.TempDir()
	var readers []io.Reader
	for n := first; n <= last; n++ {
		name := pgwal.SegmentName(1, n, segSize)
		b, err := os.ReadFile(filepath.Join(c.DataDir(), "pg_wal", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		readers = append(readers, strings.NewReader(string(b)))
	}

	// The oracle.
	cmd := exec.CommandContext(ctx, c.Binaries().Path("pg_waldump"), "--path="+dir, "-r", "Tablespace",
		pgwal.SegmentName(1, first, segSize), pgwal.SegmentName(1, last, segSize))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_waldump: %v", err)
	}
	var want []wal.TablespaceCreation
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		m := tablespaceDump.FindStringSubmatch(line)
		if m == nil {
			if !strings.Contains(line, "desc: DROP") {
				t.Fatalf("pg_waldump printed %q", line)
			}
			continue
		}
		lsn, err := pglogrepl.ParseLSN(m[1])
		if err != nil {
			t.Fatal(err)
		}
		oid, err := strconv.ParseUint(m[2], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, wal.TablespaceCreation{LSN: lsn, Timeline: 1, OID: uint32(oid), Location: m[3]})
	}
	if len(want) != 3 || want[1].Location != locs[1] {
		t.Fatalf("pg_waldump found %+v, want 3 creations, the second at %s", want, locs[1])
	}

	sum, err := wal.Summarize(io.MultiReader(readers...), wal.ScanOptions{StartLSN: pgwal.SegmentStart(first, segSize)})
	if err != nil {
		t.Fatalf("Summarize() = %v", err)
	}
	for i, tc := range sum.Tablespaces {
		if tc.EndLSN <= tc.LSN || tc.PrevLSN >= tc.LSN || tc.PrevLSN == 0 {
			t.Errorf("Summarize().Tablespaces[%d] = %+v: want PrevLSN < LSN < EndLSN", i, tc)
		}
		sum.Tablespaces[i].EndLSN, sum.Tablespaces[i].PrevLSN = 0, 0
	}
	if diff := cmp.Diff(want, sum.Tablespaces); diff != "" {
		t.Errorf("Summarize().Tablespaces differ from pg_waldump -r Tablespace (-want +got):\n%s", diff)
	}
}

// startText scans an LSN given as text.
type startText struct{ lsn *pglogrepl.LSN }

func (s *startText) Scan(src any) error {
	l, err := pglogrepl.ParseLSN(src.(string))
	*s.lsn = l
	return err
}
