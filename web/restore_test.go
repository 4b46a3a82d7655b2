package web

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
)

// samplePage returns the sample page called name.
func samplePage(t *testing.T, name string) doc {
	t.Helper()
	for _, p := range samplePages(sampleNow()) {
		if p.name == name {
			return parse(t, p.c)
		}
	}
	t.Fatalf("no sample page %q", name)
	return doc{}
}

func checked(n *html.Node) bool { _, ok := attr(n, "checked"); return ok }

func TestRestorePage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	w := sampleWindow(now)
	target := sampleTarget(now)

	t.Run("plan", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore")
		if got := text(d.all(tag("h1"))[0]); got != "Restore orders-db to a point in time" {
			t.Errorf("h1 = %q", got)
		}

		// The window: exact ends, one marker per backup, the gap labelled.
		win := doc{t: t, root: d.one("restore-window")}
		win.contains(shortUTC(w.Earliest, now), shortUTC(w.Latest, now),
			"from 7 base backups, except one gap",
			"WAL segment 0000000100000000000000A3 is missing from the archive")
		if got := text(d.one("restore-gap")); got != "gap: WAL 0000000100000000000000A3 missing" {
			t.Errorf("restore-gap = %q", got)
		}
		if n := len(win.all(hasAttr("class", "tl-gap"))); n != 1 {
			t.Errorf("hatched gaps = %d, want 1", n)
		}
		markers := win.all(hasAttr("data-tip", ""))
		if len(markers) != len(w.Backups) {
			t.Fatalf("backup markers = %d, want %d", len(markers), len(w.Backups))
		}
		first := w.Backups[0]
		if v, _ := attr(markers[0], "data-tip"); v != "Backup 12 · consistent at "+shortUTC(first.ConsistentAt, now) {
			t.Errorf("first marker tip = %q", v)
		}
		if v, _ := attr(markers[0], "style"); v != "left: 0.000%;" {
			t.Errorf("first marker style = %q, want left: 0.000%%;", v)
		}
		href, _ := attr(markers[0], "href")
		u, err := url.Parse(href)
		if err != nil {
			t.Fatal(err)
		}
		if u.Path != "/sources/1/restore" || u.Query().Get("mode") != "time" ||
			u.Query().Get("target") != FormatTargetTime(ceilSecond(first.ConsistentAt)) {
			t.Errorf("first marker href = %q", href)
		}
		mark := d.byID("restore-window-target")
		if _, hidden := attr(mark, "hidden"); hidden {
			t.Error("the chosen target is not marked on the window")
		}

		// Target: a point in time is chosen; the input is a UTC datetime-local bounded by the window.
		if checked(d.one("restore-target-latest")) || !checked(d.one("restore-target-time")) {
			t.Error("target radios: want the point in time checked")
		}
		in := d.one("restore-time-input")
		for k, want := range map[string]string{
			"type": "datetime-local", "step": "1", "name": "target",
			"min": FormatTargetTime(ceilSecond(w.Earliest)), "max": FormatTargetTime(w.Latest),
			"value": FormatTargetTime(target),
		} {
			if v, _ := attr(in, k); v != want {
				t.Errorf("time input %s = %q, want %q", k, v, want)
			}
		}
		if _, ok := attr(in, "aria-invalid"); ok {
			t.Error("valid time input is aria-invalid")
		}
		if v, _ := attr(d.byID("restore-time-local"), "data-local-time-for"); v != "restore-time" {
			t.Errorf("local time output is for %q", v)
		}
		d.contains("Latest restorable time ("+shortUTC(w.Latest, now)+")", "Time in UTC, to the second")
		if _, open := attr(d.all(hasAttr("class", "advanced"))[0], "open"); open {
			t.Error("advanced options are open for a plain time target")
		}
		if !checked(d.byID("restore-inclusive")) {
			t.Error("inclusive is not checked")
		}

		// The background preview: GET the same page, swap the plan, the mark and the error.
		fs := d.all(hasAttr("hx-get", ""))
		if len(fs) != 1 {
			t.Fatalf("hx-get elements = %d, want 1", len(fs))
		}
		for k, want := range map[string]string{
			"hx-get": "/sources/1/restore", "hx-select": "#restore-plan", "hx-target": "#restore-plan",
			"hx-swap": "outerHTML", "hx-include": "closest form",
			"hx-select-oob": "#restore-window-target,#restore-target-error,#restore-lsn-error,#restore-point-error",
		} {
			if v, _ := attr(fs[0], k); v != want {
				t.Errorf("%s = %q, want %q", k, v, want)
			}
		}
		prev := d.one("restore-preview")
		if v, _ := attr(prev, "formmethod"); v != "get" {
			t.Errorf("Preview plan formmethod = %q, want get (works without JavaScript)", v)
		}

		// The plan.
		plan := d.one("restore-plan")
		if id, _ := attr(plan, "id"); id != "restore-plan" {
			t.Errorf("plan id = %q", id)
		}
		pd := doc{t: t, root: plan}
		pd.contains("Backup 24", "1.4 GiB", "6.1 GiB", "6.4 GiB", "412 segment files", "0/3A000028", "0/5F2C10A8",
			"about 48 s", "recovery_target_time = '"+target.Format("2006-01-02 15:04:05")+".000000+00'")
		if got, want := text(d.one("restore-guarantee")), "The new instance will hold exactly the transactions committed at or before "+
			target.Format("2006-01-02 15:04:05")+".000000 UTC."; got != want {
			t.Errorf("guarantee = %q, want %q", got, want)
		}
		for _, v := range []string{"0/3A000028", "0/5F2C10A8"} {
			if len(pd.all(hasAttr("data-copy", v))) != 1 {
				t.Errorf("no copy button for %s", v)
			}
		}
		if len(pd.all(hasAttr("href", "/backups/24"))) != 1 {
			t.Error("the plan does not link backup 24")
		}
		if v, _ := attr(plan, "data-announce"); !strings.HasPrefix(v, "Plan updated: backup 24 and 412 WAL files") {
			t.Errorf("data-announce = %q", v)
		}
		if len(d.testIDs("restore-plan-error")) != 0 {
			t.Error("a plan page shows a refusal")
		}

		// Into and confirm.
		if !checked(d.one("restore-into-instance")) {
			t.Error("new instance is not chosen")
		}
		port := d.one("restore-port")
		if v, _ := attr(port, "value"); v != "5433" {
			t.Errorf("port = %q", v)
		}
		if v, _ := attr(port, "type"); v != "number" {
			t.Errorf("port type = %q", v)
		}
		if v, _ := attr(d.one("restore-confirm"), "name"); v != "confirm" {
			t.Errorf("confirm name = %q", v)
		}
		sub := d.one("restore-submit")
		if v, _ := attr(sub, "type"); v != "submit" || text(sub) != "Restore" {
			t.Errorf("submit = %q type %q", text(sub), v)
		}
		if _, ok := attr(sub, "disabled"); ok {
			t.Error("Restore is disabled")
		}
		form := d.one("restore-form")
		if a, _ := attr(form, "action"); a != "/sources/1/restore" {
			t.Errorf("form action = %q", a)
		}
		if n := len(d.all(hasAttr("autofocus", ""))); n != 0 {
			t.Errorf("autofocused fields = %d, want none without errors", n)
		}
		// Keyboard order follows the page: the steps appear in the order 1-4.
		order := []string{"restore-target-latest", "restore-time-input", "restore-preview", "restore-port", "restore-confirm", "restore-submit"}
		pos := func(id string) int { return strings.Index(d.src, `data-testid="`+id+`"`) }
		for i := 1; i < len(order); i++ {
			if pos(order[i-1]) > pos(order[i]) {
				t.Errorf("%s comes after %s", order[i-1], order[i])
			}
		}
	})

	t.Run("latest", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore-latest")
		if !checked(d.one("restore-target-latest")) || checked(d.one("restore-target-time")) {
			t.Error("first load does not choose the latest time")
		}
		// The time input starts at the latest second, ready to be edited.
		if v, _ := attr(d.one("restore-time-input"), "value"); v != FormatTargetTime(w.Latest) {
			t.Errorf("time input value = %q", v)
		}
		if !strings.Contains(text(d.one("restore-guarantee")), "the newest commit in the archived WAL") {
			t.Errorf("guarantee = %q", text(d.one("restore-guarantee")))
		}
		if v, _ := attr(d.byID("restore-window-target"), "style"); v != "left: 100.000%;" {
			t.Errorf("target mark style = %q, want the right end", v)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore-refused")
		if len(d.testIDs("restore-plan")) != 0 {
			t.Error("a refused target shows a plan")
		}
		e := d.one("restore-plan-error")
		ed := doc{t: t, root: e}
		ed.contains("This target cannot be restored.", "WAL 0000000100000000000000A3 is missing from the archive",
			"Nearest restorable: "+UTC(w.Gaps[0].From.Truncate(time.Second))+", the last commit before the gap.")
		near := d.one("restore-nearest")
		wantTime := FormatTargetTime(w.Gaps[0].From)
		if v, _ := attr(near, "data-fill-value"); v != wantTime {
			t.Errorf("nearest data-fill-value = %q, want %q", v, wantTime)
		}
		if v, _ := attr(near, "data-fill-mode"); v != "time" {
			t.Errorf("nearest data-fill-mode = %q", v)
		}
		href, _ := attr(near, "href")
		if u, _ := url.Parse(href); u.Query().Get("target") != wantTime || u.Query().Get("mode") != "time" {
			t.Errorf("nearest href = %q", href)
		}
		in := d.one("restore-time-input")
		if v, _ := attr(in, "aria-invalid"); v != "true" {
			t.Error("time input of a refused target is not aria-invalid")
		}
		if v, _ := attr(in, "aria-describedby"); !strings.Contains(v, "restore-plan-error") {
			t.Errorf("aria-describedby = %q, want the refusal", v)
		}
		if _, ok := attr(in, "autofocus"); !ok {
			t.Error("the refused target is not focused")
		}
		// The target sits in the gap: the window shows where.
		if _, hidden := attr(d.byID("restore-window-target"), "hidden"); hidden {
			t.Error("a target inside the window is not marked")
		}
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore-errors")
		g := d.one("field-error-")
		if r, _ := attr(g, "role"); r != "alert" || !strings.Contains(text(g), "Nothing was started") {
			t.Errorf("general error = %q role %q", text(g), r)
		}
		for field, msg := range map[string]string{"port": "Port 80 is below 1024", "confirm": "Type orders-db exactly"} {
			in := d.one("restore-" + field)
			errEl := d.one("field-error-" + field)
			if !strings.Contains(text(errEl), msg) {
				t.Errorf("field-error-%s = %q", field, text(errEl))
			}
			if v, _ := attr(in, "aria-invalid"); v != "true" {
				t.Errorf("%s is not aria-invalid", field)
			}
			id, _ := attr(errEl, "id")
			if v, _ := attr(in, "aria-describedby"); !strings.Contains(v, id) {
				t.Errorf("%s aria-describedby = %q, want %q", field, v, id)
			}
		}
		if v, _ := attr(d.one("restore-confirm"), "value"); v != "orders" {
			t.Errorf("confirm refilled = %q", v)
		}
		// Past the window: refused, with the latest time as the way out.
		near := d.one("restore-nearest")
		if v, _ := attr(near, "data-fill-mode"); v != "latest" || text(near) != "Use the latest restorable time" {
			t.Errorf("nearest = %q mode %q", text(near), v)
		}
		if _, hidden := attr(d.byID("restore-window-target"), "hidden"); !hidden {
			t.Error("a target outside the window is marked on it")
		}
		if len(d.testIDs("field-error-target")) != 0 {
			t.Error("refusal also shown as an inline target error")
		}
	})

	t.Run("lsn and directory errors", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore-dir-errors")
		if !checked(d.one("restore-target-lsn")) || !checked(d.one("restore-into-dir")) {
			t.Error("LSN target and directory destination are not kept")
		}
		if _, open := attr(d.all(hasAttr("class", "advanced"))[0], "open"); !open {
			t.Error("advanced options are closed while an LSN is chosen")
		}
		if checked(d.byID("restore-inclusive")) {
			t.Error("inclusive is checked, want it as submitted (off)")
		}
		// The unreadable LSN is flagged at the LSN input, in its swappable slot.
		te := d.one("field-error-target")
		if p := te.Parent; p == nil || func() string { v, _ := attr(p, "id"); return v }() != "restore-lsn-error" {
			t.Error("the target error is not in the LSN's error slot")
		}
		lsn := d.byID("restore-lsn")
		if v, _ := attr(lsn, "aria-invalid"); v != "true" {
			t.Error("the LSN input is not aria-invalid")
		}
		if v, _ := attr(lsn, "aria-describedby"); v != "restore-lsn-help restore-lsn-error" {
			t.Errorf("LSN aria-describedby = %q", v)
		}
		if _, ok := attr(lsn, "autofocus"); !ok {
			t.Error("the invalid LSN is not focused")
		}
		if _, ok := attr(d.one("restore-time-input"), "aria-invalid"); ok {
			t.Error("the time input is marked invalid for an LSN error")
		}
		for _, id := range []string{"restore-target-error", "restore-lsn-error", "restore-point-error"} {
			d.byID(id) // every slot is there for the preview to swap
		}
		de := d.one("field-error-dir")
		if !strings.Contains(text(de), "is not empty") {
			t.Errorf("field-error-dir = %q", text(de))
		}
		if len(d.all(hasAttr("autofocus", ""))) != 1 {
			t.Error("more than one field is autofocused")
		}
		points := d.all(tag("option"))
		if len(points) != 2 || !strings.HasPrefix(text(points[0]), "before-migration-42 · ") {
			t.Errorf("restore point options = %d", len(points))
		}
	})

	t.Run("nothing restorable", func(t *testing.T) {
		t.Parallel()
		d := samplePage(t, "restore-nothing")
		d.one("restore-empty")
		for _, id := range []string{"restore-form", "restore-window", "restore-submit"} {
			if len(d.testIDs(id)) != 0 {
				t.Errorf("empty window shows %s", id)
			}
		}
	})
}

func TestRestoreLinks(t *testing.T) {
	t.Parallel()
	o := samplePage(t, "overview")
	links := o.testIDs("restore-link")
	if len(links) != 1 {
		t.Fatalf("restore links on the overview = %d, want 1 (only orders-db is restorable)", len(links))
	}
	if v, _ := attr(links[0], "href"); v != "/sources/1/restore" {
		t.Errorf("restore link = %q", v)
	}
	if !strings.Contains(text(links[0]), "Restore…") {
		t.Errorf("restore link text = %q", text(links[0]))
	}
	s := samplePage(t, "source")
	if v, _ := attr(s.one("restore-link"), "href"); v != "/sources/1/restore" {
		t.Errorf("source page restore link = %q", v)
	}
	s.contains("Restorable window", "newest commit 4 min ago")
	if n := len(samplePage(t, "source-idle").testIDs("restore-link")); n != 0 {
		t.Errorf("a source with nothing restorable offers Restore… (%d)", n)
	}
}

func TestRestoresPage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	rows := sampleRestores(now)
	d := samplePage(t, "restores")
	if v, _ := attr(d.all(hasAttr("ws-connect", ""))[0], "ws-connect"); v != "/ws?page=restores" {
		t.Errorf("ws-connect = %q", v)
	}
	var states []string
	for _, r := range rows {
		d.byID(restoreRowID(r.ID))
	}
	for _, s := range d.testIDs("restore-state") {
		states = append(states, text(s)+" "+strings.TrimPrefix(func() string { v, _ := attr(s, "class"); return v }(), "badge badge--"))
	}
	want := []string{"Restoring info", "Running ok", "Stopped neutral", "Failed danger", "Stopped neutral", "Deleted neutral"}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	actions := map[string]bool{}
	for _, f := range d.all(tag("form")) {
		a, _ := attr(f, "action")
		if strings.HasPrefix(a, "/restores/") {
			actions[a] = true
		}
	}
	wantActions := map[string]bool{
		"/restores/7/stop": true, "/restores/7/delete": true,
		"/restores/6/start": true, "/restores/6/delete": true,
		"/restores/5/delete": true, "/restores/4/delete": true,
	}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	del := d.all(hasAttr("action", "/restores/7/delete"))[0]
	if v, _ := attr(del, "data-confirm"); v != "Delete restored instance 7 and its data directory?" {
		t.Errorf("delete data-confirm = %q", v)
	}
	r7 := doc{t: t, root: d.byID("restore-7")}
	r7.contains("Restore 7", "orders-db", "5433", UTC(sampleTarget(now)), "inclusive", "2 h ago", "Job 45",
		"/var/lib/backstop/restore/orders-db-7")
	if len(r7.all(hasAttr("data-copy", "postgres://postgres@127.0.0.1:5433/postgres"))) != 1 {
		t.Error("no copy button for restore 7's connection string")
	}
	doc{t: t, root: d.byID("restore-8")}.contains("When the restore finishes", "Job 46")
	doc{t: t, root: d.byID("restore-6")}.contains("LSN 0/5A0001C8")
	doc{t: t, root: d.byID("restore-5")}.contains("WAL 0000000100000000000000A3 is missing")
	doc{t: t, root: d.byID("restore-4")}.contains("Restore point nightly-etl-done", "Directory only")
	gone := doc{t: t, root: d.byID("restore-3")}
	gone.contains("(removed)")
	if len(gone.all(hasAttr("data-copy", ""))) != 0 {
		t.Error("a deleted restore offers to copy its connection string or directory")
	}
	d.lacks("password=", ":xxxxx@")
	// The placeholder is there for the websocket, hidden by CSS while rows exist.
	if n := len(d.testIDs("empty-restores")); n != 1 {
		t.Errorf("empty-state placeholders = %d, want 1", n)
	}

	e := samplePage(t, "restores-empty")
	em := doc{t: t, root: e.one("empty-restores")}
	em.contains("Nothing restored yet", "Restore…")
	if len(em.all(hasAttr("href", "/sources"))) != 1 {
		t.Error("empty restores page does not link to Sources")
	}

	oob := parseFragment(t, RestoreRowOOB(rows[1], now))
	if v, _ := attr(oob.byID("restore-7"), "hx-swap-oob"); v != "true" {
		t.Errorf("RestoreRowOOB hx-swap-oob = %q", v)
	}
	nw := parseFragment(t, RestoreRowNewOOB(rows[0], now))
	if v, _ := attr(nw.byID("restore-rows"), "hx-swap-oob"); v != "afterbegin" {
		t.Errorf("RestoreRowNewOOB hx-swap-oob = %q", v)
	}
	nw.byID("restore-8")
}

func TestRestoreJobPage(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	r := samplePage(t, "job-restore-running")
	r.contains("Point-in-time restore of orders-db", "Restore 8")
	ph := r.byID("job-46-phases")
	var names []string
	for _, n := range (doc{t: t, root: ph}).all(hasAttr("class", "phase-name")) {
		names = append(names, text(n))
	}
	if diff := cmp.Diff([]string{"Materializing", "Configuring", "Starting", "Replaying", "Promoting", "Checking"}, names); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	cur := (doc{t: t, root: ph}).all(hasAttr("aria-current", "step"))
	if len(cur) != 1 || !strings.Contains(text(cur[0]), "Replaying in progress at ") {
		t.Errorf("current phase = %v", cur)
	}
	(doc{t: t, root: ph}).contains("Phase 4 of 6: replaying, in progress", "Materializing done", "Promoting pending")
	// The stepper sits above the progress bar.
	if strings.Index(r.src, `id="job-46-phases"`) > strings.Index(r.src, `id="job-46-progress"`) {
		t.Error("phases come after the progress bar")
	}
	res := r.byID("job-46-restore")
	(doc{t: t, root: res}).contains("/var/lib/backstop/restore/orders-db-8", UTC(sampleTarget(now)))
	if len(r.testIDs("restore-dsn")) != 0 {
		t.Error("a running restore shows a connection string")
	}
	if v, _ := attr(r.one("job-result"), "href"); v != "/restores#restore-8" {
		t.Errorf("job-result = %q", v)
	}

	f := samplePage(t, "job-restore-finished")
	dsn := f.one("restore-dsn")
	if !strings.Contains(text(dsn), "postgres://postgres@127.0.0.1:5433/postgres") {
		t.Errorf("restore-dsn = %q", text(dsn))
	}
	if len((doc{t: t, root: dsn}).all(hasAttr("data-copy", "postgres://postgres@127.0.0.1:5433/postgres"))) != 1 {
		t.Error("no copy button for the connection string")
	}
	if n := len((doc{t: t, root: f.one("restore-checked")}).all(tag("li"))); n != 4 {
		t.Errorf("checked items = %d, want 4", n)
	}
	if !strings.HasPrefix(text(f.one("restore-stop-line")), "LOG: recovery stopping after commit of transaction 48213") {
		t.Errorf("stop line = %q", text(f.one("restore-stop-line")))
	}
	if n := len(f.all(hasAttr("data-state", PhaseDone))); n != 6 {
		t.Errorf("done phases = %d, want 6", n)
	}
	f.contains("Restored instance", "pg_verifybackup: 1,874 files", "psql 'postgres://postgres@127.0.0.1:5433/postgres'")

	// A backup job has neither.
	b := samplePage(t, "job-running")
	if len(b.testIDs("job-phases")) != 0 || len(b.all(hasAttr("id", "job-41-restore"))) != 0 {
		t.Error("a backup job shows restore parts")
	}

	p := parseFragment(t, JobPhasesOOB(46, []PhaseVM{{Name: "replaying", State: PhaseDone}, {Name: "promoting", State: PhaseFailed}}))
	if v, _ := attr(p.byID("job-46-phases"), "hx-swap-oob"); v != "true" {
		t.Errorf("JobPhasesOOB hx-swap-oob = %q", v)
	}
	p.contains("Phase 2 of 2: promoting, failed", "Promoting failed")
	rr := parseFragment(t, JobRestoreOOB(46, RestoreResultVM{DSN: "postgres://postgres@127.0.0.1:5434/postgres", DataDir: "/x"}, now))
	if v, _ := attr(rr.byID("job-46-restore"), "hx-swap-oob"); v != "true" {
		t.Errorf("JobRestoreOOB hx-swap-oob = %q", v)
	}
	rr.one("restore-dsn")
}

func TestParseTargetTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-25T09:30", want},
		{"2026-11-25T09:30:00", want},
		{" 2026-11-25 09:30:00 ", want},
		{"2026-11-25T09:30:00Z", want},
		{"2026-11-25 09:30:00 UTC", want},
		{"2026-11-25T09:30:00.25", want.Add(250 * time.Millisecond)},
		{"2026-11-25T09:30:00.000001", want.Add(time.Microsecond)},
	} {
		got, err := ParseTargetTime(tt.in)
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseTargetTime(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-11-25", "2026-11-25T09:30:00+01:00", "2026-13-25T09:30", "25/11/2026 09:30"} {
		if got, err := ParseTargetTime(in); err == nil {
			t.Errorf("ParseTargetTime(%q) = %v, want an error", in, got)
		}
	}
	if got := FormatTargetTime(want.Add(999 * time.Millisecond)); got != "2026-11-25T09:30:00" {
		t.Errorf("FormatTargetTime() = %q", got)
	}
	if got := FormatTargetTime(time.Time{}); got != "" {
		t.Errorf("FormatTargetTime(zero) = %q", got)
	}
}

func FuzzParseTargetTime(f *testing.F) {
	for _, s := range []string{"2026-11-25T09:30", "2026-11-25 09:30:00.5 UTC", "2026-11-25T09:30:00Z", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTargetTime(s)
		if err != nil {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTargetTime(%q) location = %v", s, got.Location())
		}
		// What the page writes back reads as the same second.
		again, err := ParseTargetTime(FormatTargetTime(got))
		if err != nil || !again.Equal(got.Truncate(time.Second)) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

func TestWindowGeometry(t *testing.T) {
	t.Parallel()
	e := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	w := RestoreWindowVM{Earliest: e, Latest: e.Add(100 * time.Hour)}
	for _, tt := range []struct {
		at   time.Time
		want float64
	}{{e, 0}, {e.Add(25 * time.Hour), 25}, {e.Add(100 * time.Hour), 100}, {e.Add(-time.Hour), 0}, {e.Add(200 * time.Hour), 100}} {
		if got := windowPct(tt.at, w); got != tt.want {
			t.Errorf("windowPct(%v) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if got := windowPct(e, RestoreWindowVM{Earliest: e, Latest: e}); got != 0 {
		t.Errorf("windowPct in an empty window = %v", got)
	}

	g1 := WindowGap{From: e.Add(10 * time.Hour), To: e.Add(20 * time.Hour), FirstMissing: "A"}
	g2 := WindowGap{From: e.Add(90 * time.Hour), To: e.Add(120 * time.Hour), FirstMissing: "B"}
	w.Gaps = []WindowGap{g2, g1}
	type span struct {
		Left, Width float64
		Gap         string
	}
	var got []span
	for _, s := range walSpans(w) {
		sp := span{Left: s.Left, Width: s.Width}
		if s.Gap != nil {
			sp.Gap = s.Gap.FirstMissing
		}
		got = append(got, sp)
	}
	want := []span{{0, 10, ""}, {10, 10, "A"}, {20, 70, ""}, {90, 10, "B"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("walSpans (-want +got):\n%s", diff)
	}
	w.Gaps = nil
	if diff := cmp.Diff([]span{{0, 100, ""}}, func() []span {
		var out []span
		for _, s := range walSpans(w) {
			out = append(out, span{s.Left, s.Width, ""})
		}
		return out
	}()); diff != "" {
		t.Errorf("walSpans without gaps (-want +got):\n%s", diff)
	}

	// Ticks: round UTC times, inside the window, not crowding its ends.
	for _, span := range []time.Duration{90 * time.Second, 45 * time.Minute, 7 * time.Hour, 13*24*time.Hour + 9*time.Hour, 200 * 24 * time.Hour} {
		w := RestoreWindowVM{Earliest: e.Add(17*time.Minute + 3*time.Second), Latest: e.Add(17*time.Minute + 3*time.Second + span)}
		ticks := windowTicks(w)
		if len(ticks) > 7 {
			t.Errorf("span %v: %d ticks, want at most 7", span, len(ticks))
		}
		for _, k := range ticks {
			if k.Pct < 4 || k.Pct > 96 || k.At.Second() != 0 {
				t.Errorf("span %v: tick %q at %.1f%% (%v)", span, k.Label, k.Pct, k.At)
			}
		}
	}
	days := windowTicks(RestoreWindowVM{Earliest: e.Add(2 * time.Hour), Latest: e.Add(13*24*time.Hour + 9*time.Hour)})
	if len(days) == 0 || days[0].Label != "Nov 13" || days[0].At.Hour() != 0 {
		t.Errorf("day ticks = %+v", days)
	}
}

func TestTargetWords(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		target           RestoreTarget
		text, guarantees string
	}{
		{RestoreTarget{Kind: TargetTime, Time: at, Inclusive: true}, "2026-11-25 09:30:00 UTC",
			"The new instance will hold exactly the transactions committed at or before 2026-11-25 09:30:00.000000 UTC."},
		{RestoreTarget{Kind: TargetTime, Time: at}, "2026-11-25 09:30:00 UTC",
			"The new instance will hold exactly the transactions committed before 2026-11-25 09:30:00.000000 UTC."},
		{RestoreTarget{Kind: TargetLatest, Time: at.Add(482913 * time.Microsecond)}, "latest (2026-11-25 09:30:00 UTC)",
			"The new instance will hold exactly the transactions committed at or before 2026-11-25 09:30:00.482913 UTC, the newest commit in the archived WAL."},
		{RestoreTarget{Kind: TargetLSN, LSN: "0/5F2C10A8", Inclusive: true}, "LSN 0/5F2C10A8",
			"The new instance will hold exactly the changes written up to and including LSN 0/5F2C10A8."},
		{RestoreTarget{Kind: TargetName, Name: "before-migration", Time: at}, "restore point before-migration",
			`The new instance will hold exactly the transactions committed before the restore point "before-migration" was created, at 2026-11-25 09:30:00.000000 UTC.`},
	} {
		if got := targetText(tt.target); got != tt.text {
			t.Errorf("targetText(%+v) = %q, want %q", tt.target, got, tt.text)
		}
		if got := guarantee(tt.target); got != tt.guarantees {
			t.Errorf("guarantee(%+v) = %q, want %q", tt.target, got, tt.guarantees)
		}
	}
	for _, tt := range []struct {
		t    RestoreTarget
		want string
	}{
		{RestoreTarget{Kind: TargetTime, Time: at, Inclusive: true}, "/sources/3/restore?inclusive=on&mode=time&target=2026-11-25T09%3A30%3A00#restore-plan"},
		{RestoreTarget{Kind: TargetLatest}, "/sources/3/restore?inclusive=on&mode=latest#restore-plan"},
		{RestoreTarget{Kind: TargetLSN, LSN: "0/5F2C10A8"}, "/sources/3/restore?lsn=0%2F5F2C10A8&mode=lsn#restore-plan"},
		{RestoreTarget{Kind: TargetName, Name: "a b"}, "/sources/3/restore?inclusive=on&mode=name&point=a+b#restore-plan"},
	} {
		if got := restoreTargetURL(3, tt.t); got != tt.want {
			t.Errorf("restoreTargetURL(%+v) = %q, want %q", tt.t, got, tt.want)
		}
	}
	if got := kindWord("pitr"); got != "Point-in-time restore" {
		t.Errorf("kindWord(pitr) = %q", got)
	}
	if got, want := shortUTC(at, at), "Nov 25 09:30:00 UTC"; got != want {
		t.Errorf("shortUTC = %q, want %q", got, want)
	}
	if got, want := shortUTC(at, at.AddDate(1, 0, 0)), "Nov 25 2026 09:30:00 UTC"; got != want {
		t.Errorf("shortUTC of another year = %q, want %q", got, want)
	}
}
