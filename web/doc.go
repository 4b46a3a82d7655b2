// Package web renders Backstop's HTML: the layout, one component per page, and the
// small partials that the websocket pushes. Every component takes a view model that
// holds only what it displays (see models.go); nothing here reads the catalog, the
// clock of the jobs, or the network.
//
// # Composing a page
//
// Pages are content components; the handler wraps them in the layout:
//
//	web.Layout(web.LayoutVM{Title: "Backups", Nav: web.NavBackups, UserName: u.Name},
//		web.BackupsPage(vm)).Render(ctx, w)
//
// LoginPage and ErrorPage are complete documents and are rendered on their own.
//
// # Formatting
//
// Sizes are binary units (Bytes), times are relative with the exact UTC time on hover
// (RelTime), identifiers such as LSNs and hashes are monospace with a copy button
// (Mono), and states are a colour and a word (Badge). View models carry typed values
// (time.Time, int64 bytes, time.Duration) so that every screen formats them the same
// way. Relative times are computed against the view model's Now field; a zero Now
// means time.Now(). static/app.js keeps them current in the browser.
//
// # Live updates
//
// A page with live parts wraps them in <div hx-ext="ws" ws-connect="/ws?page=NAME">.
// The server sends HTML fragments whose top-level elements carry an id and
// hx-swap-oob; htmx replaces the element with that id. The server must only send
// fragments whose target exists on the page, since htmx reports a missing target as
// an error. Per page NAME:
//
//	overview       SourceCardOOB (source-{sourceID}) when a source's backups or jobs
//	               change; JobProgressOOB for a job whose card shows it.
//	backups        BackupRowNewOOB when a backup starts; BackupRowOOB (backup-{ID})
//	               when its state changes; JobProgressOOB (job-{jobID}-progress)
//	               while it runs.
//	backup-{ID}    JobProgressOOB while that backup runs (only if the page was
//	               rendered with Progress set).
//	jobs           JobRowNewOOB when a job is created; JobRowOOB (job-{ID}) when its
//	               state changes; JobProgressOOB while it runs.
//	job-{ID}       JobProgressOOB, JobStateOOB (job-{ID}-state) and JobEventOOB
//	               (appends to job-{ID}-events). For a restore job also
//	               JobPhasesOOB (job-{ID}-phases) as it moves from phase to phase
//	               and JobRestoreOOB (job-{ID}-restore) when its connection string
//	               or checks become known.
//	restores       RestoreRowNewOOB when a restore is queued; RestoreRowOOB
//	               (restore-{ID}) when a restored instance changes state.
//	source-{ID}    JobProgressOOB for the job shown as ActiveJob, and nothing else:
//	               the tables on that page are snapshots without row ids.
//
// One job's progress block (id job-{jobID}-progress) appears at most once per page.
//
// # The restore page
//
// RestorePage is one form posted to POST /sources/{id}/restore. Its "Preview
// plan" button submits the same fields with GET /sources/{id}/restore, and with
// JavaScript every change of the target sends that GET in the background (with
// the HX-Request header) and swaps in only the plan section, the target marker
// on the timeline and the target's error. The handler therefore renders the
// whole page for every GET, with the plan (or the refusal) for the parameters
// it was given. RestoreFormVM names the parameters; ParseTargetTime reads the
// time as browsers send it.
package web
