package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/jobs/usecase"
)

func (c *cli) serve(ctx context.Context, args []string) error {
	fs := c.flags("serve", "serve [--listen ADDR] [--tls-cert FILE --tls-key FILE | --behind-tls-proxy]")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard on")
	certFile := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM, chain included)")
	keyFile := fs.String("tls-key", "", "the private key (PEM) of --tls-cert")
	behindProxy := fs.Bool("behind-tls-proxy", false,
		"a reverse proxy terminates TLS in front of Backstop: mark cookies Secure and take the client's address from the last X-Forwarded-For entry")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	opts := serveOptions{listen: *listen, certFile: *certFile, keyFile: *keyFile, behindTLSProxy: *behindProxy}
	if err := opts.check(); err != nil {
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
	return c.serveHomeWith(ctx, h, opts, func(url string, _ *jobs.Runner) {
		fmt.Fprintf(c.stdout, "Backstop is serving %s\n", url)
		if n == 0 {
			fmt.Fprintln(c.stdout, "No user exists yet: create one with `backstop user add NAME`.")
		}
	})
}

// serveOptions say where and how the dashboard is served.
type serveOptions struct {
	listen string
	// certFile and keyFile, when set, make Backstop serve HTTPS itself.
	certFile, keyFile string
	// behindTLSProxy says a reverse proxy terminates TLS in front of Backstop.
	behindTLSProxy bool
}

// check refuses contradictory options before anything starts.
func (o serveOptions) check() error {
	switch {
	case (o.certFile == "") != (o.keyFile == ""):
		return errors.New("serve: --tls-cert and --tls-key go together")
	case o.certFile != "" && o.behindTLSProxy:
		return errors.New("serve: --tls-cert serves HTTPS itself; --behind-tls-proxy is for a proxy that does: choose one")
	}
	return nil
}

func (o serveOptions) tlsMode() handlers.TLSMode {
	switch {
	case o.certFile != "":
		return handlers.DirectTLS
	case o.behindTLSProxy:
		return handlers.BehindTLSProxy
	}
	return handlers.PlainHTTP
}

// serverLimits bound what one client can hold: a connection that sends its request slowly,
// a response read slowly, an idle keep-alive, oversized headers. Request bodies are bounded
// by the handlers (handlers.MaxFormBytes).
type serverLimits struct {
	readHeader, read, write, idle time.Duration
	maxHeaderBytes                int
}

// defaultLimits suit the dashboard: every request is a small form or a page, read in well
// under a second. WriteTimeout covers rendering a page or a report download. The websocket
// outlives both: net/http clears a connection's deadlines when it hands it over by Hijack,
// and live.go keeps its own, per write and per pong (TestWebsocketOutlivesServerTimeouts).
var defaultLimits = serverLimits{
	readHeader:     10 * time.Second,
	read:           30 * time.Second,
	write:          2 * time.Minute,
	idle:           2 * time.Minute,
	maxHeaderBytes: 64 << 10,
}

// newHTTPServer returns the dashboard's server with the limits set.
func newHTTPServer(h http.Handler, l serverLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.readHeader,
		ReadTimeout:       l.read,
		WriteTimeout:      l.write,
		IdleTimeout:       l.idle,
		MaxHeaderBytes:    l.maxHeaderBytes,
	}
}

// serveHome runs the dashboard over plain HTTP on listen; see serveHomeWith.
func (c *cli) serveHome(ctx context.Context, h *home, listen string, ready func(url string, r *jobs.Runner)) error {
	return c.serveHomeWith(ctx, h, serveOptions{listen: listen}, ready)
}

// serveHomeWith runs the dashboard and the job runner until ctx is done, then shuts down in
// order: stop accepting requests, end live connections, interrupt running jobs.
// scheduleEvery is how often serve checks the schedules: a scheduled backup starts within
// this of its due time (plus its source's jitter).
const scheduleEvery = 10 * time.Second

// baseURL is the dashboard's address as notifications link to it.
func baseURL(o serveOptions, tls bool) string {
	scheme := "http"
	if tls || o.behindTLSProxy {
		scheme = "https"
	}
	return scheme + "://" + o.listen
}

// evaluateEvery is how often serve evaluates the alert rules: a broken guarantee becomes an
// alert within this (plus the rule's own grace).
const evaluateEvery = 15 * time.Second

// auditHeadEvery is how often serve writes the audit log's head to the repository, and
// closes the failed sign-in counts whose window has passed.
const auditHeadEvery = 5 * time.Minute

func (c *cli) serveHomeWith(ctx context.Context, h *home, opts serveOptions, ready func(url string, r *jobs.Runner)) error {
	// A certificate that cannot be loaded is refused before anything starts.
	var tlsConfig *tls.Config
	if opts.certFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.certFile, opts.keyFile)
		if err != nil {
			return fmt.Errorf("serve: TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hub := jobs.NewHub()
	go hub.Run(hubCtx)

	runner := jobs.NewRunner(h.store, hub, c.log, jobs.Options{Workers: 2}, h.workers()...)
	if err := runner.Start(ctx); err != nil {
		return err
	}
	defer runner.Stop()

	// Hourly, retention policies are applied and the repository collects what nothing
	// needs any more; every few seconds, scheduled backups owed now are queued (the first
	// check at once, so that a run missed while the server was down runs on start-up).
	maintCtx, stopMaintenance := context.WithCancel(ctx)
	var maintained sync.WaitGroup
	// The restorable windows are computed in the background, when what they are computed
	// from changes: pages show the last one and never wait for one.
	h.windowCache().Keep()
	maintained.Go(func() {
		h.windowCache().Run(maintCtx, c.log)
	})
	maintained.Go(func() {
		jobs.RunMaintenance(maintCtx, runner, time.Hour, c.log)
	})
	maintained.Go(func() {
		jobs.NewScheduler(h.store, runner.Enqueue, c.log).Run(maintCtx, scheduleEvery)
	})
	// Every few seconds, the alert rules are evaluated from the facts.
	svc := h.service(usecase.Enqueuer(runner), c.log)
	evaluator := jobs.NewEvaluator(h.store, h.windowCache(), c.log)
	evaluator.Probe = jobs.ProbeSource
	disks := svc.ServiceChecks(ctx)
	disks.WriteCatalog, disks.WriteRepository = nil, nil // /healthz writes; the evaluator only looks
	evaluator.Service = func(ctx context.Context) error { return health.CheckService(ctx, disks) }
	// Alerts that open, resolve or are handled go to the notification channels.
	notifier := jobs.NewNotifier(h.store, c.log)
	notifier.BaseURL = baseURL(opts, tlsConfig != nil)
	evaluator.Notify = notifier.Changes
	svc.SetNotifier(notifier)
	maintained.Go(func() {
		notifier.Run(maintCtx, 30*time.Second)
	})
	maintained.Go(func() {
		evaluator.Run(maintCtx, evaluateEvery)
	})
	// Every few minutes, the audit log's head goes to the repository (see jobs.WriteAuditHead).
	maintained.Go(func() {
		jobs.RunAuditHead(maintCtx, h.store, h.repo, auditHeadEvery, c.log)
	})
	defer func() {
		stopMaintenance()
		maintained.Wait()
	}()

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

	// /metrics: for signed-in users, and for Prometheus with the token in the home.
	tokenPath, err := svc.MetricsTokenPath()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	metrics, err := jobs.MetricsRegistry(jobs.NewMetrics(h.store, h.windowCache(), c.log))
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(c.stdout, "Prometheus reads /metrics with the bearer token in %s\n", tokenPath)

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	dash := handlers.New(h.store, svc, hub, c.log).SetMetrics(metrics)
	if err := dash.Warm(ctx); err != nil { // tens of milliseconds: before the first page
		c.log.Warn("reading the overview's charts at start-up", "err", err)
	}
	srv := newHTTPServer(dash.SetTLSMode(opts.tlsMode()).Routes(), defaultLimits)
	// Open pages are told at once that the server is going away (1001), and reconnect.
	srv.RegisterOnShutdown(dash.CloseLive)
	scheme := "http"
	if tlsConfig != nil {
		srv.TLSConfig = tlsConfig
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ready(scheme+"://"+ln.Addr().String()+"/", runner)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	dash.CloseLive() // waits for the pages' replies to the close
	stopHub()
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
	}
	return nil
}
