package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a-h/templ"
	"github.com/backstop/backstop/static"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// TestBrowserLive loads pages in a real headless Chromium, with the real static
// assets, pushes the websocket fragments the server will push, and checks that
// htmx swaps them in where they belong, that app.js works, and that the console
// stays free of errors. It needs chromium on PATH and is skipped with -short.
func TestBrowserLive(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run .ci/deps chromium (make test does)")
	}
	now := sampleNow()
	jobs := sampleJobs(now)

	// pushes maps a ws page name to the fragments sent after the socket opens.
	running := jobs[1]
	running.Done, running.Phase = running.Total/5*4, "writing manifest"
	pct := strconv.Itoa(percent(running.Done, running.Total))
	started := jobs[0]
	started.State, started.StartedAt, started.Phase = "running", now, "waiting for checkpoint"
	fresh := JobRow{ID: 43, Kind: "backup", SourceID: 2, SourceName: "billing", State: "queued", CreatedAt: now}
	newBackup := BackupRow{ID: 19, SourceID: 4, SourceName: "inventory", State: "running", StartedAt: now,
		StartLSN: "0/61000028", Progress: &JobProgressVM{JobID: 42, State: "running", Phase: "copying data files", Done: mib, Total: 8 * mib}}
	restoreRunning, restoreFinished := sampleRestoreJobs(now)
	phases := append([]PhaseVM(nil), restoreRunning.Phases...)
	phases[3] = PhaseVM{Name: "replaying", State: PhaseDone}
	phases[4] = PhaseVM{Name: "promoting", State: PhaseCurrent}
	restores := sampleRestores(now)
	restored := restores[0]
	restored.State, restored.DSN = RestoreRunning, "postgres://postgres@127.0.0.1:5434/postgres"
	queuedRestore := RestoreRow{ID: 9, SourceID: 1, SourceName: "orders-db", Target: RestoreTarget{Kind: TargetLatest},
		State: RestoreRestoring, Port: 5437, DataDir: "/var/lib/backstop/restore/orders-db-9", CreatedAt: now, JobID: 47}
	pushes := map[string][]templ.Component{
		"job-46": {
			JobPhasesOOB(46, phases),
			JobRestoreOOB(46, *restoreFinished.Restore, now),
		},
		"restores": {
			RestoreRowOOB(restored, now),
			RestoreRowNewOOB(queuedRestore, now),
		},
		"jobs": {
			JobProgressOOB(running.Progress()),
			JobRowNewOOB(fresh, now),
			JobRowOOB(started, now),
		},
		"job-41": {
			JobEventOOB(41, EventRow{At: now, Level: "warn", Phase: "writing manifest", Message: "manifest is large"}),
			JobProgressOOB(JobProgressVM{JobID: 41, State: "succeeded", Done: running.Total, Total: running.Total, BackupID: 18}),
			JobStateOOB(41, "succeeded"),
		},
		"backups": {
			BackupRowNewOOB(newBackup, now),
		},
	}
	pages := map[string]templ.Component{
		"/jobs":     layout("Jobs", NavJobs, JobsPage(JobsVM{Now: now, Rows: jobs})),
		"/jobs/41":  layout("Job 41", NavJobs, JobPage(JobVM{Now: now, Row: jobs[1], Events: sampleEvents(now)})),
		"/backups":  layout("Backups", NavBackups, BackupsPage(BackupsVM{Now: now})),
		"/jobs/46":  layout("Job 46", NavJobs, JobPage(restoreRunning)),
		"/restores": layout("Restores", NavRestores, RestoresPage(RestoresVM{Now: now, Rows: restores})),
	}
	for _, p := range samplePages(now) {
		if p.name == "backup-complete" {
			pages["/backups/16"] = p.c
		}
	}

	var mu sync.Mutex // guards previews, problems and dialogs
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	done := make(chan struct{})
	upgrader := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.Handle("/static/", static.Handler())
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer conn.Close()
		for _, c := range pushes[r.URL.Query().Get("page")] {
			var b strings.Builder
			if err := c.Render(r.Context(), &b); err != nil {
				t.Errorf("Render() = %v", err)
				return
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte(b.String())); err != nil {
				return
			}
		}
		<-done
	})
	// The restore page answers as its handler will: a plan for a restorable
	// target, a refusal for one in the gap or outside the window.
	window := sampleWindow(now)
	gap := window.Gaps[0]
	var previews []string // query and HX-Request of every restore page request
	mux.HandleFunc("/sources/1/restore", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		vm := RestoreVM{Now: now, SourceID: 1, SourceName: "orders-db", PGVersion: "15.18", Window: window,
			RestorePoints: sampleRestorePoints(now), Form: RestoreFormVM{Mode: q.Get("mode"), Target: q.Get("target"),
				Inclusive: !q.Has("mode") || q.Get("inclusive") == "on", Into: q.Get("into"), Port: "5433"}}
		switch vm.Form.Mode {
		case "", TargetLatest:
			vm.Plan = samplePlan(now, RestoreTarget{Kind: TargetLatest, Time: window.Latest})
		case TargetTime:
			at, err := ParseTargetTime(vm.Form.Target)
			switch {
			case err != nil:
				vm.Errors = map[string]string{"target": err.Error()}
			case at.After(gap.From) && at.Before(gap.To):
				vm.PlanError = &PlanRefusalVM{Message: "WAL 0000000100000000000000A3 is missing from the archive.",
					Nearest:     &RestoreTarget{Kind: TargetTime, Time: gap.From.Truncate(time.Second), Inclusive: true},
					NearestNote: "the last commit before the gap"}
			case !inWindow(at, window):
				vm.PlanError = &PlanRefusalVM{Message: "Outside the window.", Nearest: &RestoreTarget{Kind: TargetLatest, Time: window.Latest}}
			default:
				vm.Plan = samplePlan(now, RestoreTarget{Kind: TargetTime, Time: at, Inclusive: vm.Form.Inclusive})
			}
		}
		mu.Lock()
		previews = append(previews, r.URL.RawQuery+" htmx="+r.Header.Get("HX-Request"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = layout("Restore orders-db", NavSources, RestorePage(vm)).Render(r.Context(), w)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = c.Render(r.Context(), w)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, time.Minute)
	t.Cleanup(cancelTimeout)

	var problems, dialogs []string
	// Start the browser, then watch its console and its dialogs.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	opened := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for ev, err := range opened {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, ev.Message)
			mu.Unlock()
			// Decline: the form must then not be submitted.
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: false})
		}
	}()

	text := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("Text(%s): %v", sel, err)
		}
		return s
	}
	eval := func(t *testing.T, js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("Evaluate(%s): %v", js, err)
		}
		return s
	}
	wait := func(t *testing.T, url string, sels ...string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}
		for _, sel := range sels {
			steps = append(steps, chromedp.WaitVisible(chromedp.CSS(sel)))
		}
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("loading %s and waiting for %q: %v", url, sels, err)
		}
	}

	t.Run("jobs", func(t *testing.T) {
		wait(t, srv.URL+"/jobs",
			`#job-43`,
			`#job-41-progress [role=progressbar][aria-valuenow="`+pct+`"]`,
			`#job-42[data-state="running"]`,
			`[data-live-status][data-state="open"]`)
		if got := text(t, `#job-42 [data-testid=job-state]`); got != "Running" {
			t.Errorf("job 42 state = %q, want Running", got)
		}
		if got := text(t, `#job-41-progress`); !strings.Contains(got, "Writing manifest") || !strings.Contains(got, pct+"%") {
			t.Errorf("job 41 progress = %q", got)
		}
		if got := eval(t, `String(document.querySelectorAll("#job-rows > tr:not(.empty-row)").length)`); got != "6" {
			t.Errorf("job rows = %s, want 6", got)
		}
		if got := eval(t, `getComputedStyle(document.querySelector("#job-rows .empty-row")).display`); got != "none" {
			t.Errorf("empty row display = %q, want none", got)
		}
		if got := eval(t, `document.querySelector("#job-40 time[data-rel]").textContent`); got != "2 h ago" {
			t.Errorf("relative time = %q, want 2 h ago", got)
		}
	})

	t.Run("cancel asks first", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#job-43 button[type=submit]`)), chromedp.Sleep(300*time.Millisecond)); err != nil {
			t.Fatalf("click: %v", err)
		}
		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if url != srv.URL+"/jobs" {
			t.Errorf("after declining, location = %q, want the jobs page", url)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(dialogs) != 1 || !strings.Contains(dialogs[0], "Cancel job 43?") {
			t.Errorf("dialogs = %q, want one asking to cancel job 43", dialogs)
		}
	})

	t.Run("job", func(t *testing.T) {
		wait(t, srv.URL+"/jobs/41",
			`#job-41-progress[data-state="succeeded"]`,
			`#job-41-state [data-state="succeeded"]`)
		if got := text(t, `[data-testid=job-state]`); got != "Succeeded" {
			t.Errorf("state = %q, want Succeeded", got)
		}
		if got := text(t, `#job-41-events > tr:last-child`); !strings.Contains(got, "manifest is large") || !strings.Contains(got, "Warning") {
			t.Errorf("last event = %q", got)
		}
		if got := text(t, `#job-41-progress`); !strings.Contains(got, "View backup 18") {
			t.Errorf("progress = %q", got)
		}
		if got := eval(t, `String(document.querySelectorAll("form[action='/jobs/41/cancel']").length)`); got != "0" {
			t.Errorf("cancel forms after success = %s, want 0", got)
		}
	})

	t.Run("backups", func(t *testing.T) {
		wait(t, srv.URL+"/backups", `#backup-19 #job-42-progress`)
		if got := eval(t, `String(document.querySelectorAll("#backup-rows > tr:not(.empty-row)").length)`); got != "1" {
			t.Errorf("rows = %s, want 1", got)
		}
		if got := eval(t, `getComputedStyle(document.querySelector("#backup-rows .empty-row")).display`); got != "none" {
			t.Errorf("empty row display = %q, want none", got)
		}
	})

	t.Run("copy", func(t *testing.T) {
		const sel = `button[data-copy="0/3A000028"]`
		wait(t, srv.URL+"/backups/16", sel)
		if got := eval(t, `String(document.querySelectorAll("button[data-copy][hidden]").length)`); got != "0" {
			t.Errorf("hidden copy buttons = %s, want 0", got)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)), chromedp.Sleep(200*time.Millisecond)); err != nil {
			t.Fatalf("click: %v", err)
		}
		if got := text(t, sel+` .copy-label`); got != "Copied" {
			t.Errorf("copy label after click = %q, want Copied", got)
		}
	})

	poll := func(t *testing.T, what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
			t.Fatalf("waiting for %s (%s): %v", what, js, err)
		}
	}

	t.Run("restore plan follows the target", func(t *testing.T) {
		if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Paris"}); err != nil {
			t.Fatalf("time zone: %v", err)
		}
		page := srv.URL + "/sources/1/restore"
		wait(t, page, `[data-testid=restore-guarantee]`, `[data-testid=restore-preview]`)
		if got := text(t, `[data-testid=restore-guarantee]`); !strings.Contains(got, "the newest commit in the archived WAL") {
			t.Errorf("first plan = %q", got)
		}
		if got := eval(t, `document.getElementById("restore-time-local").textContent`); !strings.Contains(got, "your time (Europe/Paris, UTC+") {
			t.Errorf("local time = %q", got)
		}

		// A backup on the timeline fills in its time; the plan follows without a reload.
		first := ceilSecond(window.Backups[0].ConsistentAt)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.tl-backup`))); err != nil {
			t.Fatalf("click backup marker: %v", err)
		}
		poll(t, "the plan for backup 12's time", `(document.querySelector("[data-testid=restore-guarantee]")||{}).textContent.includes("`+microUTC(first)+`")`)
		if got := eval(t, `String(document.getElementById("restore-target-time").checked)`); got != "true" {
			t.Error("choosing a backup does not select a point in time")
		}
		if got := eval(t, `document.getElementById("restore-time").value`); got != FormatTargetTime(first) {
			t.Errorf("time input = %q, want %q", got, FormatTargetTime(first))
		}
		// htmx settles attributes a moment after the swap.
		poll(t, "the target mark at backup 12", `document.getElementById("restore-window-target").getAttribute("style") === "`+leftStyle(windowPct(first, window))+`;"`)
		poll(t, "the announcement", `Array.from(document.querySelectorAll("[role=status][aria-live]")).some(function (e) { return e.textContent.includes("Plan updated: backup 24") })`)

		// A time in the gap is refused, and the nearest valid time is one click away.
		inGap := FormatTargetTime(gap.From.Add(3 * time.Hour))
		eval(t, `(function () { var i = document.getElementById("restore-time"); i.value = "`+inGap+`";
			i.dispatchEvent(new Event("change", { bubbles: true })); return "" })()`)
		poll(t, "the refusal", `!!document.querySelector("[data-testid=restore-plan-error]")`)
		poll(t, "the time marked invalid", `document.getElementById("restore-time").getAttribute("aria-invalid") === "true"`)
		if got := eval(t, `document.getElementById("restore-time").getAttribute("aria-describedby")`); !strings.Contains(got, "restore-plan-error") {
			t.Errorf("aria-describedby = %q", got)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid=restore-nearest]`))); err != nil {
			t.Fatalf("click nearest: %v", err)
		}
		poll(t, "the plan for the nearest time", `!!document.querySelector("[data-testid=restore-guarantee]")`)
		if got := eval(t, `document.getElementById("restore-time").value`); got != FormatTargetTime(gap.From) {
			t.Errorf("time after nearest = %q, want %q", got, FormatTargetTime(gap.From))
		}
		poll(t, "the time no longer invalid", `!document.getElementById("restore-time").hasAttribute("aria-invalid")`)

		// Back to the latest time with the radio.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#restore-target-latest`))); err != nil {
			t.Fatalf("click latest: %v", err)
		}
		poll(t, "the plan for the latest time", `(document.querySelector("[data-testid=restore-guarantee]")||{}).textContent.includes("newest commit")`)

		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if url != page {
			t.Errorf("location = %q, want %q: the previews must not navigate", url, page)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(previews) < 5 {
			t.Fatalf("restore page requests = %q, want the load and four previews", previews)
		}
		for _, p := range previews[1:] {
			if !strings.HasSuffix(p, "htmx=true") || !strings.Contains(p, "mode=") || !strings.Contains(p, "confirm=") {
				t.Errorf("preview request %q: want an htmx GET with the whole form", p)
			}
		}
	})

	t.Run("restore job", func(t *testing.T) {
		wait(t, srv.URL+"/jobs/46", `#job-46-phases [aria-current=step]`, `[data-testid=restore-dsn]`)
		poll(t, "promoting as the current phase", `document.querySelector("#job-46-phases [aria-current=step]").textContent.includes("Promoting")`)
		if got := text(t, `[data-testid=restore-dsn]`); !strings.Contains(got, "postgres://postgres@127.0.0.1:5433/postgres") {
			t.Errorf("restore-dsn = %q", got)
		}
		if got := eval(t, `String(document.querySelectorAll("#job-46-restore button[data-copy][hidden]").length)`); got != "0" {
			t.Errorf("hidden copy buttons in the pushed result = %s", got)
		}
	})

	t.Run("restores", func(t *testing.T) {
		wait(t, srv.URL+"/restores", `#restore-8[data-state="running"]`, `#restore-9`)
		if got := eval(t, `getComputedStyle(document.querySelector("#restore-rows > .empty-row")).display`); got != "none" {
			t.Errorf("empty placeholder display = %q", got)
		}
		if got := eval(t, `document.querySelector("#restore-rows > li").id`); got != "restore-9" {
			t.Errorf("first row is %q, want the new restore-9", got)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#restore-7 [data-testid=restore-delete]`)), chromedp.Sleep(300*time.Millisecond)); err != nil {
			t.Fatalf("click delete: %v", err)
		}
		url, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if url != srv.URL+"/restores" {
			t.Errorf("after declining, location = %q", url)
		}
		mu.Lock()
		defer mu.Unlock()
		if n := len(dialogs); n == 0 || dialogs[n-1] != "Delete restored instance 7 and its data directory?" {
			t.Errorf("dialogs = %q", dialogs)
		}
	})

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
}
