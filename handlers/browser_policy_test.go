package handlers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/store"
)

// signIn signs a browser in as user.
func signIn(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), user),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
	)
	if err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
}

// typeInto replaces what the input with data-testid id holds by typing text.
func typeInto(t *testing.T, ctx context.Context, id, text string) {
	t.Helper()
	sel := chromedp.CSS(`[data-testid="` + id + `"]`)
	// SetValue cannot set an empty value: select everything, then type over it.
	err := chromedp.Do(ctx,
		chromedp.Focus(sel),
		chromedp.Evaluate[chromedp.Void](`document.activeElement.select()`),
		chromedp.SendKeys(sel, text),
	)
	if err != nil {
		t.Fatalf("type %q into %s: %v", text, id, err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(sel)); err != nil || got != text {
		t.Fatalf("%s holds %q (%v) after typing %q", id, got, err, text)
	}
}

// policyControls lists the controls on the page that change a policy, expire or pin.
const policyControls = `[...document.querySelectorAll('[data-testid="policy-form"], [data-testid="policy-save"], ` +
	`[data-testid="policy-preview-button"], [data-testid="apply-form"], [data-testid="pin-form"], [data-testid="unpin-form"]')]
  .map(e => e.getAttribute('data-testid'))`

// TestBrowserPolicyFlow is what an operator clicks through: open a source's policy from
// its page, enter a 7-day window and a daily schedule, preview it (swapped in without a
// reload), see the summary and the rules that keep each backup, save, reload and find
// the policy saved. A read-only role sees the policy and the preview, and no control.
func TestBrowserPolicyFlow(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 3)
	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	signIn(t, ctx, f.srv.URL, "operator")

	err := chromedp.Do(ctx,
		chromedp.Navigate(f.srv.URL+f.path("")),
		chromedp.Click(chromedp.CSS(`[data-testid="policy-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="policy-form"]`)),
	)
	if err != nil {
		t.Fatalf("open the policy page from the source's: %v", err)
	}
	typeInto(t, ctx, "policy-backup_cron", "30 1 * * *")
	typeInto(t, ctx, "policy-window_days", "7")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[data-testid="policy-preview-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="policy-preview"] [data-testid="preview-policy"]`)),
	)
	if err != nil {
		t.Fatalf("preview: %v", err)
	}
	policy, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(() => { const p = document.querySelector('[data-testid="preview-policy"]'); return p && p.textContent.includes('7 days') && p.textContent.trim(); })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("the preview does not show the edited policy: %v", err)
	}
	if policy != "Window 7 days; at least 2 kept" {
		t.Errorf("previewed policy = %q", policy)
	}
	summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="preview-summary"]`)))
	if err != nil || !strings.Contains(summary, "Nothing to expire") {
		t.Errorf("preview summary = %q (%v), want nothing to expire: every backup is inside the window", summary, err)
	}
	rules, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('[data-testid="plan-timeline"] [data-testid="rule-badge"]')].map(e => e.getAttribute('data-rule') + ':' + e.textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rules, " "); strings.Count(got, "window:Window") != 3 || !strings.Contains(got, "minimum:Minimum") {
		t.Errorf("rule badges = %q, want the window keeping all three backups and the minimum the newest two", got)
	}
	stayed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__notReloaded === true && !!document.querySelector('[data-testid="preview-unsaved"]')`))
	if err != nil || !stayed {
		t.Errorf("Preview reloaded the page or the preview is not marked unsaved (%v)", err)
	}
	if f.policySaved(t) {
		t.Fatal("Preview saved the policy")
	}

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[data-testid="policy-save"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)),
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="policy-saved"]`)),
	)
	if err != nil {
		t.Fatalf("save and reload: %v", err)
	}
	saved, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="policy-saved"]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"30 1 * * * in UTC", "Window 7 days; at least 2 kept", "by operator"} {
		if !strings.Contains(saved, want) {
			t.Errorf("saved policy after reload = %q, want %q in it", saved, want)
		}
	}
	window, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="policy-window_days"]').value`))
	if err != nil || window != "7" {
		t.Errorf("window field after reload = %q (%v), want 7", window, err)
	}
	p, err := f.store.Policy(t.Context(), f.src.ID)
	if err != nil || p.BackupCron != "30 1 * * *" || p.Window != 7*24*time.Hour {
		t.Errorf("stored policy = %+v (%v)", p, err)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors: %v", p)
	}

	// A read-only role sees the policy and its preview, and nothing it may not use.
	for _, role := range []store.Role{store.RoleAuditor, store.RoleOnCall} {
		rctx, problems := browser(t)
		rctx, cancel := context.WithTimeout(rctx, time.Minute)
		defer cancel()
		signIn(t, rctx, f.srv.URL, string(role))
		err := chromedp.Do(rctx,
			chromedp.Navigate(f.srv.URL+f.path("/policy")),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="plan-timeline"]`)),
		)
		if err != nil {
			t.Fatalf("%s opens the policy page: %v", role, err)
		}
		found, err := chromedp.Run(rctx, chromedp.Evaluate[[]string](policyControls))
		if err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			t.Errorf("as %s, the policy page shows controls the role may not use: %v", role, found)
		}
		text, err := chromedp.Run(rctx, chromedp.Text(chromedp.CSS(`main`)))
		if err != nil || !strings.Contains(text, "Window 7 days; at least 2 kept") || !strings.Contains(text, "What the saved policy would delete now") {
			t.Errorf("as %s, the page does not show the saved policy and its preview (%v)", role, err)
		}
		if p := problems(); len(p) > 0 {
			t.Errorf("console errors as %s: %v", role, p)
		}
	}
}
