package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/backstop/backstop/store"
)

// raise opens an alert for each condition, as the evaluator would, and returns them in
// the order given. Rules are not evaluated, so no other alert resolves.
func raise(t *testing.T, a *app, conds ...store.Condition) []store.Alert {
	t.Helper()
	var out []store.Alert
	for _, c := range conds {
		if c.Rule == "" {
			c.Rule = "test-rule"
		}
		if c.Explanation == "" {
			c.Explanation = "Explanation of " + c.Title + "."
		}
		changes, err := a.store.ObserveConditions(t.Context(), nil, []store.Condition{c})
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 1 || !changes[0].Opened {
			t.Fatalf("ObserveConditions(%s) = %v, want one alert opened", c.DedupeKey, changes)
		}
		out = append(out, changes[0].Alert)
	}
	return out
}

func cond(key, severity, title string) store.Condition {
	return store.Condition{DedupeKey: key, Severity: severity, Title: title}
}

// withRoles adds a user per name with the given role and returns a signed-in client each.
func withRoles(t *testing.T, a *app, users map[string]store.Role) map[string]*http.Client {
	t.Helper()
	out := map[string]*http.Client{}
	for name, role := range users {
		if _, err := a.store.CreateUser(t.Context(), name, testPassword, role); err != nil {
			t.Fatal(err)
		}
		out[name] = a.client(t)
		a.loginAs(t, out[name], name)
	}
	return out
}

// htmlDoc is a parsed page.
type htmlDoc struct{ root *html.Node }

func parseHTML(t *testing.T, body string) htmlDoc {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return htmlDoc{root}
}

// byTestID returns the elements with data-testid id, in document order.
func (d htmlDoc) byTestID(id string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && attrOf(n, "data-testid") == id {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// openCards returns the IDs of the open alerts' cards, in order.
func openCards(t *testing.T, body string) []string {
	t.Helper()
	var ids []string
	for _, n := range parseHTML(t, body).byTestID("alert-card") {
		ids = append(ids, attrOf(n, "data-alert-id"))
	}
	return ids
}

// htmxPost posts a form as htmx does.
func (a *app) htmxPost(t *testing.T, c *http.Client, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.srv.URL)
	req.Header.Set("HX-Request", "true")
	return do(t, c, req)
}

func (a *app) htmxGet(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("HX-Request", "true")
	return do(t, c, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAlertsPageOrder: open alerts come worst first, then oldest, each with its
// explanation, what to do and evidence; resolved ones are listed below.
func TestAlertsPageOrder(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	w1 := cond("w1", store.SeverityWarning, "first warning")
	w1.Action = "Do the first thing."
	w1.Evidence = map[string]string{"lag": "42 s"}
	al := raise(t, a, w1, cond("c1", store.SeverityCritical, "first critical"), cond("w2", store.SeverityWarning, "second warning"),
		cond("i1", store.SeverityInfo, "some info"), cond("c2", store.SeverityCritical, "second critical"))
	resp, body := a.get(t, c, "/alerts")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /alerts = %d", resp.StatusCode)
	}
	want := []string{itoa(al[1].ID), itoa(al[4].ID), itoa(al[0].ID), itoa(al[2].ID), itoa(al[3].ID)}
	if got := openCards(t, body); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("open alerts in the order %v, want %v (critical, then warning, then info; oldest first)", got, want)
	}
	d := parseHTML(t, body)
	first := textOf(d.byTestID("alert-card")[2])
	for _, s := range []string{"Warning", "first warning", "Explanation of first warning.", "What to do", "Do the first thing.", "Lag", "42 s", "firing since"} {
		if !strings.Contains(first, s) {
			t.Errorf("card of the first warning = %q, want %q in it", first, s)
		}
	}
	if n := len(d.byTestID("alert-ack")); n != 5 {
		t.Errorf("an admin sees %d Acknowledge buttons, want 5", n)
	}
	if !strings.Contains(body, "No alert has resolved yet.") {
		t.Error("the empty history says nothing")
	}
}

// TestAlertsEmpty says plainly that nothing is open.
func TestAlertsEmpty(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	_, body := a.get(t, c, "/alerts")
	if n := len(parseHTML(t, body).byTestID("alerts-empty")); n != 1 || !strings.Contains(body, "No open alerts") {
		t.Errorf("empty state shown %d times, want once with No open alerts", n)
	}
}

// TestAcknowledgeRecordsTheUser: an on-call user acknowledges with a comment; the
// catalog records them and the comment, the audit log has the entry, and the page says
// who is on it. Through htmx, the answer is the card itself and the navigation's count.
func TestAcknowledgeRecordsTheUser(t *testing.T) {
	t.Parallel()
	a := setup(t)
	cs := withRoles(t, a, map[string]store.Role{"olive": store.RoleOnCall, "otto": store.RoleOnCall})
	al := raise(t, a, cond("k1", store.SeverityCritical, "orders-db: archiving stopped"), cond("k2", store.SeverityWarning, "second"))

	resp := a.postForm(t, cs["olive"], fmt.Sprintf("/alerts/%d/ack", al[0].ID), url.Values{"comment": {"  on it, restarting the source  "}, "from": {"list"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != fmt.Sprintf("/alerts#alert-%d", al[0].ID) {
		t.Fatalf("POST ack = %d to %q, want 303 back to the card", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, err := a.store.Alert(t.Context(), al[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.AlertAcknowledged || got.AckedBy != "olive" || got.AckComment != "on it, restarting the source" || got.AckedAt == nil {
		t.Errorf("acknowledged alert = %s by %q (%q) at %v, want acknowledged by olive with the comment", got.State, got.AckedBy, got.AckComment, got.AckedAt)
	}
	entries, err := a.store.AuditEntries(t.Context(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var audited bool
	for _, e := range entries {
		if e.Action == "alert.acknowledge" && e.Actor == "olive" && e.Target == fmt.Sprintf("alert %d", al[0].ID) {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no alert.acknowledge audit entry by olive in %v", entries)
	}
	_, body := a.get(t, cs["olive"], "/alerts")
	d := parseHTML(t, body)
	if f := d.byTestID("flash"); len(f) != 1 || !strings.Contains(textOf(f[0]), "acknowledged") {
		t.Errorf("no flash after acknowledging")
	}
	card := d.byTestID("alert-card")[0]
	if s := textOf(card); !strings.Contains(s, "Acknowledged by olive") || !strings.Contains(s, "“on it, restarting the source”") {
		t.Errorf("card = %q, want who acknowledged it and their comment", s)
	}
	if len(d.byTestID("alert-ack")) != 1 {
		t.Error("the acknowledged alert still offers Acknowledge")
	}

	// Through htmx: the card comes back in place, with the count out of band.
	resp, body = a.htmxPost(t, cs["otto"], fmt.Sprintf("/alerts/%d/ack", al[1].ID), url.Values{"comment": {"mine"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("htmx ack = %d", resp.StatusCode)
	}
	d = parseHTML(t, body)
	cards := d.byTestID("alert-card")
	if len(cards) != 1 || attrOf(cards[0], "id") != fmt.Sprintf("alert-%d", al[1].ID) || !strings.Contains(textOf(cards[0]), "Acknowledged by otto") {
		t.Errorf("htmx answer = %q, want the card, acknowledged by otto", body)
	}
	nav := d.byTestID("nav-alerts")
	if len(nav) != 1 || attrOf(nav[0], "hx-swap-oob") != "true" || attrOf(nav[0], "data-count") != "2" {
		t.Errorf("htmx answer has no out-of-band count of 2: %q", body)
	}
}

// TestAuditorCannotHandleAlerts: an auditor sees the alerts and no button, and the
// server refuses their acknowledgement and resolution with 403, changing nothing.
func TestAuditorCannotHandleAlerts(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := withRoles(t, a, map[string]store.Role{"audrey": store.RoleAuditor})["audrey"]
	al := raise(t, a, cond("k", store.SeverityCritical, "a critical alert"))[0]
	for _, path := range []string{"/alerts", fmt.Sprintf("/alerts/%d", al.ID)} {
		resp, body := a.get(t, c, path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "a critical alert") {
			t.Fatalf("GET %s as auditor = %d, want the alert", path, resp.StatusCode)
		}
		d := parseHTML(t, body)
		if n := len(d.byTestID("alert-ack")) + len(d.byTestID("alert-resolve")) + len(d.byTestID("alert-actions")); n != 0 {
			t.Errorf("GET %s shows an auditor %d alert controls", path, n)
		}
	}
	for _, verb := range []string{"ack", "resolve"} {
		if resp := a.postForm(t, c, fmt.Sprintf("/alerts/%d/%s", al.ID, verb), url.Values{"comment": {"x"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as auditor = %d, want 403", verb, resp.StatusCode)
		}
	}
	got, _ := a.store.Alert(t.Context(), al.ID)
	if got.State != store.AlertFiring || got.AckedBy != "" {
		t.Errorf("after refused actions the alert is %s by %q", got.State, got.AckedBy)
	}
}

// TestResolveAlert: resolved by hand, an alert leaves the open list for the history,
// which names who resolved it; one that cleared by itself says so.
func TestResolveAlert(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := withRoles(t, a, map[string]store.Role{"oscar": store.RoleOperator})["oscar"]
	al := raise(t, a, cond("k1", store.SeverityWarning, "resolved by hand"), cond("k2", store.SeverityWarning, "clears by itself"))
	// k2's rule is evaluated and its condition is gone: it clears by itself.
	if _, err := a.store.ObserveConditions(t.Context(), []string{"test-rule"}, []store.Condition{{Rule: "test-rule",
		DedupeKey: "k1", Severity: store.SeverityWarning, Title: "resolved by hand", Explanation: "Explanation of resolved by hand."}}); err != nil {
		t.Fatal(err)
	}
	resp := a.postForm(t, c, fmt.Sprintf("/alerts/%d/resolve", al[0].ID), url.Values{"comment": {"fixed the disk"}, "from": {"page"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != fmt.Sprintf("/alerts/%d", al[0].ID) {
		t.Fatalf("POST resolve = %d to %q, want 303 back to the alert's page", resp.StatusCode, resp.Header.Get("Location"))
	}
	got, _ := a.store.Alert(t.Context(), al[0].ID)
	if got.State != store.AlertResolved || got.ResolvedBy != "oscar" || got.ResolveComment != "fixed the disk" {
		t.Errorf("alert = %s by %q (%q), want resolved by oscar", got.State, got.ResolvedBy, got.ResolveComment)
	}
	_, body := a.get(t, c, "/alerts")
	if ids := openCards(t, body); len(ids) != 0 {
		t.Errorf("open cards after resolving = %v, want none", ids)
	}
	rows := parseHTML(t, body).byTestID("alert-history-row")
	if len(rows) != 2 {
		t.Fatalf("history rows = %d, want 2", len(rows))
	}
	if s := textOf(rows[0]); !strings.Contains(s, "clears by itself") || !strings.Contains(s, "Cleared by itself") {
		t.Errorf("newest history row = %q, want it cleared by itself", s)
	}
	if s := textOf(rows[1]); !strings.Contains(s, "resolved by hand") || !strings.Contains(s, "oscar") || !strings.Contains(s, "fixed the disk") {
		t.Errorf("older history row = %q, want the alert resolved by oscar", s)
	}
	_, body = a.get(t, c, fmt.Sprintf("/alerts/%d", al[0].ID))
	tl := parseHTML(t, body).byTestID("alert-timeline")
	if len(tl) != 1 || !strings.Contains(textOf(tl[0]), "Resolved by oscar") || !strings.Contains(textOf(tl[0]), "Never") {
		t.Errorf("alert page history = %q", body)
	}
}

// TestAcknowledgeResolvedAlert: acting on an alert someone else resolved meanwhile is a
// message, not an error page, with and without htmx.
func TestAcknowledgeResolvedAlert(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := withRoles(t, a, map[string]store.Role{"olive": store.RoleOnCall})["olive"]
	al := raise(t, a, cond("k", store.SeverityCritical, "gone meanwhile"))[0]
	if _, err := a.store.ResolveAlert(t.Context(), al.ID, "sam", ""); err != nil {
		t.Fatal(err)
	}
	resp := a.postForm(t, c, fmt.Sprintf("/alerts/%d/ack", al.ID), url.Values{"comment": {"late"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST ack of a resolved alert = %d, want 303 with a message", resp.StatusCode)
	}
	_, body := a.get(t, c, "/alerts")
	f := parseHTML(t, body).byTestID("flash")
	if len(f) != 1 || !strings.Contains(textOf(f[0]), "is resolved (by sam)") || attrOf(f[0], "role") != "alert" {
		t.Errorf("flash = %v, want the conflict said as an error", f)
	}
	resp, body = a.htmxPost(t, c, fmt.Sprintf("/alerts/%d/ack", al.ID), url.Values{})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("htmx ack of a resolved alert = %d, want 200 with the card", resp.StatusCode)
	}
	note := parseHTML(t, body).byTestID("alert-note")
	if len(note) != 1 || !strings.Contains(textOf(note[0]), "only a firing alert can be acknowledged") {
		t.Errorf("htmx answer = %q, want the card saying why", body)
	}
	got, _ := a.store.Alert(t.Context(), al.ID)
	if got.AckedBy != "" {
		t.Errorf("a resolved alert was acknowledged by %q", got.AckedBy)
	}
	if resp := a.postForm(t, c, "/alerts/99999/ack", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ack of a missing alert = %d, want 404", resp.StatusCode)
	}
}

// TestAlertHistoryPaging pages through resolved alerts, newest first, skipping open ones.
func TestAlertHistoryPaging(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	var resolved []store.Alert
	for i := range 25 {
		al := raise(t, a, cond(fmt.Sprintf("r%d", i), store.SeverityWarning, fmt.Sprintf("resolved %d", i)))[0]
		if _, err := a.store.ResolveAlert(t.Context(), al.ID, "admin", ""); err != nil {
			t.Fatal(err)
		}
		resolved = append(resolved, al)
		if i == 10 {
			raise(t, a, cond("open", store.SeverityInfo, "still open"))
		}
	}
	ids := func(body string) []string {
		var out []string
		for _, n := range parseHTML(t, body).byTestID("alert-history-row") {
			out = append(out, attrOf(n, "data-alert-id"))
		}
		return out
	}
	_, body := a.get(t, c, "/alerts")
	page1 := ids(body)
	if len(page1) != 20 || page1[0] != itoa(resolved[24].ID) || page1[19] != itoa(resolved[5].ID) {
		t.Fatalf("first page = %v, want the 20 newest resolved alerts", page1)
	}
	older := parseHTML(t, body).byTestID("alerts-older")
	if len(older) != 1 || attrOf(older[0], "href") != "/alerts?before="+itoa(resolved[5].ID) {
		t.Fatalf("Older link = %v", older)
	}
	if len(parseHTML(t, body).byTestID("alerts-newest")) != 0 {
		t.Error("the first page links to the newest")
	}
	_, body = a.get(t, c, "/alerts?before="+itoa(resolved[5].ID))
	page2 := ids(body)
	want := []string{itoa(resolved[4].ID), itoa(resolved[3].ID), itoa(resolved[2].ID), itoa(resolved[1].ID), itoa(resolved[0].ID)}
	if strings.Join(page2, ",") != strings.Join(want, ",") {
		t.Errorf("second page = %v, want %v", page2, want)
	}
	d := parseHTML(t, body)
	if len(d.byTestID("alerts-older")) != 0 || len(d.byTestID("alerts-newest")) != 1 {
		t.Error("the last page offers Older, or not Newest")
	}
	if n := len(openCards(t, body)); n != 1 {
		t.Errorf("open alerts on an older page = %d, want 1: they are always on top", n)
	}
	if resp, _ := a.get(t, c, "/alerts?before=x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("?before=x = %d, want 400", resp.StatusCode)
	}
}

// TestAlertsLivePoll: the live part answers 204 while its version holds, and the new
// list once an alert opened.
func TestAlertsLivePoll(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	raise(t, a, cond("k1", store.SeverityWarning, "the first"))
	_, body := a.get(t, c, "/alerts")
	live := parseHTML(t, body).byTestID("alerts-live")
	if len(live) != 1 {
		t.Fatal("no live part")
	}
	poll := attrOf(live[0], "hx-get")
	if attrOf(live[0], "hx-trigger") != "every 5s" || !strings.HasPrefix(poll, "/alerts?fragment=live&v=") {
		t.Fatalf("live part polls %q every %q", poll, attrOf(live[0], "hx-trigger"))
	}
	resp, body := a.htmxGet(t, c, poll)
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("poll with nothing changed = %d %q, want 204 and nothing", resp.StatusCode, body)
	}
	raise(t, a, cond("k2", store.SeverityCritical, "the second"))
	resp, body = a.htmxGet(t, c, poll)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "the second") || strings.Contains(body, "<html") {
		t.Fatalf("poll after a new alert = %d, want the live part with it: %q", resp.StatusCode, body)
	}
	next := attrOf(parseHTML(t, body).byTestID("alerts-live")[0], "hx-get")
	if next == poll {
		t.Error("the new live part polls with the old version")
	}
	if resp, _ := a.htmxGet(t, c, next); resp.StatusCode != http.StatusNoContent {
		t.Errorf("poll with the new version = %d, want 204", resp.StatusCode)
	}
}

// TestNavAlertCount: every page's navigation shows the open-alert count in the worst
// severity's colour, and its refresh follows new alerts.
func TestNavAlertCount(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	count := func(body string) (string, string, string) {
		t.Helper()
		n := parseHTML(t, body).byTestID("nav-alerts")
		if len(n) != 1 {
			t.Fatalf("nav-alerts elements = %d, want 1", len(n))
		}
		return attrOf(n[0], "data-count"), attrOf(n[0], "data-severity"), textOf(n[0])
	}
	_, body := a.get(t, c, "/backups")
	if n, sev, _ := count(body); n != "0" || sev != "" {
		t.Errorf("count with nothing open = %s %q", n, sev)
	}
	raise(t, a, cond("w", store.SeverityWarning, "a warning"))
	_, body = a.get(t, c, "/backups")
	if n, sev, words := count(body); n != "1" || sev != "warning" || words != ": 1 open alert, warning" {
		t.Errorf("count on /backups = %s %q %q, want 1 warning", n, sev, words)
	}
	el := parseHTML(t, body).byTestID("nav-alerts")[0]
	if attrOf(el, "hx-get") != "/alerts/count" || attrOf(el, "hx-trigger") != "every 5s" {
		t.Errorf("the count does not refresh itself: %v", el.Attr)
	}
	raise(t, a, cond("c", store.SeverityCritical, "a critical one"))
	resp, body := a.htmxGet(t, c, "/alerts/count")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /alerts/count = %d", resp.StatusCode)
	}
	if n, sev, words := count(body); n != "2" || sev != "critical" || words != ": 2 open alerts, worst critical" {
		t.Errorf("refreshed count = %s %q %q, want 2, worst critical", n, sev, words)
	}
	for _, path := range []string{"/", "/sources", "/jobs", "/audit", "/settings/notifications"} {
		_, body = a.get(t, c, path)
		if n, _, _ := count(body); n != "2" {
			t.Errorf("count on %s = %s, want 2", path, n)
		}
	}
}

// TestAlertPage shows one alert with its evidence and history; notifications link here.
func TestAlertPage(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	src, err := a.store.CreateSource(t.Context(), store.SourceParams{Name: "orders-db", DSN: "postgres://x@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000009", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	k := cond("gap", store.SeverityCritical, "orders-db: WAL is missing")
	k.SourceID, k.Rule, k.Action = src.ID, "wal-gap", "Start a backup now."
	k.Evidence = map[string]string{"source": "orders-db", "from": "0/3A000000", "to": "0/3B000000"}
	al := raise(t, a, k)[0]
	resp, body := a.get(t, c, fmt.Sprintf("/alerts/%d", al.ID))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET alert = %d", resp.StatusCode)
	}
	for _, s := range []string{"orders-db: WAL is missing", "wal-gap", "Start a backup now.", "0/3A000000", "0/3B000000",
		"First seen", "Last seen", "Still open", fmt.Sprintf(`href="/sources/%d"`, src.ID)} {
		if !strings.Contains(body, s) {
			t.Errorf("alert page lacks %q", s)
		}
	}
	for _, path := range []string{"/alerts/99999", "/alerts/abc"} {
		if resp, _ := a.get(t, c, path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}
