package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/backstop/backstop/static"
	"github.com/backstop/backstop/store"
)

// Routes returns every route of the dashboard.
func (h *Handler) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(h.frontDoor)
	r.Use(middleware.RequestID, h.logRequests, middleware.Recoverer, securityHeaders)
	r.Use(http.NewCrossOriginProtection().Handler)

	r.Get("/healthz", h.healthz)
	r.Get("/metrics", h.wrap(h.showMetrics)) // a session or the metrics token: checked by the use cases
	r.Handle(static.Prefix+"*", static.Handler())
	r.Get("/login", h.wrap(h.showLogin))
	r.Post("/login", h.wrap(h.login))

	r.Group(func(r chi.Router) {
		r.Use(h.requireSession, h.requireView, h.withNavAlerts)
		r.Post("/logout", h.wrap(h.logout))
		r.Get("/", h.wrap(h.showOverview))
		r.Get("/ws", h.serveLive)
		r.Get("/health", h.wrap(h.showHealth))
		r.Get("/audit", h.wrap(h.showAudit))
		r.Get("/audit/export", h.wrap(h.exportAudit))

		r.Route("/sources", func(r chi.Router) {
			r.Get("/", h.wrap(h.showSourceList))
			r.Get("/new", h.wrap(h.showSourceNew))
			r.Post("/", h.wrap(h.createSource))
			r.Route("/{sourceID}", func(r chi.Router) {
				r.Use(h.loadSource)
				r.Get("/", h.wrap(h.showSource))
				r.Post("/backups", h.wrap(h.startBackup))
				r.Post("/verify", h.wrap(h.startVerify))
				r.Post("/drill", h.wrap(h.startDrill))
				r.Get("/restore", h.wrap(h.showRestore))
				r.Post("/restore", h.wrap(h.startRestore))
				r.Get("/edit", h.wrap(h.showSourceEdit))
				r.Post("/edit", h.wrap(h.changeSource))
				r.Post("/remove", h.wrap(h.removeSource))
				r.Get("/policy", h.wrap(h.showPolicy))
				r.Post("/policy", h.wrap(h.savePolicy))
				r.Post("/policy/preview", h.wrap(h.previewPolicy))
				r.Post("/expire", h.wrap(h.applyPolicy))
			})
		})
		r.Route("/backups", func(r chi.Router) {
			r.Get("/", h.wrap(h.showBackupList))
			r.Route("/{backupID}", func(r chi.Router) {
				r.Use(h.loadBackup)
				r.Get("/", h.wrap(h.showBackup))
				r.Post("/pin", h.wrap(h.pinBackup))
				r.Post("/unpin", h.wrap(h.unpinBackup))
			})
		})
		r.Route("/restores", func(r chi.Router) {
			r.Get("/", h.wrap(h.showRestores))
			r.Route("/{restoreID}", func(r chi.Router) {
				r.Use(h.loadRestore)
				r.Post("/stop", h.wrap(h.changeRestore("stop")))
				r.Post("/start", h.wrap(h.changeRestore("start")))
				r.Post("/delete", h.wrap(h.changeRestore("delete")))
			})
		})
		r.Get("/account", h.wrap(h.showAccount))
		r.Post("/account/password", h.wrap(h.changeOwnPassword))
		r.Post("/account/sessions/revoke-others", h.wrap(h.revokeOtherSessions))
		r.Post("/sessions/{sessionID}/revoke", h.wrap(h.revokeSession))
		r.Route("/users", func(r chi.Router) {
			r.Get("/", h.wrap(h.showUsers))
			r.Post("/", h.wrap(h.addUser))
			r.Route("/{userName}", func(r chi.Router) {
				for _, action := range []string{"role", "password", "sources", "disable", "enable", "remove"} {
					r.Post("/"+action, h.wrap(h.changeUser(action)))
				}
			})
		})
		r.Route("/alerts", func(r chi.Router) {
			r.Get("/", h.wrap(h.showAlerts))
			r.Get("/count", h.wrap(h.showNavAlerts))
			r.Route("/{alertID}", func(r chi.Router) {
				r.Use(h.loadAlert)
				r.Get("/", h.wrap(h.showAlert))
				r.Post("/ack", h.wrap(h.acknowledgeAlert))
				r.Post("/resolve", h.wrap(h.resolveAlert))
			})
		})
		r.Route("/reports", func(r chi.Router) {
			r.Get("/", h.wrap(h.showReports))
			r.Get("/preview", h.wrap(h.previewReport))
			r.Get("/download", h.wrap(h.downloadReport))
			r.Get("/key.pub", h.wrap(h.showReportKey))
		})
		r.Route("/settings/notifications", func(r chi.Router) {
			r.Get("/", h.wrap(h.showChannels))
			r.Post("/", h.wrap(h.addChannel))
			r.Post("/{name}/test", h.wrap(h.testChannel))
			r.Post("/{name}/remove", h.wrap(h.removeChannel))
		})
		r.Route("/jobs", func(r chi.Router) {
			r.Get("/", h.wrap(h.showJobList))
			r.Route("/{jobID}", func(r chi.Router) {
				r.Use(h.loadJob)
				r.Get("/", h.wrap(h.showJob))
				r.Post("/cancel", h.wrap(h.cancelJob))
			})
		})
	})
	r.NotFound(h.wrap(func(w http.ResponseWriter, r *http.Request) error { return notFound("Page") }))
	return r
}

// logRequests logs each request once, with its request ID, status and duration.
func (h *Handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		h.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", ww.Status(),
			"duration", time.Since(start), "request_id", requestID(r))
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

type loadedKey int

const (
	sourceKey loadedKey = iota
	backupKey
	jobKey
	restoreKey
	alertKey
)

// loader builds middleware that loads the entity named by a URL parameter, answering 404
// early when it does not exist.
func loader[T any](h *Handler, param, what string, key loadedKey, load func(context.Context, int64) (T, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, err := strconv.ParseInt(chi.URLParam(r, param), 10, 64)
			if err != nil || id <= 0 {
				h.serveError(w, r, notFound(what))
				return
			}
			v, err := load(r.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				h.serveError(w, r, notFound(what))
				return
			}
			if err != nil {
				h.serveError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key, v)))
		})
	}
}

func (h *Handler) loadSource(next http.Handler) http.Handler {
	return loader(h, "sourceID", "Source", sourceKey, h.store.Source)(next)
}

func (h *Handler) loadBackup(next http.Handler) http.Handler {
	return loader(h, "backupID", "Backup", backupKey, h.store.Backup)(next)
}

func (h *Handler) loadJob(next http.Handler) http.Handler {
	return loader(h, "jobID", "Job", jobKey, h.store.Job)(next)
}

func (h *Handler) loadRestore(next http.Handler) http.Handler {
	return loader(h, "restoreID", "Restored instance", restoreKey, h.store.Restore)(next)
}

func sourceFrom(r *http.Request) store.Source { return r.Context().Value(sourceKey).(store.Source) }
func backupFrom(r *http.Request) store.Backup { return r.Context().Value(backupKey).(store.Backup) }
func jobFrom(r *http.Request) store.Job       { return r.Context().Value(jobKey).(store.Job) }
