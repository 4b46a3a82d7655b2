package handlers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/store"
)

// auditRows reads the ids, actors and actions of the audit page's rows.
const auditRows = `[...document.querySelectorAll('[data-testid="audit-row"]')].map(r =>
  r.getAttribute('data-id') + ' ' + r.children[1].textContent.trim() + ' ' + r.children[2].textContent.trim())`

// TestBrowserAuditFilterAndPaging is what an auditor clicks through: filter the audit log
// by who and what, page to older entries and back, open an entry's detail and switch the
// times to local time.
func TestBrowserAuditFilterAndPaging(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx0 := t.Context()
	if _, err := a.store.CreateUser(ctx0, "audrey", testPassword, store.RoleAuditor); err != nil {
		t.Fatal(err)
	}
	// 120 restores by ana, between 60 changes by bob and 10 restores by carol.
	for i := range 190 {
		e := store.AuditEntry{Actor: "ana", Action: "restore.start", Target: "orders", Detail: []byte(fmt.Sprintf(`{"job_id":%d,"target":"latest"}`, i))}
		switch {
		case i%3 == 1 && i < 180:
			e = store.AuditEntry{Actor: "bob", Action: "source.change", Target: "inventory"}
		case i >= 180:
			e.Actor = "carol"
		}
		if err := a.store.Audit(ctx0, e); err != nil {
			t.Fatal(err)
		}
	}

	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(a.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), "audrey"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
		chromedp.Click(chromedp.CSS(`nav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-filters"]`)),
		chromedp.SendKeys(chromedp.CSS(`#audit-actor`), "ana"),
		chromedp.SendKeys(chromedp.CSS(`#audit-action`), "restore."),
		chromedp.Click(chromedp.CSS(`[data-testid="audit-apply"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-older"]`)),
	)
	if err != nil {
		t.Fatalf("filter the audit log: %v", err)
	}
	page := func(what string) []string {
		t.Helper()
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](auditRows))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, r := range rows {
			if f := strings.Fields(r); len(f) != 3 || f[1] != "ana" || f[2] != "restore.start" {
				t.Errorf("%s: row %q, want only ana's restores", what, r)
			}
		}
		return rows
	}
	first := page("first page")
	if len(first) != 50 {
		t.Fatalf("first page has %d rows, want 50", len(first))
	}
	click := func(what, sel string) {
		t.Helper()
		// Navigation by a click: wait for the old page's first row to go, then for the new page.
		old, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="audit-row"]').getAttribute('data-id')`))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		err = chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(sel)),
			chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="audit-row"][data-id="`+old+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-filters"]`)),
		)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	click("older", `[data-testid="audit-older"]`)
	second := page("second page")
	click("older again", `[data-testid="audit-older"]`)
	third := page("third page")
	if len(second) != 50 || len(third) != 20 {
		t.Errorf("pages have %d, %d, %d rows, want 50, 50, 20 (ana's 120 restores)", len(first), len(second), len(third))
	}
	all := slices.Concat(first, second, third)
	ids := map[string]bool{}
	for _, r := range all {
		ids[strings.Fields(r)[0]] = true
	}
	if len(ids) != 120 {
		t.Errorf("the three pages show %d distinct entries, want 120", len(ids))
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="audit-older"]').length`)); n != 0 {
		t.Errorf("the oldest page links to an older one")
	}
	click("newer", `[data-testid="audit-newer"]`)
	if back := page("back to the second page"); !slices.Equal(back, second) {
		t.Errorf("newer from the third page = %q, want the second page again", back)
	}
	// The filter stays in the form while paging.
	if v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#audit-action').value`)); v != "restore." {
		t.Errorf("action filter after paging = %q, want restore.", v)
	}

	// An entry's full detail, and its hash.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`[data-testid="audit-row"] summary`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-row"] .audit-json`)),
	)
	if err != nil {
		t.Fatalf("open an entry: %v", err)
	}
	detail, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="audit-row"] .audit-entry`)))
	if err != nil {
		t.Fatalf("open an entry: %v", err)
	}
	if !strings.Contains(detail, `"target": "latest"`) || !strings.Contains(detail, "Hash") {
		t.Errorf("entry detail = %q, want the indented detail and the hash", detail)
	}

	// UTC, then local time on request.
	utc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-time-zone]').textContent`))
	err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid="audit-time-toggle"]`)))
	if err != nil {
		t.Fatal(err)
	}
	local, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-time-zone]').textContent`))
	if utc != "(UTC)" || !strings.HasPrefix(local, "(your time") {
		t.Errorf("time zone label = %q, then %q after the toggle; want (UTC) then your time", utc, local)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console problems: %q", p)
	}
}
