package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// startServe starts `backstop serve` on a free port and returns it running.
func startServe(t *testing.T, home string) *exec.Cmd {
	t.Helper()
	cmd := command(t, home, "serve", "--listen", "127.0.0.1:0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("serve output:\n%s", out.String())
		}
	})
	return cmd
}

// TestArchiveSurvivesSIGKILL: Backstop is killed while it streams WAL under load; after a
// restart the archive holds every segment, with no gap, up to the source's last one.
func TestArchiveSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.Start(t)
	dsn := c.DSN("postgres")
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "busy", dsn)
	// The load: pgbench's small transactions, and a writer of large rows that fills a WAL
	// segment every second or so.
	pgbench := c.Binaries().Path("pgbench")
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "2", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	execSQL(t, dsn, `CREATE TABLE bulk (pad text)`)
	load := func(seconds string) {
		t.Helper()
		bulk := exec.Command(c.Binaries().Path("psql"), "-q", "-d", dsn, "-c",
			`DO $$ BEGIN FOR i IN 1..`+seconds+`0 LOOP
			   INSERT INTO bulk SELECT repeat(md5(g::text), 20) FROM generate_series(1, 12000) AS g; COMMIT;
			   PERFORM pg_sleep(0.05); END LOOP; END $$`)
		if err := bulk.Start(); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(pgbench, "-n", "-c", "2", "-T", seconds, dsn).CombinedOutput(); err != nil {
			t.Fatalf("pgbench: %v\n%s", err, out)
		}
		if err := bulk.Wait(); err != nil {
			t.Fatalf("bulk writer: %v", err)
		}
	}

	serve := startServe(t, home)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		load("6")
	}()
	time.Sleep(3 * time.Second)
	if err := serve.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	serve.Wait()
	<-loadDone

	startServe(t, home)
	load("2")
	execSQL(t, dsn, `SELECT pg_switch_wal()`)
	last := queryInt(t, dsn, `SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 17, 8))::bit(32)::int - 1`)

	st := openCatalog(t, home)
	src, err := st.SourceByName(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	var segs []store.WALFile
	deadline := time.Now().Add(time.Minute)
	for {
		segs, err = st.WALFiles(ctx, store.WALFilter{SourceID: src.ID, Kinds: []store.WALKind{store.WALSegment}})
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) > 0 && segs[len(segs)-1].SegNo >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach segment %d within a minute after the restart (%d segments)", last, len(segs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].SegNo != segs[i-1].SegNo+1 {
			t.Errorf("the archive has a gap after the SIGKILL: %s is followed by %s", segs[i-1].Name, segs[i].Name)
		}
	}
	t.Logf("%d segments archived without a gap, %s to %s", len(segs), segs[0].Name, segs[len(segs)-1].Name)
}
