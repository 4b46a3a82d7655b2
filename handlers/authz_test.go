package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// routePolicy is what each route needs: "" for a public route, else the use-case action
// whose roles may use it. A route missing here fails TestRouteRoleMatrix, so a new route
// cannot be added without deciding who may use it.
var routePolicy = map[string]usecase.Action{
	"GET /healthz":                               "",
	"GET /metrics":                               usecase.ReadMetrics,
	"* /static/*":                                "",
	"GET /health":                                usecase.View,
	"GET /login":                                 "",
	"POST /login":                                "",
	"POST /logout":                               usecase.View,
	"GET /":                                      usecase.View,
	"GET /ws":                                    usecase.View,
	"GET /audit":                                 usecase.ReadAudit,
	"GET /audit/export":                          usecase.ExportAudit,
	"GET /sources/":                              usecase.View,
	"GET /sources/new":                           usecase.View,
	"POST /sources/":                             usecase.AddSource,
	"GET /sources/{sourceID}/":                   usecase.View,
	"POST /sources/{sourceID}/backups":           usecase.StartBackup,
	"POST /sources/{sourceID}/verify":            usecase.StartVerify,
	"POST /sources/{sourceID}/drill":             usecase.StartDrill,
	"GET /sources/{sourceID}/restore":            usecase.View,
	"POST /sources/{sourceID}/restore":           usecase.StartRestore,
	"GET /sources/{sourceID}/edit":               usecase.View,
	"POST /sources/{sourceID}/edit":              usecase.ChangeSource,
	"POST /sources/{sourceID}/remove":            usecase.RemoveSource,
	"GET /sources/{sourceID}/policy":             usecase.View,
	"POST /sources/{sourceID}/policy":            usecase.SetPolicy,
	"POST /sources/{sourceID}/policy/preview":    usecase.View,
	"POST /sources/{sourceID}/expire":            usecase.Expire,
	"GET /backups/":                              usecase.View,
	"GET /backups/{backupID}/":                   usecase.View,
	"POST /backups/{backupID}/pin":               usecase.PinBackup,
	"POST /backups/{backupID}/unpin":             usecase.PinBackup,
	"GET /restores/":                             usecase.View,
	"POST /restores/{restoreID}/stop":            usecase.ManageInstance,
	"POST /restores/{restoreID}/start":           usecase.ManageInstance,
	"POST /restores/{restoreID}/delete":          usecase.ManageInstance,
	"GET /users/":                                usecase.ManageUsers,
	"POST /users/":                               usecase.ManageUsers,
	"POST /users/{userName}/role":                usecase.ManageUsers,
	"POST /users/{userName}/password":            usecase.ManageUsers,
	"POST /users/{userName}/sources":             usecase.ManageUsers,
	"GET /account":                               usecase.View,
	"POST /account/password":                     usecase.View,
	"POST /account/sessions/revoke-others":       usecase.View,
	"POST /sessions/{sessionID}/revoke":          usecase.ManageUsers, // the victim's session: another user's
	"POST /users/{userName}/disable":             usecase.ManageUsers,
	"POST /users/{userName}/enable":              usecase.ManageUsers,
	"POST /users/{userName}/remove":              usecase.ManageUsers,
	"GET /jobs/":                                 usecase.View,
	"GET /jobs/{jobID}/":                         usecase.View,
	"POST /jobs/{jobID}/cancel":                  usecase.CancelJob,
	"GET /alerts/":                               usecase.View,
	"GET /alerts/count":                          usecase.View,
	"GET /alerts/{alertID}/":                     usecase.View,
	"POST /alerts/{alertID}/ack":                 usecase.HandleAlerts,
	"POST /alerts/{alertID}/resolve":             usecase.HandleAlerts,
	"GET /settings/notifications/":               usecase.View,
	"POST /settings/notifications/":              usecase.ManageChannels,
	"POST /settings/notifications/{name}/test":   usecase.TestChannel,
	"POST /settings/notifications/{name}/remove": usecase.ManageChannels,
	"GET /reports/":                              usecase.ReadReports,
	"GET /reports/preview":                       usecase.ReadReports,
	"GET /reports/download":                      usecase.ReadReports,
	"GET /reports/key.pub":                       usecase.View,
}

// explicitCells are cells of the matrix written out from the words rather than
// read from the permissions table, so that the matrix fails when the table itself is wrong.
var explicitCells = []struct {
	route   string
	role    store.Role
	allowed bool
}{
	{"POST /sources/{sourceID}/restore", store.RoleAuditor, false},
	{"POST /sources/{sourceID}/restore", store.RoleOnCall, false},
	{"POST /sources/{sourceID}/restore", store.RoleOperator, true},
	{"POST /restores/{restoreID}/delete", store.RoleOnCall, false},
	{"POST /sources/{sourceID}/verify", store.RoleOnCall, true},
	{"POST /sources/{sourceID}/drill", store.RoleOnCall, true},
	{"POST /alerts/{alertID}/ack", store.RoleOnCall, true},
	{"POST /alerts/{alertID}/ack", store.RoleAuditor, false},
	{"POST /sources/{sourceID}/policy", store.RoleOperator, true},
	{"POST /sources/{sourceID}/policy", store.RoleOnCall, false},
	{"POST /backups/{backupID}/pin", store.RoleAuditor, false},
	{"GET /users/", store.RoleOperator, false},
	{"POST /users/{userName}/sources", store.RoleAdmin, true},
	{"POST /sessions/{sessionID}/revoke", store.RoleOperator, false},
	{"GET /audit", store.RoleAuditor, true},
	{"GET /ws", store.RoleAuditor, true},
	{"GET /account", store.RoleAuditor, true},
}

// TestRouteRoleMatrix walks every route of the router and, for every role and for a
// browser not signed in, checks that the server allows exactly what the permissions table
// allows: a refused request answers 403 (401 or the sign-in page when not signed in) and
// changes nothing (no job, no audit entry, no user, source or session change); an allowed one
// really runs: it answers a page, a redirect or a refusal of its input (400, 409, 422), never
// 401, 403, 404 or a server error. The websocket is dialled for real.
func TestRouteRoleMatrix(t *testing.T) {
	a := setup(t)
	ids := matrixFixtures(t, a)

	var routes []string
	err := chi.Walk(a.routes.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/static/*" { // served for every method by one handler
			method = "*"
		}
		if r := method + " " + route; !slices.Contains(routes, r) {
			routes = append(routes, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if _, ok := routePolicy[r]; !ok {
			t.Errorf("route %q has no entry in routePolicy: decide which action it needs", r)
		}
	}
	for r := range routePolicy {
		if !slices.Contains(routes, r) {
			t.Errorf("routePolicy names %q, which the router does not have", r)
		}
	}
	for _, c := range explicitCells {
		if got := usecase.Can(c.role, routePolicy[c.route]); got != c.allowed {
			t.Errorf("permissions table: %s as %s allowed = %t, want %t", c.route, c.role, got, c.allowed)
		}
	}
	// The victim's session first, before a password reset ends it; destructive routes last,
	// so that the requests before them find what they act on.
	slices.SortStableFunc(routes, func(x, y string) int {
		rank := func(r string) int {
			switch {
			case strings.HasSuffix(r, "/revoke"):
				return -1
			case strings.HasSuffix(r, "/remove"), strings.HasSuffix(r, "/delete"), strings.HasSuffix(r, "/disable"):
				return 2
			case strings.HasSuffix(r, "/logout"):
				return 3
			}
			return 0
		}
		return rank(x) - rank(y)
	})

	clients := map[store.Role]*http.Client{}
	for _, role := range store.Roles {
		clients[role] = a.client(t)
		a.loginAs(t, clients[role], string(role))
	}
	anonymous := a.client(t)
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		action := routePolicy[route]
		if action == "" {
			continue
		}
		path := strings.NewReplacer("{sourceID}", ids["source"], "{backupID}", ids["backup"], "{restoreID}", ids["restore"],
			"{jobID}", ids["job"], "{userName}", "victim", "{alertID}", ids["alert"], "{name}", ids["channel"],
			"{sessionID}", ids["session"]).Replace(pattern)
		name := strings.ReplaceAll(route, "/", "_")
		t.Run(name+"/anonymous", func(t *testing.T) {
			before := sideEffects(t, a)
			status, loc := a.matrixRequest(t, anonymous, method, path)
			if status != http.StatusUnauthorized && (status != http.StatusSeeOther || !strings.HasPrefix(loc, "/login")) {
				t.Errorf("%s %s not signed in = %d (%s), want 401 or the sign-in page", method, path, status, loc)
			}
			if after := sideEffects(t, a); after != before {
				t.Errorf("%s %s not signed in changed the catalog: %s → %s", method, path, before, after)
			}
		})
		for _, role := range store.Roles {
			t.Run(name+"/"+string(role), func(t *testing.T) {
				c := clients[role]
				if method == http.MethodPost && pattern == "/logout" {
					c = a.client(t)
					a.loginAs(t, c, string(role))
				}
				before := sideEffects(t, a)
				status, _ := a.matrixRequest(t, c, method, path)
				allowed := usecase.Can(role, action)
				switch {
				case allowed && !slices.Contains([]int{http.StatusOK, http.StatusSwitchingProtocols, http.StatusSeeOther,
					http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity}, status):
					t.Errorf("%s %s as %s = %d, want it allowed (%s) and carried out", method, path, role, status, action)
				case !allowed && status != http.StatusForbidden:
					t.Errorf("%s %s as %s = %d, want 403 (%s is not for %s)", method, path, role, status, action, role)
				case !allowed:
					if after := sideEffects(t, a); after != before {
						t.Errorf("%s %s as %s was refused but changed the catalog: %s → %s", method, path, role, before, after)
					}
				}
			})
		}
	}
}

// matrixRequest makes one request of the matrix and returns its status and redirect: a GET,
// a same-origin form POST, or for /ws a websocket handshake with the client's cookies.
func (a *app) matrixRequest(t *testing.T, c *http.Client, method, path string) (int, string) {
	t.Helper()
	if path == "/ws" {
		u, _ := url.Parse(a.srv.URL)
		hdr := http.Header{"Origin": {a.srv.URL}}
		for _, ck := range c.Jar.Cookies(u) {
			hdr.Add("Cookie", ck.String())
		}
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws?page=overview", hdr)
		if err == nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("dial /ws: %v", err)
		}
		return resp.StatusCode, ""
	}
	var resp *http.Response
	if method == http.MethodGet {
		query := "?page=overview"
		if strings.HasPrefix(path, "/reports") { // a period, so that allowed downloads are made
			query += "&from=2026-11-01&to=2026-11-02&format=pdf"
		}
		resp, _ = a.get(t, c, path+query)
	} else {
		resp = a.postForm(t, c, path, url.Values{"confirm": {"matrix"}, "role": {"auditor"}})
	}
	return resp.StatusCode, resp.Header.Get("Location")
}

// matrixFixtures makes one of everything a route can name, and a user per role.
func matrixFixtures(t *testing.T, a *app) map[string]string {
	t.Helper()
	ctx := t.Context()
	for _, role := range append(store.Roles, "victim") {
		r := role
		if role == "victim" {
			r = store.RoleOperator
		}
		if string(role) == testUser {
			continue // setup made it
		}
		if _, err := a.store.CreateUser(ctx, string(role), testPassword, r); err != nil {
			t.Fatal(err)
		}
	}
	// A source whose server does not exist: actions on it fail after authorization, fast.
	src, err := a.store.CreateSource(ctx, store.SourceParams{Name: "matrix", DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000001", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.store.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: "matrix-backup"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.store.InsertJob(ctx, store.JobParams{Kind: "matrix", SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.store.CreateRestore(ctx, store.RestoreParams{SourceID: src.ID, Target: "latest", DataDir: t.TempDir() + "/r",
		Port: 55999, PGMajor: 15, Marker: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreStopped}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.ObserveConditions(ctx, []string{"matrix"}, []store.Condition{{Rule: "matrix", SourceID: src.ID,
		DedupeKey: "matrix", Severity: store.SeverityWarning, Title: "matrix: an alert", Explanation: "For the matrix."}}); err != nil {
		t.Fatal(err)
	}
	al, err := a.store.Alerts(ctx, store.AlertFilter{Open: true})
	if err != nil || len(al) != 1 {
		t.Fatalf("open alerts = %d (%v), want the matrix's", len(al), err)
	}
	// A webhook nothing listens to: a test of it fails after authorization, fast.
	if _, err := a.store.CreateChannel(ctx, store.Channel{Name: "matrix", Kind: "webhook", MinSeverity: store.SeverityWarning,
		Enabled: true, Config: []byte(`{"url":"http://127.0.0.1:1/hook","secret":"0123456789abcdef0123"}`)}); err != nil {
		t.Fatal(err)
	}
	// The victim signs in: their session is the one others try to sign out.
	a.loginAs(t, a.client(t), "victim")
	victim, err := a.store.UserByName(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := a.store.Sessions(ctx, victim.ID)
	if err != nil || len(ss) != 1 {
		t.Fatalf("victim's sessions = %d (%v), want 1", len(ss), err)
	}
	return map[string]string{"source": itoa(src.ID), "backup": itoa(b.ID), "job": itoa(j.ID), "restore": itoa(x.ID),
		"alert": itoa(al[0].ID), "channel": "matrix", "session": ss[0].TokenHash}
}

// settle waits until the jobs started by earlier requests have ended and audited their
// end, so that a background job's end is never taken for what a refused request changed.
// The matrix's own job has no worker: it stays queued until cancelled, and ends unaudited.
func settle(t *testing.T, a *app) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		js, err := a.store.Jobs(ctx, store.JobFilter{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		es, err := a.store.AuditEntries(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		ended, audited := 0, 0
		for _, j := range js {
			if j.Kind != "matrix" && j.State != store.JobQueued && j.State != store.JobRunning {
				ended++
			} else if j.Kind != "matrix" {
				ended = -1
				break
			}
		}
		for _, e := range es {
			if strings.HasSuffix(e.Action, ".end") {
				audited++
			}
		}
		if ended == audited {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still running or not audited: %d ended, %d end entries", ended, audited)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sideEffects summarizes what an action could have changed, once the jobs started before
// have settled.
func sideEffects(t *testing.T, a *app) string {
	t.Helper()
	settle(t, a)
	ctx := context.Background()
	js, err := a.store.Jobs(ctx, store.JobFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	es, err := a.store.AuditEntries(ctx, 100000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		// A job started by an earlier, allowed request records its end whenever it ends:
		// the runner's doing, not the request's under test.
		if !strings.HasPrefix(e.Action, "user.login") && e.Action != "user.logout" && !strings.HasSuffix(e.Action, ".end") {
			actions = append(actions, e.Action)
		}
	}
	us, err := a.store.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, u := range us {
		roles = append(roles, u.Name+"="+string(u.Role)+map[bool]string{true: "(disabled)"}[u.DisabledAt != nil])
	}
	srcs, err := a.store.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := a.store.Sessions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join([]string{itoa(int64(len(js))), strings.Join(actions, ","), strings.Join(roles, ","), itoa(int64(len(srcs))),
		itoa(int64(len(ss))) + " sessions"}, " | ")
}

// TestRestoredInstanceStateFromTheServer: an instance recorded as running whose server is
// gone shows as stopped: the page asks the server rather than trusting the record.
func TestRestoredInstanceStateFromTheServer(t *testing.T) {
	a := setup(t)
	ctx := t.Context()
	src, err := a.store.CreateSource(ctx, store.SourceParams{Name: "gone", DSN: "postgres://x@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000003", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.store.CreateRestore(ctx, store.RestoreParams{SourceID: src.ID, Target: "latest", DataDir: t.TempDir() + "/r",
		Port: 55997, PGMajor: 15, Marker: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreRunning}); err != nil {
		t.Fatal(err)
	}
	c := a.client(t)
	a.login(t, c)
	_, body := a.get(t, c, "/restores")
	if !strings.Contains(body, `data-state="stopped"`) || strings.Contains(body, `data-state="running"`) {
		t.Errorf("restores page shows the recorded state, want the server's: stopped")
	}
}
