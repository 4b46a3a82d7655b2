package handlers

import (
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
	sums, err := h.sourceSummaries(r.Context())
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
	if vm.EarliestRestorable, vm.LatestRestorable, err = h.restorable(ctx, s); err != nil {
		return err
	}
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
	return h.page(w, r, s.Name, web.NavSources, web.SourcePage(vm))
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
