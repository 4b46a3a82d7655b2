package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// liveApp is a catalog that dashboards are served over and restarted on, as `serve`
// restarts: a new hub and new handlers each time, the same catalog. No runner takes jobs:
// the tests write jobs into the catalog and publish their events themselves, so that
// they decide what the hub carries and when.
type liveApp struct {
	store *store.Store
	svc   *usecase.Service
	log   *slog.Logger
}

// noJobs is a starter that starts nothing: no page under test starts a job.
type noJobs struct{}

func (noJobs) Start(context.Context, jobs.Params) (store.Job, error) {
	return store.Job{}, errors.New("no jobs in this test")
}
func (noJobs) Cancel(context.Context, int64) error { return errors.New("no jobs in this test") }

func newLiveApp(t *testing.T) *liveApp {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(t.Context(), testUser, testPassword, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	svc := usecase.New(st, repo, noJobs{}, usecase.Paths{Home: dir, Repository: filepath.Join(dir, "repository"),
		RestoreRoot: filepath.Join(dir, "restores")}, log)
	return &liveApp{store: st, svc: svc, log: log}
}

// liveServer is one run of the dashboard.
type liveServer struct {
	url     string
	addr    string
	hub     *jobs.Hub
	h       *handlers.Handler
	srv     *http.Server
	stopHub context.CancelFunc
}

// serve starts the dashboard on addr ("127.0.0.1:0" for any port) with its own hub, and
// closes its live connections on Shutdown as serve does.
func (a *liveApp) serve(t *testing.T, addr string) *liveServer {
	t.Helper()
	ctx, stopHub := context.WithCancel(context.Background())
	hub := jobs.NewHub()
	go hub.Run(ctx)
	h := handlers.New(a.store, a.svc, hub, a.log)
	srv := &http.Server{Handler: h.Routes(), ReadHeaderTimeout: 10 * time.Second}
	srv.RegisterOnShutdown(h.CloseLive)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stopHub()
		t.Fatalf("listen on %s: %v", addr, err)
	}
	go srv.Serve(ln)
	s := &liveServer{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), hub: hub, h: h, srv: srv, stopHub: stopHub}
	t.Cleanup(func() {
		srv.Close()
		stopHub()
	})
	return s
}

// stop shuts the server down gracefully, as serve does on SIGTERM, and waits for its live
// connections to end.
func (s *liveServer) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	s.h.CloseLive()
	s.stopHub()
}

// signIn returns the headers of a signed-in browser for the server's websocket.
func (s *liveServer) signIn(t *testing.T) http.Header {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"name": {testUser}, "password": {testPassword}}
	req, err := http.NewRequest(http.MethodPost, s.url+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login = %d, want 303", resp.StatusCode)
	}
	u, _ := url.Parse(s.url)
	hdr := http.Header{"Origin": {s.url}}
	for _, ck := range jar.Cookies(u) {
		hdr.Add("Cookie", ck.String())
	}
	return hdr
}

// liveConn is a websocket client of the dashboard whose messages a goroutine collects.
type liveConn struct {
	ws   *websocket.Conn
	msgs chan string
	// closed receives the error that ended reading: a *websocket.CloseError for a close frame.
	closed chan error
	// backlog holds the messages received and not yet returned by await.
	backlog []string
}

func dialLive(t *testing.T, s *liveServer, hdr http.Header, page string) *liveConn {
	t.Helper()
	hdr = hdr.Clone()
	hdr.Set("Origin", s.url)
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/ws?page="+page, hdr)
	if err != nil {
		t.Fatalf("dial /ws?page=%s = %v (%v)", page, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	c := &liveConn{ws: ws, msgs: make(chan string, 1024), closed: make(chan error, 1)}
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				c.closed <- err
				close(c.msgs)
				return
			}
			c.msgs <- string(m)
		}
	}()
	return c
}

// await returns the first message not yet returned, received before or after the call,
// that ok accepts; it fails the test if none comes in a generous time or the connection
// ends first, listing the messages that came.
func (c *liveConn) await(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	for i, m := range c.backlog {
		if ok(m) {
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			return m
		}
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, open := <-c.msgs:
			if !open {
				t.Fatalf("live connection ended (%v) before %s; messages:\n%s", <-c.closed, what, strings.Join(c.backlog, "\n"))
			}
			if ok(m) {
				return m
			}
			c.backlog = append(c.backlog, m)
		case <-timeout:
			t.Fatalf("no %s within 20 s; messages:\n%s", what, strings.Join(c.backlog, "\n"))
		}
	}
}

// runningJob records a running backup job (with no source) in the catalog, as a runner in
// another process would.
func runningJob(t *testing.T, st *store.Store) store.Job {
	t.Helper()
	j, err := st.InsertJob(t.Context(), store.JobParams{Kind: jobs.KindBackup, State: store.JobRunning,
		Owner: store.Owner{Host: "elsewhere", PID: 1, ID: "live-test"}, RequestedBy: testUser})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// finishJob ends a job as succeeded with backup backupID as its result.
func finishJob(t *testing.T, st *store.Store, id, backupID int64) store.Job {
	t.Helper()
	res, _ := json.Marshal(map[string]int64{"backup_id": backupID})
	if err := st.FinishJob(t.Context(), id, store.JobSucceeded, "", res); err != nil {
		t.Fatal(err)
	}
	j, err := st.Job(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// summaryFinished accepts the job page's summary once it says when job id finished and
// which backup it produced.
func summaryFinished(id, backupID int64) func(string) bool {
	return func(m string) bool {
		return strings.Contains(m, fmt.Sprintf(`id="job-%d-summary"`, id)) && !strings.Contains(m, "Not yet") &&
			strings.Contains(m, fmt.Sprintf(`href="/backups/%d"`, backupID))
	}
}

func hasID(id string) func(string) bool {
	return func(m string) bool { return strings.Contains(m, `id="`+id+`"`) }
}

// TestLiveSnapshotOfFinishedJob: a page of a job that ended before its socket connected
// (the job ended between the page's render and the connect, or while the page was
// disconnected) is told the final summary at once, with no event to carry it.
func TestLiveSnapshotOfFinishedJob(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	j := runningJob(t, a.store)
	finishJob(t, a.store, j.ID, 42)

	c := dialLive(t, s, hdr, fmt.Sprintf("job-%d", j.ID))
	c.await(t, "finished summary", summaryFinished(j.ID, 42))
	c.await(t, "succeeded state", func(m string) bool {
		return strings.Contains(m, fmt.Sprintf(`id="job-%d-state"`, j.ID)) && strings.Contains(m, "Succeeded")
	})
}

// TestLiveSnapshotHasEventsBeforeConnect: what the hub carried while no socket was
// connected (progress, log rows) reaches a page that connects afterwards, from the catalog.
func TestLiveSnapshotHasEventsBeforeConnect(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	j := runningJob(t, a.store)
	ctx := t.Context()

	// The job moves on with nobody listening: the events are published and lost.
	if err := a.store.UpdateJobProgress(ctx, j.ID, "copying", 600, 1000); err != nil {
		t.Fatal(err)
	}
	ev, err := a.store.AddJobEvent(ctx, store.JobEvent{JobID: j.ID, Level: "info", Phase: "copying", Message: "checkpoint reached at 0/5000028"})
	if err != nil {
		t.Fatal(err)
	}
	s.hub.Publish(jobs.Event{Type: jobs.EventProgress, JobID: j.ID, JobKind: j.Kind, State: store.JobRunning,
		Progress: jobs.Progress{Phase: "copying", Done: 600, Total: 1000}})
	s.hub.Publish(jobs.Event{Type: jobs.EventLog, JobID: j.ID, JobKind: j.Kind, State: store.JobRunning, Log: &ev})

	c := dialLive(t, s, hdr, fmt.Sprintf("job-%d", j.ID))
	c.await(t, "progress at 60%", func(m string) bool {
		return strings.Contains(m, fmt.Sprintf(`id="job-%d-progress"`, j.ID)) && strings.Contains(m, `aria-valuenow="60"`)
	})
	c.await(t, "event log with the checkpoint", func(m string) bool {
		return strings.Contains(m, fmt.Sprintf(`id="job-%d-events"`, j.ID)) && strings.Contains(m, "checkpoint reached at 0/5000028")
	})

	// Later events arrive live, each once: the log row already sent is not appended again.
	ev2, err := a.store.AddJobEvent(ctx, store.JobEvent{JobID: j.ID, Level: "info", Phase: "copying", Message: "copied base/1"})
	if err != nil {
		t.Fatal(err)
	}
	s.hub.Publish(jobs.Event{Type: jobs.EventLog, JobID: j.ID, JobKind: j.Kind, State: store.JobRunning, Log: &ev})
	s.hub.Publish(jobs.Event{Type: jobs.EventLog, JobID: j.ID, JobKind: j.Kind, State: store.JobRunning, Log: &ev2})
	c.await(t, "the new log row", func(m string) bool { return strings.Contains(m, "copied base/1") })
	for _, m := range c.backlog {
		if strings.Contains(m, `hx-swap-oob="beforeend"`) && strings.Contains(m, "checkpoint reached") {
			t.Errorf("live log row %s was appended again after the snapshot had it", m)
		}
	}
}

// TestLiveJobEndCarriesSummary: the event of a job's end fills in the page's summary.
func TestLiveJobEndCarriesSummary(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	j := runningJob(t, a.store)

	c := dialLive(t, s, hdr, fmt.Sprintf("job-%d", j.ID))
	c.await(t, "snapshot summary", hasID(fmt.Sprintf("job-%d-summary", j.ID)))
	j = finishJob(t, a.store, j.ID, 7)
	s.hub.Publish(jobs.Event{Type: jobs.EventState, JobID: j.ID, JobKind: j.Kind, State: j.State})
	c.await(t, "finished summary", summaryFinished(j.ID, 7))
}

// TestLiveReconnectAfterGoingAway: a server that stops closes its live connections with
// 1001 (going away); the connection a page makes to the next server starts with the state
// of what the page shows, including what happened in between.
func TestLiveReconnectAfterGoingAway(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	j := runningJob(t, a.store)
	page := fmt.Sprintf("job-%d", j.ID)

	c := dialLive(t, s, hdr, page)
	c.await(t, "snapshot summary", hasID(fmt.Sprintf("job-%d-summary", j.ID)))
	s.stop(t)
	select {
	case err := <-c.closed:
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("live connection ended with %v at shutdown, want close 1001 (going away)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("live connection still open 20 s after Shutdown")
	}

	// The job ends while no server runs; the next one, on the same address and catalog,
	// tells the page.
	finishJob(t, a.store, j.ID, 9)
	s2 := a.serve(t, s.addr)
	c2 := dialLive(t, s2, hdr, page)
	c2.await(t, "finished summary after reconnect", summaryFinished(j.ID, 9))
}

// TestLiveListSnapshot: a list page's connection starts with its rows as the catalog has
// them, so that a row added before the connect is shown.
func TestLiveListSnapshot(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	j := runningJob(t, a.store)
	c := dialLive(t, s, hdr, "jobs")
	c.await(t, "the job's row", hasID(fmt.Sprintf("job-%d", j.ID)))
}

// TestLiveShutdownRefusesNewConnections: once the server closes its live connections, one
// that arrives late is closed with 1001 too, so that the page tries the next server.
func TestLiveShutdownRefusesNewConnections(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	hdr := s.signIn(t)
	s.h.CloseLive()
	hdr.Set("Origin", s.url)
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/ws?page=overview", hdr)
	if err == nil {
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, _, err = ws.ReadMessage(); err != nil {
				break
			}
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("live connection after CloseLive ended with %v, want 1001", err)
		}
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial /ws after CloseLive = %v (%v), want 503 or a 1001 close", err, resp)
	}
}
