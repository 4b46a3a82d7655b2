// Package handlers serves Backstop's dashboard: the chi routes, the middleware (sessions,
// cross-origin protection, request IDs, logging), one handler per page or action, and the
// websocket that pushes live progress. Long work is never done here: it is enqueued as a job.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/a-h/templ"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// Handler holds what the handlers need. Its methods are the routes' handlers. Pages read
// the catalog; every action goes through the use cases, which authorize, check and audit.
type Handler struct {
	store *store.Store
	svc   *usecase.Service
	hub   *jobs.Hub
	log   *slog.Logger
	now   func() time.Time
	// sessionTTL is how long a session lasts without use.
	sessionTTL time.Duration
	// sessionMaxAge is how long a session lasts at most, however busy.
	sessionMaxAge time.Duration
	// guard is the front door: sign-in throttling, live connections by session, TLS mode.
	guard guard
	// metrics serves /metrics (see SetMetrics); nil: not served here.
	metrics http.Handler
	// lagSamples keeps the overview's recent lag samples, read incrementally.
	lagSamples sampleCache
}

// New returns the handlers for a catalog, the use cases and the jobs' progress hub.
func New(st *store.Store, svc *usecase.Service, hub *jobs.Hub, log *slog.Logger) *Handler {
	return &Handler{store: st, svc: svc, hub: hub, log: log, now: time.Now, sessionTTL: 12 * time.Hour,
		sessionMaxAge: 7 * 24 * time.Hour}
}

// page renders a signed-in page inside the layout.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, title string, nav web.Nav, content templ.Component) error {
	return h.pageStatus(w, r, http.StatusOK, title, nav, content)
}

// pageStatus renders a signed-in page inside the layout with a status, such as 422 for a
// form shown again with its errors.
func (h *Handler) pageStatus(w http.ResponseWriter, r *http.Request, status int, title string, nav web.Nav, content templ.Component) error {
	vm := web.LayoutVM{Title: title, Nav: nav, Flash: takeFlash(w, r), Health: h.navHealth(r.Context(), nav)}
	if u, ok := userFrom(r.Context()); ok {
		vm.UserName, vm.Role = u.Name, string(u.Role)
	}
	return render(w, r, status, web.Layout(vm, content))
}

// render writes a component with a status, buffering it so that a rendering error still
// produces a clean error page rather than half a page.
func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := c.Render(r.Context(), buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

// actor is who the audit log names for a request.
func actor(ctx context.Context) string {
	if u, ok := userFrom(ctx); ok {
		return u.Name
	}
	return "anonymous"
}

// actorOf is the signed-in user of a request, as the use cases see them.
func actorOf(r *http.Request) usecase.Actor {
	u, _ := userFrom(r.Context())
	return usecase.Actor{Name: u.Name, Role: u.Role, IP: clientIP(r)}
}

// audit records an action; a failure to record is logged, not shown: the action happened.
func (h *Handler) audit(r *http.Request, action, target string, detail string) {
	e := store.AuditEntry{Actor: actor(r.Context()), Action: action, Target: target, IP: clientIP(r)}
	if detail != "" {
		e.Detail = []byte(detail)
	}
	if err := h.store.Audit(r.Context(), e); err != nil {
		h.log.Error("audit", "action", action, "err", err, "request_id", requestID(r))
	}
}
