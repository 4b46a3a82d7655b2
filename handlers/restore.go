package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// showRestore is the "Restore to a point in time" page; with a target in the query it
// shows the plan for it (or why it cannot be restored).
func (h *Handler) showRestore(w http.ResponseWriter, r *http.Request) error {
	src := sourceFrom(r)
	q := r.URL.Query()
	form := restoreForm(q.Get, q.Has("mode"))
	vm, err := h.restoreVM(r.Context(), actorOf(r), src, form, q.Has("mode"))
	if err != nil {
		return err
	}
	return h.page(w, r, "Restore "+src.Name, web.NavSources, web.RestorePage(vm))
}

// restoreForm reads the restore form's fields; submitted says whether the form was sent
// (an unchecked checkbox sends nothing).
func restoreForm(get func(string) string, submitted bool) web.RestoreFormVM {
	f := web.RestoreFormVM{Mode: get("mode"), Target: strings.TrimSpace(get("target")), LSN: strings.TrimSpace(get("lsn")),
		Point: get("point"), Inclusive: !submitted || get("inclusive") == "on", Into: get("into"),
		Port: strings.TrimSpace(get("port")), Dir: strings.TrimSpace(get("dir")), Confirm: strings.TrimSpace(get("confirm"))}
	if f.Mode == "" {
		f.Mode = web.TargetLatest
	}
	if f.Into == "" {
		f.Into = web.IntoInstance
	}
	return f
}

// restoreVM builds the restore page: the window, and the plan when withPlan.
func (h *Handler) restoreVM(ctx context.Context, a usecase.Actor, src store.Source, form web.RestoreFormVM, withPlan bool) (web.RestoreVM, error) {
	vm := web.RestoreVM{Now: h.now(), SourceID: src.ID, SourceName: src.Name, PGVersion: pgVersion(src.PGVersion),
		Form: form, Errors: map[string]string{}}
	in, win, err := h.svc.Window(ctx, a, src)
	if errors.Is(err, jobs.ErrWindowUnknown) {
		vm.Window.State.Unknown = true
		return vm, nil
	}
	if err != nil {
		return vm, err
	}
	vm.Window = windowVM(win)
	for i := len(win.RestorePoints) - 1; i >= 0; i-- {
		p := win.RestorePoints[i]
		vm.RestorePoints = append(vm.RestorePoints, web.RestorePointVM{Name: p.Name, At: p.At, LSN: p.LSN.String()})
	}
	if vm.Form.Port == "" {
		vm.Form.Port = strconv.Itoa(h.svc.SuggestPort(ctx))
	}
	if vm.Form.Target == "" && !win.Latest.IsZero() {
		vm.Form.Target = web.FormatTargetTime(win.Latest)
	}
	if !withPlan || win.Latest.IsZero() {
		return vm, nil
	}
	target, err := formTarget(form)
	if err != nil {
		vm.Errors["target"] = err.Error()
		return vm, nil
	}
	plan, err := jobs.PlanRestore(in, target, usecase.RestoreThroughput)
	var te *jobs.TargetError
	switch {
	case errors.As(err, &te):
		vm.PlanError = refusalVM(te)
	case err != nil:
		vm.Errors[""] = err.Error()
	default:
		p := planVM(plan)
		if b, err := h.store.Backup(ctx, plan.Backup.ID); err == nil {
			p.BackupStoredBytes, p.BackupRestoredBytes = b.Stats.StoredBytesReferenced, b.Stats.SourceBytes
		}
		vm.Plan = &p
	}
	return vm, nil
}

// formTargetText turns the form's target fields into the text jobs.ParseTarget reads, and
// whether the target is inclusive.
func formTargetText(f web.RestoreFormVM) (string, bool) {
	switch f.Mode {
	case web.TargetTime:
		t, err := web.ParseTargetTime(f.Target)
		if err != nil {
			return "time:" + f.Target, f.Inclusive // refused by ParseTarget with the reason
		}
		return t.Format(time.RFC3339Nano), f.Inclusive
	case web.TargetLSN:
		return "lsn:" + f.LSN, f.Inclusive
	case web.TargetName:
		return "name:" + f.Point, true
	}
	return "latest", true
}

// formTarget turns the form's target fields into a restore target.
func formTarget(f web.RestoreFormVM) (jobs.Target, error) {
	if f.Mode == web.TargetTime {
		if _, err := web.ParseTargetTime(f.Target); err != nil {
			return jobs.Target{}, err
		}
	}
	text, inclusive := formTargetText(f)
	t, err := jobs.ParseTarget(text)
	if err != nil {
		return jobs.Target{}, err
	}
	if f.Mode == web.TargetTime || f.Mode == web.TargetLSN {
		t.Inclusive = inclusive
	}
	return t, nil
}

func windowVM(w jobs.Window) web.RestoreWindowVM {
	vm := web.RestoreWindowVM{Earliest: w.Earliest, Latest: w.Latest, Timeline: int64(w.Timeline), State: windowStateVM(w, false)}
	for _, b := range w.Backups {
		vm.Backups = append(vm.Backups, web.WindowBackup{ID: b.ID, ConsistentAt: b.ConsistentAt})
	}
	for _, g := range w.Gaps {
		wg := web.WindowGap{From: g.RestorableUntil, FirstMissing: g.Segment}
		// The gap ends where the next range starts, if one does.
		for _, r := range w.Ranges {
			if r.From.After(g.RestorableUntil) {
				wg.To = r.From
				break
			}
		}
		if wg.To.IsZero() {
			wg.To = w.Latest
		}
		vm.Gaps = append(vm.Gaps, wg)
	}
	return vm
}

func targetVM(t jobs.Target) web.RestoreTarget {
	vm := web.RestoreTarget{Kind: string(t.Kind), Time: t.Time, Name: t.Name, Inclusive: t.Inclusive}
	if t.LSN != 0 {
		vm.LSN = t.LSN.String()
	}
	if t.Kind == jobs.TargetImmediate {
		vm.Kind = web.TargetLSN
	}
	return vm
}

func planVM(p jobs.Plan) web.RestorePlanVM {
	vm := web.RestorePlanVM{Target: targetVM(p.Target), Timeline: int64(p.Timeline), BackupID: p.Backup.ID,
		BackupConsistentAt: p.Backup.ConsistentAt, WALFromLSN: p.WALFrom.String(), WALToLSN: p.WALTo.String(),
		WALFiles: int64(len(p.WAL)), WALBytes: p.WALBytes, Estimate: p.EstimatedDuration}
	keys := make([]string, 0, len(p.Recovery))
	for k := range p.Recovery {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, p.Recovery[k])
	}
	vm.RecoverySettings = strings.TrimRight(b.String(), "\n")
	return vm
}

func refusalVM(te *jobs.TargetError) *web.PlanRefusalVM {
	vm := &web.PlanRefusalVM{Message: usecase.Sentence(te.Error())}
	switch {
	case !te.NearestTime.IsZero():
		vm.Nearest = &web.RestoreTarget{Kind: web.TargetTime, Time: te.NearestTime, Inclusive: true}
		vm.NearestNote = "the nearest restorable time"
	case te.NearestLSN != 0:
		vm.Nearest = &web.RestoreTarget{Kind: web.TargetLSN, LSN: te.NearestLSN.String(), Inclusive: true}
		vm.NearestNote = "the nearest restorable position"
	}
	return vm
}

// startRestore hands the form to the use case, which checks everything (role, the typed
// confirmation, target and plan, directory, port) and starts the restore; then it shows the
// job. A refused restore shows the form again with each reason next to its field, and
// nothing was written.
func (h *Handler) startRestore(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a := actorOf(r)
	src := sourceFrom(r)
	form := restoreForm(r.PostFormValue, true)
	text, inclusive := formTargetText(form)
	req := usecase.RestoreRequest{SourceID: src.ID, Target: text, Exclusive: !inclusive, Confirm: &form.Confirm, Owner: defaultOwner()}
	if form.Into == web.IntoDir {
		req.Into = form.Dir
	} else if req.Port, _ = strconv.Atoi(form.Port); req.Port == 0 {
		req.Port = -1 // not a number: refused with the range
	}
	job, _, err := h.svc.StartRestore(ctx, a, req)
	var ie *usecase.InputError
	var te *jobs.TargetError
	switch {
	case err == nil:
		setFlash(w, web.FlashSuccess, fmt.Sprintf("Restore of %s started as job %d.", src.Name, job.ID))
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
		return nil
	case errors.As(err, &ie), errors.As(err, &te):
	default:
		return err
	}
	vm, verr := h.restoreVM(ctx, a, src, form, true)
	if verr != nil {
		return verr
	}
	if ie != nil {
		maps.Copy(vm.Errors, ie.Fields)
	}
	if te != nil && vm.PlanError == nil {
		vm.PlanError = refusalVM(te)
	}
	if vm.Plan == nil && vm.PlanError == nil && len(vm.Errors) == 0 {
		vm.Errors[""] = "Nothing can be restored yet: the source needs a complete backup."
	}
	return h.pageStatus(w, r, http.StatusUnprocessableEntity, "Restore "+src.Name, web.NavSources, web.RestorePage(vm))
}

// defaultOwner is the OS user restored files belong to: postgres when running as root.
func defaultOwner() string {
	if os.Geteuid() == 0 {
		return "postgres"
	}
	return ""
}
