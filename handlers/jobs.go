package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/backstop/backstop/jobs"
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
	if j.Kind == jobs.KindPITR {
		vm.Phases = pitrPhases(j)
		vm.Restore = pitrResult(j)
	}
	return h.page(w, r, fmt.Sprintf("Job %d", j.ID), web.NavJobs, web.JobPage(vm))
}

// pitrPhaseOrder are the phases of a point-in-time restore as the stepper shows them.
var pitrPhaseOrder = []string{jobs.PhasePlanning, jobs.PhaseMaterializing, jobs.PhaseConfiguring, jobs.PhaseStarting,
	jobs.PhaseReplaying, jobs.PhaseChecking}

// pitrPhases is the stepper of a restore job: phases before the current one are done.
func pitrPhases(j store.Job) []web.PhaseVM {
	current := slices.Index(pitrPhaseOrder, j.Phase)
	out := make([]web.PhaseVM, len(pitrPhaseOrder))
	for i, name := range pitrPhaseOrder {
		state := web.PhasePending
		switch {
		case j.State == store.JobSucceeded || i < current:
			state = web.PhaseDone
		case i == current && j.State == store.JobRunning:
			state = web.PhaseCurrent
		case i == current:
			state = web.PhaseFailed
		}
		out[i] = web.PhaseVM{Name: name, State: state}
	}
	return out
}

// pitrResult is a finished restore job's result, for its page.
func pitrResult(j store.Job) *web.RestoreResultVM {
	var res jobs.PITRResult
	if len(j.Result) == 0 || json.Unmarshal(j.Result, &res) != nil || res.Into == "" {
		return nil
	}
	vm := &web.RestoreResultVM{RestoreID: res.RestoreID, DSN: res.DSN, DataDir: res.Into, Checked: res.Checked, StopLine: res.StopLine}
	if t, err := jobs.ParseTarget(res.Target); err == nil {
		vm.Target = targetVM(t)
	}
	if vm.Target.Kind == "" {
		vm.Target = web.RestoreTarget{Kind: web.TargetLatest, Time: res.LastCommitAt}
	}
	return vm
}

func eventRow(e store.JobEvent) web.EventRow {
	return web.EventRow{At: e.At, Level: string(e.Level), Phase: e.Phase, Message: e.Message}
}

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) error {
	j := jobFrom(r)
	err := h.svc.CancelJob(r.Context(), actorOf(r), j.ID)
	switch {
	case errors.Is(err, store.ErrConflict):
		setFlash(w, web.FlashError, fmt.Sprintf("Job %d has already ended.", j.ID))
	case err != nil:
		return err
	default:
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
