package main

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawCatalogSQL changes a home's catalog behind Backstop's back, as someone with the file
// could.
func rawCatalogSQL(t *testing.T, home, query string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(home, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// auditVerify runs `backstop audit verify` as a separate process and returns its output
// and exit status.
func auditVerify(t *testing.T, home string) (string, int) {
	t.Helper()
	stdout, stderr, code := runBinary(t, home, "audit", "verify")
	return stdout + stderr, code
}

// TestAuditVerifyDetectsAnOlderCatalog: the repository keeps the audit chain's head, so a
// catalog put back from an older copy, with or without new entries since, fails
// `backstop audit verify` with a message that says so; editing or deleting an entry in the
// catalog fails it too, naming the entry.
func TestAuditVerifyDetectsAnOlderCatalog(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "user", "add", "alice", "--role", "auditor")
	if out, code := auditVerify(t, home); code != 0 || !strings.Contains(out, "OK: the chain holds") {
		t.Fatalf("audit verify of an intact log = %d\n%s", code, out)
	}

	catalog := filepath.Join(home, "catalog.db")
	saved := filepath.Join(t.TempDir(), "catalog.db")
	for _, sfx := range []string{"", "-wal"} {
		copyFile(t, catalog+sfx, saved+sfx)
	}
	mustBackstop(t, home, "user", "add", "bob", "--role", "operator")
	mustBackstop(t, home, "user", "add", "carol", "--role", "oncall")
	out, code := auditVerify(t, home)
	if code != 0 {
		t.Fatalf("audit verify after new entries = %d\n%s", code, out)
	}

	putBack := func() {
		t.Helper()
		for _, sfx := range []string{"", "-wal", "-shm"} {
			os.Remove(catalog + sfx)
			copyFile(t, saved+sfx, catalog+sfx)
		}
	}
	putBack()
	out, code = auditVerify(t, home)
	if code == 0 || !strings.Contains(out, "HEAD MISMATCH") || !strings.Contains(out, "the catalog has no entry") ||
		!strings.Contains(out, "replaced by an older copy") {
		t.Errorf("audit verify of an older catalog = %d, want non-zero with a head mismatch\n%s", code, out)
	}
	// New entries in the older copy take the ids the repository's head names, with other
	// hashes: still detected, and the head is not overwritten by the older catalog's.
	mustBackstop(t, home, "user", "add", "dave", "--role", "operator")
	mustBackstop(t, home, "user", "add", "erin", "--role", "operator")
	mustBackstop(t, home, "user", "add", "frank", "--role", "operator")
	for range 2 {
		out, code = auditVerify(t, home)
		if code == 0 || !strings.Contains(out, "HEAD MISMATCH") || !strings.Contains(out, "has hash") {
			t.Errorf("audit verify of an older catalog with new entries = %d, want non-zero with a head mismatch\n%s", code, out)
		}
	}

	// Edits and deletions inside the catalog are the chain's to find.
	fresh := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, fresh, "init")
	for _, name := range []string{"u1", "u2", "u3", "u4"} {
		mustBackstop(t, fresh, "user", "add", name, "--role", "auditor")
	}
	rawCatalogSQL(t, fresh, `UPDATE audit_log SET target = 'someone-else' WHERE id = 2`)
	if out, code := auditVerify(t, fresh); code == 0 || !strings.Contains(out, "BROKEN at entry 2: the entry was edited") {
		t.Errorf("audit verify after an edit = %d, want non-zero naming entry 2\n%s", code, out)
	}
	rawCatalogSQL(t, fresh, `DELETE FROM audit_log WHERE id = 2`)
	if out, code := auditVerify(t, fresh); code == 0 || !strings.Contains(out, "BROKEN at entry 2: the entry is missing (deleted)") {
		t.Errorf("audit verify after a deletion = %d, want non-zero naming entry 2\n%s", code, out)
	}
}

// TestAuditExport: the filtered log as CSV into a file and as JSON on standard output,
// oldest first, each export audited.
func TestAuditExport(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	for _, name := range []string{"u1", "u2", "u3"} {
		mustBackstop(t, home, "user", "add", name, "--role", "auditor")
	}
	mustBackstop(t, home, "user", "remove", "u2")

	out := filepath.Join(t.TempDir(), "audit.csv")
	mustBackstop(t, home, "audit", "export", "--action", "user.create", "--from", "2000-01-01", "--out", out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != "id,at,actor,action,target,ip,detail,prev_hash,hash" {
		t.Fatalf("CSV export = %q, want a header and 3 user.create rows", rows)
	}
	for i, r := range rows[1:] {
		if r[3] != "user.create" || r[4] != []string{"u1", "u2", "u3"}[i] || len(r[8]) != 64 {
			t.Errorf("CSV row %d = %q, want user.create of u%d with its hash", i+1, r, i+1)
		}
	}

	var entries []struct {
		ID     int64           `json:"id"`
		Action string          `json:"action"`
		Target string          `json:"target"`
		Detail json.RawMessage `json:"detail"`
	}
	decodeJSON(t, "audit export --format json", mustBackstop(t, home, "audit", "export", "--format", "json", "--source", "u2"), &entries)
	if len(entries) != 2 || entries[0].Action != "user.create" || entries[1].Action != "user.remove" {
		t.Errorf("JSON export for u2 = %+v, want its user.create then user.remove", entries)
	}
	decodeJSON(t, "audit export --action audit.", mustBackstop(t, home, "audit", "export", "--format", "json", "--action", "audit."), &entries)
	if len(entries) != 3 || !strings.Contains(string(entries[0].Detail), `"action_prefix":"user.create"`) {
		t.Errorf("audit.export entries = %+v, want the 3 exports with their filters", entries)
	}
	if _, _, err := backstop(t, home, "audit", "export", "--from", "yesterday"); err == nil || !strings.Contains(err.Error(), "is not a date") {
		t.Errorf("audit export --from yesterday = %v, want a usage error", err)
	}
}

// TestAuditVerifyWithoutRepositoryHead: someone with the catalog and the repository's
// storage (not its key) deletes the newest entries, sets the catalog's id sequence back so
// that no gap shows, and deletes the repository's sealed head, which they cannot forge.
// The chain alone cannot tell; `audit verify` must then say that the repository held no
// head, rather than a plain OK.
func TestAuditVerifyWithoutRepositoryHead(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	for _, name := range []string{"u1", "u2", "u3"} {
		mustBackstop(t, home, "user", "add", name, "--role", "auditor")
	}
	// The first check finds no head (serve never ran), says so, and writes one.
	if out, code := auditVerify(t, home); code != 0 || !strings.Contains(out, "NO REPOSITORY HEAD") {
		t.Fatalf("first audit verify of an intact log = %d, want 0 and the head's absence told\n%s", code, out)
	}
	if out, code := auditVerify(t, home); code != 0 || strings.Contains(out, "NO REPOSITORY HEAD") {
		t.Fatalf("audit verify of an intact log with its head = %d, want 0 and no warning\n%s", code, out)
	}
	// The repository may be on disk or in S3 (BACKSTOP_TEST_STORAGE): reach it as the commands do.
	st := homeStorage(t, home)
	if _, err := st.Get(t.Context(), "audit/head"); err != nil {
		t.Fatalf("the repository holds no audit head: %v", err)
	}
	rawCatalogSQL(t, home, `DELETE FROM audit_log WHERE id > 2; UPDATE sqlite_sequence SET seq = 2 WHERE name = 'audit_log'`)
	if out, code := auditVerify(t, home); code == 0 || !strings.Contains(out, "HEAD MISMATCH") {
		t.Errorf("audit verify after the newest entries were deleted = %d, want non-zero with a head mismatch\n%s", code, out)
	}
	if err := st.Delete(t.Context(), "audit/head"); err != nil {
		t.Fatal(err)
	}
	if out, _ := auditVerify(t, home); !strings.Contains(out, "NO REPOSITORY HEAD") {
		t.Errorf("audit verify with the repository's head deleted does not say so:\n%s", out)
	}
}
