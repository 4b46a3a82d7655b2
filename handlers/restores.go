package handlers

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

func (h *Handler) showRestores(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	names, err := h.sourceNames(ctx)
	if err != nil {
		return err
	}
	xs, err := h.store.Restores(ctx, false)
	if err != nil {
		return err
	}
	vm := web.RestoresVM{Now: h.now()}
	for _, x := range xs {
		x.State = h.svc.InstanceState(ctx, x)
		vm.Rows = append(vm.Rows, restoreRow(x, names[x.SourceID]))
	}
	return h.page(w, r, "Restores", web.NavRestores, web.RestoresPage(vm))
}

func restoreRow(x store.Restore, sourceName string) web.RestoreRow {
	row := web.RestoreRow{ID: x.ID, SourceID: x.SourceID, SourceName: sourceName, Target: restoreTargetVM(x),
		State: string(x.State), Port: x.Port, DataDir: x.DataDir, CreatedAt: x.CreatedAt, JobID: x.JobID, Error: x.Error}
	row.DSN = usecase.ConnString(x)
	return row
}

// restoreTargetVM reads a restore's recorded target back for display.
func restoreTargetVM(x store.Restore) web.RestoreTarget {
	t, err := jobs.ParseTarget(x.Target)
	if err != nil {
		return web.RestoreTarget{Kind: web.TargetLatest}
	}
	vm := targetVM(t)
	if t.Kind == jobs.TargetLatest && x.LastCommitAt != nil {
		vm.Time = *x.LastCommitAt
	}
	return vm
}

func restoreFrom(r *http.Request) store.Restore {
	return r.Context().Value(restoreKey).(store.Restore)
}

// changeRestore starts one action on a restored instance (as a job: stopping or deleting
// a server is not done inside a request) and returns to the list.
func (h *Handler) changeRestore(action string) appHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		x := restoreFrom(r)
		job, err := h.svc.ChangeInstance(r.Context(), actorOf(r), x.ID, action)
		var ce *usecase.ConflictError
		var le *store.LockedError
		switch {
		case errors.As(err, &ce):
			setFlash(w, web.FlashError, usecase.Sentence(ce.Message))
		case errors.As(err, &le):
			setFlash(w, web.FlashError, fmt.Sprintf("Restored instance %d is busy with job %d: wait for it to end.", x.ID, le.JobID))
		case err != nil:
			return err
		default:
			setFlash(w, web.FlashSuccess, fmt.Sprintf("Restored instance %d: %s started as job %d.", x.ID, action, job.ID))
		}
		http.Redirect(w, r, "/restores", http.StatusSeeOther)
		return nil
	}
}
