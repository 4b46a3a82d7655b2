package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

const (
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second
	pingPeriod = pongWait * 9 / 10
	// closeWait is how long a connection the server closes waits for the client's close
	// frame, so that the closing handshake completes and the page sees a clean close.
	closeWait = time.Second
)

// upgrader accepts websocket connections from this site only: gorilla's default origin
// check refuses an Origin header whose host is not the request's Host.
var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 8192}

// livePage is what a websocket connection's page shows, from ?page=: "overview", "jobs",
// "backups", or "job-12", "backup-7", "source-3".
type livePage struct {
	kind string
	id   int64
	// known holds the rows already sent to a list page, so that a new one is inserted once.
	known map[int64]bool
	// lastEvent is the newest event log row sent to a job page: the snapshot and the hub
	// may both carry a row, and it is appended once.
	lastEvent int64
}

func parseLivePage(s string) (livePage, bool) {
	switch s {
	case "overview", "jobs", "backups", "restores":
		return livePage{kind: s, known: map[int64]bool{}}, true
	}
	kind, id, ok := strings.Cut(s, "-")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil || n <= 0 || (kind != "job" && kind != "backup" && kind != "source") {
		return livePage{}, false
	}
	return livePage{kind: kind, id: n}, true
}

// liveConns holds the open live connections by session (the hash of its token) and the
// user each session belongs to, so that signing out, or an admin disabling, removing or
// resetting the password of a user, closes them at once; and closes them all when the
// server stops.
type liveConns struct {
	mu     sync.Mutex
	conns  map[string]map[chan struct{}]struct{}
	owners map[string]string // session → user name
	// goingAway is closed when the server stops: every connection closes with 1001.
	goingAway chan struct{}
	stopping  bool
	// open counts the connections added and not yet removed; it grows only while not
	// stopping, so that shutdown can wait for it.
	open sync.WaitGroup
}

func newLiveConns() *liveConns {
	return &liveConns{conns: map[string]map[chan struct{}]struct{}{}, owners: map[string]string{},
		goingAway: make(chan struct{})}
}

// add registers a connection of a user's session; the returned channel is closed when the
// session ends, and remove must be called when the connection ends. Once the server is
// stopping it registers nothing and returns ok false.
func (l *liveConns) add(session, user string) (ended chan struct{}, remove func(), ok bool) {
	ended = make(chan struct{})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return nil, nil, false
	}
	l.open.Add(1)
	if l.conns[session] == nil {
		l.conns[session] = map[chan struct{}]struct{}{}
	}
	l.conns[session][ended] = struct{}{}
	l.owners[session] = user
	var once sync.Once
	return ended, func() {
		once.Do(func() {
			defer l.open.Done()
			l.mu.Lock()
			defer l.mu.Unlock()
			if _, ok := l.conns[session][ended]; ok {
				delete(l.conns[session], ended)
				if len(l.conns[session]) == 0 {
					delete(l.conns, session)
					delete(l.owners, session)
				}
			}
		})
	}, true
}

// shutdown tells every connection to close with 1001 (going away), refuses new ones, and
// waits until they have ended.
func (l *liveConns) shutdown() {
	l.mu.Lock()
	if !l.stopping {
		l.stopping = true
		close(l.goingAway)
	}
	l.mu.Unlock()
	l.open.Wait()
}

// closeSession ends every live connection of a session.
func (l *liveConns) closeSession(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked(session)
}

// closeUser ends every live connection of every session of a user but the session keep
// ("" for none).
func (l *liveConns) closeUser(user, keep string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for session, owner := range l.owners {
		if owner == user && session != keep {
			l.closeLocked(session)
		}
	}
}

func (l *liveConns) closeLocked(session string) {
	for ended := range l.conns[session] {
		close(ended)
	}
	delete(l.conns, session)
	delete(l.owners, session)
}

// count returns the number of open connections, for tests.
func (l *liveConns) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, cs := range l.conns {
		n += len(cs)
	}
	return n
}

// CloseLive closes every live connection with close code 1001 (going away), so that each
// open page reconnects to the next server and is sent the state of what it shows, refuses
// new connections, and returns when they have ended (within writeWait plus closeWait).
// http.Server.Shutdown neither closes nor waits for hijacked connections such as these:
// register CloseLive with RegisterOnShutdown, or call it after Shutdown to wait as well.
func (h *Handler) CloseLive() {
	h.sec().live.shutdown()
}

// serveLive upgrades to a websocket and pushes HTML fragments for the page's live parts, one
// fragment per message: first the state of every live part from the catalog, then what
// each event changes, until the client goes away, falls behind, the server stops, or the
// session ends: at sign-out at once, and when it expires or its user is removed within one
// recheck period. Every close but the session's end (1008) is one the page reconnects
// after, and a reconnect starts with the state again, so a page misses nothing that
// happened while it was not connected.
func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request) {
	page, ok := parseLivePage(r.URL.Query().Get("page"))
	if !ok {
		h.serveError(w, r, badRequest("Unknown live page."))
		return
	}
	sess, ok := sessionFrom(r.Context())
	cookie, err := r.Cookie(sessionCookie)
	if !ok || err != nil {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	token := cookie.Value
	g := h.sec()
	ended, unregister, ok := g.live.add(sess.TokenHash, actor(r.Context()))
	if !ok {
		http.Error(w, "the server is stopping", http.StatusServiceUnavailable)
		return
	}
	defer unregister()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	// The request's context ends with the handler; this one ends when the client leaves.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	// Subscribe before reading the state, so that no event falls between the two. An event
	// that is also in the state is sent twice; the page's swaps by element id absorb that.
	sub := h.hub.Subscribe()
	defer h.hub.Unsubscribe(sub)

	// Reader: the client sends nothing we use, but reading processes pongs and closes.
	go func() {
		defer cancel()
		conn.SetReadLimit(4096)
		conn.SetReadDeadline(time.Now().Add(pongWait))
		conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()

	send := func(parts []templ.Component) error {
		for _, c := range parts {
			var buf bytes.Buffer
			if err := c.Render(ctx, &buf); err != nil {
				h.log.Error("live: render", "err", err, "request_id", requestID(r))
				continue
			}
			conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := conn.WriteMessage(websocket.TextMessage, buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	}
	// closeWith ends the connection with a close frame, and waits a moment for the
	// client's, so that the page sees a clean close with this code.
	closeWith := func(code int, text string) {
		err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(writeWait))
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(closeWait):
		}
	}
	snapshot := func() error {
		parts, err := h.snapshot(ctx, &page)
		if err != nil {
			h.log.Warn("live: state", "page", r.URL.Query().Get("page"), "err", err, "request_id", requestID(r))
		}
		return send(parts)
	}
	if err := snapshot(); err != nil {
		return
	}

	recheck := time.NewTicker(g.recheck)
	defer recheck.Stop()
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ended:
			closeWith(websocket.ClosePolicyViolation, "signed out")
			return
		case <-g.live.goingAway:
			closeWith(websocket.CloseGoingAway, "server stopping")
			return
		case <-recheck.C:
			// Expiry and a removed user delete no session through us: ask the catalog.
			if _, _, err := h.store.SessionByToken(ctx, token); errors.Is(err, store.ErrNotFound) {
				closeWith(websocket.ClosePolicyViolation, "signed out")
				return
			} else if err != nil {
				h.log.Warn("live: session check", "err", err, "request_id", requestID(r))
			}
		case <-ping.C:
			conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case ev, ok := <-sub.C:
			if !ok { // dropped as too slow, or the hub is stopping: the page reconnects
				closeWith(websocket.CloseGoingAway, "reconnect")
				return
			}
			if ev.JobID == 0 {
				// A sweep marked orphaned jobs interrupted, which ones it does not say:
				// send the page's state again.
				if err := snapshot(); err != nil {
					return
				}
				continue
			}
			if err := send(h.fragments(ctx, &page, ev)); err != nil {
				return
			}
		}
	}
}

// snapshot renders, from the catalog, the state of every live part of a page: the first
// messages of each connection, so that what happened before it connected (between the
// page's render and the connect, or while the page was disconnected) is shown. Parts
// that cannot be read are left out and the first error is returned with the rest.
func (h *Handler) snapshot(ctx context.Context, p *livePage) ([]templ.Component, error) {
	now := h.now()
	switch p.kind {
	case "job":
		j, err := h.store.Job(ctx, p.id)
		if err != nil {
			return nil, err
		}
		out := h.jobParts(ctx, j)
		evs, err := h.store.JobEvents(ctx, j.ID, 0)
		if err != nil {
			return out, err
		}
		rows := make([]web.EventRow, len(evs))
		for i, e := range evs {
			rows[i] = eventRow(e)
			p.lastEvent = max(p.lastEvent, e.ID)
		}
		return append(out, web.JobEventsOOB(j.ID, rows)), nil
	case "jobs":
		names, err := h.sourceNames(ctx)
		if err != nil {
			return nil, err
		}
		js, err := h.store.Jobs(ctx, store.JobFilter{Limit: 200})
		if err != nil {
			return nil, err
		}
		// Oldest first: each row is inserted at the top unless the page has it already, in
		// which case static/app.js replaces it there.
		out := make([]templ.Component, 0, len(js))
		for _, j := range slices.Backward(js) {
			p.known[j.ID] = true
			out = append(out, web.JobRowNewOOB(jobRow(j, names[j.SourceID]), now))
		}
		return out, nil
	case "backups":
		names, err := h.sourceNames(ctx)
		if err != nil {
			return nil, err
		}
		bs, err := h.store.Backups(ctx, store.BackupFilter{Limit: 200})
		if err != nil {
			return nil, err
		}
		out := make([]templ.Component, 0, len(bs))
		for _, b := range slices.Backward(bs) {
			p.known[b.ID] = true
			out = append(out, web.BackupRowNewOOB(h.withProgress(ctx, backupRow(b, names[b.SourceID]), b), now))
		}
		return out, nil
	case "restores":
		names, err := h.sourceNames(ctx)
		if err != nil {
			return nil, err
		}
		xs, err := h.store.Restores(ctx, false)
		if err != nil {
			return nil, err
		}
		out := make([]templ.Component, 0, len(xs))
		for _, x := range slices.Backward(xs) {
			p.known[x.ID] = true
			x.State = h.svc.InstanceState(ctx, x)
			out = append(out, web.RestoreRowNewOOB(restoreRow(x, names[x.SourceID]), now))
		}
		return out, nil
	case "overview":
		sums, err := h.sourceSummaries(ctx)
		out := make([]templ.Component, 0, len(sums))
		for _, sum := range sums {
			out = append(out, web.SourceCardOOB(sum, now, 0))
		}
		return out, err
	case "backup":
		b, err := h.store.Backup(ctx, p.id)
		if err != nil || b.JobID == 0 {
			return nil, err
		}
		j, err := h.store.Job(ctx, b.JobID)
		if err != nil {
			return nil, err
		}
		return []templ.Component{web.JobProgressOOB(jobProgress(j))}, nil
	case "source":
		src, err := h.store.Source(ctx, p.id)
		if err != nil {
			return nil, err
		}
		var out []templ.Component
		// The job the page shows running: the active backup's, or the last one's if it
		// has ended since.
		js, err := h.store.Jobs(ctx, store.JobFilter{SourceID: src.ID, Kinds: []string{jobs.KindBackup}, Limit: 1})
		if err != nil {
			return nil, err
		}
		for _, j := range js {
			out = append(out, web.JobProgressOOB(jobProgress(j)))
		}
		if active, err := h.activeJob(ctx, src.ID); err != nil {
			return out, err
		} else if active != nil && (len(js) == 0 || active.JobID != js[0].ID) {
			out = append(out, web.JobProgressOOB(*active))
		}
		hv, err := h.sourceHealth(ctx, src)
		if err != nil {
			return out, err
		}
		return append(out, web.SourceHealthOOB(src.ID, *hv)), nil
	}
	return nil, nil
}

// jobParts renders what a job page shows of a job's state: its state badge, progress and
// summary, and a restore's phases and result.
func (h *Handler) jobParts(ctx context.Context, j store.Job) []templ.Component {
	var name string
	if j.SourceID != 0 {
		if s, err := h.store.Source(ctx, j.SourceID); err == nil {
			name = s.Name
		}
	}
	vm := web.JobVM{Now: h.now(), Row: jobRow(j, name), Error: j.Error}
	if j.Kind == jobs.KindPITR {
		vm.Restore = pitrResult(j)
	}
	out := []templ.Component{web.JobStateOOB(j.ID, string(j.State)), web.JobProgressOOB(jobProgress(j)), web.JobSummaryOOB(vm)}
	if j.Kind == jobs.KindPITR {
		out = append(out, web.JobPhasesOOB(j.ID, pitrPhases(j)))
		if vm.Restore != nil {
			out = append(out, web.JobRestoreOOB(j.ID, *vm.Restore, vm.Now))
		}
	}
	return out
}

// fragments renders what an event changes on a page. A fragment whose target is not on the
// page is dropped by static/app.js before htmx sees it.
func (h *Handler) fragments(ctx context.Context, p *livePage, ev jobs.Event) []templ.Component {
	now := h.now()
	progress := func() templ.Component {
		return web.JobProgressOOB(web.JobProgressVM{JobID: ev.JobID, State: string(ev.State), Phase: ev.Progress.Phase,
			Done: ev.Progress.Done, Total: ev.Progress.Total, RatePerSec: ev.Progress.Rate, ETA: ev.Progress.ETA})
	}
	switch ev.Type {
	case jobs.EventProgress:
		switch {
		case p.kind == "job" && p.id != ev.JobID, p.kind == "source" && p.id != ev.SourceID:
			return nil
		}
		out := []templ.Component{progress()}
		if p.kind == "job" && ev.JobKind == jobs.KindPITR {
			out = append(out, web.JobPhasesOOB(ev.JobID, pitrPhases(store.Job{Phase: ev.Progress.Phase, State: store.JobRunning})))
		}
		return out
	case jobs.EventLog:
		if p.kind == "job" && p.id == ev.JobID && ev.Log != nil && ev.Log.ID > p.lastEvent {
			p.lastEvent = ev.Log.ID
			return []templ.Component{web.JobEventOOB(ev.JobID, eventRow(*ev.Log))}
		}
		return nil
	}
	// A state change: re-read the job and what it touches from the catalog.
	switch {
	case p.kind == "job" && p.id != ev.JobID, p.kind == "source" && p.id != ev.SourceID:
		return nil
	}
	j, err := h.store.Job(ctx, ev.JobID)
	if err != nil {
		return nil
	}
	var name string
	if j.SourceID != 0 {
		if s, err := h.store.Source(ctx, j.SourceID); err == nil {
			name = s.Name
		}
	}
	var out []templ.Component
	switch p.kind {
	case "overview":
		if s, err := h.store.Source(ctx, j.SourceID); err == nil {
			if sum, err := h.sourceSummary(ctx, s); err == nil {
				out = append(out, web.SourceCardOOB(sum, now, 0))
			}
		}
	case "jobs":
		row := jobRow(j, name)
		if p.known[j.ID] {
			out = append(out, web.JobRowOOB(row, now))
		} else {
			p.known[j.ID] = true
			out = append(out, web.JobRowNewOOB(row, now))
		}
	case "job":
		out = h.jobParts(ctx, j)
	case "backups":
		if id := jobBackupID(j); id != 0 {
			if b, err := h.store.Backup(ctx, id); err == nil {
				row := h.withProgress(ctx, backupRow(b, name), b)
				if p.known[b.ID] {
					out = append(out, web.BackupRowOOB(row, now))
				} else {
					p.known[b.ID] = true
					out = append(out, web.BackupRowNewOOB(row, now))
				}
			}
		}
	case "restores":
		if x, err := h.store.RestoreByJob(ctx, j.ID); err == nil {
			row := restoreRow(x, name)
			if p.known[x.ID] {
				out = append(out, web.RestoreRowOOB(row, now))
			} else {
				p.known[x.ID] = true
				out = append(out, web.RestoreRowNewOOB(row, now))
			}
		}
	case "backup":
		out = append(out, web.JobProgressOOB(jobProgress(j)))
	case "source":
		out = append(out, web.JobProgressOOB(jobProgress(j)))
		if s, err := h.store.Source(ctx, j.SourceID); err == nil {
			if hv, err := h.sourceHealth(ctx, s); err == nil {
				out = append(out, web.SourceHealthOOB(s.ID, *hv))
			}
		}
	}
	return out
}
