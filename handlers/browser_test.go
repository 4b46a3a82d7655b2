package handlers_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// browser starts a headless Chromium for the test and returns its context, and a func
// that returns the console errors and exceptions seen so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser flows are skipped in -short mode")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run .ci/deps chromium (make test does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String()+" ("+m.URL+")")
				mu.Unlock()
			}
		}
	}()
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// progressWatch records, in the page, every value the job's progress bar shows, so the
// test can tell that it advanced while the page stayed loaded.
const progressWatch = `(() => {
  window.__notReloaded = true;
  window.__progress = [];
  const seen = () => {
    const bar = document.querySelector('[data-testid="job-progress"] [role="progressbar"]');
    const v = bar && bar.getAttribute('aria-valuenow');
    if (v !== null && v !== undefined && window.__progress[window.__progress.length - 1] !== v) window.__progress.push(v);
  };
  seen();
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, attributes: true});
  return true;
})()`

// TestBrowserBackupFlow is the flow an operator clicks through: sign in, start a backup
// of a source from the overview, watch its progress advance live, see it complete.
func TestBrowserBackupFlow(t *testing.T) {
	t.Parallel()
	a := setup(t)
	// Enough data that the backup takes a few seconds and reports progress several times.
	cl := pgtest.Start(t)
	pgtest.Exec(t, cl.DSN("postgres"),
		`CREATE TABLE filler AS SELECT i, md5(i::text) || repeat(md5((i * 7)::text), 6) AS pad FROM generate_series(1, 600000) AS i`,
		`CHECKPOINT`)
	src, err := jobs.RegisterSource(t.Context(), a.store, "orders", cl.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	err = chromedp.Do(ctx,
		chromedp.Navigate(a.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="source-card"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-live-status][data-state="open"]`)),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	// The card may be swapped by the live snapshot while it is read: read until it holds
	// text (or the test's deadline).
	var card string
	for card == "" && ctx.Err() == nil {
		if card, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="source-card"]`))); err != nil {
			t.Fatalf("overview card: %v", err)
		}
	}
	if !strings.Contains(card, "orders") || !strings.Contains(card, "No backup yet") {
		t.Fatalf("overview card = %q, want the source with no backup yet", card)
	}

	// Back up now leads to the job's page, where progress is live.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[data-testid="backup-now"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="job-progress"]`)),
	)
	if err != nil {
		t.Fatalf("back up now: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(loc, "/jobs/") {
		t.Fatalf("after Back up now the browser is at %s, want a job page", loc)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](progressWatch)); err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const s = document.querySelector('[data-testid="job-state"]'); const t = s && s.textContent.trim().toLowerCase();
		  return t && !t.includes('queued') && !t.includes('running') ? t : null })()`,
		chromedp.WithPollingTimeout(2*time.Minute)))
	if err != nil {
		t.Fatalf("waiting for the job to end: %v", err)
	}
	if !strings.Contains(state, "succeeded") {
		ev, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="job-events"]`)))
		t.Fatalf("job state = %q, want succeeded; events:\n%s", state, ev)
	}
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__progress`))
	if err != nil {
		t.Fatal(err)
	}
	reloaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded !== true`))
	if err != nil || reloaded {
		t.Fatalf("the job page reloaded (%v); progress must arrive live", err)
	}
	if advancing(seen) < 2 {
		t.Errorf("progress bar values seen without reload = %v, want it to advance at least twice", seen)
	}

	// The backup is listed as complete, on its own page and in the list.
	b, err := a.store.LatestBackup(t.Context(), src.ID, store.BackupComplete)
	if err != nil {
		t.Fatalf("no complete backup in the catalog: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/backups/%d"]`, b.ID))),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="backup-state"]`)),
	)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	if s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="backup-state"]`))); !strings.Contains(strings.ToLower(s), "complete") {
		t.Errorf("backup page state = %q, want complete", s)
	}
	err = chromedp.Do(ctx, chromedp.Navigate(a.srv.URL+"/backups"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="backups-table"]`)))
	if err != nil {
		t.Fatal(err)
	}
	row, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(fmt.Sprintf(`#backup-%d`, b.ID))))
	if !strings.Contains(strings.ToLower(row), "complete") || !strings.Contains(row, "orders") {
		t.Errorf("backups list row = %q, want orders, complete", row)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(p, "\n"))
	}
}

// advancing counts the increases in a sequence of progress values.
func advancing(values []string) int {
	n, last := 0, -1.0
	for _, v := range values {
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil {
			continue
		}
		if f > last && last >= 0 {
			n++
		}
		last = f
	}
	return n
}
