package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

func (h *Handler) showJobList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	names, err := h.sourceNames(ctx)
	if err != nil {
		return err
	}
	js, err := h.store.Jobs(ctx, store.JobFilter{Limit: 200})
	if err != nil {
		return err
	}
	vm := web.JobsVM{Now: h.now()}
	for _, j := range js {
		vm.Rows = append(vm.Rows, jobRow(j, names[j.SourceID]))
	}
	return h.page(w, r, "Jobs", web.NavJobs, web.JobsPage(vm))
}

func (h *Handler) showJob(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	j := jobFrom(r)
	var name string
	if j.SourceID != 0 {
		if s, err := h.store.Source(ctx, j.SourceID); err == nil {
			name = s.Name
		}
	}
	evs, err := h.store.JobEvents(ctx, j.ID, 0)
	if err != nil {
		return err
	}
	vm := web.JobVM{Now: h.now(), Row: jobRow(j, name), Error: j.Error}
	for _, e := range evs {
		vm.Events = append(vm.Events, eventRow(e))
	}
	return h.page(w, r, fmt.Sprintf("Job %d", j.ID), web.NavJobs, web.JobPage(vm))
}

func eventRow(e store.JobEvent) web.EventRow {
	return web.EventRow{At: e.At, Level: string(e.Level), Phase: e.Phase, Message: e.Message}
}

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) error {
	j := jobFrom(r)
	err := h.runner.Cancel(r.Context(), j.ID)
	switch {
	case errors.Is(err, store.ErrConflict):
		setFlash(w, web.FlashError, fmt.Sprintf("Job %d has already ended.", j.ID))
	case err != nil:
		return err
	default:
		h.audit(r, "job.cancel", fmt.Sprintf("job %d", j.ID), "")
		setFlash(w, web.FlashSuccess, fmt.Sprintf("Job %d is being cancelled.", j.ID))
	}
	// Back to the page the button was on.
	back := safeNext(refererPath(r.Header.Get("Referer")))
	if back == "/" && refererPath(r.Header.Get("Referer")) != "/" {
		back = fmt.Sprintf("/jobs/%d", j.ID)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}
