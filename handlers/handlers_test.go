package handlers_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/backstop/backstop/store"
)

func TestPagesNeedASession(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	for _, path := range []string{"/", "/sources", "/backups", "/jobs", "/audit", "/sources/new"} {
		resp, _ := a.get(t, c, path)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session = %d to %q, want 303 to /login", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := a.get(t, c, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", resp.StatusCode)
	}
	resp := a.postForm(t, c, "/sources/1/backups", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session = %d, want 401", resp.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	resp := a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {"wrong password!"}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Wrong user name or password") {
		t.Errorf("POST /login with a wrong password = %d, want 401 with a message", resp.StatusCode)
	}
	resp = a.postForm(t, c, "/login", url.Values{"name": {testUser}, "password": {testPassword}, "next": {"//evil.example/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("POST /login with next=//evil.example/ = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := a.get(t, c, "/"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Overview") {
		t.Errorf("GET / after login = %d, want 200 with the overview", resp.StatusCode)
	}
	entries, err := a.store.AuditEntries(t.Context(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "user.login,user.login_failed" {
		t.Errorf("audit actions = %q, want %q", got, "user.login,user.login_failed")
	}
	a.postForm(t, c, "/logout", nil)
	if resp, _ := a.get(t, c, "/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d, want 303 to the login page", resp.StatusCode)
	}
}

func TestCrossSiteFormsAreRefused(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST /logout = %d, want 403", resp.StatusCode)
	}
	if resp, _ := a.get(t, c, "/"); resp.StatusCode != http.StatusOK {
		t.Errorf("session after a refused cross-site logout: GET / = %d, want 200", resp.StatusCode)
	}
}

func TestAddSourceShowsErrorsNextToTheField(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	tests := []struct {
		name, form, dsn string
		field, want     string
	}{
		{"bad name", "Bad Name!", "postgres://x@127.0.0.1:1/postgres", "name", "lowercase letters"},
		{"unreachable", "db1", "postgres://backstop:s3cret-pw@127.0.0.1:1/postgres?connect_timeout=2", "dsn", "127.0.0.1"},
		{"empty dsn", "db2", "", "dsn", "Enter a connection string"},
	}
	for _, tt := range tests {
		resp := a.postForm(t, c, "/sources", url.Values{"name": {tt.form}, "dsn": {tt.dsn}})
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: POST /sources = %d, want 422", tt.name, resp.StatusCode)
		}
		i := strings.Index(body, `data-testid="field-error-`+tt.field+`"`)
		if i < 0 || !strings.Contains(body[i:], tt.want) {
			t.Errorf("%s: no error next to field %q mentioning %q", tt.name, tt.field, tt.want)
		}
		if strings.Contains(body, "s3cret-pw") {
			t.Errorf("%s: the page shows the DSN's password", tt.name)
		}
	}
	srcs, err := a.store.Sources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 0 {
		t.Errorf("sources after failed checks = %d, want 0", len(srcs))
	}
}

func TestUnknownThingsAre404(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	for _, path := range []string{"/backups/999", "/jobs/999", "/sources/999", "/sources/abc", "/no-such-page"} {
		if resp, body := a.get(t, c, path); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not found") {
			t.Errorf("GET %s = %d, want 404 with a message", path, resp.StatusCode)
		}
	}
}

func TestSecondBackupOfASourceIsRefusedWhileOneIsActive(t *testing.T) {
	t.Parallel()
	a := setup(t)
	cl := shared.Cluster(t)
	c := a.client(t)
	a.login(t, c)
	resp := a.postForm(t, c, "/sources", url.Values{"name": {"orders"}, "dsn": {cl.DSN("postgres")}})
	if resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /sources = %d, want 303; body: %s", resp.StatusCode, b)
	}
	src, err := a.store.SourceByName(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	// The backup that holds the lock runs in another process (the CLI, say): insert its
	// job row directly, as that process would.
	held, err := a.store.InsertJob(t.Context(), store.JobParams{Kind: "backup", SourceID: src.ID,
		LockKey: "backup:source:" + itoa(src.ID), State: store.JobRunning, Owner: store.Owner{Host: "elsewhere", PID: 1, ID: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	resp = a.postForm(t, c, "/sources/"+itoa(src.ID)+"/backups", nil)
	if want := "/jobs/" + itoa(held.ID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("POST backup while job %d runs = %d to %q, want 303 to %s", held.ID, resp.StatusCode, resp.Header.Get("Location"), want)
	}
	js, err := a.store.Jobs(t.Context(), store.JobFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 {
		t.Errorf("jobs of the source = %d, want 1 (no second backup)", len(js))
	}
}
