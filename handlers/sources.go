package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

func (h *Handler) showSourceList(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(withHealthMemo(r.Context()))
	sums, err := h.summaries(r.Context(), false)
	if err != nil {
		return err
	}
	return h.page(w, r, "Sources", web.NavSources, web.SourcesPage(web.SourcesVM{Now: h.now(), Sources: sums}))
}

func (h *Handler) showSourceNew(w http.ResponseWriter, r *http.Request) error {
	return h.page(w, r, "Add source", web.NavSources, web.SourceNewPage(web.SourceFormVM{}))
}

// createSource checks the database and registers it; a failed check shows the form again
// with the message next to the field at fault, and nothing is saved.
func (h *Handler) createSource(w http.ResponseWriter, r *http.Request) error {
	form := web.SourceFormVM{Name: strings.TrimSpace(r.PostFormValue("name")), DSN: strings.TrimSpace(r.PostFormValue("dsn"))}
	src, warnings, err := h.svc.AddSource(r.Context(), actorOf(r), form.Name, form.DSN)
	var ve *store.ValidationError
	var ce *usecase.CheckError
	switch {
	case errors.As(err, &ve) && ve.Field == "name":
		form.Errors = map[string]string{"name": usecase.Sentence("Name " + ve.Message)}
		if strings.HasPrefix(ve.Message, "a source") {
			form.Errors["name"] = usecase.Sentence(ve.Message)
		}
	case errors.As(err, &ve):
		form.Errors = map[string]string{ve.Field: usecase.Sentence(ve.Message)}
	case errors.As(err, &ce):
		// Every check is about the database the DSN points at; the message says which part.
		form.Errors, form.Hint = map[string]string{"dsn": ce.Message}, ce.Hint
	case err != nil:
		return err
	}
	if form.Errors != nil {
		// The password stays out of the refilled form.
		if masked := usecase.MaskDSN(form.DSN); masked != form.DSN {
			form.DSN = masked
			form.Errors["dsn"] = strings.TrimSpace(form.Errors["dsn"] + " The password was removed from the form: enter it again.")
		}
		return h.showSourceForm(w, r, form)
	}
	msg := fmt.Sprintf("Source %s added: PostgreSQL %s, system %s.", src.Name, pgVersion(src.PGVersion), src.SystemIdentifier)
	for _, w := range warnings {
		msg += " " + w
	}
	setFlash(w, web.FlashSuccess, msg)
	http.Redirect(w, r, fmt.Sprintf("/sources/%d", src.ID), http.StatusSeeOther)
	return nil
}

// showSourceForm shows the add-source form again with its errors.
func (h *Handler) showSourceForm(w http.ResponseWriter, r *http.Request, form web.SourceFormVM) error {
	vm := web.LayoutVM{Title: "Add source", Nav: web.NavSources}
	if u, ok := userFrom(r.Context()); ok {
		vm.UserName = u.Name
	}
	return render(w, r, http.StatusUnprocessableEntity, web.Layout(vm, web.SourceNewPage(form)))
}

func (h *Handler) showSource(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(withHealthMemo(r.Context()))
	ctx := r.Context()
	s := sourceFrom(r)
	vm := web.SourceVM{Now: h.now(), ID: s.ID, Name: s.Name, MaskedDSN: usecase.MaskDSN(s.DSN),
		SystemIdentifier: s.SystemIdentifier, PGVersion: pgVersion(s.PGVersion), Timeline: s.Timeline,
		DataChecksums: s.DataChecksums != nil && *s.DataChecksums, CreatedAt: s.CreatedAt}
	bs, err := h.store.Backups(ctx, store.BackupFilter{SourceID: s.ID, Limit: 20})
	if err != nil {
		return err
	}
	for _, b := range bs {
		vm.Backups = append(vm.Backups, backupRow(b, s.Name))
	}
	js, err := h.store.Jobs(ctx, store.JobFilter{SourceID: s.ID, Limit: 10})
	if err != nil {
		return err
	}
	for _, j := range js {
		vm.Jobs = append(vm.Jobs, jobRow(j, s.Name))
	}
	if vm.ActiveJob, err = h.activeJob(ctx, s.ID); err != nil {
		return err
	}
	win, unknown, err := h.keptWindow(ctx, s)
	if err != nil {
		return err
	}
	vm.EarliestRestorable, vm.LatestRestorable, vm.Window = win.Earliest, win.Latest, windowStateVM(win, unknown)
	tcs, err := h.store.TablespaceCreations(ctx, s.ID)
	if err != nil {
		return err
	}
	for _, tc := range jobs.BlockingTablespaces(bs, tcs) {
		vm.Tablespaces = append(vm.Tablespaces, web.TablespaceNoteVM{OID: tc.OID, Location: tc.Location, LSN: tc.LSN})
	}
	if vm.Health, err = h.sourceHealth(ctx, s); err != nil {
		return err
	}
	if vm.Archiver, err = h.archiverVM(ctx, s); err != nil {
		return err
	}
	if err := h.withIntegrity(ctx, &vm); err != nil {
		return err
	}
	return h.page(w, r, s.Name, web.NavSources, web.SourcePage(vm))
}

// sourceRuns is how many verifications and drills the source page lists; findingsShown
// how many findings of each run.
const (
	sourceRuns    = 10
	findingsShown = 5
)

// withIntegrity adds the source page's verifications with their first findings, its
// drills, and the verification or drill queued or running now.
func (h *Handler) withIntegrity(ctx context.Context, vm *web.SourceVM) error {
	runs, err := h.store.VerifyRuns(ctx, vm.ID, sourceRuns)
	if err != nil {
		return err
	}
	for _, v := range runs {
		row := verifyRunRow(v)
		if v.Findings > 0 {
			fs, err := h.store.VerifyFindings(ctx, v.ID, findingsShown)
			if err != nil {
				return err
			}
			for _, f := range fs {
				row.FindingRows = append(row.FindingRows, findingRow(f))
			}
		}
		vm.VerifyRuns = append(vm.VerifyRuns, row)
	}
	ds, err := h.store.Drills(ctx, vm.ID, sourceRuns)
	if err != nil {
		return err
	}
	for _, d := range ds {
		vm.Drills = append(vm.Drills, drillRow(d))
	}
	if vm.VerifyJob, err = h.activeJobOf(ctx, jobs.VerifyLockKey(vm.ID)); err != nil {
		return err
	}
	vm.DrillJob, err = h.activeJobOf(ctx, jobs.DrillLockKey(vm.ID))
	return err
}

// activeJobOf is the live progress of the queued or running job holding lockKey, if any.
func (h *Handler) activeJobOf(ctx context.Context, lockKey string) (*web.JobProgressVM, error) {
	j, err := h.store.ActiveJobByLock(ctx, lockKey)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := jobProgress(j)
	return &p, nil
}

// startVerify starts a verification of the source, routine or with ?deep=1 deep, and
// sends the user to its job's page; one already queued or running is shown instead.
func (h *Handler) startVerify(w http.ResponseWriter, r *http.Request) error {
	s := sourceFrom(r)
	deep := r.FormValue("deep") == "1"
	job, err := h.svc.StartVerify(r.Context(), actorOf(r), s.ID, deep, false)
	var le *store.LockedError
	if errors.As(err, &le) {
		setFlash(w, web.FlashError, fmt.Sprintf("A verification of %s is already queued or running (job %d).", s.Name, le.JobID))
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", le.JobID), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	kind := "Verification"
	if deep {
		kind = "Deep verification"
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("%s of %s started as job %d.", kind, s.Name, job.ID))
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
	return nil
}

// startDrill starts a restore drill of the source and sends the user to its job's page. A
// drill that cannot run (nothing restorable, no sandbox) is refused on the source page with
// the reason, having started nothing.
func (h *Handler) startDrill(w http.ResponseWriter, r *http.Request) error {
	s := sourceFrom(r)
	job, err := h.svc.StartDrill(r.Context(), actorOf(r), s.ID)
	var le *store.LockedError
	var ce *usecase.ConflictError
	var te *jobs.TargetError
	var fe *usecase.ForbiddenError
	switch {
	case errors.As(err, &le):
		setFlash(w, web.FlashError, fmt.Sprintf("A drill of %s is already queued or running (job %d).", s.Name, le.JobID))
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", le.JobID), http.StatusSeeOther)
		return nil
	case errors.As(err, &fe):
		return err
	case errors.As(err, &ce), errors.As(err, &te):
		setFlash(w, web.FlashError, usecase.Sentence(err.Error()))
		http.Redirect(w, r, fmt.Sprintf("/sources/%d", s.ID), http.StatusSeeOther)
		return nil
	case err != nil:
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Restore drill of %s started as job %d.", s.Name, job.ID))
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
	return nil
}

// startBackup enqueues a full backup of the source and sends the user to the job's page.
func (h *Handler) startBackup(w http.ResponseWriter, r *http.Request) error {
	s := sourceFrom(r)
	job, err := h.svc.StartBackup(r.Context(), actorOf(r), s.ID)
	var le *store.LockedError
	if errors.As(err, &le) {
		setFlash(w, web.FlashError, fmt.Sprintf("A backup of %s is already queued or running (job %d).", s.Name, le.JobID))
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", le.JobID), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Backup of %s started as job %d.", s.Name, job.ID))
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
	return nil
}
