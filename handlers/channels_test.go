package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store"
)

// receiver is a webhook endpoint that records what it got and answers status.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, b)
		rc.sigs = append(rc.sigs, r.Header.Get(notify.SignatureHeader))
		rc.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() ([][]byte, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...), append([]string(nil), rc.sigs...)
}

var secretShown = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// TestAddWebhookShowsSecretOnce: a webhook added without a secret gets one, shown on the
// page that answers and never again; a test then reaches the receiver, signed with it.
func TestAddWebhookShowsSecretOnce(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	rc := newReceiver(t, http.StatusOK)

	resp := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"webhook"}, "name": {"ops-hook"},
		"url": {rc.srv.URL + "/hook"}, "min_severity": {"critical"}})
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add webhook = %d: %s", resp.StatusCode, body)
	}
	shown := parseHTML(t, body).byTestID("channel-secret")
	if len(shown) != 1 {
		t.Fatalf("the page shows no secret after adding the webhook")
	}
	secret := secretShown.FindString(textOf(shown[0]))
	if secret == "" {
		t.Fatalf("shown secret = %q, want 64 hex characters", textOf(shown[0]))
	}
	ch, err := a.store.ChannelByName(t.Context(), "ops-hook")
	if err != nil {
		t.Fatal(err)
	}
	var cfg jobs.ChannelConfig
	if err := json.Unmarshal(ch.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Secret != secret || ch.MinSeverity != store.SeverityCritical || ch.Kind != "webhook" {
		t.Errorf("stored channel = %s %s, secret stored %v; want the secret shown", ch.Kind, ch.MinSeverity, cfg.Secret == secret)
	}
	_, body = a.get(t, c, "/settings/notifications")
	if strings.Contains(body, secret) {
		t.Error("the secret is shown again on the next visit")
	}
	d := parseHTML(t, body)
	chans := d.byTestID("channel")
	if len(chans) != 1 || attrOf(chans[0], "data-name") != "ops-hook" || !strings.Contains(textOf(chans[0]), "critical alerts only") {
		t.Fatalf("channels listed = %d, want ops-hook for critical alerts", len(chans))
	}
	if !strings.Contains(textOf(chans[0]), "Nothing sent yet.") {
		t.Errorf("a new channel = %q, want nothing sent yet", textOf(chans[0]))
	}

	// Send test: delivered, signed with the secret, and listed as delivered.
	resp = a.postForm(t, c, "/settings/notifications/ops-hook/test", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/settings/notifications" {
		t.Fatalf("POST test = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	bodies, sigs := rc.received()
	if len(bodies) != 1 {
		t.Fatalf("the receiver got %d requests, want 1", len(bodies))
	}
	if err := notify.VerifySignature([]byte(secret), bodies[0], sigs[0]); err != nil {
		t.Errorf("test notification signature: %v", err)
	}
	_, body = a.get(t, c, "/settings/notifications")
	d = parseHTML(t, body)
	if f := d.byTestID("flash"); len(f) != 1 || !strings.HasPrefix(textOf(f[0]), "Delivered") {
		t.Errorf("flash after the test = %v, want Delivered", f)
	}
	ds := d.byTestID("delivery")
	if len(ds) != 1 || attrOf(ds[0], "data-ok") != "true" || !strings.Contains(textOf(ds[0]), "Test") || !strings.Contains(textOf(ds[0]), "Delivered") {
		t.Errorf("deliveries = %v, want the test, delivered", ds)
	}
	entries, _ := a.store.AuditEntries(t.Context(), 100, 0)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+":"+e.Target)
	}
	if got := strings.Join(actions, ","); !strings.Contains(got, "channel.add:ops-hook") || !strings.Contains(got, "channel.test:ops-hook") {
		t.Errorf("audit = %s, want the addition and the test", got)
	}
}

// TestSendTestFailing: a test against a failing receiver says what went wrong, and the
// channel's card lists the failed attempt with the error.
func TestSendTestFailing(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	rc := newReceiver(t, http.StatusInternalServerError)
	resp := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"webhook"}, "name": {"broken"},
		"url": {rc.srv.URL}, "secret": {"a shared secret of ours"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add webhook with a secret = %d, want 303 (nothing to show once)", resp.StatusCode)
	}
	resp = a.postForm(t, c, "/settings/notifications/broken/test", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST test = %d, want 303 with the result", resp.StatusCode)
	}
	_, body := a.get(t, c, "/settings/notifications")
	d := parseHTML(t, body)
	f := d.byTestID("flash")
	if len(f) != 1 || attrOf(f[0], "role") != "alert" || !strings.Contains(textOf(f[0]), "failed") || !strings.Contains(textOf(f[0]), "500") {
		t.Errorf("flash = %v, want the failure with the status", f)
	}
	ds := d.byTestID("delivery")
	if len(ds) != 1 || attrOf(ds[0], "data-ok") != "false" || !strings.Contains(textOf(ds[0]), "Failed") || !strings.Contains(textOf(ds[0]), "500") {
		t.Errorf("deliveries = %v, want the failed test with its error", ds)
	}
	if n, _ := rc.received(); len(n) != 1 {
		t.Errorf("a test was sent %d times, want once (no retries)", len(n))
	}
	if resp := a.postForm(t, c, "/settings/notifications/nosuch/test", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("test of a missing channel = %d, want 404", resp.StatusCode)
	}
}

// TestAddChannelErrors: what is wrong is said next to each field, the form keeps what
// was typed (but no secret), and nothing is stored.
func TestAddChannelErrors(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	fieldError := func(d htmlDoc, id string) string {
		n := d.byTestID("field-error-" + id)
		if len(n) != 1 {
			return ""
		}
		return textOf(n[0])
	}

	resp := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"webhook"}, "name": {""}, "url": {"ftp://example.com/x"},
		"secret": {"short"}})
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid webhook = %d, want 422", resp.StatusCode)
	}
	d := parseHTML(t, body)
	for id, want := range map[string]string{"webhook-name": "The name is required.", "webhook-url": `Scheme "ftp" is not http or https.`,
		"webhook-secret": "The secret must be at least 16 bytes, got 5."} {
		if got := fieldError(d, id); got != want {
			t.Errorf("error next to %s = %q, want %q", id, got, want)
		}
	}
	if strings.Contains(body, `value="short"`) {
		t.Error("the secret is refilled")
	}
	if !strings.Contains(body, `value="ftp://example.com/x"`) {
		t.Error("the URL typed is not refilled")
	}
	if len(d.byTestID("field-error-slack-url"))+len(d.byTestID("field-error-email-addr")) != 0 {
		t.Error("another kind's form shows the errors")
	}

	resp = a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"email"}, "name": {"dba"}, "addr": {"smtp.example.com"},
		"from": {"backstop"}, "to": {"dba@example.com, ops@"}, "tls": {"starttls"}, "username": {"u"}})
	body = readAll(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid email = %d, want 422", resp.StatusCode)
	}
	d = parseHTML(t, body)
	for _, id := range []string{"email-addr", "email-from", "email-to", "email-password"} {
		if fieldError(d, id) == "" {
			t.Errorf("no error next to %s", id)
		}
	}
	if got := fieldError(d, "email-password"); got != "The password is required when a username is given." {
		t.Errorf("password error = %q", got)
	}
	if !strings.Contains(body, `value="dba@example.com, ops@"`) {
		t.Error("To is not refilled")
	}

	// A name in use is an error next to the name.
	ok := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"slack"}, "name": {"team"}, "url": {"https://hooks.example.com/T1/B2/x"}})
	if ok.StatusCode != http.StatusSeeOther {
		t.Fatalf("add slack = %d", ok.StatusCode)
	}
	resp = a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"slack"}, "name": {"team"}, "url": {"https://hooks.example.com/T1/B2/y"}})
	body = readAll(t, resp)
	if got := fieldError(parseHTML(t, body), "slack-name"); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(got, "already exists") {
		t.Errorf("a name in use = %d, %q", resp.StatusCode, got)
	}
	cs, _ := a.store.Channels(t.Context())
	if len(cs) != 1 {
		t.Errorf("channels stored = %d, want only the valid one", len(cs))
	}
}

// TestRemoveChannel removes a channel, one whose name needs escaping in the URL too.
func TestRemoveChannel(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	for _, name := range []string{"ops", "team/ops #2"} {
		resp := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"slack"}, "name": {name}, "url": {"https://hooks.example.com/x"}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("add %q = %d", name, resp.StatusCode)
		}
	}
	_, body := a.get(t, c, "/settings/notifications")
	if !strings.Contains(body, `action="/settings/notifications/team%2Fops%20%232/remove"`) {
		t.Fatalf("the Remove form of team/ops #2 does not escape its name")
	}
	for _, name := range []string{"ops", "team/ops #2"} {
		resp := a.postForm(t, c, "/settings/notifications/"+url.PathEscape(name)+"/remove", nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("remove %q = %d", name, resp.StatusCode)
		}
		if _, err := a.store.ChannelByName(t.Context(), name); err == nil {
			t.Errorf("%q is still there", name)
		}
	}
	_, body = a.get(t, c, "/settings/notifications")
	if len(parseHTML(t, body).byTestID("channels-empty")) != 1 {
		t.Error("no empty state once every channel is removed")
	}
	if resp := a.postForm(t, c, "/settings/notifications/ops/remove", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("remove a missing channel = %d, want 404", resp.StatusCode)
	}
}

// TestChannelsByRole: only admins add and remove channels; admins, operators and
// on-call send tests; each role sees only the controls it may use.
func TestChannelsByRole(t *testing.T) {
	t.Parallel()
	a := setup(t)
	admin := a.client(t)
	a.login(t, admin)
	rc := newReceiver(t, http.StatusOK)
	if resp := a.postForm(t, admin, "/settings/notifications", url.Values{"kind": {"webhook"}, "name": {"ops"}, "url": {rc.srv.URL},
		"secret": {"0123456789abcdef0123"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add = %d", resp.StatusCode)
	}
	cs := withRoles(t, a, map[string]store.Role{"oscar": store.RoleOperator, "olive": store.RoleOnCall, "audrey": store.RoleAuditor})
	cs["admin"] = admin
	for name, c := range cs {
		_, body := a.get(t, c, "/settings/notifications")
		d := parseHTML(t, body)
		forms := len(d.byTestID("channel-form-webhook")) + len(d.byTestID("channel-form-slack")) + len(d.byTestID("channel-form-email"))
		removes, tests := len(d.byTestID("channel-remove")), len(d.byTestID("channel-test"))
		admin := name == "admin"
		if (forms == 3) != admin || (removes == 1) != admin {
			t.Errorf("%s sees %d add forms and %d Remove buttons", name, forms, removes)
		}
		if (tests == 1) != (name != "audrey") {
			t.Errorf("%s sees %d Send test buttons", name, tests)
		}
		if admin {
			continue
		}
		add := a.postForm(t, c, "/settings/notifications", url.Values{"kind": {"slack"}, "name": {"x-" + name}, "url": {"https://hooks.example.com/x"}})
		remove := a.postForm(t, c, "/settings/notifications/ops/remove", nil)
		if add.StatusCode != http.StatusForbidden || remove.StatusCode != http.StatusForbidden {
			t.Errorf("%s: add = %d, remove = %d, want 403", name, add.StatusCode, remove.StatusCode)
		}
		test := a.postForm(t, c, "/settings/notifications/ops/test", nil)
		if want := map[bool]int{true: http.StatusForbidden, false: http.StatusSeeOther}[name == "audrey"]; test.StatusCode != want {
			t.Errorf("%s: test = %d, want %d", name, test.StatusCode, want)
		}
	}
	chans, _ := a.store.Channels(t.Context())
	if len(chans) != 1 || chans[0].Name != "ops" {
		t.Errorf("channels after refused changes = %v", chans)
	}
	if got, _ := rc.received(); len(got) != 2 {
		t.Errorf("tests received = %d, want 2 (operator and on-call)", len(got))
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
