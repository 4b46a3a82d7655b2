package web

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// render renders c to a string, failing the test on error.
func render(t *testing.T, c templ.Component) string {
	t.Helper()
	var b strings.Builder
	if err := c.Render(context.Background(), &b); err != nil {
		t.Fatalf("Render() = %v", err)
	}
	return b.String()
}

// doc is a parsed page with query helpers.
type doc struct {
	t    *testing.T
	root *html.Node
	src  string
}

func parse(t *testing.T, c templ.Component) doc {
	t.Helper()
	src := render(t, c)
	root, err := html.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("html.Parse() = %v", err)
	}
	return doc{t: t, root: root, src: src}
}

// parseFragment parses a partial as the websocket delivers it (inside a table
// body where needed, as htmx does).
func parseFragment(t *testing.T, c templ.Component) doc {
	t.Helper()
	src := render(t, c)
	ctx := &html.Node{Type: html.ElementNode, Data: "template", DataAtom: atom.Template}
	nodes, err := html.ParseFragment(strings.NewReader(src), ctx)
	if err != nil {
		t.Fatalf("html.ParseFragment() = %v", err)
	}
	root := &html.Node{Type: html.DocumentNode}
	for _, n := range nodes {
		root.AppendChild(n)
	}
	return doc{t: t, root: root, src: src}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
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

// all returns the elements for which match is true, in document order.
func (d doc) all(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

func hasAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		v, ok := attr(n, key)
		return ok && (val == "" || v == val)
	}
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func (d doc) testIDs(id string) []*html.Node { return d.all(hasAttr("data-testid", id)) }

// one returns the single element with data-testid id.
func (d doc) one(id string) *html.Node {
	d.t.Helper()
	ns := d.testIDs(id)
	if len(ns) != 1 {
		d.t.Fatalf("elements with data-testid=%q: got %d, want 1", id, len(ns))
	}
	return ns[0]
}

func (d doc) byID(id string) *html.Node {
	d.t.Helper()
	ns := d.all(hasAttr("id", id))
	if len(ns) != 1 {
		d.t.Fatalf("elements with id=%q: got %d, want 1", id, len(ns))
	}
	return ns[0]
}

func (d doc) contains(want ...string) {
	d.t.Helper()
	body := text(d.root)
	for _, w := range want {
		if !strings.Contains(body, w) {
			d.t.Errorf("page text does not contain %q", w)
		}
	}
}

func (d doc) lacks(unwanted ...string) {
	d.t.Helper()
	body := text(d.root)
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			d.t.Errorf("page text contains %q, want it absent", w)
		}
	}
}

// checkIntegrity asserts what every page must satisfy: unique ids, references
// to ids that exist, a label for every visible input, a name for every button,
// and no value that templ refused to render.
func checkIntegrity(t *testing.T, d doc) {
	t.Helper()
	ids := map[string]int{}
	for _, n := range d.all(hasAttr("id", "")) {
		v, _ := attr(n, "id")
		ids[v]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %q is used %d times", id, n)
		}
	}
	for _, key := range []string{"aria-describedby", "aria-labelledby", "for"} {
		for _, n := range d.all(hasAttr(key, "")) {
			v, _ := attr(n, key)
			for _, ref := range strings.Fields(v) {
				if ids[ref] == 0 {
					t.Errorf("<%s %s=%q> refers to a missing id %q", n.Data, key, v, ref)
				}
			}
		}
	}
	labels := map[string]bool{}
	for _, l := range d.all(tag("label")) {
		v, _ := attr(l, "for")
		labels[v] = true
	}
	for _, in := range d.all(tag("input")) {
		if typ, _ := attr(in, "type"); typ == "hidden" {
			continue
		}
		id, _ := attr(in, "id")
		if !labels[id] {
			t.Errorf("input %q has no <label for>", id)
		}
	}
	for _, b := range d.all(tag("button")) {
		if _, ok := attr(b, "aria-label"); !ok && text(b) == "" {
			t.Errorf("button without an accessible name: %s", text(b.Parent))
		}
	}
	if strings.Contains(d.src, "about:invalid") || strings.Contains(d.src, "failed sanitization") {
		t.Errorf("page contains a value that templ refused to render")
	}
	for _, f := range d.all(tag("form")) {
		if m, _ := attr(f, "method"); m != "post" {
			t.Errorf("form to %v has method %q, want post", f.Attr, m)
		}
	}
}

func TestEveryPage(t *testing.T) {
	t.Parallel()
	for _, p := range samplePages(sampleNow()) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			d := parse(t, p.c)
			checkIntegrity(t, d)
			if !strings.HasPrefix(d.src, "<!doctype html>") && !strings.HasPrefix(d.src, "<!DOCTYPE html>") {
				t.Errorf("page does not start with a doctype: %.40q", d.src)
			}
			if n := len(d.all(tag("h1"))); n != 1 {
				t.Errorf("<h1> count = %d, want 1", n)
			}
			if n := len(d.all(tag("main"))); n != 1 {
				t.Errorf("<main> count = %d, want 1", n)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	d := parse(t, Layout(LayoutVM{Title: "Backups", Nav: NavBackups, UserName: "ana",
		Flash: Flash{Kind: FlashError, Message: "Could not start the backup."}}, BackupsPage(BackupsVM{})))

	if got := text(d.all(tag("title"))[0]); got != "Backups · Backstop" {
		t.Errorf("<title> = %q, want %q", got, "Backups · Backstop")
	}
	skip := d.all(hasAttr("class", "skip-link"))
	if len(skip) != 1 {
		t.Fatalf("skip links = %d, want 1", len(skip))
	}
	if href, _ := attr(skip[0], "href"); href != "#main" {
		t.Errorf("skip link href = %q, want #main", href)
	}
	if m := d.byID("main"); m.Data != "main" {
		t.Errorf("#main is <%s>, want <main>", m.Data)
	}
	current := d.all(hasAttr("aria-current", "page"))
	if len(current) != 1 || text(current[0]) != "Backups" {
		t.Errorf("aria-current entries = %d, want only Backups", len(current))
	}
	var navText []string
	for _, a := range d.all(hasAttr("class", "")) {
		if c, _ := attr(a, "class"); strings.Contains(c, "nav-link") {
			navText = append(navText, text(a))
		}
	}
	if got, want := strings.Join(navText, " · "), "Overview · Sources · Backups · Restores · Alerts · Reports · Jobs · Audit · Settings · Users"; got != want {
		t.Errorf("navigation = %q, want %q", got, want)
	}
	d.contains("Backstop", "ana", "Sign out", "Could not start the backup.")
	if f := d.one("flash"); !strings.Contains(text(f), "Could not start") {
		t.Errorf("flash = %q", text(f))
	}
	if r, _ := attr(d.one("flash"), "role"); r != "alert" {
		t.Errorf("error flash role = %q, want alert", r)
	}
	logout := d.all(hasAttr("action", "/logout"))
	if len(logout) != 1 {
		t.Fatalf("sign-out forms = %d, want 1", len(logout))
	}
	versioned := regexp.MustCompile(`^/static/[a-z.]+\?v=[0-9a-f]{10}$`)
	var assets []string
	for _, n := range d.all(hasAttr("src", "")) {
		v, _ := attr(n, "src")
		assets = append(assets, v)
	}
	for _, n := range d.all(tag("link")) {
		v, _ := attr(n, "href")
		assets = append(assets, v)
	}
	if len(assets) != 8 {
		t.Errorf("assets = %q, want favicon.svg, uplot.min.css, app.css, htmx.min.js, ws.js, app.js, uplot.min.js, charts.js", assets)
	}
	for _, a := range assets {
		if !versioned.MatchString(a) {
			t.Errorf("asset URL %q is not a cache-busted /static/ URL", a)
		}
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	t.Run("fresh", func(t *testing.T) {
		d := parse(t, LoginPage(LoginVM{Next: "/backups/3"}))
		name := d.one("login-name")
		if _, ok := attr(name, "autofocus"); !ok {
			t.Error("name field is not autofocused")
		}
		if v, _ := attr(name, "autocomplete"); v != "username" {
			t.Errorf("name autocomplete = %q, want username", v)
		}
		pw := d.one("login-password")
		if v, _ := attr(pw, "type"); v != "password" {
			t.Errorf("password type = %q", v)
		}
		if v, _ := attr(pw, "autocomplete"); v != "current-password" {
			t.Errorf("password autocomplete = %q, want current-password", v)
		}
		if v, _ := attr(d.one("login-submit"), "type"); v != "submit" {
			t.Errorf("submit type = %q", v)
		}
		next := d.all(hasAttr("name", "next"))
		if len(next) != 1 {
			t.Fatalf("next fields = %d, want 1", len(next))
		}
		if v, _ := attr(next[0], "value"); v != "/backups/3" {
			t.Errorf("next = %q", v)
		}
		if len(d.all(hasAttr("class", "nav"))) != 0 {
			t.Error("login page shows the navigation")
		}
		if len(d.testIDs("login-error")) != 0 {
			t.Error("fresh login page shows an error")
		}
	})
	t.Run("error", func(t *testing.T) {
		d := parse(t, LoginPage(LoginVM{Name: "ana", Error: "Wrong name or password."}))
		if r, _ := attr(d.one("login-error"), "role"); r != "alert" {
			t.Errorf("error role = %q, want alert", r)
		}
		name := d.one("login-name")
		if v, _ := attr(name, "value"); v != "ana" {
			t.Errorf("name value = %q, want ana", v)
		}
		if v, _ := attr(name, "aria-invalid"); v != "true" {
			t.Error("name is not aria-invalid")
		}
		if _, ok := attr(d.one("login-password"), "autofocus"); !ok {
			t.Error("password is not autofocused after a failed attempt")
		}
	})
}

func TestOverview(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	t.Run("empty", func(t *testing.T) {
		d := parse(t, OverviewPage(OverviewVM{Now: now}))
		e := d.one("empty-sources")
		if len(d.all(hasAttr("href", "/sources/new"))) == 0 {
			t.Error("empty overview has no link to add a source")
		}
		if !strings.Contains(text(e), "No sources yet") {
			t.Errorf("empty state = %q", text(e))
		}
		if len(d.all(hasAttr("ws-connect", ""))) != 0 {
			t.Error("empty overview connects the websocket")
		}
	})
	t.Run("sources", func(t *testing.T) {
		d := parse(t, OverviewPage(OverviewVM{Now: now, Sources: sampleSources(now)}))
		cards := d.testIDs("source-card")
		if len(cards) != 4 {
			t.Fatalf("cards = %d, want 4", len(cards))
		}
		if v, _ := attr(d.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=overview" {
			t.Errorf("ws-connect = %q", v)
		}
		buttons := d.testIDs("backup-now")
		if len(buttons) != 4 {
			t.Fatalf("backup-now buttons = %d, want 4", len(buttons))
		}
		// orders-db is running a backup: its button is disabled and says why.
		if _, ok := attr(buttons[0], "disabled"); !ok {
			t.Error("backup-now of a busy source is enabled")
		}
		if _, ok := attr(buttons[3], "disabled"); ok {
			t.Error("backup-now of an idle source is disabled")
		}
		if a, _ := attr(buttons[3].Parent, "action"); a != "/sources/4/backups" {
			t.Errorf("backup-now action = %q, want /sources/4/backups", a)
		}
		d.contains(
			"db1.example:5432/orders", "PostgreSQL 15.18",
			"billing.internal:5433/billing",
			"4 h ago", "3.4 GiB",
			"Copying data files", "1.2 GiB of 3.4 GiB · 85 MiB/s · about 25 s left",
			"The last attempt failed 2 h ago",
			"Older than 24 h: the newest complete backup finished 2 d ago",
			"No backup yet", "The last attempt was interrupted 1 d ago",
		)
		d.lacks("xxxxx", "password")
		health := map[string]string{}
		for _, c := range cards {
			name := text(d.byID(sourceHeading(c)))
			for _, b := range (doc{t: t, root: c}).testIDs("source-health") {
				health[name] = text(b)
			}
		}
		// Without a health verdict (jobs/health), a card never claims "up to date" from
		// the age of a backup: only a failed last backup is known to be broken.
		want := map[string]string{"orders-db": "Health unknown", "billing": "Last backup failed",
			"analytics-warehouse": "Health unknown", "inventory": "Health unknown"}
		for k, v := range want {
			if health[k] != v {
				t.Errorf("health of %s = %q, want %q", k, health[k], v)
			}
		}
		p := d.one("job-progress")
		if id, _ := attr(p, "id"); id != "job-41-progress" {
			t.Errorf("progress id = %q", id)
		}
	})
}

func sourceHeading(card *html.Node) string {
	v, _ := attr(card, "aria-labelledby")
	return v
}

func TestSourceCardOOB(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	d := parseFragment(t, SourceCardOOB(sampleSources(now)[1], now, 0))
	c := d.byID("source-2")
	if v, _ := attr(c, "hx-swap-oob"); v != "true" {
		t.Errorf("hx-swap-oob = %q, want true", v)
	}
}

func TestSources(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	d := parse(t, SourcesPage(SourcesVM{Now: now, Sources: sampleSources(now)}))
	rows := d.all(tag("tr"))
	if len(rows) != 5 {
		t.Errorf("table rows = %d, want header + 4", len(rows))
	}
	d.contains("orders-db", "db1.example:5432/orders", "15.6", "Running", "Last backup failed", "No backup yet", "880 MiB")
	d.lacks("xxxxx")
	if len(d.all(hasAttr("href", "/sources/3"))) == 0 {
		t.Error("no link to source 3")
	}
	empty := parse(t, SourcesPage(SourcesVM{}))
	empty.one("empty-sources")
}

func TestSourceNew(t *testing.T) {
	t.Parallel()
	t.Run("blank", func(t *testing.T) {
		d := parse(t, SourceNewPage(SourceFormVM{}))
		checkIntegrity(t, d)
		name := d.one("source-name")
		if _, ok := attr(name, "autofocus"); !ok {
			t.Error("name is not autofocused")
		}
		if _, ok := attr(name, "aria-invalid"); ok {
			t.Error("blank form marks name invalid")
		}
		dsn := d.one("source-dsn")
		if v, _ := attr(dsn, "name"); v != "dsn" {
			t.Errorf("dsn field name = %q", v)
		}
		form := d.all(tag("form"))[0]
		if a, _ := attr(form, "action"); a != "/sources" {
			t.Errorf("form action = %q", a)
		}
		if got := text(d.one("source-submit")); got != "Check and add source" {
			t.Errorf("submit = %q", got)
		}
		d.contains("postgres://backstop@db.example:5432/postgres", "REPLICATION", "wal_level = replica")
		for _, id := range []string{"field-error-name", "field-error-dsn", "field-error-"} {
			if len(d.testIDs(id)) != 0 {
				t.Errorf("blank form shows %s", id)
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		d := parse(t, SourceNewPage(SourceFormVM{
			Name: "orders db", DSN: "postgres://backstop:xxxxx@db1.example/orders",
			Errors: map[string]string{"name": "Use letters, digits, dots, dashes and underscores only.",
				"dsn": "The role lacks REPLICATION.", "": "Backstop could not connect."},
			Hint: "ALTER ROLE backstop REPLICATION;",
		}))
		for field, msg := range map[string]string{"name": "Use letters", "dsn": "lacks REPLICATION"} {
			in := d.one("source-" + field)
			errEl := d.one("field-error-" + field)
			if !strings.Contains(text(errEl), msg) {
				t.Errorf("field-error-%s = %q, want %q", field, text(errEl), msg)
			}
			if v, _ := attr(in, "aria-invalid"); v != "true" {
				t.Errorf("%s is not aria-invalid", field)
			}
			errID, _ := attr(errEl, "id")
			if v, _ := attr(in, "aria-describedby"); !strings.Contains(v, errID) {
				t.Errorf("%s aria-describedby = %q, want it to include %q", field, v, errID)
			}
			// The error sits right after its input: next to the field, not in a list.
			if errEl.Parent != in.Parent {
				t.Errorf("field-error-%s is not next to its input", field)
			}
		}
		if v, _ := attr(d.one("source-name"), "value"); v != "orders db" {
			t.Errorf("name value = %q", v)
		}
		if _, ok := attr(d.one("source-name"), "autofocus"); !ok {
			t.Error("the first invalid field is not autofocused")
		}
		general := d.one("field-error-")
		if !strings.Contains(text(general), "could not connect") || !strings.Contains(text(general), "ALTER ROLE") {
			t.Errorf("general error = %q", text(general))
		}
	})
}

func TestSourcePage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	var running, idle templ.Component
	for _, p := range samplePages(now) {
		switch p.name {
		case "source":
			running = p.c
		case "source-idle":
			idle = p.c
		}
	}
	d := parse(t, running)
	d.contains("orders-db", "7312455870123456789", "15.18", "Running now", "Recent backups", "Recent jobs")
	d.one("backup-now")
	d.one("job-progress")
	if v, _ := attr(d.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=source-1" {
		t.Errorf("ws-connect = %q", v)
	}
	// Tables on the source page are snapshots: no ids the websocket could hit twice.
	if n := len(d.all(hasAttr("id", "backup-18"))); n != 0 {
		t.Errorf("source page has row id backup-18")
	}
	i := parse(t, idle)
	if len(i.all(hasAttr("ws-connect", ""))) != 0 {
		t.Error("idle source page connects the websocket")
	}
	i.contains("No backups of this source yet", "Off")
	if _, ok := attr(i.one("backup-now"), "disabled"); ok {
		t.Error("backup-now disabled on an idle source")
	}
}

func TestBackups(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	rows := sampleBackups(now)
	d := parse(t, BackupsPage(BackupsVM{Now: now, Rows: rows}))
	if v, _ := attr(d.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=backups" {
		t.Errorf("ws-connect = %q", v)
	}
	for _, r := range rows {
		d.byID(backupRowID(r.ID))
	}
	states := d.testIDs("backup-state")
	var words []string
	for _, s := range states {
		words = append(words, text(s))
	}
	if got, want := strings.Join(words, ","), "Running,Failed,Complete,Interrupted,Complete"; got != want {
		t.Errorf("states = %s, want %s", got, want)
	}
	// The running backup shows its progress bar in place of its sizes.
	run := doc{t: t, root: d.byID("backup-18")}
	bar := run.all(hasAttr("role", "progressbar"))
	if len(bar) != 1 {
		t.Fatalf("progress bars in running row = %d, want 1", len(bar))
	}
	if v, _ := attr(bar[0], "aria-valuenow"); v != "35" {
		t.Errorf("aria-valuenow = %q, want 35", v)
	}
	complete := doc{t: t, root: d.byID("backup-16")}
	complete.contains("Backup 16", "orders-db", "4 h ago", "3.4 GiB", "98 MiB", "2.8×", "97%", "3 min", "0/3A000028", "0/3A0001F8")
	if len(complete.all(hasAttr("role", "progressbar"))) != 0 {
		t.Error("complete row has a progress bar")
	}
	if n := len(d.all(hasAttr("class", "empty-row"))); n != 1 {
		t.Errorf("empty-row placeholders = %d, want 1 (hidden by CSS)", n)
	}

	oob := parseFragment(t, BackupRowOOB(rows[2], now))
	if v, _ := attr(oob.byID("backup-16"), "hx-swap-oob"); v != "true" {
		t.Errorf("BackupRowOOB hx-swap-oob = %q", v)
	}
	nw := parseFragment(t, BackupRowNewOOB(rows[0], now))
	body := nw.byID("backup-rows")
	if v, _ := attr(body, "hx-swap-oob"); v != "afterbegin" {
		t.Errorf("BackupRowNewOOB hx-swap-oob = %q, want afterbegin", v)
	}
	nw.byID("backup-18")
}

func TestBackupPage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	pages := map[string]doc{}
	for _, p := range samplePages(now) {
		if strings.HasPrefix(p.name, "backup-") {
			pages[p.name] = parse(t, p.c)
		}
	}
	c := pages["backup-complete"]
	if got := text(c.one("backup-state")); got != "Complete" {
		t.Errorf("backup-state = %q", got)
	}
	c.contains("backstop-16-orders-db", "0/3A000028", "0/3A0001F8", "7312455870123456789",
		"15.18", "16 MiB", "98 MiB", "1.2 GiB", "2.8×", "97%", "1,874", "812 of 27,852",
		"backstop restore --backup 16", "base/16384/24576", "Showing 11–20 of 1,874 files", "Page 2 of 188")
	c.lacks("point in time", "point-in-time")
	copies := map[string]bool{}
	for _, b := range c.all(hasAttr("data-copy", "")) {
		v, _ := attr(b, "data-copy")
		copies[v] = true
		if _, ok := attr(b, "hidden"); !ok {
			t.Errorf("copy button for %q is visible without JavaScript", v)
		}
	}
	for _, want := range []string{"0/3A000028", "0/3A0001F8", "b16-7c1f0e9a4d2b8e6f3a5c9d0e1b2a4c6f8e0d2b4a",
		"backstop restore --backup 16 --target-dir /var/lib/backstop/restore/orders-db-16"} {
		if !copies[want] {
			t.Errorf("no copy button for %q", want)
		}
	}
	for _, rel := range []string{"prev", "next"} {
		a := c.all(hasAttr("rel", rel))
		if len(a) != 1 {
			t.Fatalf("rel=%s links = %d, want 1", rel, len(a))
		}
	}
	if v, _ := attr(c.all(hasAttr("rel", "next"))[0], "href"); v != "/backups/16?page=3#files" {
		t.Errorf("next page = %q", v)
	}
	if len(c.all(hasAttr("ws-connect", ""))) != 0 {
		t.Error("complete backup page connects the websocket")
	}

	r := pages["backup-running"]
	if got := text(r.one("backup-state")); got != "Running" {
		t.Errorf("running backup-state = %q", got)
	}
	if v, _ := attr(r.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=backup-18" {
		t.Errorf("ws-connect = %q", v)
	}
	r.byID("job-41-progress")
	r.contains("Only a complete backup can be restored")

	f := pages["backup-failed"]
	e := f.one("backup-error")
	if !strings.Contains(text(e), "SQLSTATE 42501") || !strings.Contains(text(e), "failed") {
		t.Errorf("error box = %q", text(e))
	}
	if len(f.all(hasAttr("href", "/jobs/40"))) == 0 {
		t.Error("failed backup does not link to its job")
	}
}

func TestJobs(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	rows := sampleJobs(now)
	d := parse(t, JobsPage(JobsVM{Now: now, Rows: rows}))
	if v, _ := attr(d.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=jobs" {
		t.Errorf("ws-connect = %q", v)
	}
	cancels := map[string]bool{}
	for _, f := range d.all(hasAttr("data-confirm", "")) {
		a, _ := attr(f, "action")
		cancels[a] = true
	}
	want := map[string]bool{"/jobs/42/cancel": true, "/jobs/41/cancel": true}
	if len(cancels) != len(want) {
		t.Errorf("cancel forms = %v, want %v", cancels, want)
	}
	for a := range want {
		if !cancels[a] {
			t.Errorf("no cancel form posting to %s", a)
		}
	}
	var states []string
	for _, s := range d.testIDs("job-state") {
		states = append(states, text(s))
	}
	if got, want := strings.Join(states, ","), "Queued,Running,Failed,Succeeded,Cancelled"; got != want {
		t.Errorf("states = %s, want %s", got, want)
	}
	for _, r := range rows {
		d.byID(jobRowID(r.ID))
		d.byID(progressID(r.ID))
	}
	row := doc{t: t, root: d.byID("job-41")}
	row.contains("Copying data files", "35%", "1.2 GiB of 3.4 GiB")
	d.contains("View backup 16", "must be superuser")

	oob := parseFragment(t, JobRowOOB(rows[1], now))
	if v, _ := attr(oob.byID("job-41"), "hx-swap-oob"); v != "true" {
		t.Errorf("JobRowOOB hx-swap-oob = %q", v)
	}
	nw := parseFragment(t, JobRowNewOOB(rows[0], now))
	if v, _ := attr(nw.byID("job-rows"), "hx-swap-oob"); v != "afterbegin" {
		t.Errorf("JobRowNewOOB hx-swap-oob = %q", v)
	}
}

func TestJobPage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	pages := map[string]doc{}
	for _, p := range samplePages(now) {
		if strings.HasPrefix(p.name, "job-") {
			pages[p.name] = parse(t, p.c)
		}
	}
	r := pages["job-running"]
	if got := text(r.one("job-state")); got != "Running" {
		t.Errorf("job-state = %q", got)
	}
	r.byID("job-41-state")
	if v, _ := attr(r.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=job-41" {
		t.Errorf("ws-connect = %q", v)
	}
	r.byID("job-41-progress")
	events := r.byID("job-41-events")
	if events.Data != "tbody" {
		t.Errorf("#job-41-events is <%s>, want <tbody>", events.Data)
	}
	if n := len((doc{t: t, root: events}).all(hasAttr("class", "event event--info"))); n != 4 {
		t.Errorf("info events = %d, want 4", n)
	}
	r.contains("Checkpoint done; backup starts at 0/5F000028", "Warning", "Backup 18")
	if len(r.all(hasAttr("action", "/jobs/41/cancel"))) != 1 {
		t.Error("running job page has no cancel form")
	}

	f := pages["job-failed"]
	if got := text(f.one("job-state")); got != "Failed" {
		t.Errorf("job-state = %q", got)
	}
	if !strings.Contains(text(f.one("job-error")), "SQLSTATE 42501") {
		t.Errorf("job-error = %q", text(f.one("job-error")))
	}
	if len(f.all(hasAttr("data-confirm", ""))) != 0 {
		t.Error("failed job offers Cancel")
	}

	q := pages["job-queued"]
	q.contains("No events yet", "Queued", "Waiting to start")

	ev := parseFragment(t, JobEventOOB(41, EventRow{At: now, Level: "error", Phase: "copying data files", Message: "connection reset"}))
	body := ev.byID("job-41-events")
	if v, _ := attr(body, "hx-swap-oob"); v != "beforeend" {
		t.Errorf("JobEventOOB hx-swap-oob = %q, want beforeend", v)
	}
	ev.contains("Error", "Copying data files", "connection reset", now.Format("15:04:05"))

	st := parseFragment(t, JobStateOOB(41, "succeeded"))
	if v, _ := attr(st.byID("job-41-state"), "hx-swap-oob"); v != "true" {
		t.Errorf("JobStateOOB hx-swap-oob = %q", v)
	}
	st.contains("Succeeded")
	if len(st.all(tag("form"))) != 0 {
		t.Error("succeeded job state offers Cancel")
	}
}

func TestJobProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		vm        JobProgressVM
		valueNow  string // "" means indeterminate
		wantTexts []string
	}{
		{"running", sampleRunning(), "35", []string{"Copying data files", "35%", "1.2 GiB of 3.4 GiB · 85 MiB/s · about 25 s left", "base/16384/24576.2"}},
		{"unknown total", JobProgressVM{JobID: 7, State: "running", Phase: "waiting for checkpoint"}, "", []string{"Waiting for checkpoint", "Starting"}},
		{"unknown total with bytes", JobProgressVM{JobID: 7, State: "running", Done: 3 * mib, RatePerSec: 1024}, "", []string{"Running", "3.0 MiB copied · 1.0 KiB/s"}},
		{"queued", JobProgressVM{JobID: 7, State: "queued"}, "0", []string{"Queued", "Waiting to start"}},
		{"succeeded", JobProgressVM{JobID: 7, State: "succeeded", Done: 2 * gib, Total: 2 * gib, BackupID: 3}, "100", []string{"Finished", "2.0 GiB copied", "View backup 3"}},
		{"failed", JobProgressVM{JobID: 7, State: "failed", Message: "disk full"}, "-", []string{"Failed", "disk full"}},
		{"interrupted", JobProgressVM{JobID: 7, State: "interrupted", Done: 5 * mib}, "-", []string{"Interrupted", "Stopped after 5.0 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for i, c := range []templ.Component{JobProgress(tt.vm), JobProgressOOB(tt.vm)} {
				d := parseFragment(t, c)
				p := d.one("job-progress")
				if id, _ := attr(p, "id"); id != progressID(tt.vm.JobID) {
					t.Errorf("id = %q", id)
				}
				oob, _ := attr(p, "hx-swap-oob")
				if (i == 1) != (oob == "true") {
					t.Errorf("component %d: hx-swap-oob = %q", i, oob)
				}
				d.contains(tt.wantTexts...)
				bars := d.all(hasAttr("role", "progressbar"))
				if tt.valueNow == "-" {
					if len(bars) != 0 {
						t.Errorf("progress bars = %d, want none", len(bars))
					}
					continue
				}
				if len(bars) != 1 {
					t.Fatalf("progress bars = %d, want 1", len(bars))
				}
				for _, k := range []string{"aria-valuemin", "aria-valuemax", "aria-label"} {
					if _, ok := attr(bars[0], k); !ok {
						t.Errorf("progress bar lacks %s", k)
					}
				}
				v, ok := attr(bars[0], "aria-valuenow")
				if tt.valueNow == "" && ok {
					t.Errorf("indeterminate bar has aria-valuenow=%q", v)
				}
				if tt.valueNow != "" && v != tt.valueNow {
					t.Errorf("aria-valuenow = %q, want %q", v, tt.valueNow)
				}
			}
		})
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	var c templ.Component
	for _, p := range samplePages(now) {
		if p.name == "audit" {
			c = p.c
		}
	}
	d := parse(t, c)
	d.contains("ana.operator", "backup.start", `{"job":41,"source":1}`, "192.0.2.10", "2001:db8::17", "15 s ago", "Showing 1–4 of 212 entries")
	empty := parse(t, AuditPage(AuditVM{Now: now}))
	empty.contains("Nothing has been recorded yet")
}

func TestErrors(t *testing.T) {
	t.Parallel()
	vm := ErrorVM{Status: 404, Title: "Backup not found", Message: "There is no backup 99.", RequestID: "req-1"}
	d := parse(t, ErrorPage(vm))
	d.contains("Error 404", "Backup not found", "There is no backup 99.", "req-1")
	if got := text(d.all(tag("title"))[0]); got != "Backup not found · Backstop" {
		t.Errorf("title = %q", got)
	}
	f := parseFragment(t, ErrorFragment(ErrorVM{Status: 500, RequestID: "req-2"}))
	if r, _ := attr(f.one("error"), "role"); r != "alert" {
		t.Errorf("fragment role = %q", r)
	}
	f.contains("Internal Server Error", "req-2")
}

func TestRelTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 9, 45, 7, 0, time.UTC)
	got := render(t, RelTime(now.Add(-4*time.Minute), now))
	want := `<time datetime="2026-11-25T09:41:07Z" title="2026-11-25 09:41:07 UTC" data-rel>4 min ago</time>`
	if got != want {
		t.Errorf("RelTime() = %s, want %s", got, want)
	}
	if got := render(t, RelTime(time.Time{}, now)); !strings.Contains(got, "—") {
		t.Errorf("RelTime(zero) = %s, want a dash", got)
	}
}

func TestMonoAndBadge(t *testing.T) {
	t.Parallel()
	d := parseFragment(t, Mono("0/3A000028"))
	b := d.all(hasAttr("data-copy", "0/3A000028"))
	if len(b) != 1 {
		t.Fatalf("copy buttons = %d, want 1", len(b))
	}
	if v, _ := attr(b[0], "type"); v != "button" {
		t.Errorf("copy button type = %q, want button", v)
	}
	if v, _ := attr(b[0], "aria-label"); v != "Copy 0/3A000028" {
		t.Errorf("copy aria-label = %q", v)
	}
	for state, want := range map[string]string{
		"queued": "Queued neutral", "running": "Running info", "succeeded": "Succeeded ok",
		"failed": "Failed danger", "cancelled": "Cancelled neutral", "interrupted": "Interrupted warn",
		"complete": "Complete ok", "warn": "Warning warn", "weird": "Weird neutral",
		"restoring": "Restoring info", "stopped": "Stopped neutral", "deleted": "Deleted neutral",
	} {
		d := parseFragment(t, Badge(state))
		span := d.all(hasAttr("data-state", state))[0]
		class, _ := attr(span, "class")
		word, tone, _ := strings.Cut(want, " ")
		if text(span) != word || !strings.Contains(class, "badge--"+tone) {
			t.Errorf("Badge(%q) = %q class %q, want %q", state, text(span), class, want)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {10 * 1024, "10 KiB"},
		{85 * mib, "85 MiB"}, {1288490188, "1.2 GiB"}, {3650722201, "3.4 GiB"}, {1023*mib + 1000*1024, "1.0 GiB"},
		{412 * gib, "412 GiB"}, {5 << 40, "5.0 TiB"}, {-2048, "-2.0 KiB"},
	} {
		if got := Bytes(tt.in); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{0, "< 1 s"}, {999 * time.Millisecond, "< 1 s"}, {25 * time.Second, "25 s"},
		{3*time.Minute + 12*time.Second, "3 min 12 s"}, {3 * time.Minute, "3 min"},
		{time.Hour + 4*time.Minute + 30*time.Second, "1 h 4 min"}, {51 * time.Hour, "2 d 3 h"},
	} {
		if got := Duration(tt.in); got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	now := time.Date(2026, 11, 25, 9, 41, 7, 0, time.UTC)
	for _, tt := range []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, "—"}, {now, "just now"}, {now.Add(-4 * time.Second), "just now"},
		{now.Add(-42 * time.Second), "42 s ago"}, {now.Add(-4 * time.Minute), "4 min ago"},
		{now.Add(-3*time.Hour - 59*time.Minute), "3 h ago"}, {now.Add(-49 * time.Hour), "2 d ago"},
		{now.Add(3 * time.Second), "just now"}, {now.Add(30 * time.Second), "in 30 s"},
		{now.Add(-60 * 24 * time.Hour), "2026-09-26"},
	} {
		if got := RelText(tt.in, now); got != tt.want {
			t.Errorf("RelText(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := UTC(now); got != "2026-11-25 09:41:07 UTC" {
		t.Errorf("UTC() = %q", got)
	}
	for _, tt := range []struct {
		num, den int64
		want     string
	}{{3650722201, 1288490188, "2.8×"}, {1, 0, "—"}, {0, 5, "—"}, {1000, 2, "500×"}} {
		if got := Ratio(tt.num, tt.den); got != tt.want {
			t.Errorf("Ratio(%d, %d) = %q, want %q", tt.num, tt.den, got, tt.want)
		}
	}
	for _, tt := range []struct {
		part, whole int64
		want        string
	}{{27040, 27852, "97%"}, {0, 0, "—"}, {9999, 10000, "99%"}, {5, 5, "100%"}, {-1, 5, "0%"}} {
		if got := Percent(tt.part, tt.whole); got != tt.want {
			t.Errorf("Percent(%d, %d) = %q, want %q", tt.part, tt.whole, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1874, "1,874"}, {1234567, "1,234,567"}, {-12345, "-12,345"}} {
		if got := Count(tt.in); got != tt.want {
			t.Errorf("Count(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Rate(89128960); got != "85 MiB/s" {
		t.Errorf("Rate() = %q", got)
	}
	for _, tt := range []struct{ in, want string }{
		{"postgres://backstop:xxxxx@db1.example:5432/orders?sslmode=require", "db1.example:5432/orders"},
		{"postgresql://db.example/postgres", "db.example/postgres"},
		{"host=billing.internal port=5433 dbname=billing user=backstop password=xxxxx", "billing.internal:5433/billing"},
		{"postgres://backstop@[2001:db8::1]:5432/app", "[2001:db8::1]:5432/app"},
		{"dbname=app", "localhost/app"},
	} {
		if got := DSNEndpoint(tt.in); got != tt.want {
			t.Errorf("DSNEndpoint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
