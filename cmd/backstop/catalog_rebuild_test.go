package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// removeCatalog deletes a home's catalog.db with its -wal and -shm files.
func removeCatalog(t *testing.T, home string) {
	t.Helper()
	for _, sfx := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(home, "catalog.db") + sfx); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}

// backupLSNs returns `backup list --json` as repository id -> "state start_lsn end_lsn timeline".
func backupLSNs(t *testing.T, home string) map[string]string {
	t.Helper()
	var bs []map[string]any
	decodeJSON(t, "backup list --json", mustBackstop(t, home, "backup", "list", "--json"), &bs)
	out := make(map[string]string, len(bs))
	for _, b := range bs {
		out[fmt.Sprint(b["repo_id"])] = fmt.Sprint(b["state"], " ", b["start_lsn"], " ", b["end_lsn"], " ", b["timeline"], " ", b["source_id"])
	}
	return out
}

// walRows returns the archived WAL of source shop as the catalog records it, by name:
// position, commits and their times, restore points.
func walRows(t *testing.T, home string) map[string]string {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(home, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := st.SourceByName(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := st.WALFiles(t.Context(), store.WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(fs))
	for _, f := range fs {
		out[f.Name] = fmt.Sprint(f.Kind, " ", f.Timeline, " ", f.StartLSN, "-", f.EndLSN, " commits ", f.Commits, " ",
			f.FirstCommitAt, " ", f.LastCommitAt, " restore points ", f.RestorePoints)
	}
	return out
}

// compareWAL checks that the rebuilt catalog records the WAL the lost one did. Only a
// partial piece may differ: a stopping serve can store a longer piece (or its segment)
// without recording it, and the rebuild then records that one instead.
func compareWAL(t *testing.T, want, got map[string]string) {
	t.Helper()
	segOf := func(name string) string { return name[:min(24, len(name))] }
	superseded := make(map[string]bool)
	for name := range want {
		if strings.Contains(name, ".partial.") {
			superseded[segOf(name)] = true
		}
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case ok && g != w:
			t.Errorf("WAL %s after the rebuild: %s\nwant %s", name, g, w)
		case !ok && !strings.Contains(name, ".partial."):
			t.Errorf("WAL %s (%s) is missing after the rebuild", name, w)
		case !ok:
			replaced := false
			for n := range got {
				replaced = replaced || (n != name && segOf(n) == segOf(name))
			}
			if !replaced {
				t.Errorf("WAL %s (%s) is missing after the rebuild, and neither its segment nor a longer piece is there", name, w)
			}
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok && !superseded[segOf(name)] {
			t.Errorf("WAL %s (%s) after the rebuild was not in the catalog before", name, g)
		}
	}
	if len(got) == 0 {
		t.Errorf("no WAL recorded after the rebuild")
	}
}

// restoreTo restores source shop to target into a new instance, waiting for the archive
// to reach the target, and returns the instance's connection string.
func restoreTo(t *testing.T, home, pgCtl string, target time.Time) string {
	t.Helper()
	port := freePort(t)
	into := filepath.Join(reachableDir(t), "restored")
	deadline := time.Now().Add(time.Minute)
	for {
		stdout, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", target.Format(time.RFC3339Nano),
			"--into", into, "--start", "--port", fmt.Sprint(port))
		if code == 0 {
			t.Logf("restore: %s", stdout)
			break
		}
		if !strings.Contains(stderr, "after the latest restorable time") || time.Now().After(deadline) {
			t.Fatalf("restore --to %s exited %d: %s", target.Format(time.RFC3339Nano), code, stderr)
		}
		time.Sleep(time.Second) // the archive has not reached the target yet
	}
	t.Cleanup(func() { stopDataDir(pgCtl, into) })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port)
}

// TestCatalogRebuild: a home loses catalog.db after two backups and WAL streamed under a
// workload; every command refuses, `backstop catalog rebuild` reads the repository back,
// and then a point-in-time restore to the same target reaches the same rows as before the
// loss, the same backups are listed, and a new backup and streaming work on.
func TestCatalogRebuild(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := c.DSN("postgres")
	pgCtl := c.Binaries().Path("pg_ctl")
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", dsn)
	execSQL(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY, note text)`)
	mustBackstop(t, home, "backup", "shop")
	serve := startServe(t, home)
	insert := func(from, to int) {
		for i := from; i <= to; i++ {
			execSQL(t, dsn, fmt.Sprintf(`INSERT INTO orders VALUES (%d, repeat('x', 1000))`, i))
			time.Sleep(20 * time.Millisecond)
		}
	}
	insert(1, 20)
	mustBackstop(t, home, "backup", "shop")
	insert(21, 30)
	execSQL(t, dsn, `SELECT pg_create_restore_point('before-35')`, `SELECT pg_switch_wal()`)
	insert(31, 45)
	commitTime := func(id int) time.Time {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var ts time.Time
		if err := conn.QueryRow(context.Background(), `SELECT pg_xact_commit_timestamp(xmin) FROM orders WHERE id = $1`, id).Scan(&ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	target := commitTime(37)

	db := restoreTo(t, home, pgCtl, target)
	wantCount, wantMax := queryInt(t, db, `SELECT count(*) FROM orders`), queryInt(t, db, `SELECT max(id) FROM orders`)
	if wantCount != 37 || wantMax != 37 {
		t.Fatalf("restore before the loss = %d rows, max id %d; want 37 and 37", wantCount, wantMax)
	}
	wantBackups := backupLSNs(t, home)
	if len(wantBackups) != 2 {
		t.Fatalf("backup list = %v, want 2 backups", wantBackups)
	}

	// serve stops; the catalog is lost.
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	wantWAL := walRows(t, home)
	removeCatalog(t, home)
	for _, args := range [][]string{{"backup", "list"}, {"source", "list"}} {
		_, stderr, code := runBinary(t, home, args...)
		if code == 0 || !strings.Contains(stderr, "is missing") || !strings.Contains(stderr, "`backstop catalog rebuild`") ||
			strings.Contains(stderr, "coming") {
			t.Errorf("backstop %s without catalog.db = exit %d, %q; want a refusal pointing at `backstop catalog rebuild`",
				strings.Join(args, " "), code, stderr)
		}
	}

	stdout, stderr, code := runBinary(t, home, "catalog", "rebuild")
	if code != 0 {
		t.Fatalf("catalog rebuild = exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("catalog rebuild:\n%s", stdout)
	for _, want := range []string{"1 source(s)", "2 backup(s)", "backstop user add", "audit log"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("catalog rebuild output lacks %q:\n%s", want, stdout)
		}
	}
	if got := backupLSNs(t, home); fmt.Sprint(got) != fmt.Sprint(wantBackups) {
		t.Errorf("backups after the rebuild:\n got %v\nwant %v", got, wantBackups)
	}
	compareWAL(t, wantWAL, walRows(t, home))
	// The audit log is lost; its chain restarts with an entry naming the head serve had
	// written for the lost one, and checks again.
	if out, code := auditVerify(t, home); code != 0 || !strings.Contains(out, "OK: the chain holds") {
		t.Errorf("audit verify after the rebuild = exit %d\n%s", code, out)
	}
	if out := mustBackstop(t, home, "audit", "export", "--format", "json", "--action", "audit.restart"); !strings.Contains(out, `"previous_head":{"at":`) {
		t.Errorf("audit.restart entries after the rebuild = %s, want one naming the lost log's head", out)
	}
	var srcs []map[string]any
	decodeJSON(t, "source list --json", mustBackstop(t, home, "source", "list", "--json"), &srcs)
	if len(srcs) != 1 || srcs[0]["name"] != "shop" {
		t.Errorf("sources after the rebuild = %v, want shop", srcs)
	}

	db = restoreTo(t, home, pgCtl, target)
	if n, m := queryInt(t, db, `SELECT count(*) FROM orders`), queryInt(t, db, `SELECT max(id) FROM orders`); n != wantCount || m != wantMax {
		t.Errorf("restore to %s after the rebuild = %d rows, max id %d; before the loss %d rows, max id %d",
			target.Format(time.RFC3339Nano), n, m, wantCount, wantMax)
	}
	if _, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--name", "before-35", "--into", "/etc/backstop-wait"); code == 0 ||
		!strings.Contains(stderr, "system directory") {
		t.Errorf("restore --name before-35 after the rebuild = exit %d, %q; want the plan to pass (only the directory refused)", code, stderr)
	}

	// Life goes on: a new backup, and serve streams the new commits.
	mustBackstop(t, home, "backup", "shop")
	if got := len(backupLSNs(t, home)); got != 3 {
		t.Errorf("backups after a new backup = %d, want 3", got)
	}
	startServe(t, home)
	insert(46, 50)
	restoreTo(t, home, pgCtl, commitTime(50))
}

// TestCatalogRebuildRefusesFullCatalog: a catalog that holds sources is never rebuilt into;
// moved aside, it comes back with its sources (a removed one marked removed, though it shares
// its system with the other) and each backup under the source that took it.
func TestCatalogRebuildRefusesFullCatalog(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
	mustBackstop(t, home, "source", "add", "main", dsn)
	mustBackstop(t, home, "source", "add", "gone", dsn)
	mustBackstop(t, home, "backup", "main")
	mustBackstop(t, home, "backup", "gone")
	mustBackstop(t, home, "source", "remove", "gone")

	_, stderr, err := backstop(t, home, "catalog", "rebuild")
	if err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("catalog rebuild on a catalog with sources = %v (stderr %q); want a refusal saying to move it aside", err, stderr)
	}
	if out := mustBackstop(t, home, "source", "list"); !strings.Contains(out, "main") {
		t.Errorf("source list after a refused rebuild = %q, want main still there", out)
	}

	wantBackups := backupLSNs(t, home)
	aside := filepath.Join(t.TempDir(), "catalog.db")
	for _, sfx := range []string{"", "-wal"} {
		copyFile(t, filepath.Join(home, "catalog.db")+sfx, aside+sfx)
	}
	removeCatalog(t, home)
	mustBackstop(t, home, "catalog", "rebuild")
	if got := backupLSNs(t, home); fmt.Sprint(got) != fmt.Sprint(wantBackups) {
		t.Errorf("backups after the rebuild:\n got %v\nwant %v", got, wantBackups)
	}
	st := openCatalog(t, home)
	for name, removed := range map[string]bool{"main": false, "gone": true} {
		src, err := st.SourceByName(t.Context(), name)
		if err != nil {
			t.Fatalf("source %s after the rebuild: %v", name, err)
		}
		at, err := st.SourceRemovedAt(t.Context(), src.ID)
		if err != nil || (at != nil) != removed {
			t.Errorf("source %s removed at %v, %v; want removed %v", name, at, err, removed)
		}
	}
	// A second rebuild is refused: the rebuilt catalog holds them now.
	if _, _, err := backstop(t, home, "catalog", "rebuild"); err == nil {
		t.Errorf("a second catalog rebuild succeeded, want a refusal")
	}
}
