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
	pushes := map[string][]templ.Component{
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
		"/jobs":    layout("Jobs", NavJobs, JobsPage(JobsVM{Now: now, Rows: jobs})),
		"/jobs/41": layout("Job 41", NavJobs, JobPage(JobVM{Now: now, Row: jobs[1], Events: sampleEvents(now)})),
		"/backups": layout("Backups", NavBackups, BackupsPage(BackupsVM{Now: now})),
	}
	for _, p := range samplePages(now) {
		if p.name == "backup-complete" {
			pages["/backups/16"] = p.c
		}
	}

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
	ctx, cancelTimeout := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(cancelTimeout)

	var mu sync.Mutex
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

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser console: %s", p)
	}
}
