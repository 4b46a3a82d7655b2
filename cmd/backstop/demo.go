package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

const demoSchema = `
CREATE TABLE IF NOT EXISTS ticks (
	id         bigserial PRIMARY KEY,
	written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	note       text NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
	id    bigint PRIMARY KEY,
	name  text NOT NULL,
	email text NOT NULL
);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.com'
FROM generate_series(1, 50000) AS i
ON CONFLICT DO NOTHING;
`

// demo starts a sandbox PostgreSQL cluster with a writer that commits a timestamped row
// every second, registers it, takes a first backup, and serves the dashboard.
func (c *cli) demo(ctx context.Context, args []string) error {
	fs := c.flags("demo", "demo [--listen ADDR]")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard on")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, true)
	if err != nil {
		return err
	}
	defer h.Close()

	cluster, err := c.demoCluster(ctx, filepath.Join(h.dir, "demo"))
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// Instances restored during the demo are stopped with it (their data stays; a
		// later serve or demo can start them again from the Restores page).
		if stopped, err := jobs.StopRunningInstances(stopCtx, h.store); err != nil {
			c.log.Error("stop restored instances", "err", err)
		} else if len(stopped) > 0 {
			fmt.Fprintf(c.stderr, "Stopped the restored instances the demo was running: %v.\n", stopped)
		}
		if err := cluster.Stop(stopCtx, "fast"); err != nil {
			c.log.Error("stop demo cluster", "err", err)
		}
	}()
	dsn := cluster.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if _, err := conn.Exec(ctx, demoSchema); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("demo: load schema: %w", err)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer conn.Close(context.WithoutCancel(ctx))
		demoWriter(ctx, conn)
	}()
	defer func() { <-writerDone }()

	// The demo acts as an admin named "demo", through the same use cases as everyone.
	demo := usecase.Actor{Name: "demo", Role: store.RoleAdmin}
	src, err := h.store.SourceByName(ctx, "demo")
	if errors.Is(err, store.ErrNotFound) {
		src, _, err = h.service(cliStarter{c, h}, c.log).AddSource(ctx, demo, "demo", dsn)
	}
	if err != nil {
		return fmt.Errorf("demo: register source: %w", err)
	}
	password, err := demoAdmin(ctx, h)
	if err != nil {
		return err
	}
	return c.serveHome(ctx, h, *listen, func(url string, runner *jobs.Runner) {
		if _, err := h.store.LatestBackup(ctx, src.ID, store.BackupComplete); errors.Is(err, store.ErrNotFound) {
			// The server's runner takes it; the dashboard shows it live.
			_, err := h.service(usecase.Enqueuer(runner), c.log).StartBackup(ctx, demo, src.ID)
			if err != nil && !errors.Is(err, store.ErrLocked) {
				c.log.Error("first backup", "err", err)
			}
		}
		fmt.Fprintf(c.stdout, "\nBackstop demo is running.\n\n  Dashboard:  %s\n  Log in as:  admin / %s\n  Database:   %s\n  Home:       %s\n\nPress Ctrl-C to stop everything the demo started.\n",
			url, password, pg.MaskDSN(dsn), h.dir)
	})
}

// demoCluster creates (first run) or reopens the sandbox cluster, and starts it.
func (c *cli) demoCluster(ctx context.Context, dir string) (*pg.Cluster, error) {
	bin, err := pg.FindBinaries(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("demo: %w (on Debian: apt-get install postgresql)", err)
	}
	opts := pg.ClusterOptions{Dir: dir, Bin: bin, DataChecksums: true}
	cluster, err := pg.OpenCluster(opts)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(c.stderr, "Creating a sandbox PostgreSQL %d cluster in %s …\n", bin.Major, dir)
		cluster, err = pg.InitCluster(ctx, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := cluster.Start(ctx); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return cluster, nil
}

// demoWriter commits one timestamped row a second, so that the demo always has recent
// changes to back up (and, later, to restore to a point in time).
func demoWriter(ctx context.Context, conn *pgx.Conn) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (note) VALUES ($1)`, "tick at "+now.UTC().Format(time.RFC3339)); err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "demo writer:", err)
			}
		}
	}
}

// demoAdmin makes sure the demo's admin user exists and returns its password, kept in a
// file readable only by its owner so the demo can show it again on every start.
func demoAdmin(ctx context.Context, h *home) (string, error) {
	pwFile := filepath.Join(h.dir, "demo-admin-password")
	if b, err := os.ReadFile(pwFile); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	password := rand.Text()
	if _, err := h.store.CreateUser(ctx, "admin", password, store.RoleAdmin); err != nil {
		return "", fmt.Errorf("demo: admin user: %w", err)
	}
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return password, nil
}
