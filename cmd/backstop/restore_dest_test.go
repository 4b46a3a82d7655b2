package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// TestCLIRefusedRestoreChangesNothing: a point-in-time restore into a non-empty directory,
// onto an existing file, into the source's own data directory or into Backstop's home is
// refused before anything is recorded or written, and what was there survives byte for
// byte (on the old code the cleanup of the refused restore deleted the directory). Then
// the README's own example, a new directory whose parents do not exist yet, restores and
// starts as the postgres OS user.
func TestCLIRefusedRestoreChangesNothing(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	unknown := pgtest.Start(t)
	dsn := c.DSN("postgres")
	base := reachableDir(t)
	home := filepath.Join(base, "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", dsn)
	execSQL(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY)`, `INSERT INTO orders SELECT generate_series(1, 100)`)
	mustBackstop(t, home, "backup", "shop")
	startServe(t, home)

	port := freePort(t)
	nonEmpty := filepath.Join(base, "busy")
	if err := os.MkdirAll(filepath.Join(nonEmpty, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(nonEmpty, "sub", "precious.txt"), []byte("do not delete"), 0o644)
	file := filepath.Join(base, "a-file")
	os.WriteFile(file, []byte("also precious"), 0o600)
	before := map[string]map[string]string{"busy": snapshotTree(t, nonEmpty), "file": snapshotTree(t, file),
		"pgdata": snapshotTree(t, c.DataDir())}

	// The window reaches "latest" once serve has archived past the backup.
	waitRestorable(t, home)
	for _, tt := range []struct {
		into, want string
	}{
		{nonEmpty, "is not empty"},
		{file, "is not a directory"},
		// A cluster Backstop does not know, found running on the host.
		{filepath.Join(unknown.DataDir(), "restore"), "data directory of a running PostgreSQL server"},
		// The source's own directory: registered, and running.
		{c.DataDir(), "where source shop keeps its files"},
		{filepath.Join(c.DataDir(), "base", "restore"), "where source shop keeps its files"},
		{filepath.Join(home, "elsewhere"), "Backstop's home"},
		{"/etc/backstop-restore", "system directory"},
	} {
		_, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "latest", "--into", tt.into,
			"--start", "--port", fmt.Sprint(port))
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("restore --into %s = exit %d, %q; want a refusal saying %q", tt.into, code, stderr, tt.want)
		}
	}
	after := map[string]map[string]string{"busy": snapshotTree(t, nonEmpty), "file": snapshotTree(t, file),
		"pgdata": snapshotTree(t, c.DataDir())}
	for k := range before {
		if k == "pgdata" {
			// A live cluster writes its own files; what matters is that nothing was added.
			for p := range after[k] {
				if strings.Contains(p, dest.MarkerName) || strings.HasSuffix(p, "/restore") {
					t.Errorf("a refused restore wrote %s into the live data directory", p)
				}
			}
			continue
		}
		if fmt.Sprint(before[k]) != fmt.Sprint(after[k]) {
			t.Errorf("%s changed after refused restores:\nbefore %v\nafter  %v", k, before[k], after[k])
		}
	}
	st := openCatalog(t, home)
	xs, err := st.Restores(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 0 {
		t.Errorf("refused restores recorded %d restores, want none", len(xs))
	}

	// The README's example: parents that do not exist are created, reachable by postgres.
	into := filepath.Join(base, "srv", "restore", "orders")
	stdout, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "latest", "--into", into,
		"--start", "--port", fmt.Sprint(port))
	if code != 0 {
		t.Fatalf("restore --into %s --start = exit %d: %s", into, code, stderr)
	}
	t.Logf("restore: %s", stdout)
	defer stopDataDir(c.Binaries().Path("pg_ctl"), into)
	if got := queryInt(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port), `SELECT count(*) FROM orders`); got != 100 {
		t.Errorf("restored rows = %d, want 100", got)
	}
	if !markerOf(t, st, into) {
		t.Errorf("%s carries no marker naming its restore", into)
	}
}

// waitRestorable waits until a source's latest restorable time is past its first backup.
func waitRestorable(t *testing.T, home string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "latest", "--into", "/etc/backstop-wait")
		if code != 0 && strings.Contains(stderr, "system directory") {
			return // the plan passed; only the destination was refused
		}
		if time.Now().After(deadline) {
			t.Fatalf("source not restorable after a minute: %s", stderr)
		}
		time.Sleep(time.Second)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func stopDataDir(pgCtl, dir string) {
	args := []string{pgCtl, "-D", dir, "stop", "-m", "immediate"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	exec.Command(args[0], args[1:]...).Run()
}

// markerOf reports whether dir carries the marker of the restore recorded for it.
func markerOf(t *testing.T, st *store.Store, dir string) bool {
	t.Helper()
	xs, err := st.Restores(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.DataDir == dir {
			return dest.Owned(dir, x.Marker)
		}
	}
	return false
}

// TestRestoreRefusesAStoppedSourcesDirectory: a source on this host is protected while it
// is stopped too: its data directory, as the server reported it at registration, takes no
// restore (on the old code a new directory inside it was accepted and written).
func TestRestoreRefusesAStoppedSourcesDirectory(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN("postgres")
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", dsn)
	mustBackstop(t, home, "backup", "shop")
	serve := startServe(t, home)
	waitRestorable(t, home)
	serve.Process.Kill()
	serve.Wait()
	if err := c.Stop(context.Background(), "fast"); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(c.DataDir(), "restored-here")
	_, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "latest", "--into", into)
	if code == 0 || !strings.Contains(stderr, "where source shop keeps its files") {
		t.Errorf("restore into the stopped source's data directory = exit %d, %q; want it refused naming the source", code, stderr)
	}
	if _, err := os.Stat(into); err == nil {
		t.Errorf("%s was created", into)
	}
}
