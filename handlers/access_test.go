package handlers_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// sessionHash is how the catalog names the session of a signed-in client.
func (a *app) sessionHash(t *testing.T, c *http.Client) string {
	t.Helper()
	u, _ := url.Parse(a.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "backstop_session" {
			sum := sha256.Sum256([]byte(ck.Value))
			return hex.EncodeToString(sum[:])
		}
	}
	t.Fatal("the client is not signed in")
	return ""
}

// dialWS opens the live connection of a signed-in client.
func (a *app) dialWS(t *testing.T, c *http.Client) *websocket.Conn {
	t.Helper()
	u, _ := url.Parse(a.srv.URL)
	hdr := http.Header{"Origin": {a.srv.URL}}
	for _, ck := range c.Jar.Cookies(u) {
		hdr.Add("Cookie", ck.String())
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws?page=overview", hdr)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// wantClosed fails the test unless the server closes ws as signed out.
func wantClosed(t *testing.T, ws *websocket.Conn, what string) {
	t.Helper()
	if err := ws.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Errorf("%s: the live connection ended with %v, want closed as signed out", what, err)
		}
		return
	}
}

// signedIn reports whether the client's session still opens a page.
func (a *app) signedIn(t *testing.T, c *http.Client) bool {
	t.Helper()
	resp, _ := a.get(t, c, "/")
	return resp.StatusCode == http.StatusOK
}

// auditActions lists the actions of the audit log, oldest first.
func (a *app) auditActions(t *testing.T) []string {
	t.Helper()
	es, err := a.store.AuditEntries(t.Context(), 100000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, es[i].Action+" "+es[i].Target)
	}
	return out
}

func hasAudit(actions []string, want string) bool {
	for _, a := range actions {
		if a == want {
			return true
		}
	}
	return false
}

// TestRestoreLimitedPerSource: an operator limited to billing sees no restore control for
// orders, is told why on its restore page, and is refused (403, with the reason, nothing
// changed) a restore of orders and the management of its restored instance; billing stays
// theirs; "every source" lifts the limit. Admins cannot be limited.
func TestRestoreLimitedPerSource(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx := t.Context()
	// orders has a backup, so its pages offer a restore; billing is a name only.
	orders, err := jobs.RegisterSource(ctx, a.store, "orders", shared.Cluster(t).DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.runner.Run(ctx, jobs.Params{Kind: jobs.KindBackup, SourceID: orders.ID, LockKey: jobs.BackupLockKey(orders.ID),
		Args: jobs.BackupArgs{SourceID: orders.ID}}); err != nil {
		t.Fatal(err)
	}
	billing, err := a.store.CreateSource(ctx, store.SourceParams{Name: "billing", DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: "7310000000000000001", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.store.CreateRestore(ctx, store.RestoreParams{SourceID: orders.ID, Target: "latest", DataDir: t.TempDir() + "/r",
		Port: 55996, PGMajor: 15, Marker: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreStopped}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx, "olga", testPassword, store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	admin, olga := a.client(t), a.client(t)
	a.login(t, admin)
	a.loginAs(t, olga, "olga")

	_, page := a.get(t, admin, "/users")
	if !strings.Contains(page, `data-testid="restore-scope-olga"`) || !strings.Contains(page, "every source") {
		t.Errorf("the users page does not show that olga restores every source")
	}
	if resp := a.postForm(t, admin, "/users/olga/sources", url.Values{"source": {"billing"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /users/olga/sources = %d, want 303", resp.StatusCode)
	}
	if !hasAudit(a.auditActions(t), "user.restore_sources olga") {
		t.Errorf("no audit entry for the change of olga's sources")
	}
	_, page = a.get(t, admin, "/users")
	if !strings.Contains(page, "<summary>billing</summary>") {
		t.Errorf("the users page does not show olga limited to billing")
	}

	restoreLinkOn := func(c *http.Client) bool {
		_, page := a.get(t, c, fmt.Sprintf("/sources/%d", orders.ID))
		return strings.Contains(page, `data-testid="restore-link"`)
	}
	if !restoreLinkOn(admin) {
		t.Fatal("the admin sees no Restore button on orders: the checks below would prove nothing")
	}
	if restoreLinkOn(olga) {
		t.Errorf("olga sees a Restore button on orders, which she may not restore")
	}
	_, page = a.get(t, olga, fmt.Sprintf("/sources/%d/restore?mode=latest", orders.ID))
	if !strings.Contains(page, "Your restores are limited to other sources") || !strings.Contains(page, `method="get"`) {
		t.Errorf("orders' restore page does not tell olga why she cannot restore it, or offers to")
	}
	bs, err := a.store.Backups(ctx, store.BackupFilter{SourceID: orders.ID, Limit: 1})
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups of orders = %d, %v", len(bs), err)
	}
	backupPage := fmt.Sprintf("/backups/%d", bs[0].ID)
	if _, page := a.get(t, admin, backupPage); strings.Contains(page, "backup-restore-not-allowed") || !strings.Contains(page, "backstop restore") {
		t.Errorf("the admin is not shown how to restore orders' backup")
	}
	if _, page := a.get(t, olga, backupPage); !strings.Contains(page, "backup-restore-not-allowed") || strings.Contains(page, "backstop restore") {
		t.Errorf("olga is shown how to restore orders' backup, which she may not restore")
	}
	instanceControls := fmt.Sprintf(`action="/restores/%d/`, x.ID)
	if _, page := a.get(t, admin, "/restores"); !strings.Contains(page, instanceControls) {
		t.Errorf("the admin sees no controls of orders' restored instance: the check below proves nothing")
	}
	_, page = a.get(t, olga, "/restores")
	if strings.Contains(page, instanceControls) {
		t.Errorf("olga sees controls of orders' restored instance")
	}

	before := sideEffects(t, a)
	resp := a.postForm(t, olga, fmt.Sprintf("/sources/%d/restore", orders.ID), url.Values{"confirm": {"orders"}, "target": {"latest"}, "port": {"55995"}})
	msg := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(msg, "limited to billing") {
		t.Errorf("olga's restore of orders = %d, want 403 saying she is limited to billing; body has the reason: %t", resp.StatusCode, strings.Contains(msg, "limited to billing"))
	}
	if resp := a.postForm(t, olga, fmt.Sprintf("/restores/%d/stop", x.ID), nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("olga stopping orders' instance = %d, want 403", resp.StatusCode)
	}
	if after := sideEffects(t, a); after != before {
		t.Errorf("refused restores changed the catalog: %s → %s", before, after)
	}
	if resp := a.postForm(t, olga, fmt.Sprintf("/sources/%d/restore", billing.ID), url.Values{"confirm": {"billing"}}); resp.StatusCode == http.StatusForbidden {
		t.Errorf("olga's restore of billing = 403, want it allowed")
	}

	if resp := a.postForm(t, admin, "/users/olga/sources", url.Values{"all": {"on"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /users/olga/sources all = %d, want 303", resp.StatusCode)
	}
	if resp := a.postForm(t, olga, fmt.Sprintf("/sources/%d/restore", orders.ID), url.Values{"confirm": {"orders"}}); resp.StatusCode == http.StatusForbidden {
		t.Errorf("after every source was allowed, olga's restore of orders = 403")
	}
	if !restoreLinkOn(olga) {
		t.Errorf("after every source was allowed, olga sees no Restore button on orders")
	}

	// An admin restores every source: limiting one is refused and changes nothing.
	resp = a.postForm(t, admin, "/users/admin/sources", url.Values{"source": {"billing"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /users/admin/sources = %d, want 303 with an error", resp.StatusCode)
	}
	_, page = a.get(t, admin, "/users")
	if !strings.Contains(page, "admins restore every source") {
		t.Errorf("limiting an admin was not refused with a reason")
	}
}

// TestSessionsListedAndRevocable: an admin sees everyone's sessions and signs one out, which
// closes its open page; a user sees their own, cannot sign out another's, signs out the
// others, and changes their own password only with the current one (their other sessions
// end); an admin's password reset ends all of theirs. Each is audited.
func TestSessionsListedAndRevocable(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx := t.Context()
	if _, err := a.store.CreateUser(ctx, "olga", testPassword, store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	admin, o1, o2 := a.client(t), a.client(t), a.client(t)
	a.login(t, admin)
	a.loginAs(t, o1, "olga")
	a.loginAs(t, o2, "olga")
	ws := a.dialWS(t, o2)

	_, page := a.get(t, o1, "/account")
	if n := strings.Count(page, `data-testid="session-row"`); n != 2 {
		t.Errorf("olga's account page lists %d sessions, want her 2", n)
	}
	if n := strings.Count(page, `data-testid="session-current"`); n != 1 {
		t.Errorf("olga's account page marks %d sessions as this browser, want 1", n)
	}
	if !strings.Contains(page, "at the latest") {
		t.Errorf("the sessions list does not show when sessions expire")
	}
	_, page = a.get(t, admin, "/users")
	if n := strings.Count(page, `data-user="olga"`); n != 2 {
		t.Errorf("the admin's users page lists %d of olga's sessions, want 2", n)
	}
	if n := strings.Count(page, `data-testid="session-row"`); n != 3 {
		t.Errorf("the admin's users page lists %d sessions, want all 3", n)
	}

	// Olga may not sign the admin out.
	if resp := a.postForm(t, o1, "/sessions/"+a.sessionHash(t, admin)+"/revoke", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("olga signing out the admin's session = %d, want 403", resp.StatusCode)
	}
	if !a.signedIn(t, admin) {
		t.Fatal("a refused revoke signed the admin out")
	}

	// The admin signs out olga's second browser: its open page closes.
	if resp := a.postForm(t, admin, "/sessions/"+a.sessionHash(t, o2)+"/revoke", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin revoking olga's session = %d, want 303", resp.StatusCode)
	}
	wantClosed(t, ws, "revoked session")
	if a.signedIn(t, o2) || !a.signedIn(t, o1) {
		t.Errorf("after revoking o2: o2 signed in %t, o1 signed in %t; want false, true", a.signedIn(t, o2), a.signedIn(t, o1))
	}
	if !hasAudit(a.auditActions(t), "user.session_revoke olga") {
		t.Errorf("no audit entry for the revoked session")
	}

	// Olga signs out everywhere else.
	o3 := a.client(t)
	a.loginAs(t, o3, "olga")
	ws3 := a.dialWS(t, o3)
	if resp := a.postForm(t, o1, "/account/sessions/revoke-others", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /account/sessions/revoke-others = %d, want 303", resp.StatusCode)
	}
	wantClosed(t, ws3, "signed out everywhere else")
	if a.signedIn(t, o3) || !a.signedIn(t, o1) {
		t.Errorf("after signing out elsewhere: o3 signed in %t, o1 signed in %t; want false, true", a.signedIn(t, o3), a.signedIn(t, o1))
	}

	// Her own password: the current one is required; her other sessions end.
	o4 := a.client(t)
	a.loginAs(t, o4, "olga")
	const newPassword = "a new password for olga"
	resp := a.postForm(t, o1, "/account/password", url.Values{"current": {"wrong password!"}, "password": {newPassword}})
	if msg := body(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, "The current password is wrong.") {
		t.Errorf("password change with a wrong current one = %d, want 422 saying so", resp.StatusCode)
	}
	resp = a.postForm(t, o1, "/account/password", url.Values{"current": {testPassword}, "password": {"short"}})
	if msg := body(t, resp); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(msg, "at least 12 characters") {
		t.Errorf("password change to a short one = %d, want 422 saying why", resp.StatusCode)
	}
	if !a.signedIn(t, o4) {
		t.Fatal("refused password changes ended another session")
	}
	if resp := a.postForm(t, o1, "/account/password", url.Values{"current": {testPassword}, "password": {newPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password change = %d, want 303", resp.StatusCode)
	}
	if a.signedIn(t, o4) || !a.signedIn(t, o1) {
		t.Errorf("after the password change: o4 signed in %t, o1 signed in %t; want false, true", a.signedIn(t, o4), a.signedIn(t, o1))
	}
	if resp := a.postForm(t, a.client(t), "/login", url.Values{"name": {"olga"}, "password": {newPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in with the new password = %d, want 303", resp.StatusCode)
	}
	if !hasAudit(a.auditActions(t), "user.password_change olga") {
		t.Errorf("no audit entry for the password change")
	}

	// An admin's reset signs her out everywhere.
	ws1 := a.dialWS(t, o1)
	if resp := a.postForm(t, admin, "/users/olga/password", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password reset = %d, want 303", resp.StatusCode)
	}
	wantClosed(t, ws1, "password reset")
	if a.signedIn(t, o1) {
		t.Errorf("after an admin's reset, olga is still signed in")
	}
	if !hasAudit(a.auditActions(t), "user.password_reset olga") {
		t.Errorf("no audit entry for the password reset")
	}
}
