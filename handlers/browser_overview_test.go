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

// TestBrowserOverviewCharts: the overview draws every card's charts (lag, backup duration
// and size) with uPlot, keeps their words for screen readers, answers whether each source
// can be restored, and logs no error.
func TestBrowserOverviewCharts(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	signIn(t, ctx, f.srv.URL, string(store.RoleOnCall))

	err := chromedp.Do(ctx,
		chromedp.Navigate(f.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="source-card"]`)),
	)
	if err != nil {
		t.Fatalf("open the overview: %v", err)
	}
	const charts = `[...document.querySelectorAll('[data-testid="source-charts"] [data-chart]')]`
	states, err := chromedp.Run(ctx, chromedp.Poll[[]string](
		`(() => { const s = `+charts+`.map(c => c.getAttribute('data-testid') + ':' + c.getAttribute('data-chart-state'));
		  return s.length === 6 && s.every(x => x.endsWith(':drawn')) ? s : null })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](charts+`.map(c => c.getAttribute('data-testid') + ':' + c.getAttribute('data-chart-state'))`))
		t.Fatalf("charts = %v (%v), want 6 drawn", got, err)
	}
	t.Logf("charts: %v", states)

	// Each drawn chart has a canvas of some size, labelled for screen readers, and its
	// fallback words are out of sight but still there.
	type chart struct {
		Label          string
		Width, Height  float64
		FallbackHidden bool
		Fallback       string
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]chart](charts+`.map(c => {
		const plot = c.querySelector('.chart-plot');
		const canvas = c.querySelector('canvas');
		const p = c.querySelector(':scope > p');
		return {label: plot ? plot.getAttribute('aria-label') : '', width: canvas ? canvas.getBoundingClientRect().width : 0,
		  height: canvas ? canvas.getBoundingClientRect().height : 0,
		  fallbackHidden: !!p && p.classList.contains('visually-hidden'), fallback: p ? p.textContent : ''};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range got {
		if c.Label == "" || c.Width < 150 || c.Height < 60 || !c.FallbackHidden || c.Fallback == "" {
			t.Errorf("chart %d = %+v, want a labelled canvas of some size and a hidden fallback", i, c)
		}
	}

	answers, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-testid="restore-answer"]')].map(a => a.dataset.level + ':' + a.querySelector('.answer').textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(answers, " "); got != "no:No yes:Yes" { // billing, orders
		t.Errorf("answers = %q, want billing no and orders yes", got)
	}

	// The answers follow the health every 5 s without a reload: a verification finding
	// on orders turns its answer to No.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	run, err := f.store.StartVerifyRun(t.Context(), f.orders.ID, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.FinishVerifyRun(t.Context(), run, []store.VerifyFinding{{SourceID: f.orders.ID, BackupID: f.backups["orders"][0].ID,
		Kind: "missing-blob", Object: "ffee", Path: "global/pg_control", Reason: "not in the repository"}}, nil, ""); err != nil {
		t.Fatal(err)
	}
	sel := fmt.Sprintf(`#source-%d-restore-answer`, f.orders.ID)
	level, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const a = document.querySelector('`+sel+`'); return a && a.dataset.level === 'no' && window.__notReloaded ? a.dataset.level : null })()`,
		chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		t.Errorf("orders' answer did not turn to no: %v (%q)", err, level)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors: %v", p)
	}
}
