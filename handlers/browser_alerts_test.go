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

// TestBrowserOnCallAlerts is what on-call sees: with the alerts page open, a new alert
// appears without a reload, while the comment being typed on another alert stays; they
// acknowledge the new one with a comment, the card says who is on it, and the catalog
// records them.
func TestBrowserOnCallAlerts(t *testing.T) {
	t.Parallel()
	a := setup(t)
	if _, err := a.store.CreateUser(t.Context(), "olive", testPassword, store.RoleOnCall); err != nil {
		t.Fatal(err)
	}
	first := raise(t, a, cond("first", store.SeverityWarning, "billing: no restore drill has passed"))[0]

	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	signIn(t, ctx, a.srv.URL, "olive")
	firstCard := fmt.Sprintf(`#alert-%d`, first.ID)
	err := chromedp.Do(ctx,
		chromedp.Navigate(a.srv.URL+"/alerts"),
		chromedp.WaitVisible(chromedp.CSS(firstCard)),
		chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`),
		chromedp.SendKeys(chromedp.CSS(firstCard+`-comment`), "looking at the drill"),
	)
	if err != nil {
		t.Fatalf("open the alerts page: %v", err)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="nav-alerts"]`))); !strings.Contains(n, "1") {
		t.Errorf("navigation count = %q, want 1", n)
	}

	// A new alert opens, as the evaluator would open it: the page shows it by itself.
	cs := cond("second", store.SeverityCritical, "orders-db: WAL archiving stopped")
	cs.Explanation = "WAL archiving stopped 2 min ago: the server closed the connection."
	cs.Action = "Check that the source is running."
	second := raise(t, a, cs)[0]
	card := fmt.Sprintf(`#alert-%d`, second.ID)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(card))); err != nil {
		t.Fatalf("the new alert did not appear: %v", err)
	}
	order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-testid="alert-card"]')].map(e => e.getAttribute('data-alert-id'))`))
	if err != nil || strings.Join(order, ",") != fmt.Sprintf("%d,%d", second.ID, first.ID) {
		t.Errorf("cards in the order %v (%v), want the critical alert first", order, err)
	}
	typed, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(firstCard+`-comment`)))
	if err != nil || typed != "looking at the drill" {
		t.Errorf("the comment being typed on the first alert became %q (%v) when the list refreshed", typed, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`(() => { const n = document.querySelector('[data-testid="nav-alerts"]'); return n && n.getAttribute('data-count') === '2'; })()`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Errorf("the navigation count did not become 2: %v", err)
	}

	// Acknowledge it, with a comment.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(card+`-comment`), "restarting the source"),
		chromedp.Click(chromedp.CSS(card+` [data-testid="alert-ack"]`)),
	)
	if err != nil {
		t.Fatalf("acknowledge: %v", err)
	}
	acked, err := chromedp.Run(ctx, chromedp.Poll[string](
		fmt.Sprintf(`(() => { const e = document.querySelector('%s [data-testid="alert-acked"]'); return e && e.textContent.replace(/\s+/g, ' ').trim(); })()`, card),
		chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		t.Fatalf("the card does not say it was acknowledged: %v", err)
	}
	if !strings.Contains(acked, "Acknowledged by olive") || !strings.Contains(acked, "restarting the source") {
		t.Errorf("card says %q, want Acknowledged by olive with the comment", acked)
	}
	got, err := a.store.Alert(t.Context(), second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.AlertAcknowledged || got.AckedBy != "olive" || got.AckComment != "restarting the source" {
		t.Errorf("catalog: alert %d is %s by %q (%q), want acknowledged by olive", got.ID, got.State, got.AckedBy, got.AckComment)
	}
	if first, _ := a.store.Alert(t.Context(), first.ID); first.State != store.AlertFiring {
		t.Errorf("the other alert is %s, want still firing", first.State)
	}
	stayed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true`))
	if err != nil || !stayed {
		t.Errorf("the page reloaded (%v): the alert must arrive and be acknowledged in place", err)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(p, "\n"))
	}
}
