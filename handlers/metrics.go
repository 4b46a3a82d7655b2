package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// SetMetrics makes /metrics serve what g gathers, in Prometheus' exposition format; call
// it before serving. Without it, /metrics is 404 (after authorization).
func (h *Handler) SetMetrics(g prometheus.Gatherer) *Handler {
	h.metrics = promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: promLogger{h.log},
		// Each scrape reads the catalog: two at a time are plenty for any Prometheus setup.
		MaxRequestsInFlight: 2,
	})
	return h
}

// showMetrics serves /metrics to a Prometheus server presenting the metrics token
// (Authorization: Bearer …), or to any signed-in user; the use cases decide which.
func (h *Handler) showMetrics(w http.ResponseWriter, r *http.Request) error {
	bearer := bearerToken(r)
	var a usecase.Actor
	if bearer == "" {
		var err error
		if a, err = h.sessionActor(r); err != nil {
			return err
		}
	}
	if err := h.svc.AuthorizeMetrics(a, bearer); err != nil {
		if errors.Is(err, usecase.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="backstop"`)
			return &httpError{status: http.StatusUnauthorized, title: "Sign in first",
				message: "Sign in, or send the token in " + usecase.MetricsTokenFile + " (in Backstop's home) as a bearer token."}
		}
		return err
	}
	if h.metrics == nil {
		return notFound("Metrics")
	}
	w.Header().Set("Cache-Control", "no-store")
	h.metrics.ServeHTTP(w, r)
	return nil
}

// sessionActor is the signed-in user of r, without requiring one: the zero Actor when r
// has no valid session. Reading metrics does not extend a session.
func (h *Handler) sessionActor(r *http.Request) (usecase.Actor, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return usecase.Actor{}, nil
	}
	_, u, err := h.store.SessionByToken(r.Context(), c.Value)
	if errors.Is(err, store.ErrNotFound) {
		return usecase.Actor{}, nil
	}
	if err != nil {
		return usecase.Actor{}, err
	}
	return usecase.Actor{Name: u.Name, Role: u.Role, IP: clientIP(r)}, nil
}

// bearerToken is the token of an "Authorization: Bearer TOKEN" header, "" without one.
func bearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// promLogger logs promhttp's errors (a metric that could not be gathered or written).
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics", "err", fmt.Sprint(v...)) }
