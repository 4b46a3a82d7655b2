package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"golang.org/x/net/html"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// controls lists what a page lets its reader do: for every form that posts (method post or
// hx-post), "POST path"; for every local link, "GET path"; and the restore button, which
// links to a page everyone may read but stands for starting a restore.
func controls(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		attr := map[string]string{}
		for _, a := range n.Attr {
			attr[a.Key] = a.Val
		}
		switch {
		case attr["data-testid"] == "restore-link":
			out = append(out, "restore-link")
		case n.Data == "form" && strings.EqualFold(attr["method"], "post"):
			out = append(out, "POST "+attr["action"])
		case attr["hx-post"] != "":
			out = append(out, "POST "+attr["hx-post"])
		case n.Data == "a" && strings.HasPrefix(attr["href"], "/") && !strings.HasPrefix(attr["href"], "/static/"):
			out = append(out, "GET "+attr["href"])
		}
	}
	return out
}

// linkActions are the links that lead to a page everyone may read but stand for an action:
// only those who may do it are shown them.
var linkActions = map[string]usecase.Action{
	"restore-link":                 usecase.StartRestore,
	"GET /sources/new":             usecase.AddSource,
	"GET /sources/{sourceID}/edit": usecase.ChangeSource,
}

// controlAction is the action a control needs, read from routePolicy through the router.
func (a *app) controlAction(t *testing.T, control string) usecase.Action {
	t.Helper()
	if action, ok := linkActions[control]; ok {
		return action
	}
	method, target, _ := strings.Cut(control, " ")
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("control %q: %v", control, err)
	}
	rctx := chi.NewRouteContext()
	if !a.routes.(chi.Routes).Match(rctx, method, u.Path) {
		t.Errorf("control %q leads nowhere", control)
		return usecase.View
	}
	route := method + " " + rctx.RoutePattern()
	if action, ok := linkActions[route]; ok {
		return action
	}
	if _, ok := routePolicy[route]; !ok {
		route += "/" // a sub-router's index
	}
	action, ok := routePolicy[route]
	if !ok {
		t.Errorf("control %q: route %q has no entry in routePolicy", control, route)
	}
	return action
}

// TestPagesShowOnlyAllowedControls reads every page as each role and checks that every
// control on it (form, button that posts, link) leads to something the role may do, by the
// permissions table; the admin must meet every kind of control somewhere, so that the check
// can fail, and on-call must see what the issue gives them (verify, drills, alerts).
func TestPagesShowOnlyAllowedControls(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ids := matrixFixtures(t, a)
	ctx := t.Context()
	// A source with a complete backup and a saved policy, so that restore, pin and expire
	// controls have something to act on.
	src, err := jobs.RegisterSource(ctx, a.store, "orders", shared.Cluster(t).DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.runner.Run(ctx, jobs.Params{Kind: jobs.KindBackup, SourceID: src.ID, LockKey: jobs.BackupLockKey(src.ID),
		Args: jobs.BackupArgs{SourceID: src.ID}})
	if err != nil {
		t.Fatal(err)
	}
	admin := a.client(t)
	a.login(t, admin)
	if resp := a.postForm(t, admin, "/sources/"+itoa(src.ID)+"/policy", policyValues()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save policy = %d", resp.StatusCode)
	}
	bs, err := a.store.Backups(ctx, store.BackupFilter{SourceID: src.ID, Limit: 1})
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups of orders = %d, %v", len(bs), err)
	}
	queued, err := a.store.InsertJob(ctx, store.JobParams{Kind: jobs.KindBackup, SourceID: src.ID, LockKey: "held-by-test",
		State: store.JobRunning, Owner: store.Owner{Host: "elsewhere", PID: 1, ID: "other"}})
	if err != nil {
		t.Fatal(err)
	}

	var pages []string
	for route, action := range routePolicy {
		method, pattern, _ := strings.Cut(route, " ")
		if method != http.MethodGet || action == "" || pattern == "/ws" || pattern == "/metrics" {
			continue
		}
		pages = append(pages, pattern)
	}
	slices.Sort(pages)
	var paths []string
	needs := map[string]usecase.Action{} // path → what reading it needs
	add := func(path string, action usecase.Action) {
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
			needs[path] = action
		}
	}
	// Downloads and previews answer only with their parameters.
	query := map[string]string{
		"/audit/export":     "?format=csv",
		"/reports/preview":  "?from=2026-11-01&to=2026-11-02",
		"/reports/download": "?from=2026-11-01&to=2026-11-02&format=csv",
	}
	for _, p := range pages {
		for _, sourceID := range []string{ids["source"], itoa(src.ID)} {
			add(strings.NewReplacer("{sourceID}", sourceID, "{backupID}", itoa(bs[0].ID), "{jobID}", itoa(queued.ID),
				"{alertID}", ids["alert"]).Replace(p)+query[p], routePolicy["GET "+p])
		}
	}
	add("/jobs/"+itoa(j.ID), usecase.View)
	add("/sources/"+itoa(src.ID)+"/restore?mode=latest", usecase.View)

	seen := map[store.Role]map[usecase.Action]bool{}
	for _, role := range store.Roles {
		c := admin
		if role != store.RoleAdmin {
			c = a.client(t)
			a.loginAs(t, c, string(role))
		}
		seen[role] = map[usecase.Action]bool{}
		for _, path := range paths {
			resp, page := a.get(t, c, path)
			if !usecase.Can(role, needs[path]) {
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("GET %s as %s = %d, want 403", path, role, resp.StatusCode)
				}
				continue
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s as %s = %d, want 200", path, role, resp.StatusCode)
				continue
			}
			for _, ctl := range controls(t, page) {
				action := a.controlAction(t, ctl)
				seen[role][action] = true
				if !usecase.Can(role, action) {
					t.Errorf("GET %s as %s shows %q, which needs %s", path, role, ctl, action)
				}
			}
		}
	}
	for _, act := range usecase.Actions() {
		if act == usecase.ReadMetrics {
			continue // no page links to /metrics
		}
		if !seen[store.RoleAdmin][act] {
			t.Errorf("no page shows the admin a control for %s: the checks above cannot fail for it", act)
		}
	}
	for _, act := range []usecase.Action{usecase.StartVerify, usecase.StartDrill, usecase.HandleAlerts, usecase.TestChannel} {
		if !seen[store.RoleOnCall][act] {
			t.Errorf("on-call sees no control for %s, which the issue gives them", act)
		}
	}
	for _, act := range []usecase.Action{usecase.StartRestore, usecase.ManageInstance, usecase.PinBackup, usecase.Expire} {
		if !seen[store.RoleOperator][act] {
			t.Errorf("an operator sees no control for %s", act)
		}
	}
}
