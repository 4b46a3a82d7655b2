package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/a-h/templ"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

const (
	// historyPageSize is how many resolved alerts the on-call page shows at a time.
	historyPageSize = 20
	// historyBatch is how many alerts of any state are read at a time while looking for
	// resolved ones: the open ones in between are few.
	historyBatch = 200
	// commentMax bounds an acknowledgement's or resolution's comment, in bytes.
	commentMax = 500
)

func (h *Handler) loadAlert(next http.Handler) http.Handler {
	return loader(h, "alertID", "Alert", alertKey, h.store.Alert)(next)
}

func alertFrom(r *http.Request) store.Alert { return r.Context().Value(alertKey).(store.Alert) }

// showAlerts is the on-call page. Its live part polls the same URL with ?fragment=live
// and the version it shows: the answer is 204 No Content while nothing changed (htmx
// then swaps nothing, so a comment being typed stays), else the new live part.
func (h *Handler) showAlerts(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var before int64
	if s := q.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return badRequest("?before= takes an alert ID, such as the one the Older link gives.")
		}
		before = n
	}
	vm, err := h.alertsVM(r, before)
	if err != nil {
		return err
	}
	if q.Get("fragment") == "live" {
		if q.Get("v") == vm.Version {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return render(w, r, http.StatusOK, web.AlertsLive(vm))
	}
	return h.page(w, r, "Alerts", web.NavAlerts, web.AlertsPage(vm))
}

// alertsVM reads the open alerts and one page of resolved ones through the use cases.
func (h *Handler) alertsVM(r *http.Request, before int64) (web.AlertsVM, error) {
	ctx, a := r.Context(), actorOf(r)
	open, err := h.svc.Alerts(ctx, a, store.AlertFilter{Open: true})
	if err != nil {
		return web.AlertsVM{}, err
	}
	history, older, err := h.resolvedAlerts(ctx, a, before)
	if err != nil {
		return web.AlertsVM{}, err
	}
	names, err := h.sourceNames(ctx)
	if err != nil {
		return web.AlertsVM{}, err
	}
	vm := web.AlertsVM{Now: h.now(), Before: before, Older: older, Version: alertsVersion(open, history)}
	for _, al := range open {
		vm.Open = append(vm.Open, alertVM(al, names))
	}
	for _, al := range history {
		vm.History = append(vm.History, alertVM(al, names))
	}
	return vm, nil
}

// resolvedAlerts returns up to historyPageSize resolved alerts older than before (all
// when 0), newest first, and the cursor of the next page (0 when there is none). The
// catalog lists alerts of every state by ID; the open ones are skipped.
func (h *Handler) resolvedAlerts(ctx context.Context, a usecase.Actor, before int64) ([]store.Alert, int64, error) {
	var out []store.Alert
	cursor := before
	for {
		batch, err := h.svc.Alerts(ctx, a, store.AlertFilter{BeforeID: cursor, Limit: historyBatch})
		if err != nil {
			return nil, 0, err
		}
		for _, al := range batch {
			if al.State != store.AlertResolved {
				continue
			}
			if len(out) == historyPageSize {
				return out, out[len(out)-1].ID, nil
			}
			out = append(out, al)
		}
		if len(batch) < historyBatch {
			return out, 0, nil
		}
		cursor = batch[len(batch)-1].ID
	}
}

// alertVM is an alert as the pages show it. A source that is gone is named from the
// evidence, without a link.
func alertVM(a store.Alert, names map[int64]string) web.AlertVM {
	vm := web.AlertVM{ID: a.ID, Rule: a.Rule, Severity: a.Severity, State: string(a.State), Title: a.Title,
		Explanation: a.Explanation, Action: a.Action, FirstAt: a.FirstAt, LastSeenAt: a.LastSeenAt,
		AckedBy: a.AckedBy, AckComment: a.AckComment, ResolvedBy: a.ResolvedBy, ResolveComment: a.ResolveComment}
	if a.AckedAt != nil {
		vm.AckedAt = *a.AckedAt
	}
	if a.ResolvedAt != nil {
		vm.ResolvedAt = *a.ResolvedAt
	}
	if name, ok := names[a.SourceID]; ok && a.SourceID != 0 {
		vm.SourceID, vm.SourceName = a.SourceID, name
	} else {
		vm.SourceName = a.Evidence["source"]
	}
	keys := make([]string, 0, len(a.Evidence))
	for k := range a.Evidence {
		if k != "source" || vm.SourceName == "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		vm.Evidence = append(vm.Evidence, web.EvidenceVM{Key: k, Value: a.Evidence[k]})
	}
	return vm
}

// alertsVersion fingerprints what the on-call page's live part shows of the alerts:
// which are open, their state, words and evidence, who handled them, and the resolved
// page. When an alert was last seen is left out: it moves every evaluation, and
// replacing the list every 15 s for it would only disturb whoever is typing.
func alertsVersion(open, history []store.Alert) string {
	hash := sha256.New()
	field := func(s string) {
		fmt.Fprintf(hash, "%d:%s;", len(s), s)
	}
	for _, a := range open {
		field(strconv.FormatInt(a.ID, 10))
		field(string(a.State))
		field(a.Severity)
		field(a.Title)
		field(a.Explanation)
		field(a.Action)
		keys := make([]string, 0, len(a.Evidence))
		for k := range a.Evidence {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			field(k)
			field(a.Evidence[k])
		}
		field(a.AckedBy)
		field(a.AckComment)
	}
	field("resolved")
	for _, a := range history {
		field(strconv.FormatInt(a.ID, 10))
		field(a.ResolvedBy)
	}
	return hex.EncodeToString(hash.Sum(nil)[:8])
}

// showAlert is one alert's page, which notifications link to.
func (h *Handler) showAlert(w http.ResponseWriter, r *http.Request) error {
	al := alertFrom(r)
	names, err := h.sourceNames(r.Context())
	if err != nil {
		return err
	}
	vm := web.AlertPageVM{Now: h.now(), Alert: alertVM(al, names)}
	return h.page(w, r, fmt.Sprintf("Alert %d", al.ID), web.NavAlerts, web.AlertPage(vm))
}

// acknowledgeAlert records that the signed-in user is on a firing alert.
func (h *Handler) acknowledgeAlert(w http.ResponseWriter, r *http.Request) error {
	return h.changeAlert(w, r, "ack")
}

// resolveAlert closes an open alert by hand.
func (h *Handler) resolveAlert(w http.ResponseWriter, r *http.Request) error {
	return h.changeAlert(w, r, "resolve")
}

// changeAlert acknowledges or resolves an alert through the use case, which authorizes
// and audits it. An htmx request from the on-call page gets the alert's card back, with
// a note, and the navigation's count out of band; a browser without script is redirected
// back (post/redirect/get) with a flash. An alert someone else handled first is a note
// or a flash saying so, not an error page.
func (h *Handler) changeAlert(w http.ResponseWriter, r *http.Request, verb string) error {
	ctx, a, al := r.Context(), actorOf(r), alertFrom(r)
	comment := trimComment(r.PostFormValue("comment"))
	var err error
	var msg string
	switch verb {
	case "ack":
		_, err = h.svc.AcknowledgeAlert(ctx, a, al.ID, comment)
		msg = fmt.Sprintf("Alert %d acknowledged: others can see you are on it.", al.ID)
	default:
		_, err = h.svc.ResolveAlert(ctx, a, al.ID, comment)
		msg = fmt.Sprintf("Alert %d resolved. If its condition still holds, the next evaluation opens a new alert.", al.ID)
	}
	note := web.AlertNoteVM{Message: msg}
	var ce *usecase.ConflictError
	switch {
	case errors.As(err, &ce):
		note = web.AlertNoteVM{Error: true, Message: usecase.Sentence(ce.Message)}
	case err != nil:
		return err
	}
	if r.Header.Get("HX-Request") == "true" {
		cur, err := h.store.Alert(ctx, al.ID)
		if err != nil {
			return err
		}
		names, err := h.sourceNames(ctx)
		if err != nil {
			return err
		}
		parts := []templ.Component{web.AlertCard(alertVM(cur, names), h.now(), note)}
		if nav, ok := h.navAlerts(ctx); ok {
			nav.OOB = true
			parts = append(parts, web.NavAlertCount(nav))
		}
		return render(w, r, http.StatusOK, templ.Join(parts...))
	}
	kind := web.FlashSuccess
	if note.Error {
		kind = web.FlashError
	}
	setFlash(w, kind, note.Message)
	back := "/alerts#" + fmt.Sprintf("alert-%d", al.ID)
	if r.PostFormValue("from") == "page" {
		back = fmt.Sprintf("/alerts/%d", al.ID)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// trimComment is a comment as stored: trimmed, and cut at a character boundary to at
// most commentMax bytes.
func trimComment(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= commentMax {
		return s
	}
	s = s[:commentMax]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// showNavAlerts is what the navigation's open-alert count polls.
func (h *Handler) showNavAlerts(w http.ResponseWriter, r *http.Request) error {
	vm, ok := h.navAlerts(r.Context())
	if !ok {
		return errors.New("open alert counts are unavailable")
	}
	return render(w, r, http.StatusOK, web.NavAlertCount(vm))
}

// navAlerts is the navigation's open-alert count; false if the catalog cannot say, and
// the navigation then shows no count.
func (h *Handler) navAlerts(ctx context.Context) (web.NavAlertsVM, bool) {
	n, err := h.store.OpenAlertCounts(ctx)
	if err != nil {
		h.log.Warn("open alerts for the navigation", "err", err)
		return web.NavAlertsVM{}, false
	}
	return web.NavAlertsVM{Critical: n[store.SeverityCritical], Warning: n[store.SeverityWarning], Info: n[store.SeverityInfo]}, true
}

// withNavAlerts gives the pages' layout the open-alert count for the navigation. htmx
// requests and the websocket render no layout, and skip it.
func (h *Handler) withNavAlerts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("HX-Request") != "true" && r.URL.Path != "/ws" {
			if vm, ok := h.navAlerts(r.Context()); ok {
				r = r.WithContext(web.WithNavAlerts(r.Context(), vm))
			}
		}
		next.ServeHTTP(w, r)
	})
}
