package store

import (
	"encoding/json"
	"testing"
)

// TestAuditChainFieldBoundaries: someone with the catalog file tries to change an entry
// and keep its hash: by moving bytes between the detail (encoded verbatim) and the address
// after it, past the catalog's CHECK; or by swapping a byte that is not UTF-8 for
// another, which the encoding writes as the same U+FFFD. Both are edits, and the chain
// check must say so.
func TestAuditChainFieldBoundaries(t *testing.T) {
	t.Parallel()
	t.Run("detail_and_ip", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		err := s.Audit(t.Context(), AuditEntry{Actor: "alice", Action: "user.login_failed", Target: "bob",
			Detail: json.RawMessage(`{"n":1}`), IP: `a"b`})
		if err != nil {
			t.Fatal(err)
		}
		// The catalog's CHECK (json_valid(detail)) is no obstacle to the file's owner.
		rawSQL(t, s, `PRAGMA ignore_check_constraints = ON; UPDATE audit_log SET detail = ?, ip = 'b' WHERE id = 1; PRAGMA ignore_check_constraints = OFF`,
			`{"n":1},"a\`)
		if c, err := s.CheckAuditChain(t.Context()); err != nil || c.Problem == nil || c.Problem.ID != 1 {
			t.Errorf("CheckAuditChain() after moving bytes from the address into the detail = %+v, %v; want entry 1 reported", c, err)
		}
	})
	t.Run("not_utf8", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t)
		if err := s.Audit(t.Context(), AuditEntry{Actor: "alice", Action: "user.login_failed", Target: "bob\xff"}); err != nil {
			t.Fatal(err)
		}
		es, err := s.AuditEntries(t.Context(), 0, 0)
		if err != nil || len(es) != 1 || es[0].Target != "bob\uFFFD" {
			t.Fatalf("AuditEntries() = %+v, %v; want the target stored as valid UTF-8, bob\uFFFD", es, err)
		}
		rawSQL(t, s, `UPDATE audit_log SET target = CAST(? AS TEXT) WHERE id = 1`, []byte("bob\xfe"))
		if c, err := s.CheckAuditChain(t.Context()); err != nil || c.Problem == nil || c.Problem.ID != 1 {
			t.Errorf("CheckAuditChain() after writing a target that is not UTF-8 = %+v, %v; want entry 1 reported", c, err)
		}
	})
}
