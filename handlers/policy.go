package handlers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

const (
	// scheduleRunsShown and expirationsShown bound the policy page's tables.
	scheduleRunsShown = 10
	expirationsShown  = 20
	// storagePeriod is how far back the storage chart reaches.
	storagePeriod = 90 * 24 * time.Hour
)

// showPolicy is a source's schedule and retention page, with the dry run of the saved
// policy (or of the defaults, for a source without one).
func (h *Handler) showPolicy(w http.ResponseWriter, r *http.Request) error {
	src := sourceFrom(r)
	vm, err := h.policyVM(r.Context(), actorOf(r), src, nil)
	if err != nil {
		return err
	}
	return h.policyPage(w, r, http.StatusOK, vm)
}

// previewPolicy shows what the form's policy would delete now, without saving it: htmx
// gets the form and the preview alone, a browser without script the whole page.
func (h *Handler) previewPolicy(w http.ResponseWriter, r *http.Request) error {
	src := sourceFrom(r)
	form, in := policyForm(r.PostFormValue)
	vm, err := h.policyVM(r.Context(), actorOf(r), src, &editedPolicy{form: form, in: in})
	if err != nil {
		return err
	}
	if r.Header.Get("HX-Request") == "true" {
		// A fragment with errors is still swapped in: htmx leaves 4xx answers alone.
		return render(w, r, http.StatusOK, web.PolicyEditor(vm.Editor))
	}
	status := http.StatusOK
	if len(vm.Editor.Form.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	return h.policyPage(w, r, status, vm)
}

// savePolicy stores the form's policy through the use case, which checks it; errors
// come back next to their fields and nothing is saved. Saving deletes nothing.
func (h *Handler) savePolicy(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a := actorOf(r)
	src := sourceFrom(r)
	form, in := policyForm(r.PostFormValue)
	if len(form.Errors) == 0 {
		saved, err := h.svc.SetPolicy(ctx, a, src.ID, in)
		var ie *usecase.InputError
		switch {
		case err == nil:
			msg := fmt.Sprintf("Policy of %s saved. Nothing was deleted: expiry applies it within the hour, or when you select Apply now.", src.Name)
			if rp, err := jobs.PolicyOf(saved); err == nil {
				msg = fmt.Sprintf("Policy of %s saved: %s. Nothing was deleted: expiry applies it within the hour, or when you select Apply now.",
					src.Name, rp.Describe())
			}
			setFlash(w, web.FlashSuccess, msg)
			http.Redirect(w, r, policyPath(src.ID), http.StatusSeeOther)
			return nil
		case errors.As(err, &ie):
			form.Errors = policyErrors(ie)
		default:
			return err
		}
	} else if err := usecase.Authorize(a, usecase.SetPolicy); err != nil {
		// A form that could not even be read is refused as the use case would refuse it.
		return err
	}
	vm, err := h.policyVM(ctx, a, src, &editedPolicy{form: form, in: in})
	if err != nil {
		return err
	}
	return h.policyPage(w, r, http.StatusUnprocessableEntity, vm)
}

// applyPolicy starts expiry of the source's saved policy once its name was typed, and
// shows the job.
func (h *Handler) applyPolicy(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	a := actorOf(r)
	src := sourceFrom(r)
	confirm := r.PostFormValue("confirm")
	job, err := h.svc.Expire(ctx, a, src.ID, &confirm)
	var ie *usecase.InputError
	if errors.As(err, &ie) {
		vm, err := h.policyVM(ctx, a, src, nil)
		if err != nil {
			return err
		}
		vm.Editor.Confirm = strings.TrimSpace(confirm)
		vm.Editor.ConfirmError = ie.Fields["confirm"]
		return h.policyPage(w, r, http.StatusUnprocessableEntity, vm)
	}
	var le *store.LockedError
	if errors.As(err, &le) {
		setFlash(w, web.FlashError, fmt.Sprintf("Expiry or pruning is already queued or running (job %d): it applies the saved policies.", le.JobID))
		http.Redirect(w, r, fmt.Sprintf("/jobs/%d", le.JobID), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Expiry of %s started as job %d.", src.Name, job.ID))
	http.Redirect(w, r, fmt.Sprintf("/jobs/%d", job.ID), http.StatusSeeOther)
	return nil
}

// pinBackup pins a backup (legal hold) with the form's note.
func (h *Handler) pinBackup(w http.ResponseWriter, r *http.Request) error {
	b := backupFrom(r)
	note := strings.TrimSpace(r.PostFormValue("note"))
	if len(note) > 500 {
		note = note[:500]
	}
	if _, err := h.svc.PinBackup(r.Context(), actorOf(r), b.ID, note); err != nil {
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Backup %d pinned: no retention policy expires it until it is unpinned.", b.ID))
	http.Redirect(w, r, pinReturn(r, b), http.StatusSeeOther)
	return nil
}

// unpinBackup removes a backup's pin.
func (h *Handler) unpinBackup(w http.ResponseWriter, r *http.Request) error {
	b := backupFrom(r)
	if _, err := h.svc.UnpinBackup(r.Context(), actorOf(r), b.ID); err != nil {
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Backup %d unpinned: its source's policy may expire it from now on.", b.ID))
	http.Redirect(w, r, pinReturn(r, b), http.StatusSeeOther)
	return nil
}

// pinReturn is where a pin form returns: its source's policy page, at the backup, or
// the backup's own page. Only these two, so that the parameter cannot send anyone
// elsewhere.
func pinReturn(r *http.Request, b store.Backup) string {
	if r.PostFormValue("next") == web.PinReturnPolicy {
		return fmt.Sprintf("%s#plan-backup-%d", policyPath(b.SourceID), b.ID)
	}
	return fmt.Sprintf("/backups/%d", b.ID)
}

func policyPath(sourceID int64) string { return fmt.Sprintf("/sources/%d/policy", sourceID) }

func (h *Handler) policyPage(w http.ResponseWriter, r *http.Request, status int, vm web.PolicyVM) error {
	return h.pageStatus(w, r, status, "Schedule and retention of "+vm.SourceName, web.NavSources, web.PolicyPage(vm))
}

// editedPolicy is a policy form as submitted: its values, the input they make, and the
// errors found reading them (in form.Errors).
type editedPolicy struct {
	form web.PolicyFormVM
	in   usecase.PolicyInput
}

// policyVM builds the policy page. With edited, the form shows it and the preview is
// of it; otherwise the form shows the saved policy (or the defaults) and the preview
// is of the saved policy (or of the defaults, marked unsaved).
func (h *Handler) policyVM(ctx context.Context, a usecase.Actor, src store.Source, edited *editedPolicy) (web.PolicyVM, error) {
	now := h.now()
	vm := web.PolicyVM{Now: now, SourceID: src.ID, SourceName: src.Name}
	saved, err := h.svc.Policy(ctx, a, src.ID)
	switch {
	case err == nil:
		s := savedPolicyVM(src, saved, now)
		vm.Saved = &s
	case !isNotFound(err):
		return vm, err
	}
	ed := web.PolicyEditorVM{Now: now, SourceID: src.ID, SourceName: src.Name, HasSaved: vm.Saved != nil}

	var preview *usecase.PolicyInput
	switch {
	case edited != nil:
		ed.Form = edited.form
		preview = &edited.in
	case vm.Saved != nil:
		ed.Form = policyFormOf(usecase.PolicyInputOf(saved))
	default:
		def := usecase.DefaultPolicy
		ed.Form = policyFormOf(def)
		preview = &def
	}
	if len(ed.Form.Errors) > 0 {
		ed.Preview = web.PolicyPreviewVM{Unsaved: true, Error: "Correct the fields marked above to preview this policy."}
	} else {
		plan, err := h.svc.PreviewExpiry(ctx, a, src.ID, preview)
		var ie *usecase.InputError
		switch {
		case err == nil:
			ed.Preview = previewVM(plan, preview != nil)
		case errors.As(err, &ie):
			ed.Form.Errors = policyErrors(ie)
			ed.Preview = web.PolicyPreviewVM{Unsaved: true, Error: "Correct the fields marked above to preview this policy."}
		default:
			var fe *usecase.ForbiddenError
			if errors.As(err, &fe) {
				return vm, err
			}
			h.log.Error("preview expiry", "source", src.Name, "err", err)
			ed.Preview = web.PolicyPreviewVM{Unsaved: preview != nil, Error: previewFailure(err)}
		}
	}
	vm.Editor = ed

	if vm.Saved != nil {
		if vm.Runs, err = h.scheduleRuns(ctx, src.ID); err != nil {
			return vm, err
		}
	}
	storage, err := h.storage(ctx)
	if err != nil {
		return vm, err
	}
	vm.Storage = web.StorageVM{Since: now.Add(-storagePeriod)}
	if storage != nil {
		vm.Storage = *storage
	}
	xs, err := h.store.Expirations(ctx, src.ID, store.ExpireBackup, expirationsShown)
	if err != nil {
		return vm, err
	}
	for _, x := range xs {
		vm.Expired = append(vm.Expired, web.ExpiredBackupVM{BackupID: x.BackupID, Manifest: x.Name, Bytes: x.Bytes,
			Reason: x.Reason, ExpiredAt: x.ExpiredAt, Deleted: x.DoneAt != nil, JobID: x.JobID})
	}
	return vm, nil
}

// previewFailure says why a preview could not be made. A plan that would lose a second
// of the window is refused by the planner with the second it names, which the operator
// must see; other failures stay in the log.
func previewFailure(err error) string {
	var ce *usecase.ConflictError
	switch {
	case errors.As(err, &ce):
		return usecase.Sentence(ce.Message)
	case errors.Is(err, jobs.ErrPlanRefused):
		return usecase.Sentence(err.Error())
	}
	return "Backstop could not compute the preview; the server log has the details."
}

// savedPolicyVM describes a stored policy, with the schedule's next run.
func savedPolicyVM(src store.Source, p store.Policy, now time.Time) web.SavedPolicyVM {
	vm := web.SavedPolicyVM{BackupCron: p.BackupCron, TimeZone: p.TimeZone, UpdatedAt: p.UpdatedAt, UpdatedBy: p.UpdatedBy}
	rp, err := jobs.PolicyOf(p)
	if err != nil {
		vm.Retention = err.Error()
		return vm
	}
	vm.Retention = rp.Describe()
	if p.BackupCron == "" {
		return vm
	}
	sched, err := jobs.ParseSchedule(p.BackupCron, p.TimeZone)
	if err != nil {
		return vm
	}
	if vm.NextRun, vm.Jitter = jobs.NextRun(sched, src.Name, jobs.ScheduleBackup, now); !vm.NextRun.IsZero() {
		vm.NextRunLocal = vm.NextRun.In(rp.Location).Format("Mon Jan 2 15:04 MST")
	}
	return vm
}

// scheduleRuns are a source's last schedule runs with their jobs' states.
func (h *Handler) scheduleRuns(ctx context.Context, sourceID int64) ([]web.ScheduleRunVM, error) {
	runs, err := h.store.ScheduleRuns(ctx, sourceID, scheduleRunsShown)
	if err != nil {
		return nil, err
	}
	out := make([]web.ScheduleRunVM, 0, len(runs))
	for _, x := range runs {
		r := web.ScheduleRunVM{DueAt: x.DueAt, QueuedAt: x.QueuedAt, Late: x.Late, Missed: x.Missed, JobID: x.JobID, Note: x.Note}
		if x.JobID != 0 {
			j, err := h.store.Job(ctx, x.JobID)
			switch {
			case err == nil:
				r.JobState = string(j.State)
			case !isNotFound(err):
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// previewVM is an expiry plan as the page shows it: every backup newest first, kept
// with its rules or expiring with the reason.
func previewVM(plan jobs.ExpiryPlan, unsaved bool) web.PolicyPreviewVM {
	vm := web.PolicyPreviewVM{Unsaved: unsaved, Policy: plan.Policy.Describe(), Summary: plan.Summary(),
		Before: windowSpanVM(plan.Before), After: windowSpanVM(plan.After), ExpiringBytes: plan.ExpiredBytes(),
		WALFiles: len(plan.WAL), WALBytes: plan.WALBytes}
	if len(plan.WAL) > 0 {
		vm.FirstWAL, vm.LastWAL, vm.KeepWALFrom = plan.WAL[0].Name, plan.WAL[len(plan.WAL)-1].Name, plan.KeepWALFrom.String()
	}
	for _, k := range plan.Kept {
		b := planBackupVM(k.Backup, k.At)
		for _, rule := range k.Rules {
			b.Rules = append(b.Rules, string(rule))
		}
		vm.Backups = append(vm.Backups, b)
	}
	for _, e := range plan.Expired {
		b := planBackupVM(e.Backup, e.At)
		b.Reason = e.Reason
		vm.Backups = append(vm.Backups, b)
	}
	slices.SortStableFunc(vm.Backups, func(x, y web.PlanBackupVM) int {
		if c := y.ConsistentAt.Compare(x.ConsistentAt); c != 0 {
			return c
		}
		return cmp.Compare(y.ID, x.ID)
	})
	return vm
}

func planBackupVM(b store.Backup, at time.Time) web.PlanBackupVM {
	vm := web.PlanBackupVM{ID: b.ID, ConsistentAt: at, SourceBytes: b.Stats.SourceBytes, StoredNewBytes: b.Stats.StoredBytesNew}
	vm.Pin = pinVM(b.Pin)
	return vm
}

func pinVM(p *store.Pin) *web.PinVM {
	if p == nil {
		return nil
	}
	return &web.PinVM{At: p.At, By: p.By, Note: p.Note}
}

func windowSpanVM(w jobs.Window) web.WindowSpanVM {
	return web.WindowSpanVM{Earliest: w.Earliest, Latest: w.Latest, Text: w.String(), Gaps: len(w.Gaps)}
}

// policyForm reads the policy form. Values that are not numbers are errors by field;
// everything else is the use case's to check.
func policyForm(get func(string) string) (web.PolicyFormVM, usecase.PolicyInput) {
	f := web.PolicyFormVM{
		BackupCron: strings.TrimSpace(get(web.FieldBackupCron)), TimeZone: strings.TrimSpace(get(web.FieldTimeZone)),
		WindowDays: strings.TrimSpace(get(web.FieldWindowDays)),
		KeepLast:   strings.TrimSpace(get(web.FieldKeepLast)), Daily: strings.TrimSpace(get(web.FieldDaily)),
		Weekly: strings.TrimSpace(get(web.FieldWeekly)), Monthly: strings.TrimSpace(get(web.FieldMonthly)),
		Yearly: strings.TrimSpace(get(web.FieldYearly)), MinKeep: strings.TrimSpace(get(web.FieldMinKeep)),
		ArchiveYears: strings.TrimSpace(get(web.FieldArchiveYears)),
		VerifyCron:   strings.TrimSpace(get(web.FieldVerifyCron)), DrillCron: strings.TrimSpace(get(web.FieldDrillCron)),
		RPOSeconds: strings.TrimSpace(get(web.FieldRPOSeconds)),
	}
	in := usecase.PolicyInput{BackupCron: f.BackupCron, TimeZone: f.TimeZone, VerifyCron: f.VerifyCron, DrillCron: f.DrillCron}
	errs := map[string]string{}
	var err error
	if in.Window, err = web.ParseWindowDays(f.WindowDays); err != nil {
		errs[web.FieldWindowDays] = usecase.Sentence(err.Error())
	}
	for _, c := range []struct {
		name, value string
		dst         *int
	}{
		{web.FieldKeepLast, f.KeepLast, &in.KeepLast}, {web.FieldDaily, f.Daily, &in.Daily},
		{web.FieldWeekly, f.Weekly, &in.Weekly}, {web.FieldMonthly, f.Monthly, &in.Monthly},
		{web.FieldYearly, f.Yearly, &in.Yearly}, {web.FieldMinKeep, f.MinKeep, &in.MinKeep},
		{web.FieldArchiveYears, f.ArchiveYears, &in.ArchiveYears},
	} {
		if c.value == "" {
			continue
		}
		n, err := strconv.Atoi(c.value)
		if err != nil || n < 0 {
			errs[c.name] = "Enter a whole number, 0 or more."
			continue
		}
		*c.dst = n
	}
	if f.RPOSeconds != "" {
		if n, err := strconv.Atoi(f.RPOSeconds); err != nil || n <= 0 {
			errs[web.FieldRPOSeconds] = "Enter a whole number of seconds, 1 or more, or nothing for the default (60)."
		} else {
			in.RPO = time.Duration(n) * time.Second
		}
	}
	if len(errs) > 0 {
		f.Errors = errs
	}
	return f, in
}

// policyFormOf is the form showing a policy.
func policyFormOf(in usecase.PolicyInput) web.PolicyFormVM {
	return web.PolicyFormVM{BackupCron: in.BackupCron, TimeZone: in.TimeZone, WindowDays: web.FormatWindowDays(in.Window),
		KeepLast: strconv.Itoa(in.KeepLast), Daily: strconv.Itoa(in.Daily), Weekly: strconv.Itoa(in.Weekly),
		Monthly: strconv.Itoa(in.Monthly), Yearly: strconv.Itoa(in.Yearly), MinKeep: strconv.Itoa(in.MinKeep),
		ArchiveYears: strconv.Itoa(in.ArchiveYears), VerifyCron: in.VerifyCron, DrillCron: in.DrillCron, RPOSeconds: rpoSeconds(in.RPO)}
}

// rpoSeconds writes an RPO objective for the form: "" for the default.
func rpoSeconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

// policyErrors places the use case's errors on the form's fields.
func policyErrors(ie *usecase.InputError) map[string]string {
	errs := map[string]string{}
	for k, msg := range ie.Fields {
		switch k {
		case "window":
			errs[web.FieldWindowDays] = msg
		case "rpo":
			errs[web.FieldRPOSeconds] = msg
		case "policy":
			// The retention package names its rules; the form shows them under its own labels.
			errs[web.FieldPolicy] = usecase.Sentence(strings.TrimPrefix(msg, "Retention: "))
		default:
			errs[k] = msg
		}
	}
	return errs
}

// storage is the repository's size over the last storagePeriod; nil when it was never
// measured.
func (h *Handler) storage(ctx context.Context) (*web.StorageVM, error) {
	since := h.now().Add(-storagePeriod)
	samples, err := h.store.StorageSamples(ctx, since)
	if err != nil || len(samples) == 0 {
		return nil, err
	}
	vm := &web.StorageVM{Since: since}
	for _, x := range samples {
		vm.Samples = append(vm.Samples, web.StorageSampleVM{At: x.At, Bytes: x.Bytes, DeadBytes: x.DeadBytes})
	}
	return vm, nil
}
