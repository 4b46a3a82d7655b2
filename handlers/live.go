package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
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
)

// upgrader accepts websocket connections from this site only: gorilla's default origin
// check refuses an Origin header whose host is not the request's Host.
var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 8192}

// livePage is what a websocket connection's page shows, from ?page=: "overview", "jobs",
// "backups", or "job-12", "backup-7", "source-3".
type livePage struct {
	kind string
	id   int64
	// known holds the rows already on a list page, so a new one is inserted once.
	known map[int64]bool
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
// resetting the password of a user, closes them at once.
type liveConns struct {
	mu     sync.Mutex
	conns  map[string]map[chan struct{}]struct{}
	owners map[string]string // session → user name
}

func newLiveConns() *liveConns {
	return &liveConns{conns: map[string]map[chan struct{}]struct{}{}, owners: map[string]string{}}
}

// add registers a connection of a user's session; the returned channel is closed when the
// session ends, and remove must be called when the connection ends.
func (l *liveConns) add(session, user string) (ended chan struct{}, remove func()) {
	ended = make(chan struct{})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[session] == nil {
		l.conns[session] = map[chan struct{}]struct{}{}
	}
	l.conns[session][ended] = struct{}{}
	l.owners[session] = user
	return ended, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.conns[session][ended]; ok {
			delete(l.conns[session], ended)
			if len(l.conns[session]) == 0 {
				delete(l.conns, session)
				delete(l.owners, session)
			}
		}
	}
}

// closeSession ends every live connection of a session.
func (l *liveConns) closeSession(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked(session)
}

// closeUser ends every live connection of every session of a user.
func (l *liveConns) closeUser(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for session, owner := range l.owners {
		if owner == user {
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

// serveLive upgrades to a websocket and pushes HTML fragments for the page's live parts, one
// fragment per message, until the client goes away, falls behind, the server stops, or
// the session ends: at sign-out at once, and when it expires or its user is removed within
// one recheck period.
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
	ended, unregister := g.live.add(sess.TokenHash, actor(r.Context()))
	defer unregister()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	// The request's context ends with the handler; this one ends when the client leaves.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	if err := h.seedKnown(ctx, &page); err != nil {
		h.log.Warn("live: seed", "err", err, "request_id", requestID(r))
	}
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

	sessionEnded := func() {
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "signed out"), time.Now().Add(writeWait))
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
			sessionEnded()
			return
		case <-recheck.C:
			// Expiry and a removed user delete no session through us: ask the catalog.
			if _, _, err := h.store.SessionByToken(ctx, token); errors.Is(err, store.ErrNotFound) {
				sessionEnded()
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
			if !ok { // dropped as too slow, or the server is stopping: the client reconnects
				conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseGoingAway, "reconnect"), time.Now().Add(writeWait))
				return
			}
			for _, c := range h.fragments(ctx, &page, ev) {
				var buf bytes.Buffer
				if err := c.Render(ctx, &buf); err != nil {
					h.log.Error("live: render", "err", err)
					continue
				}
				conn.SetWriteDeadline(time.Now().Add(writeWait))
				if err := conn.WriteMessage(websocket.TextMessage, buf.Bytes()); err != nil {
					return
				}
			}
		}
	}
}

// seedKnown records the rows a list page was rendered with.
func (h *Handler) seedKnown(ctx context.Context, p *livePage) error {
	switch p.kind {
	case "jobs":
		js, err := h.store.Jobs(ctx, store.JobFilter{Limit: 200})
		for _, j := range js {
			p.known[j.ID] = true
		}
		return err
	case "backups":
		bs, err := h.store.Backups(ctx, store.BackupFilter{Limit: 200})
		for _, b := range bs {
			p.known[b.ID] = true
		}
		return err
	case "restores":
		xs, err := h.store.Restores(ctx, false)
		for _, x := range xs {
			p.known[x.ID] = true
		}
		return err
	}
	return nil
}

// fragments renders what an event changes on a page. A fragment whose target is not on the
// page is dropped by static/app.js before htmx sees it.
func (h *Handler) fragments(ctx context.Context, p *livePage, ev jobs.Event) []templ.Component {
	now := h.now()
	progress := func() templ.Component {
		return web.JobProgressOOB(web.JobProgressVM{JobID: ev.JobID, State: string(ev.State), Phase: ev.Progress.Phase,
			Done: ev.Progress.Done, Total: ev.Progress.Total, RatePerSec: ev.Progress.Rate, ETA: ev.Progress.ETA})
	}
	if ev.JobID == 0 { // a sweep marked orphaned jobs: nothing to address precisely
		return nil
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
		if p.kind == "job" && p.id == ev.JobID && ev.Log != nil {
			return []templ.Component{web.JobEventOOB(ev.JobID, eventRow(*ev.Log))}
		}
		return nil
	}
	// A state change: re-read the job and what it touches from the catalog.
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
		if p.id == j.ID {
			out = append(out, web.JobStateOOB(j.ID, string(j.State)), web.JobProgressOOB(jobProgress(j)))
			if j.Kind == jobs.KindPITR {
				out = append(out, web.JobPhasesOOB(j.ID, pitrPhases(j)))
				if res := pitrResult(j); res != nil {
					out = append(out, web.JobRestoreOOB(j.ID, *res, now))
				}
			}
		}
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
	case "backup", "source":
		out = append(out, web.JobProgressOOB(jobProgress(j)))
	}
	return out
}
