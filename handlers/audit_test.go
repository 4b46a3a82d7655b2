package handlers_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/backstop/backstop/store"
)

// TestAuditLogIsForAuditorsAndAdmins: only they see the navigation link and the page;
// the others are refused the page and the export.
func TestAuditLogIsForAuditorsAndAdmins(t *testing.T) {
	t.Parallel()
	a := setup(t)
	cs := withRoles(t, a, map[string]store.Role{"audrey": store.RoleAuditor, "olive": store.RoleOnCall, "oscar": store.RoleOperator})
	for name, c := range cs {
		_, home := a.get(t, c, "/")
		resp, _ := a.get(t, c, "/audit")
		export, _ := a.get(t, c, "/audit/export?format=csv")
		reads := name == "audrey"
		if strings.Contains(home, `href="/audit"`) != reads || (resp.StatusCode == http.StatusOK) != reads || (export.StatusCode == http.StatusOK) != reads {
			t.Errorf("%s: audit link shown %v, GET /audit = %d, export = %d; want reads=%v", name,
				strings.Contains(home, `href="/audit"`), resp.StatusCode, export.StatusCode, reads)
		}
	}
}

// TestAuditExportOverHTTP: the export is the filtered log with its hashes, as a download,
// and is itself audited; a filter that is not understood is an error next to its field.
func TestAuditExportOverHTTP(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	for _, e := range []store.AuditEntry{
		{Actor: "ana", Action: "restore.start", Target: "orders", Detail: []byte(`{"target":"2026-12-07T05:00:00Z","backup_id":3}`)},
		{Actor: "ana", Action: "source.change", Target: "orders"},
		{Actor: "bob", Action: "restore.end", Target: "orders", Detail: []byte(`{"state":"succeeded"}`)},
	} {
		if err := a.store.Audit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := a.get(t, c, "/audit/export?format=csv&action=restore.&source=orders")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || len(rows) != 3 ||
		rows[1][3] != "restore.start" || rows[2][3] != "restore.end" || rows[1][6] != `{"backup_id":3,"target":"2026-12-07T05:00:00Z"}` {
		t.Errorf("CSV export = %d %v %q (%v), want the two restore entries, oldest first", resp.StatusCode, resp.Header, rows, err)
	}
	resp, body = a.get(t, c, "/audit/export?format=json&actor=bob")
	var es []map[string]any
	if err := json.Unmarshal([]byte(body), &es); err != nil || len(es) != 1 || es[0]["action"] != "restore.end" || len(es[0]["hash"].(string)) != 64 {
		t.Errorf("JSON export = %s (%v), want bob's entry with its hash", body, err)
	}
	page, err := a.store.AuditPage(t.Context(), store.AuditFilter{ActionPrefix: "audit.export"})
	if err != nil || len(page) != 2 || page[0].Actor != testUser {
		t.Errorf("audit.export entries = %+v, %v, want the 2 exports by %s", page, err, testUser)
	}
	if resp, _ := a.get(t, c, "/audit/export?format=xml"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("export as xml = %d, want 422", resp.StatusCode)
	}
	resp, body = a.get(t, c, "/audit?from=2026-12-08&to=2026-12-01")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="field-error-to"`) {
		t.Errorf("GET /audit with to before from = %d, want 422 with the error next to the field", resp.StatusCode)
	}
}
