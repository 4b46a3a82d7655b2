package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)

	if es, err := s.AuditEntries(ctx, 10, 0); err != nil || len(es) != 0 {
		t.Errorf("AuditEntries(empty log) = %v, %v, want none", es, err)
	}

	entries := []AuditEntry{
		{Actor: "alice", Action: "user.login", IP: "192.0.2.7"},
		{Actor: "alice", Action: "source.create", Target: "orders-db", Detail: json.RawMessage(`{"pg_version":150004}`), IP: "192.0.2.7"},
		{At: now.Add(-time.Hour), Actor: "cli:root", Action: "backup.start", Target: "orders-db"},
	}
	for _, e := range entries {
		if err := s.Audit(ctx, e); err != nil {
			t.Fatalf("Audit(%+v) = %v", e, err)
		}
	}

	got, err := s.AuditEntries(ctx, 0, 0)
	if err != nil {
		t.Fatalf("AuditEntries() = %v", err)
	}
	want := make([]AuditEntry, len(entries))
	for i, e := range entries {
		e.ID = got[len(got)-1-i].ID
		if e.At.IsZero() {
			e.At = now
		}
		want[len(want)-1-i] = e
	}
	if diff := cmp.Diff(want, got, ignoreChain); diff != "" {
		t.Errorf("AuditEntries() mismatch (-want +got):\n%s", diff)
	}

	page, err := s.AuditEntries(ctx, 1, want[0].ID)
	if err != nil {
		t.Fatalf("AuditEntries(1, %d) = %v", want[0].ID, err)
	}
	if diff := cmp.Diff(want[1:2], page, ignoreChain); diff != "" {
		t.Errorf("AuditEntries(1, %d) mismatch (-want +got):\n%s", want[0].ID, diff)
	}

	wantValidation(t, "Audit(no actor)", s.Audit(ctx, AuditEntry{Action: "x"}), "actor", "is required")
	wantValidation(t, "Audit(no action)", s.Audit(ctx, AuditEntry{Actor: "x"}), "action", "is required")
	wantValidation(t, "Audit(bad detail)", s.Audit(ctx, AuditEntry{Actor: "x", Action: "y", Detail: json.RawMessage(`{`)}),
		"detail", "is not valid JSON")
}

// ignoreChain leaves the chain's hashes out of comparisons: audit_chain_test.go checks them.
var ignoreChain = cmpopts.IgnoreFields(AuditEntry{}, "PrevHash", "Hash")
