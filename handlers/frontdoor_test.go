package handlers_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/store"
)

func TestLoginRedirectStaysOnSite(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, next := range []string{"/\t/evil.example/", "/\n/evil.example/", "//evil.example/", "/\\evil.example/", "https://evil.example/"} {
		c := a.client(t)
		resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {testPassword}, "next": {next}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Errorf("POST /login with next=%q = %d to %q, want 303 to /", next, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// As the login page receives it in its query: /login?next=/%09/evil.example/
	c := a.client(t)
	_, body := a.get(t, c, "/login?next=/%09/evil.example/")
	if strings.Contains(body, "evil.example") {
		t.Errorf("GET /login?next=/%%09/evil.example/ carries the target into the form")
	}
}

func TestSignInIsThrottledAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	wrong := url.Values{"name": {testUser}, "password": {"guess"}}
	for i := 1; i <= 6; i++ {
		if resp := a.postForm(t, c, "/login", wrong); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password #%d = %d, want 401", i, resp.StatusCode)
		}
	}
	// Locked out now: even the right password is refused without being checked.
	for _, pw := range []string{"guess", testPassword} {
		resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {pw}})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "Too many failed sign-ins; try again in ") ||
			resp.Header.Get("Retry-After") == "" {
			t.Errorf("sign-in while locked out = %d (Retry-After %q), want 429 with a message", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	es, err := a.store.AuditEntries(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var failed []store.AuditEntry
	for _, e := range es {
		if e.Action == "user.login_failed" {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("audit has %d user.login_failed entries, want 1 counting them all", len(failed))
	}
	if r := failed[0].Repeats; r == nil || r.Count != 6 || failed[0].Target != testUser {
		t.Errorf("user.login_failed entry = %+v on %q; want 6 counted so far on %q", r, failed[0].Target, testUser)
	}

	// The lock-out passes: the right password works again (after 1 s, then 2 s...).
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {testPassword}})
		if resp.StatusCode == http.StatusSeeOther {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("sign-in after the lock-out = %d, want 303", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSignInGuessingRate runs a guessing loop against the server for a few seconds and logs
// how many attempts reach the password check; it asserts nothing about timing.
func TestSignInGuessingRate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 6 s")
	}
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	const run = 6 * time.Second
	var checked, refused int
	start := time.Now()
	for time.Since(start) < run {
		resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {"guess"}})
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("guess = %d, want 401 or 429", resp.StatusCode)
		}
		resp.Body.Close()
	}
	el := time.Since(start)
	t.Logf("guessing loop, %v: %d attempts reached the password check (%.0f/min), %d refused with 429 (%.0f/min)",
		el.Round(time.Millisecond), checked, float64(checked)/el.Minutes(), refused, float64(refused)/el.Minutes())
	if checked > 12 {
		t.Errorf("%d guesses reached the password check in %v, want at most 12", checked, run)
	}
}

func TestLiveConnectionClosesAtSignOut(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	u, _ := url.Parse(a.srv.URL)
	hdr := http.Header{"Origin": {a.srv.URL}}
	for _, ck := range c.Jar.Cookies(u) {
		hdr.Add("Cookie", ck.String())
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws?page=overview", hdr)
	if err != nil {
		t.Fatalf("dial /ws = %v (%v)", err, resp)
	}
	defer ws.Close()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	select {
	case err := <-closed:
		t.Fatalf("live connection closed before sign-out: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if resp := a.postForm(t, c, "/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /logout = %d, want 303", resp.StatusCode)
	}
	select {
	case err := <-closed:
		if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
			t.Errorf("live connection ended with %v, want a close frame saying signed out", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("live connection still open 3 s after sign-out")
	}
	// A reconnect with the old cookie is refused.
	if _, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws?page=overview", hdr); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial /ws after sign-out = %v, want 401", err)
	}
}

func TestRequestBodiesAreBounded(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	big := url.Values{"name": {testUser}, "password": {strings.Repeat("x", 2<<20)}}
	resp := a.postForm(t, c, "/login", big)
	if resp.StatusCode < 400 || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("POST /login with a 2 MiB body = %d, want it refused before any password check", resp.StatusCode)
	}
}

// TestLiveConnectionClosesWhenUserIsDisabled: an admin disabling a user closes that user's
// open live connections at once (on the old code they kept streaming).
func TestLiveConnectionClosesWhenUserIsDisabled(t *testing.T) {
	t.Parallel()
	a := setup(t)
	if _, err := a.store.CreateUser(t.Context(), "eve", testPassword, store.RoleAuditor); err != nil {
		t.Fatal(err)
	}
	eve := a.client(t)
	a.loginAs(t, eve, "eve")
	u, _ := url.Parse(a.srv.URL)
	hdr := http.Header{"Origin": {a.srv.URL}}
	for _, ck := range eve.Jar.Cookies(u) {
		hdr.Add("Cookie", ck.String())
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a.srv.URL, "http")+"/ws?page=overview", hdr)
	if err != nil {
		t.Fatalf("dial /ws = %v (%v)", err, resp)
	}
	defer ws.Close()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	admin := a.client(t)
	a.login(t, admin)
	if resp := a.postForm(t, admin, "/users/eve/disable", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /users/eve/disable = %d, want 303", resp.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("eve's live connection still open 3 s after she was disabled")
	}
	if resp, _ := a.get(t, eve, "/"); resp.StatusCode == http.StatusOK {
		t.Errorf("GET / as disabled eve = 200, want her sent to sign in")
	}
}
