package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// postForms lists the POST forms on the page other than sign-out, and the controls that
// start or change something.
const postForms = `[...document.querySelectorAll('form')]
  .filter(f => (f.getAttribute('method') || '').toLowerCase() === 'post' && f.getAttribute('action') !== '/logout')
  .map(f => f.getAttribute('action'))
  .concat([...document.querySelectorAll('[hx-post]')].map(e => e.getAttribute('hx-post')))
  .concat([...document.querySelectorAll('[data-testid="add-source"], [data-testid="restore-link"], [data-testid="source-settings"], a[href="/users"], a[href="/sources/new"]')]
  .map(e => e.getAttribute('data-testid') || e.getAttribute('href')))`

// TestBrowserAuditorSeesNoControlItMayNotUse: an admin sees the controls on every page; an
// auditor, on the same pages, sees none (no form that posts, no link to an action), only
// a note where a restore would be confirmed; on-call sees verify, drill, acknowledge and
// resolve, and nothing that restores, deletes, backs up, pins, expires or changes a source
// or policy. The server refuses them anyway (see TestRouteRoleMatrix); this is what they see.
func TestBrowserAuditorSeesNoControlItMayNotUse(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx0 := t.Context()
	cl := pgtest.Start(t)
	src, err := jobs.RegisterSource(ctx0, a.store, "orders", cl.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.runner.Run(ctx0, jobs.Params{Kind: jobs.KindBackup, SourceID: src.ID, LockKey: jobs.BackupLockKey(src.ID),
		Args: jobs.BackupArgs{SourceID: src.ID}}); err != nil {
		t.Fatal(err)
	}
	x, err := a.store.CreateRestore(ctx0, store.RestoreParams{SourceID: src.ID, Target: "latest", DataDir: t.TempDir() + "/r",
		Port: 55998, PGMajor: 15, Marker: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.UpdateRestore(ctx0, x.ID, store.RestoreUpdate{State: store.RestoreStopped}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx0, "audrey", testPassword, store.RoleAuditor); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx0, "oscar", testPassword, store.RoleOnCall); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.ObserveConditions(ctx0, []string{"roles"}, []store.Condition{{Rule: "roles", SourceID: src.ID,
		DedupeKey: "roles", Severity: store.SeverityWarning, Title: "orders: an alert", Explanation: "For the roles test."}}); err != nil {
		t.Fatal(err)
	}
	bs, err := a.store.Backups(ctx0, store.BackupFilter{SourceID: src.ID, Limit: 1})
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups = %d, %v", len(bs), err)
	}
	pages := []string{"/", "/sources", fmt.Sprintf("/sources/%d", src.ID), fmt.Sprintf("/sources/%d/restore", src.ID),
		fmt.Sprintf("/sources/%d/policy", src.ID), "/sources/new", "/backups", fmt.Sprintf("/backups/%d", bs[0].ID),
		"/restores", "/jobs", "/audit", "/alerts", "/settings/notifications"}

	// Pages only some roles may read; the others are refused them (403), not shown them.
	limited := map[string]usecase.Action{"/audit": usecase.ReadAudit}
	controls := func(t *testing.T, user string, role store.Role) map[string][]string {
		t.Helper()
		ctx, consoleProblems := browser(t)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := chromedp.Do(ctx,
			chromedp.Navigate(a.srv.URL+"/login"),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), user),
			chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
			chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`main`)),
		)
		if err != nil {
			t.Fatalf("sign in as %s: %v", user, err)
		}
		out := map[string][]string{}
		for _, p := range pages {
			if action, ok := limited[p]; ok && !usecase.Can(role, action) {
				continue
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(a.srv.URL+p), chromedp.WaitVisible(chromedp.CSS(`main`))); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](postForms))
			if err != nil {
				t.Fatal(err)
			}
			out[p] = found
		}
		if p := consoleProblems(); len(p) > 0 {
			t.Errorf("console errors as %s: %v", user, p)
		}
		return out
	}

	admin := controls(t, testUser, store.RoleAdmin)
	for _, p := range []string{"/", fmt.Sprintf("/sources/%d", src.ID), "/restores"} {
		if len(admin[p]) == 0 {
			t.Errorf("as admin, %s shows no control; the check below would prove nothing", p)
		}
	}
	auditor := controls(t, "audrey", store.RoleAuditor)
	for _, p := range pages {
		if len(auditor[p]) > 0 {
			t.Errorf("as auditor, %s shows controls the role may not use: %v", p, auditor[p])
		}
	}
	oncall := controls(t, "oscar", store.RoleOnCall)
	var seen []string
	for _, p := range pages {
		for _, c := range oncall[p] {
			seen = append(seen, c)
			for _, bad := range []string{"/restore", "/delete", "/remove", "/backups", "/pin", "/expire", "/policy", "/edit",
				"restore-link", "add-source", "source-settings", "/sources/new", "/users", "/cancel"} {
				if strings.HasSuffix(c, bad) || c == bad {
					t.Errorf("as on-call, %s shows %q, which the role may not use", p, c)
				}
			}
		}
	}
	for _, want := range []string{fmt.Sprintf("/sources/%d/verify", src.ID), fmt.Sprintf("/sources/%d/drill", src.ID), "/ack", "/resolve"} {
		found := false
		for _, c := range seen {
			found = found || c == want || strings.HasSuffix(c, want)
		}
		if !found {
			t.Errorf("on-call sees no %s control on any page; seen: %v", want, seen)
		}
	}

	// The restore page explains why there is no Restore button.
	ctx, _ := browser(t)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = chromedp.Do(ctx,
		chromedp.Navigate(a.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), "audrey"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
		chromedp.Navigate(fmt.Sprintf("%s/sources/%d/restore?mode=latest", a.srv.URL, src.ID)),
	)
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "can preview restore plans but not start restores") {
		t.Errorf("the auditor's restore page does not say why there is no Restore button")
	}
}
