package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/net/html"
)

func policyPages(t *testing.T, now time.Time) map[string]doc {
	t.Helper()
	pages := map[string]doc{}
	for _, p := range samplePages(now) {
		if strings.HasPrefix(p.name, "policy") || p.name == "backup-pinned" {
			pages[p.name] = parse(t, p.c)
		}
	}
	return pages
}

func TestPolicyPage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	d := policyPages(t, now)["policy"]

	d.contains("Schedule and retention of orders-db", "0 2 * * * in Europe/Berlin", "Window 7 days; at least 2 kept",
		"Runs start 3 min after each due time", "2 earlier runs missed while Backstop was down",
		"The last 3 runs: 1 late, which also stood in for 2 runs missed while Backstop was down.", "2 backups and 1.4 GiB of WAL (90 files) go",
		"8 kept, 2 expire", "up to 170 MiB freed", "below 0/6C000028", "Pinned by ana.operator: legal hold, case 4711",
		"Saving deletes nothing", "Type the source name, orders-db, to confirm")
	var statuses []string
	for _, n := range d.testIDs("run-status") {
		statuses = append(statuses, text(n))
	}
	if got := strings.Join(statuses, ","); got != "On time,Late,Not queued" {
		t.Errorf("run statuses = %q", got)
	}
	for _, n := range d.testIDs("run-status") {
		if c, _ := attr(n, "class"); text(n) == "Late" && !strings.Contains(c, "badge--warn") {
			t.Errorf("the late badge is %q, want the warning colour as well as the word", c)
		}
	}

	// The timeline: newest first, each backup kept by its rules or expiring with the reason.
	rows := d.testIDs("plan-backup")
	if len(rows) != 10 {
		t.Fatalf("timeline rows = %d, want 10", len(rows))
	}
	var last time.Time
	for i, r := range rows {
		at, _ := attr(r.FirstChild.NextSibling.FirstChild, "datetime")
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatalf("row %d consistency time %q: %v", i, at, err)
		}
		if i > 0 && ts.After(last) {
			t.Errorf("row %d is newer than the row above it", i)
		}
		last = ts
	}
	verdicts := map[string]int{}
	for _, n := range d.testIDs("plan-verdict") {
		verdicts[text(n)]++
	}
	if verdicts["Kept"] != 8 || verdicts["Expires"] != 2 {
		t.Errorf("verdicts = %v, want 8 kept and 2 expiring", verdicts)
	}
	rules := map[string]int{}
	for _, n := range d.testIDs("rule-badge") {
		r, _ := attr(n, "data-rule")
		rules[r]++
		if title, _ := attr(n, "title"); title == "" {
			t.Errorf("rule badge %s does not say what the rule means", r)
		}
	}
	if rules["window"] != 8 || rules["minimum"] != 2 || rules["pinned"] != 1 {
		t.Errorf("rule badges = %v", rules)
	}
	if n := len(d.testIDs("plan-reason")); n != 2 {
		t.Errorf("expiry reasons = %d, want 2", n)
	}
	d.contains("the base of the 7-day recovery window")
	if n := len(d.testIDs("pin-form")); n != 9 {
		t.Errorf("pin forms = %d, want one per unpinned backup (9)", n)
	}
	if n := len(d.testIDs("unpin-form")); n != 1 {
		t.Errorf("unpin forms = %d, want 1", n)
	}

	// The chart's data is what charts.js reads; the sentence and table stand in for it.
	var spec chartSpec
	script := d.byID("storage-chart-data")
	if typ, _ := attr(script, "type"); typ != "application/json" {
		t.Errorf("chart data type = %q", typ)
	}
	if err := json.Unmarshal([]byte(text(script)), &spec); err != nil {
		t.Fatalf("chart data: %v", err)
	}
	if len(spec.Series) != 2 || len(spec.X) != 31 || len(spec.Y) != 2 || len(spec.Y[0]) != 31 || spec.Series[0].Unit != "bytes" {
		t.Errorf("chart spec = %d series, %d x, %d y", len(spec.Series), len(spec.X), len(spec.Y))
	}
	for i := 1; i < len(spec.X); i++ {
		if spec.X[i] <= spec.X[i-1] {
			t.Fatalf("chart x is not ascending at %d", i)
		}
	}
	if s := text(d.one("storage-sentence")); !strings.Contains(s, "The repository holds") {
		t.Errorf("storage sentence = %q", s)
	}

	// The preview's form and the apply form post; Preview also swaps the editor with htmx.
	b := d.one("policy-preview-button")
	for k, want := range map[string]string{"hx-post": "/sources/1/policy/preview", "hx-target": "#policy-editor",
		"formaction": "/sources/1/policy/preview", "hx-swap": "outerHTML"} {
		if v, _ := attr(b, k); v != want {
			t.Errorf("Preview %s = %q, want %q", k, v, want)
		}
	}
	if v, _ := attr(d.one("apply-form"), "action"); v != "/sources/1/expire" {
		t.Errorf("apply form action = %q", v)
	}
}

func TestPolicyPageStates(t *testing.T) {
	t.Parallel()
	pages := policyPages(t, sampleNow())

	none := pages["policy-none"]
	none.one("policy-none")
	none.one("preview-unsaved")
	none.contains("Preview of the policy in the form (not saved)", "inventory has no complete backup yet",
		"No backup of inventory has expired", "No size recorded yet")
	if len(none.testIDs("policy-apply")) != 0 {
		t.Error("Apply now is offered for a source without a saved policy")
	}
	if len(none.testIDs("runs-table")) != 0 {
		t.Error("a source without a policy shows a runs table")
	}

	inv := pages["policy-invalid"]
	for _, f := range []string{FieldBackupCron, FieldTimeZone, FieldWindowDays, FieldKeepLast} {
		in := inv.byID(policyFieldID(f))
		if v, _ := attr(in, "aria-invalid"); v != "true" {
			t.Errorf("%s is not marked invalid", f)
		}
		if v, _ := attr(in, "aria-describedby"); !strings.Contains(v, policyFieldID(f)+"-error") {
			t.Errorf("%s is not described by its error: %q", f, v)
		}
		inv.one("field-error-" + f)
	}
	if _, ok := attr(inv.byID(policyFieldID(FieldBackupCron)), "autofocus"); !ok {
		t.Error("the first field with an error does not get focus")
	}
	inv.one("field-error-policy")
	inv.one("preview-error")
	if len(inv.testIDs("plan-timeline")) != 0 {
		t.Error("a form with errors shows a timeline")
	}
	if v, _ := attr(inv.byID(policyFieldID(FieldTimeZone)), "value"); v != "Europe/Berln" {
		t.Errorf("time zone refilled as %q", v)
	}

	un := pages["policy-unsaved-preview"]
	un.one("apply-unsaved")
	if len(un.testIDs("apply-form")) != 0 {
		t.Error("Apply now is offered under the preview of an unsaved policy")
	}

	ref := pages["policy-apply-refused"]
	in := ref.byID("policy-apply-confirm")
	if v, _ := attr(in, "aria-invalid"); v != "true" {
		t.Error("the refused confirmation is not marked invalid")
	}
	if v, _ := attr(in, "value"); v != "orders" {
		t.Errorf("confirmation refilled as %q", v)
	}
	ref.one("field-error-confirm")

	pin := pages["backup-pinned"]
	if got := text(pin.one("backup-pinned")); got != "Pinned" {
		t.Errorf("pin badge = %q", got)
	}
	pin.contains("Pinned by ana.operator: legal hold, case 4711", "No retention rule expires it until it is unpinned")
	pin.one("unpin-form")
}

// TestPolicyPageHidesControls: rendered for a role that may only read, the page keeps
// the policy, the preview and the timeline, and leaves out every form.
func TestPolicyPageHidesControls(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	ctx := WithAllowed(context.Background(), Allowed{})
	comps := map[string]templ.Component{"policy": PolicyPage(samplePolicy(now))}
	for _, p := range policySamplePages(now) {
		if p.name == "backup-pinned" {
			comps["backup"] = p.c
		}
	}
	for name, c := range comps {
		var b strings.Builder
		if err := c.Render(ctx, &b); err != nil {
			t.Fatal(err)
		}
		root, err := html.Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		d := doc{t: t, root: root, src: b.String()}
		var forms []string
		for _, f := range d.all(tag("form")) {
			if a, _ := attr(f, "action"); a != "/logout" {
				forms = append(forms, a)
			}
		}
		if len(forms) > 0 {
			t.Errorf("%s for a read-only role has forms %v", name, forms)
		}
		if name == "policy" {
			d.contains("Window 7 days; at least 2 kept", "What the saved policy would delete now", "Pinned by ana.operator")
			d.one("plan-timeline")
		}
	}
}

func TestWindowDays(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true},
		{"0", 0, true},
		{"14", 14 * 24 * time.Hour, true},
		{" 7 ", 7 * 24 * time.Hour, true},
		{"1.5", 36 * time.Hour, true},
		{"0.0001", 9 * time.Second, true},
		{"-1", 0, false},
		{"a week", 0, false},
		{"1e9", 0, false},
		{"NaN", 0, false},
	} {
		got, err := ParseWindowDays(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseWindowDays(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok {
			if back, err := ParseWindowDays(FormatWindowDays(got)); err != nil || back != got {
				t.Errorf("ParseWindowDays(FormatWindowDays(%v)) = %v, %v", got, back, err)
			}
		}
	}
}

func TestThin(t *testing.T) {
	t.Parallel()
	var xs []StorageSampleVM
	for i := range 1000 {
		xs = append(xs, StorageSampleVM{Bytes: int64(i)})
	}
	got := thin(xs, 6)
	if len(got) != 6 || got[0].Bytes != 0 || got[5].Bytes != 999 {
		t.Errorf("thin(1000, 6) = %v", got)
	}
	if got := thin(xs[:3], 6); len(got) != 3 {
		t.Errorf("thin(3, 6) = %d samples, want 3", len(got))
	}
}
