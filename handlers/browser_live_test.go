package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/store"
)

// liveWatch records, in the page, the close codes of its live connection and that the
// page was not reloaded.
const liveWatch = `(() => {
  window.__notReloaded = true;
  window.__closes = [];
  document.addEventListener("htmx:wsClose", (e) => window.__closes.push(e.detail.event.code));
  return true;
})()`

// jobPageState is what the test reads of a job page: the live indicator, the state badge,
// the summary and the event log, as JSON.
const jobPageState = `JSON.stringify((() => {
  const text = (sel) => { const el = document.querySelector(sel); return el ? el.textContent.replace(/\s+/g, " ").trim() : null; };
  const live = document.querySelector("[data-live-status]");
  return {live: live && live.getAttribute("data-state"), label: text("[data-live-status] .live-label"),
    state: text('[data-testid="job-state"]'), summary: text("#job-%[1]d-summary"), events: text("#job-%[1]d-events"),
    closes: window.__closes, notReloaded: window.__notReloaded === true};
})())`

// besidesFailedReconnects drops from a page's console errors those of its attempts to
// reconnect while no server ran: each failed attempt is logged twice, by the browser and by
// htmx reporting ws.js's htmx:wsError with the error event ("[object Event]").
func besidesFailedReconnects(problems []string) []string {
	var out []string
	for _, p := range problems {
		if !strings.Contains(p, "WebSocket connection to") &&
			!(strings.Contains(p, "[object Event]") && strings.Contains(p, "/static/htmx.min.js")) {
			out = append(out, p)
		}
	}
	return out
}

// TestBrowserLiveRecoversAfterRestart: a job page open while its job runs keeps its live
// updates through a normal restart of the server (close 1001): it shows that it is
// reconnecting while no server runs, then, without a reload, the job's end that happened
// meanwhile, and that it is live again.
func TestBrowserLiveRecoversAfterRestart(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	j := runningJob(t, a.store)
	if err := a.store.UpdateJobProgress(t.Context(), j.ID, "copying", 300, 1000); err != nil {
		t.Fatal(err)
	}
	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty-sources"]`)),
		chromedp.Navigate(fmt.Sprintf("%s/jobs/%d", s.url, j.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-live-status][data-state="open"]`)),
	)
	if err != nil {
		t.Fatalf("open the job page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](liveWatch)); err != nil {
		t.Fatal(err)
	}
	state := fmt.Sprintf(jobPageState, j.ID)
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state)); !strings.Contains(got, "Not yet") {
		t.Fatalf("running job page = %s, want its summary to say it has not finished yet", got)
	}

	// serve stops: the page is told 1001 and says it is reconnecting.
	s.stop(t)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`window.__closes.length > 0 && document.querySelector("[data-live-status]").getAttribute("data-state") === "closed"`,
		chromedp.WithPollingTimeout(time.Minute))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state))
		t.Fatalf("after Shutdown the page = %s (%v), want it closed and reconnecting", got, err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state)); !strings.Contains(got, `"closes":[1001`) ||
		!strings.Contains(got, "Reconnecting") {
		t.Errorf("after Shutdown the page = %s, want close 1001 and the indicator saying Reconnecting…", got)
	}
	// It keeps trying while no server listens: an attempt fails (1006) and is retried.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.__closes.includes(1006)`,
		chromedp.WithPollingTimeout(time.Minute))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state))
		t.Fatalf("with no server the page = %s (%v), want it to try to reconnect", got, err)
	}

	// The job ends while no server runs; serve starts again on the same address and catalog.
	if _, err := a.store.AddJobEvent(t.Context(), store.JobEvent{JobID: j.ID, Level: "info", Phase: "finishing",
		Message: "backup 5 complete"}); err != nil {
		t.Fatal(err)
	}
	finishJob(t, a.store, j.ID, 5)
	s2 := a.serve(t, s.addr)
	defer s2.stop(t)

	recovered := fmt.Sprintf(`(() => { const s = JSON.parse(%s);
	  return s.live === "open" && s.label === "Live" && /succeeded/i.test(s.state || "") &&
	    !/Not yet/.test(s.summary || "") && /Backup 5/.test(s.summary || "") && /backup 5 complete/.test(s.events || "") })()`, state)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](recovered, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state))
		t.Fatalf("after the restart the page = %s (%v), want it live again, the job succeeded and its summary filled in", got, err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](state)); !strings.Contains(got, `"notReloaded":true`) {
		t.Errorf("the job page reloaded (%s); it must recover live", got)
	}
	for _, p := range besidesFailedReconnects(consoleProblems()) {
		t.Errorf("console error: %s", p)
	}
}

// jobRowsState is the jobs list as the test reads it: each row's id and state, top first.
const jobRowsState = `JSON.stringify(Array.from(document.querySelectorAll("#job-rows > tr[id]"),
  (tr) => tr.id + ":" + tr.getAttribute("data-state")))`

// TestBrowserLiveListAfterRestart: the jobs list open through a restart shows, without a
// reload, the job queued and the job ended while no server ran, each row once.
func TestBrowserLiveListAfterRestart(t *testing.T) {
	t.Parallel()
	a := newLiveApp(t)
	s := a.serve(t, "127.0.0.1:0")
	old := runningJob(t, a.store)
	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()

	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="empty-sources"]`)),
		chromedp.Navigate(s.url+"/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`[data-live-status][data-state="open"]`)),
	)
	if err != nil {
		t.Fatalf("open the jobs list: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](liveWatch)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`["job-%d:running"]`, old.ID)
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](jobRowsState)); got != want {
		t.Fatalf("jobs list once live = %s, want %s", got, want)
	}

	s.stop(t)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.__closes.length > 0`, chromedp.WithPollingTimeout(time.Minute))); err != nil {
		t.Fatalf("the page did not see its connection close at Shutdown: %v", err)
	}
	finishJob(t, a.store, old.ID, 3)
	queued, err := a.store.InsertJob(t.Context(), store.JobParams{Kind: "backup", RequestedBy: testUser})
	if err != nil {
		t.Fatal(err)
	}
	s2 := a.serve(t, s.addr)
	defer s2.stop(t)

	want = fmt.Sprintf(`["job-%d:queued","job-%d:succeeded"]`, queued.ID, old.ID)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`%s === %q`, jobRowsState, want),
		chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](jobRowsState))
		t.Fatalf("jobs list after the restart = %s (%v), want %s", got, err, want)
	}
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true`)); !ok {
		t.Error("the jobs list reloaded; it must recover live")
	}
	for _, p := range besidesFailedReconnects(consoleProblems()) {
		t.Errorf("console error: %s", p)
	}
}
