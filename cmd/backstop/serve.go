package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
)

func (c *cli) serve(ctx context.Context, args []string) error {
	fs := c.flags("serve", "serve [--listen ADDR]")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard on")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, true)
	if err != nil {
		return err
	}
	defer h.Close()
	n, err := h.store.UserCount(ctx)
	if err != nil {
		return err
	}
	return c.serveHome(ctx, h, *listen, func(url string, _ *jobs.Runner) {
		fmt.Fprintf(c.stdout, "Backstop is serving %s\n", url)
		if n == 0 {
			fmt.Fprintln(c.stdout, "No user exists yet: create one with `backstop user add NAME`.")
		}
	})
}

// serveHome runs the dashboard and the job runner until ctx is done, then shuts down in
// order: stop accepting requests, end live connections, interrupt running jobs.
func (c *cli) serveHome(ctx context.Context, h *home, listen string, ready func(url string, r *jobs.Runner)) error {
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hub := jobs.NewHub()
	go hub.Run(hubCtx)

	runner := jobs.NewRunner(h.store, hub, c.log, jobs.Options{Workers: 2}, h.workers()...)
	if err := runner.Start(ctx); err != nil {
		return err
	}
	defer runner.Stop()

	// WAL streaming of every source, into the spool below the home and on to the repository.
	archiver := jobs.NewArchiver(h.store, h.repo, filepath.Join(h.dir, "spool"), c.log)
	archCtx, stopArchiving := context.WithCancel(ctx)
	archived := make(chan struct{})
	go func() {
		defer close(archived)
		archiver.RunAll(archCtx)
	}()
	defer func() {
		stopArchiving()
		<-archived
	}()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{
		Handler:           handlers.New(h.store, h.service(runnerStarter{runner}, c.log), hub, c.log).Routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ready("http://"+ln.Addr().String()+"/", runner)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopHub()
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
	return nil
}
