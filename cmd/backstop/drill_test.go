package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIDrill: `backstop drill` refuses a source with nothing restorable, with a clear
// message and a non-zero exit; with `serve` streaming WAL it proves a random second of the
// window (--json) or the second asked for (--at), printing the second, the backup, the
// RTO and the row counts.
func TestCLIDrill(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	execSQL(t, c.DSN("postgres"), `DROP DATABASE IF EXISTS drillcli WITH (FORCE)`, `CREATE DATABASE drillcli`)
	dsn := c.DSN("drillcli")
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "drillcli", dsn)

	stdout, stderr, code := runBinary(t, home, "drill", "--source", "drillcli")
	t.Logf("drill without a window: exit %d: %s", code, stderr)
	if code == 0 || !strings.Contains(stderr, "drillcli has no restorable window yet") {
		t.Errorf("drill of a source without a backup = exit %d, %q, %q; want non-zero, saying it has no restorable window", code, stdout, stderr)
	}
	st := openCatalog(t, home)
	if ds, err := st.Drills(t.Context(), 0, 10); err != nil || len(ds) != 0 {
		t.Errorf("drills after a refused drill = %v, %v; want none", ds, err)
	}

	execSQL(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY)`, `INSERT INTO orders SELECT generate_series(1, 5)`)
	mustBackstop(t, home, "backup", "drillcli")
	serve := startServe(t, home)
	t.Cleanup(func() {
		// The slot goes with the source: the shared cluster keeps no WAL for it.
		serve.Process.Signal(syscall.SIGTERM)
		serve.Wait()
		if _, stderr, err := backstop(t, home, "source", "remove", "drillcli"); err != nil {
			t.Logf("source remove drillcli: %v\n%s", err, stderr)
		}
	})
	for i := 6; i <= 20; i++ {
		execSQL(t, dsn, fmt.Sprintf(`INSERT INTO orders VALUES (%d)`, i))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1100 * time.Millisecond)
	at := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	execSQL(t, dsn, `INSERT INTO orders VALUES (21)`) // a commit after at: the window reaches past it

	// drill runs the command until the archive has reached far enough for it.
	drill := func(args ...string) (string, string, int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			stdout, stderr, code := runBinary(t, home, append([]string{"drill", "--source", "drillcli"}, args...)...)
			retry := strings.Contains(stderr, "no restorable window yet") || strings.Contains(stderr, "after the latest restorable time")
			if !retry || time.Now().After(deadline) {
				return stdout, stderr, code
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	t.Run("json", func(t *testing.T) {
		stdout, stderr, code := drill("--json")
		if code != 0 {
			t.Fatalf("drill --json exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		var res struct {
			ID       int64            `json:"id"`
			State    string           `json:"state"`
			Target   time.Time        `json:"target"`
			BackupID int64            `json:"backup_id"`
			RTOMS    int64            `json:"rto_ms"`
			Tables   map[string]int64 `json:"tables"`
			Checks   []string         `json:"checks"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("drill --json: %v\n%s", err, stdout)
		}
		t.Logf("drill %d proved %s from backup %d, RTO %d ms", res.ID, res.Target, res.BackupID, res.RTOMS)
		if res.ID == 0 || res.State != "passed" || res.Target.IsZero() || res.BackupID == 0 || res.RTOMS <= 0 || len(res.Checks) == 0 {
			t.Errorf("drill --json = %+v, want a passed drill with its target, backup, RTO and checks", res)
		}
		if n, ok := res.Tables["drillcli.public.orders"]; !ok || n < 5 || n > 21 {
			t.Errorf("drill --json row count of drillcli.public.orders = %d (%v), want 5 to 21", n, ok)
		}
		d, err := st.Drill(t.Context(), res.ID)
		if err != nil || d.State != "passed" || !d.TargetAt.Equal(res.Target) {
			t.Errorf("Drill(%d) = %+v, %v; want the passed drill printed", res.ID, d, err)
		}
	})

	t.Run("at", func(t *testing.T) {
		stdout, stderr, code := drill("--at", at.Format("2006-01-02 15:04:05.000000"))
		if code != 0 {
			t.Fatalf("drill --at exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		t.Logf("drill --at:\n%s", stdout)
		second := at.Truncate(time.Microsecond).Format("2006-01-02 15:04:05.999999") + " UTC"
		for _, want := range []string{"passed: " + second + " is restorable from backup ", "RTO ", "pg_amcheck", "drillcli.public.orders                   20"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("drill --at %s printed %q, want %q", at, stdout, want)
			}
		}
		id := lastID(t, "drill --at", stdout)
		if d, err := st.Drill(t.Context(), id); err != nil || d.Tables["drillcli.public.orders"] != 20 || d.RTO <= 0 {
			t.Errorf("Drill(%d) = %+v, %v; want 20 rows in orders, committed by %s, and an RTO", id, d, err, at)
		}
	})
}
