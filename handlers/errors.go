package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// appHandler is a handler that returns its error for serveError to render.
type appHandler func(w http.ResponseWriter, r *http.Request) error

// httpError is an error with the status and words to show for it.
type httpError struct {
	status  int
	title   string
	message string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.title, e.message) }

func notFound(what string) error {
	return &httpError{status: http.StatusNotFound, title: what + " not found",
		message: "It may have been deleted, or the link is wrong."}
}

func badRequest(message string) error {
	return &httpError{status: http.StatusBadRequest, title: "Bad request", message: message}
}

// wrap turns an appHandler into an http.HandlerFunc that renders its error.
func (h *Handler) wrap(fn appHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			h.serveError(w, r, err)
		}
	}
}

// serveError maps an error to a status and renders it: a fragment for htmx requests, a page
// otherwise. Server errors are logged with the request ID; their details stay in the log.
func (h *Handler) serveError(w http.ResponseWriter, r *http.Request, err error) {
	vm := web.ErrorVM{Status: http.StatusInternalServerError, Title: "Something went wrong",
		Message:   "Backstop could not complete this request. The server log has the details under the request ID below.",
		RequestID: requestID(r)}
	var he *httpError
	var ve *store.ValidationError
	var fe *usecase.ForbiddenError
	var ce *usecase.ConflictError
	switch {
	case errors.As(err, &fe):
		vm.Status, vm.Title = http.StatusForbidden, "Not allowed"
		vm.Message = fmt.Sprintf("Your role (%s) may not do this. Ask an admin if you need it.", fe.Actor.Role)
		if fe.Reason != "" {
			vm.Message = usecase.Sentence(fe.Reason)
		}
	case errors.As(err, &ce):
		vm.Status, vm.Title, vm.Message = http.StatusConflict, "Not now", usecase.Sentence(ce.Message)
	case errors.As(err, &he):
		vm.Status, vm.Title, vm.Message = he.status, he.title, he.message
	case errors.Is(err, store.ErrNotFound):
		vm.Status, vm.Title, vm.Message = http.StatusNotFound, "Not found", "It may have been deleted, or the link is wrong."
	case errors.As(err, &ve):
		vm.Status, vm.Title, vm.Message = http.StatusUnprocessableEntity, "Invalid input", ve.Error()
	case errors.Is(err, store.ErrLocked):
		vm.Status, vm.Title, vm.Message = http.StatusConflict, "Already running", err.Error()
	}
	if vm.Status >= 500 {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", vm.RequestID)
	} else {
		h.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "status", vm.Status, "err", err, "request_id", vm.RequestID)
	}
	c := web.ErrorPage(vm)
	if r.Header.Get("HX-Request") == "true" {
		c = web.ErrorFragment(vm)
	}
	if rerr := render(w, r, vm.Status, c); rerr != nil {
		h.log.Error("render error page", "err", rerr, "request_id", vm.RequestID)
	}
}

func requestID(r *http.Request) string { return middleware.GetReqID(r.Context()) }
