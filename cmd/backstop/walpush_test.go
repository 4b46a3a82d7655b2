package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// TestWALPush: archive_command's way in. A segment is archived and recorded; pushing it
// again succeeds (PostgreSQL retries after a crash); a different file under the same name
// is refused, so nothing archived is ever overwritten.
func TestWALPush(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN("postgres")
	execSQL(t, dsn, `CREATE TABLE pushed AS SELECT i FROM generate_series(1, 1000) AS i`, `SELECT pg_switch_wal()`)
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "pushed", dsn)

	segment := filepath.Join(c.DataDir(), "pg_wal", "000000010000000000000001")
	if _, err := os.Stat(segment); err != nil {
		t.Fatalf("the server's first segment: %v", err)
	}
	for _, attempt := range []string{"first push", "same file again"} {
		if _, stderr, code := runBinary(t, home, "wal-push", "--source", "pushed", segment); code != 0 {
			t.Fatalf("wal-push (%s) exited %d: %s", attempt, code, stderr)
		}
	}
	st := openCatalog(t, home)
	src, err := st.SourceByName(context.Background(), "pushed")
	if err != nil {
		t.Fatal(err)
	}
	files, err := st.WALFiles(context.Background(), store.WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != filepath.Base(segment) || files[0].Via != store.WALViaPush || files[0].Commits == 0 {
		t.Fatalf("WAL files after wal-push = %+v, want the segment, pushed, with its commits", files)
	}

	forged := filepath.Join(t.TempDir(), filepath.Base(segment))
	data, err := os.ReadFile(segment)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(forged, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runBinary(t, home, "wal-push", "--source", "pushed", forged)
	if code == 0 || !strings.Contains(stderr, "different content") {
		t.Errorf("wal-push of a different file under an archived name = exit %d, %q; want a refusal", code, stderr)
	}
}
