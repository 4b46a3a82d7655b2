package handlers

import (
	"net/http"
	"net/url"

	"github.com/backstop/backstop/web"
)

func (h *Handler) showAudit(w http.ResponseWriter, r *http.Request) error {
	es, err := h.store.AuditEntries(r.Context(), 200, 0)
	if err != nil {
		return err
	}
	vm := web.AuditVM{Now: h.now()}
	for _, e := range es {
		vm.Rows = append(vm.Rows, web.AuditRow{At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target,
			Detail: string(e.Detail), IP: e.IP})
	}
	return h.page(w, r, "Audit log", web.NavAudit, web.AuditPage(vm))
}

// refererPath is the local path (and query) of a Referer header.
func refererPath(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	return u.RequestURI()
}
