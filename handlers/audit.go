package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// auditPerPage is how many entries the audit page shows at once.
const auditPerPage = 50

// auditFilter reads the audit page's filter from a query: who, what (a prefix), which
// source, and the period; it also returns the filter as typed, for the form. An invalid
// period is a *store.ValidationError naming its field.
func auditFilter(q url.Values) (store.AuditFilter, web.AuditFilterVM, error) {
	typed := web.AuditFilterVM{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Source: strings.TrimSpace(q.Get("source")), From: q.Get("from"), To: q.Get("to")}
	f := store.AuditFilter{Actor: typed.Actor, ActionPrefix: typed.Action, Target: typed.Source}
	var err error
	f.From, f.To, err = usecase.ParsePeriod(typed.From, typed.To)
	return f, typed, err
}

// auditQuery returns the typed filter as a query string, with extra parameters.
func auditQuery(typed web.AuditFilterVM, extra ...string) string {
	q := url.Values{}
	for k, v := range map[string]string{"actor": typed.Actor, "action": typed.Action, "source": typed.Source, "from": typed.From, "to": typed.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// showAudit shows a page of the audit log, newest first, filtered, with keyset paging:
// ?before=ID for older entries, ?after=ID for newer ones.
func (h *Handler) showAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f, typed, ferr := auditFilter(q)
	vm := web.AuditVM{Filter: typed, Filtered: typed != web.AuditFilterVM{},
		ExportCSV: "/audit/export" + auditQuery(typed, "format", "csv"), ExportJSON: "/audit/export" + auditQuery(typed, "format", "json")}
	f.BeforeID, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	f.AfterID, _ = strconv.ParseInt(q.Get("after"), 10, 64)
	if f.AfterID > 0 {
		f.BeforeID = 0
	}
	f.Limit = auditPerPage + 1
	if ve := (*store.ValidationError)(nil); errors.As(ferr, &ve) {
		vm.Errors = map[string]string{ve.Field: ve.Message}
		// The filter is not understood: show it with its errors and no entries, rather than
		// entries it did not select.
		if _, err := h.svc.AuditLog(r.Context(), actorOf(r), store.AuditFilter{Limit: 1}); err != nil {
			return err
		}
		return h.pageStatus(w, r, http.StatusUnprocessableEntity, "Audit log", web.NavAudit, web.AuditPage(vm))
	}
	es, err := h.svc.AuditLog(r.Context(), actorOf(r), f)
	if err != nil {
		return err
	}
	more := len(es) > auditPerPage
	newer, older := f.BeforeID > 0, more
	if f.AfterID > 0 {
		if more {
			es = es[1:]
		}
		newer, older = more, true
	} else if more {
		es = es[:auditPerPage]
	}
	if len(es) > 0 {
		if newer {
			vm.NewerURL = "/audit" + auditQuery(typed, "after", strconv.FormatInt(es[0].ID, 10))
		}
		if older {
			vm.OlderURL = "/audit" + auditQuery(typed, "before", strconv.FormatInt(es[len(es)-1].ID, 10))
		}
	}
	for _, e := range es {
		vm.Rows = append(vm.Rows, auditRow(e))
	}
	return h.page(w, r, "Audit log", web.NavAudit, web.AuditPage(vm))
}

// auditRow is an entry as the page shows it.
func auditRow(e store.AuditEntry) web.AuditRow {
	row := web.AuditRow{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: string(e.Detail),
		IP: e.IP, PrevHash: e.PrevHash, Hash: e.Hash}
	var pretty bytes.Buffer
	if len(e.Detail) > 0 && json.Indent(&pretty, e.Detail, "", "  ") == nil {
		row.DetailPretty = pretty.String()
	}
	if e.Repeats != nil {
		row.Repeats = fmt.Sprintf("%d so far, last %s", e.Repeats.Count, web.UTC(e.Repeats.Last))
	}
	return row
}

// exportAudit downloads the filtered audit log as CSV or JSON, streamed as it is read.
// The use case authorizes and checks the format before the first byte; until then an
// error is an ordinary error page.
func (h *Handler) exportAudit(w http.ResponseWriter, r *http.Request) error {
	f, _, err := auditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	dl := &download{w: w, header: func(hd http.Header) {
		hd.Set("Content-Type", map[string]string{usecase.ExportCSV: "text/csv; charset=utf-8", usecase.ExportJSON: "application/json"}[format])
		hd.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="backstop-audit-%s.%s"`, h.now().UTC().Format("20060102-150405"), format))
		hd.Set("Cache-Control", "no-store")
	}}
	// A million entries take longer than a page: the export may outlive the server's write
	// timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	err = h.svc.ExportAudit(r.Context(), actorOf(r), f, format, dl)
	if err != nil && dl.started {
		// Too late for an error page: the log says why, and the connection is cut so that
		// the download fails rather than ending like a whole file.
		h.log.Error("audit export", "err", err, "request_id", requestID(r))
		panic(http.ErrAbortHandler)
	}
	return err
}

// download is a response that sets its headers when the first byte is written, so that
// an error before it can still be answered with an error page.
type download struct {
	w       http.ResponseWriter
	header  func(http.Header)
	started bool
}

func (d *download) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		d.header(d.w.Header())
	}
	return d.w.Write(p)
}

// refererPath is the local path (and query) of a Referer header.
func refererPath(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	return u.RequestURI()
}
