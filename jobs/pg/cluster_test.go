package pg_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
)

func TestClusterLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := pg.FindBinaries(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	opts := pg.ClusterOptions{Dir: filepath.Join(dir, "sandbox"), Bin: bin, Password: "s3cret"}
	start := time.Now()
	c, err := pg.InitCluster(ctx, opts)
	if err != nil {
		t.Fatalf("InitCluster() = %v", err)
	}
	t.Logf("initdb: %v", time.Since(start))
	start = time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	t.Logf("start: %v", time.Since(start))
	t.Cleanup(func() { c.Stop(context.Background(), "immediate") })
	if !c.Running(ctx) {
		t.Errorf("Running() = false after Start, want true")
	}
	conn, err := pgx.Connect(ctx, c.DSN(""))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if walLevel != "replica" {
		t.Errorf("wal_level = %q, want replica", walLevel)
	}
	start = time.Now()
	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	t.Logf("stop: %v", time.Since(start))
	if c.Running(ctx) {
		t.Errorf("Running() = true after Stop, want false")
	}

	wrong := opts
	wrong.Bin.Major = bin.Major - 1
	if _, err := pg.OpenCluster(wrong); err == nil || !strings.Contains(err.Error(), "cluster, but the binaries") {
		t.Errorf("OpenCluster(binaries of another version) = %v, want a version mismatch error", err)
	}
	if _, err := pg.InitCluster(ctx, opts); err == nil || !strings.Contains(err.Error(), "already holds a cluster") {
		t.Errorf("InitCluster(existing) = %v, want an error", err)
	}

	opened, err := pg.OpenCluster(opts)
	if err != nil {
		t.Fatalf("OpenCluster() = %v", err)
	}
	if opened.Port() != c.Port() {
		t.Errorf("OpenCluster().Port() = %d, want %d", opened.Port(), c.Port())
	}
	if err := opened.Start(ctx); err != nil {
		t.Fatalf("Start() after OpenCluster = %v", err)
	}
	if err := opened.Stop(ctx, "immediate"); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin, err := pg.FindBinaries(ctx, 0)
	if err != nil {
		t.Fatalf("FindBinaries(0) = %v", err)
	}
	same, err := pg.FindBinaries(ctx, bin.Major)
	if err != nil || same != bin {
		t.Errorf("FindBinaries(%d) = %+v, %v, want %+v", bin.Major, same, err, bin)
	}
	_, err = pg.FindBinaries(ctx, 99)
	if err == nil || !strings.Contains(err.Error(), "/usr/lib/postgresql/99/bin") || !strings.Contains(err.Error(), "pg_config") {
		t.Errorf("FindBinaries(99) = %v, want an error naming what was searched", err)
	}
}

func TestClusterStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := pg.FindBinaries(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	c, err := pg.InitCluster(ctx, pg.ClusterOptions{Dir: filepath.Join(dir, "sandbox"), Bin: bin,
		Settings: map[string]string{"shared_buffers": "lots"}})
	if err != nil {
		t.Fatalf("InitCluster() = %v", err)
	}
	err = c.Start(ctx)
	if err == nil {
		c.Stop(ctx, "immediate")
		t.Fatalf("Start(shared_buffers = lots) = nil, want an error")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers": "lots"`) {
		t.Errorf("Start(shared_buffers = lots) = %v, want the server log's reason", err)
	}
}
