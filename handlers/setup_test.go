package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

var shared = pgtest.NewShared()

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

const (
	testUser     = "admin"
	testPassword = "correct horse battery"
)

// app is a running dashboard over a fresh catalog and repository.
type app struct {
	srv    *httptest.Server
	routes http.Handler
	store  *store.Store
	runner *jobs.Runner
	// catalog is the catalog's file, for tests that change it behind Backstop's back.
	catalog string
}

// setup starts the dashboard with one user and a runner that takes queued jobs.
func setup(t *testing.T) *app {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, testUser, testPassword, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	hub := jobs.NewHub()
	go hub.Run(ctx)
	windows := jobs.NewWindowCache(st, repo)
	runner := jobs.NewRunner(st, hub, log, jobs.Options{Workers: 1},
		jobs.NewBackupWorker(st, repo), jobs.NewRestoreWorker(st, repo), jobs.NewExpireWorker(st, repo),
		jobs.NewVerifyWorker(st, repo, windows), jobs.NewInstanceWorker(st))
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svc := usecase.New(st, repo, usecase.Enqueuer(runner), usecase.Paths{Home: dir, Repository: filepath.Join(dir, "repository"),
		RestoreRoot: filepath.Join(dir, "restores")}, log).UseWindows(windows)
	metrics, err := jobs.MetricsRegistry(jobs.NewMetrics(st, windows, log))
	if err != nil {
		t.Fatal(err)
	}
	routes := handlers.New(st, svc, hub, log).SetMetrics(metrics).Routes()
	srv := httptest.NewServer(routes)
	t.Cleanup(func() {
		srv.Close()
		runner.Stop()
		cancel()
		st.Close()
	})
	return &app{srv: srv, routes: routes, store: st, runner: runner, catalog: filepath.Join(dir, "catalog.db")}
}

// client returns an HTTP client with a cookie jar that does not follow redirects.
func (a *app) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login signs the client in and fails the test if that does not work.
func (a *app) login(t *testing.T, c *http.Client) {
	t.Helper()
	resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {testPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login = %d, want 303", resp.StatusCode)
	}
}

// postForm posts a same-origin form (as a browser does, with Origin set).
func (a *app) postForm(t *testing.T, c *http.Client, path string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (a *app) get(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(a.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// loginAs signs the client in as a user whose password is testPassword.
func (a *app) loginAs(t *testing.T, c *http.Client, name string) {
	t.Helper()
	resp := a.postForm(t, c, "/login", url.Values{"name": {name}, "password": {testPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login as %s = %d, want 303", name, resp.StatusCode)
	}
}
