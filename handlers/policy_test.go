package handlers_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/backstop/backstop/store"
)

// policyFixture is a source without a server (nothing here connects to it) with n
// complete backups, and a signed-in client per role.
type policyFixture struct {
	*app
	src     store.Source
	backups []store.Backup
	clients map[store.Role]*http.Client
}

func setupPolicy(t *testing.T, n int) *policyFixture {
	t.Helper()
	a := setup(t)
	ctx := t.Context()
	src, err := a.store.CreateSource(ctx, store.SourceParams{Name: "orders", DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000042", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	f := &policyFixture{app: a, src: src, clients: map[store.Role]*http.Client{}}
	for i := range n {
		b, err := a.store.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: fmt.Sprintf("policy-backup-%d", i),
			StartLSN: fmt.Sprintf("0/%X000028", 2*i+2), Timeline: 1, SystemIdentifier: src.SystemIdentifier})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.store.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: fmt.Sprintf("0/%X000100", 2*i+2),
			Stats: store.BackupStats{SourceBytes: 40 << 20, StoredBytesNew: int64(i+1) << 20}}); err != nil {
			t.Fatal(err)
		}
		if b, err = a.store.Backup(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		f.backups = append(f.backups, b)
	}
	for _, role := range store.Roles {
		if role != store.RoleAdmin {
			if _, err := a.store.CreateUser(ctx, string(role), testPassword, role); err != nil {
				t.Fatal(err)
			}
		}
		c := a.client(t)
		if role == store.RoleAdmin {
			a.login(t, c)
		} else {
			a.loginAs(t, c, string(role))
		}
		f.clients[role] = c
	}
	return f
}

func (f *policyFixture) path(suffix string) string {
	return fmt.Sprintf("/sources/%d%s", f.src.ID, suffix)
}

// policyValues is a policy form with a 7-day window and a nightly schedule.
func policyValues(changes ...string) url.Values {
	v := url.Values{"backup_cron": {"0 3 * * *"}, "time_zone": {"Europe/Berlin"}, "window_days": {"7"}, "keep_last": {"0"},
		"daily": {"0"}, "weekly": {"0"}, "monthly": {"0"}, "yearly": {"0"}, "min_keep": {"2"}, "archive_years": {"0"}}
	for i := 0; i+1 < len(changes); i += 2 {
		v.Set(changes[i], changes[i+1])
	}
	return v
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fieldError returns the text of the error shown next to field, "" when none is.
func fieldError(page, field string) string {
	m := regexp.MustCompile(`(?s)data-testid="field-error-` + regexp.QuoteMeta(field) + `"[^>]*>(.*?)</(p|div)>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], " ")), " ")
}

func (f *policyFixture) policySaved(t *testing.T) bool {
	t.Helper()
	_, err := f.store.Policy(t.Context(), f.src.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPolicyPageByRole: every role reads the page and its preview; only the roles that
// may change the policy, expire and pin see those controls.
func TestPolicyPageByRole(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 3)
	if resp := f.postForm(t, f.clients[store.RoleAdmin], f.path("/policy"), policyValues()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save policy = %d, want 303", resp.StatusCode)
	}
	controls := []string{`data-testid="policy-form"`, `data-testid="apply-form"`, `data-testid="pin-form"`, `data-testid="policy-save"`}
	for _, role := range store.Roles {
		t.Run(string(role), func(t *testing.T) {
			resp, page := f.get(t, f.clients[role], f.path("/policy"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET policy as %s = %d, want 200", role, resp.StatusCode)
			}
			for _, want := range []string{`data-testid="policy-preview"`, "Window 7 days; at least 2 kept", `data-testid="plan-timeline"`,
				`data-testid="storage-chart"`, "0 3 * * *"} {
				if !strings.Contains(page, want) {
					t.Errorf("page as %s lacks %q", role, want)
				}
			}
			mayChange := role == store.RoleAdmin || role == store.RoleOperator
			for _, c := range controls {
				if got := strings.Contains(page, c); got != mayChange {
					t.Errorf("page as %s shows %s = %v, want %v", role, c, got, mayChange)
				}
			}
		})
	}
	// The source's page links to it.
	if _, page := f.get(t, f.clients[store.RoleAuditor], f.path("")); !strings.Contains(page, `href="`+f.path("/policy")+`"`) {
		t.Error("the source page does not link to its policy page")
	}
}

// TestSavePolicy: a saved policy shows on the page and in the audit log; saving deletes
// nothing.
func TestSavePolicy(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 2)
	c := f.clients[store.RoleOperator]
	_, page := f.get(t, c, f.path("/policy"))
	for _, want := range []string{`data-testid="policy-none"`, `value="0 2 * * *"`, `value="14"`, "Preview of the policy in the form (not saved)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page of a source without a policy lacks %q (the defaults)", want)
		}
	}
	resp := f.postForm(t, c, f.path("/policy"), policyValues("window_days", "1.5", "weekly", "4"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != f.path("/policy") {
		t.Fatalf("POST policy = %d to %q, want 303 to the policy page; body: %s", resp.StatusCode, resp.Header.Get("Location"), body(t, resp))
	}
	p, err := f.store.Policy(t.Context(), f.src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.BackupCron != "0 3 * * *" || p.TimeZone != "Europe/Berlin" || p.Window.Hours() != 36 || p.Weekly != 4 || p.MinKeep != 2 || p.UpdatedBy != "operator" {
		t.Errorf("stored policy = %+v", p)
	}
	_, page = f.get(t, c, f.path("/policy"))
	for _, want := range []string{`data-testid="policy-saved"`, "Window 36 hours", "4 weekly", "Europe/Berlin", `value="1.5"`, `value="4"`,
		"What the saved policy would delete now", "Policy of orders saved"} {
		if !strings.Contains(page, want) {
			t.Errorf("page after saving lacks %q", want)
		}
	}
	if strings.Contains(page, `data-testid="policy-none"`) {
		t.Error("page after saving still says there is no policy")
	}
	bs, err := f.store.Backups(t.Context(), store.BackupFilter{SourceID: f.src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Errorf("backups after saving = %d, want 2: saving deletes nothing", len(bs))
	}
	entries, err := f.store.AuditEntries(t.Context(), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || entries[0].Action != "policy.set" || entries[0].Actor != "operator" {
		t.Errorf("newest audit entry = %+v, want policy.set by operator", entries[0])
	}
}

// TestPolicyErrorsNextToTheField: a policy the use case refuses comes back with each
// reason next to its field, the values kept, and nothing saved; Preview says the same.
func TestPolicyErrorsNextToTheField(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 1)
	c := f.clients[store.RoleAdmin]
	tests := []struct {
		name   string
		form   url.Values
		field  string
		want   string
		refill string
	}{
		{"bad cron", policyValues("backup_cron", "0 2 * *"), "backup_cron", "five fields", `value="0 2 * *"`},
		{"bad zone", policyValues("time_zone", "Europe/Berln"), "time_zone", "Unknown time zone", `value="Europe/Berln"`},
		{"keeps nothing", policyValues("window_days", "0", "min_keep", "0"), "policy", "keeps nothing", `value="0"`},
		{"window not a number", policyValues("window_days", "a week"), "window_days", "in days", `value="a week"`},
		{"negative count", policyValues("keep_last", "-1"), "keep_last", "whole number", `value="-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, route := range []string{"/policy", "/policy/preview"} {
				resp := f.postForm(t, c, f.path(route), tt.form)
				page := body(t, resp)
				if resp.StatusCode != http.StatusUnprocessableEntity {
					t.Errorf("POST %s = %d, want 422", route, resp.StatusCode)
				}
				if got := fieldError(page, tt.field); !strings.Contains(got, tt.want) {
					t.Errorf("POST %s: error next to %s = %q, want it to mention %q", route, tt.field, got, tt.want)
				}
				if !strings.Contains(page, tt.refill) {
					t.Errorf("POST %s: the form does not keep %s", route, tt.refill)
				}
				if tt.field != "policy" && !strings.Contains(page, `aria-invalid="true"`) {
					t.Errorf("POST %s: no field is marked invalid", route)
				}
			}
			if f.policySaved(t) {
				t.Error("a refused policy was saved")
			}
		})
	}
}

// TestPreviewDoesNotSave: Preview shows what the form's policy would delete, as a page
// without script and as the editor alone for htmx, and saves nothing.
func TestPreviewDoesNotSave(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 4)
	c := f.clients[store.RoleOperator]
	// No window, the newest one kept: the three older ones would go.
	form := policyValues("window_days", "0", "keep_last", "1", "min_keep", "0")
	resp := f.postForm(t, c, f.path("/policy/preview"), form)
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST preview = %d, want 200", resp.StatusCode)
	}
	for _, want := range []string{"<html", "Preview of the policy in the form (not saved)", "3 backups go", `data-rule="last"`,
		`value="1"`, `data-testid="preview-summary"`} {
		if !strings.Contains(page, want) {
			t.Errorf("preview page lacks %q", want)
		}
	}
	if n := strings.Count(page, `data-expires="true"`); n != 3 {
		t.Errorf("backups marked as expiring = %d, want 3", n)
	}
	if f.policySaved(t) {
		t.Error("Preview saved the policy")
	}

	req, err := http.NewRequest(http.MethodPost, f.srv.URL+f.path("/policy/preview"), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	req.Header.Set("HX-Request", "true")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fragment := body(t, resp)
	if resp.StatusCode != http.StatusOK || strings.Contains(fragment, "<html") || !strings.HasPrefix(strings.TrimSpace(fragment), `<div id="policy-editor"`) {
		t.Errorf("htmx preview = %d %.80q, want 200 with the editor alone", resp.StatusCode, fragment)
	}
	if !strings.Contains(fragment, "3 backups go") {
		t.Error("htmx preview lacks the summary")
	}
	// An htmx preview with an error is swapped in too: 200, with the error at the field.
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+f.path("/policy/preview"),
		strings.NewReader(policyValues("backup_cron", "every night").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.srv.URL)
	req.Header.Set("HX-Request", "true")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if fragment := body(t, resp); resp.StatusCode != http.StatusOK || fieldError(fragment, "backup_cron") == "" {
		t.Errorf("htmx preview of a bad cron = %d, want 200 with the error next to the field", resp.StatusCode)
	}
	if f.policySaved(t) {
		t.Error("Preview saved the policy")
	}
}

// TestPinAndUnpin: a pinned backup says who pinned it and why on both pages and is kept
// by the pinned rule; roles that may not pin are refused and change nothing.
func TestPinAndUnpin(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 2)
	old := f.backups[0]
	resp := f.postForm(t, f.clients[store.RoleAuditor], fmt.Sprintf("/backups/%d/pin", old.ID), url.Values{"note": {"sneaky"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("pin as auditor = %d, want 403", resp.StatusCode)
	}
	c := f.clients[store.RoleOperator]
	resp = f.postForm(t, c, fmt.Sprintf("/backups/%d/pin", old.ID), url.Values{"note": {"legal hold, case 4711"}, "next": {"policy"}})
	if want := fmt.Sprintf("%s#plan-backup-%d", f.path("/policy"), old.ID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("pin = %d to %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	b, err := f.store.Backup(t.Context(), old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Pin == nil || b.Pin.By != "operator" || b.Pin.Note != "legal hold, case 4711" {
		t.Fatalf("pin = %+v, want by operator with the note", b.Pin)
	}
	// The preview of a policy keeping only the newest backup keeps the pinned one too.
	page := body(t, f.postForm(t, c, f.path("/policy/preview"), policyValues("window_days", "0", "keep_last", "1", "min_keep", "0")))
	for _, want := range []string{`data-rule="pinned"`, "Pinned by operator: legal hold, case 4711", "Nothing to expire"} {
		if !strings.Contains(page, want) {
			t.Errorf("preview with a pinned backup lacks %q", want)
		}
	}
	_, page = f.get(t, c, fmt.Sprintf("/backups/%d", old.ID))
	for _, want := range []string{`data-testid="backup-pinned"`, "Pinned by operator: legal hold, case 4711", `data-testid="unpin-form"`} {
		if !strings.Contains(page, want) {
			t.Errorf("backup page lacks %q", want)
		}
	}
	_, page = f.get(t, f.clients[store.RoleOnCall], fmt.Sprintf("/backups/%d", old.ID))
	if !strings.Contains(page, `data-testid="backup-pinned"`) || strings.Contains(page, `data-testid="unpin-form"`) {
		t.Error("on-call's backup page: want the pin shown and no Unpin")
	}
	resp = f.postForm(t, c, fmt.Sprintf("/backups/%d/unpin", old.ID), url.Values{"next": {"https://evil.example/"}})
	if want := fmt.Sprintf("/backups/%d", old.ID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("unpin = %d to %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if b, err = f.store.Backup(t.Context(), old.ID); err != nil || b.Pin != nil {
		t.Errorf("after unpin: pin = %+v (%v), want none", b.Pin, err)
	}
	// Only complete backups can be pinned.
	running, err := f.store.CreateBackup(t.Context(), store.BackupParams{SourceID: f.src.ID, RepoID: "still-running"})
	if err != nil {
		t.Fatal(err)
	}
	if resp := f.postForm(t, c, fmt.Sprintf("/backups/%d/pin", running.ID), nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("pin a running backup = %d, want 409", resp.StatusCode)
	}
}

// TestApplyNeedsTheSourceName: Apply now starts expiry only once the source's name is
// typed, and only for roles that may expire.
func TestApplyNeedsTheSourceName(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 2)
	c := f.clients[store.RoleOperator]
	if resp := f.postForm(t, c, f.path("/policy"), policyValues()); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save = %d", resp.StatusCode)
	}
	expireJobs := func() int {
		js, err := f.store.Jobs(t.Context(), store.JobFilter{Kinds: []string{"expire"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(js)
	}
	resp := f.postForm(t, f.clients[store.RoleAuditor], f.path("/expire"), url.Values{"confirm": {"orders"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("apply as auditor = %d, want 403", resp.StatusCode)
	}
	resp = f.postForm(t, f.clients[store.RoleOnCall], f.path("/expire"), url.Values{"confirm": {"wrong"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("apply as oncall with a wrong name = %d, want 403 (refused before the name is read)", resp.StatusCode)
	}
	resp = f.postForm(t, c, f.path("/expire"), url.Values{"confirm": {"order"}})
	page := body(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(fieldError(page, "confirm"), "Type orders exactly") {
		t.Errorf("apply with a wrong name = %d, error %q; want 422 with the error next to the field", resp.StatusCode, fieldError(page, "confirm"))
	}
	if n := expireJobs(); n != 0 {
		t.Fatalf("expire jobs after refusals = %d, want 0", n)
	}
	resp = f.postForm(t, c, f.path("/expire"), url.Values{"confirm": {"orders"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/jobs/") {
		t.Fatalf("apply = %d to %q, want 303 to the job", resp.StatusCode, loc)
	}
	if n := expireJobs(); n != 1 {
		t.Errorf("expire jobs = %d, want 1", n)
	}
	if _, page := f.get(t, c, loc); !strings.Contains(page, "Expiry of orders started as job") {
		t.Error("the job page does not say that expiry started")
	}
}

// TestPolicyFormsRefuseOtherOrigins: the policy's forms are protected against
// cross-site requests like every other POST.
func TestPolicyFormsRefuseOtherOrigins(t *testing.T) {
	t.Parallel()
	f := setupPolicy(t, 1)
	c := f.clients[store.RoleAdmin]
	for _, path := range []string{f.path("/policy"), f.path("/policy/preview"), f.path("/expire"),
		fmt.Sprintf("/backups/%d/pin", f.backups[0].ID), fmt.Sprintf("/backups/%d/unpin", f.backups[0].ID)} {
		form := policyValues()
		form.Set("confirm", "orders")
		req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s = %d, want 403", path, resp.StatusCode)
		}
	}
	if f.policySaved(t) {
		t.Error("a cross-site form saved a policy")
	}
	if b, err := f.store.Backup(t.Context(), f.backups[0].ID); err != nil || b.Pin != nil {
		t.Errorf("a cross-site form pinned a backup (%v)", err)
	}
}
