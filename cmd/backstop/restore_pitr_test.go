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

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// TestCLIRestoreToPointInTime: with `serve` streaming WAL, `backstop restore --source …
// --to TIME --start --port N` brings up an instance holding exactly the rows committed at
// or before TIME; a target outside the window is refused with the window in the message.
func TestCLIRestoreToPointInTime(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := c.DSN("postgres")
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", dsn)
	execSQL(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY)`)
	mustBackstop(t, home, "backup", "shop")
	startServe(t, home)
	for i := 1; i <= 20; i++ {
		execSQL(t, dsn, fmt.Sprintf(`INSERT INTO orders VALUES (%d)`, i))
		time.Sleep(20 * time.Millisecond)
	}
	at := func(id int) time.Time {
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
	target := at(12)
	time.Sleep(2 * time.Second) // the archive takes a piece of the segment every few seconds
	deadline := time.Now().Add(time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	into := filepath.Join(reachableDir(t), "restored")
	for {
		stdout, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", target.Format(time.RFC3339Nano),
			"--into", into, "--start", "--port", fmt.Sprint(port))
		if code == 0 {
			t.Logf("restore: %s", stdout)
			break
		}
		if !strings.Contains(stderr, "after the latest restorable time") || time.Now().After(deadline) {
			t.Fatalf("restore exited %d: %s", code, stderr)
		}
		time.Sleep(time.Second) // the archive has not reached the target yet
	}
	defer func() {
		args := []string{c.Binaries().Path("pg_ctl"), "-D", into, "stop", "-m", "immediate"}
		if os.Geteuid() == 0 {
			args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
		}
		exec.Command(args[0], args[1:]...).Run()
	}()
	restored := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port)
	if got := queryInt(t, restored, `SELECT count(*) FROM orders`); got != 12 {
		t.Errorf("restored rows = %d, want the 12 committed at or before %s", got, target)
	}
	if got := queryInt(t, restored, `SELECT max(id) FROM orders`); got != 12 {
		t.Errorf("restored max(id) = %d, want 12", got)
	}

	_, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "2000-01-01 00:00:00",
		"--into", filepath.Join(reachableDir(t), "never"))
	if code == 0 || !strings.Contains(stderr, "restorable window is") {
		t.Errorf("restore to 2000-01-01 = exit %d, %q; want a refusal giving the window", code, stderr)
	}
}
