package handlers

import (
	"net/http"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/web"
)

// requireView lets a signed-in user through to read pages only if the use cases' policy
// lets their role view, and tells the components which controls to show them, including
// which sources they may restore. Actions are
// authorized again, by the use case itself, whatever a page showed.
func (h *Handler) requireView(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := actorOf(r)
		if err := usecase.Authorize(a, usecase.View); err != nil {
			h.serveError(w, r, err)
			return
		}
		allowed := web.Allowed{}
		for _, act := range usecase.Actions() {
			allowed[string(act)] = usecase.Can(a.Role, act)
		}
		ctx := web.WithAllowed(r.Context(), allowed)
		if usecase.Can(a.Role, usecase.StartRestore) || usecase.Can(a.Role, usecase.ManageInstance) {
			sc, err := h.svc.RestoreScope(ctx, a)
			if err != nil {
				h.serveError(w, r, err)
				return
			}
			if sc.Limited {
				ctx = web.WithRestoreScope(ctx, sc.SourceIDs)
			}
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
