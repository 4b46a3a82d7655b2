package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// chained opens a catalog with n audit entries.
func chained(t *testing.T, n int) *Store {
	t.Helper()
	s, clock := setup(t)
	for i := 1; i <= n; i++ {
		e := AuditEntry{Actor: "alice", Action: "source.create", Target: fmt.Sprintf("db-%d", i),
			Detail: json.RawMessage(fmt.Sprintf(`{"z": %d, "a": "<&>"}`, i)), IP: "192.0.2.7"}
		if i%2 == 0 {
			e.Target, e.IP, e.Detail = "", "", nil
		}
		if err := s.Audit(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		clock.Advance(1)
	}
	return s
}

// rawSQL runs SQL on the catalog, as someone with the file would.
func rawSQL(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	if _, err := s.wdb.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestAuditChain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		// wantID and wantReason describe the first problem; 0 for none.
		wantID     int64
		wantReason string
	}{
		{name: "intact", tamper: func(*testing.T, *Store) {}},
		{name: "detail edited", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `UPDATE audit_log SET detail = '{"a":"<&>","z":99}' WHERE id = 3`)
		}, wantID: 3, wantReason: "was edited"},
		{name: "actor edited", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `UPDATE audit_log SET actor = 'mallory' WHERE id = 5`)
		}, wantID: 5, wantReason: "was edited"},
		{name: "time edited", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `UPDATE audit_log SET at = '2020-01-01T00:00:00.000000Z' WHERE id = 1`)
		}, wantID: 1, wantReason: "was edited"},
		{name: "deleted", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `DELETE FROM audit_log WHERE id = 4`)
		}, wantID: 4, wantReason: "missing (deleted): entry 5 follows entry 3"},
		{name: "two deleted", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `DELETE FROM audit_log WHERE id IN (2, 3)`)
		}, wantID: 2, wantReason: "entries 2 to 3 are missing"},
		{name: "first deleted", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `DELETE FROM audit_log WHERE id = 1`)
		}, wantID: 1, wantReason: "missing (deleted)"},
		{name: "newest deleted", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `DELETE FROM audit_log WHERE id = 6`)
		}, wantID: 6, wantReason: "newest entries were deleted"},
		{name: "rewritten with its hash recomputed", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `UPDATE audit_log SET actor = 'mallory' WHERE id = 2`)
			r := auditRecord{id: 2}
			err := s.wdb.QueryRowContext(t.Context(), `SELECT at, actor, action, target, detail, ip, prev_hash FROM audit_log WHERE id = 2`).
				Scan(&r.at, &r.actor, &r.action, orZero(&r.target), &r.detail, orZero(&r.ip), &r.prev)
			if err != nil {
				t.Fatal(err)
			}
			rawSQL(t, s, `UPDATE audit_log SET hash = ? WHERE id = 2`, r.hash())
		}, wantID: 3, wantReason: "entry 2 was replaced"},
		{name: "unchained entry slipped in", tamper: func(t *testing.T, s *Store) {
			rawSQL(t, s, `UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE id = 4`)
		}, wantID: 4, wantReason: "not chained"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			s := chained(t, 6)
			tt.tamper(t, s)
			c, err := s.CheckAuditChain(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantID == 0 {
				if c.Problem != nil || c.Entries != 6 || c.Head.ID != 6 || len(c.Head.Hash) != 64 {
					t.Errorf("CheckAuditChain() = %+v, want 6 entries, head 6, no problem", c)
				}
				return
			}
			if c.Problem == nil || c.Problem.ID != tt.wantID || !strings.Contains(c.Problem.Reason, tt.wantReason) {
				t.Errorf("CheckAuditChain() problem = %+v, want entry %d: …%s…", c.Problem, tt.wantID, tt.wantReason)
			}
		})
	}
}

// TestAuditChainNeverReusesIDs: after the newest entry is deleted, the next one gets a new
// id, so the gap stays visible instead of being papered over by a valid-looking chain.
func TestAuditChainNeverReusesIDs(t *testing.T) {
	t.Parallel()
	s := chained(t, 3)
	rawSQL(t, s, `DELETE FROM audit_log WHERE id = 3`)
	if err := s.Audit(t.Context(), AuditEntry{Actor: "alice", Action: "backup.start"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.CheckAuditChain(t.Context())
	if err != nil || c.Problem == nil || c.Problem.ID != 3 {
		t.Errorf("CheckAuditChain() = %+v, %v, want entry 3 missing", c, err)
	}
}

// TestAuditChainSealsEntriesFromBeforeTheChain: entries written before migration 0009 are
// chained once at start-up, after which the chain holds.
func TestAuditChainSealsEntriesFromBeforeTheChain(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	for i := range 3 {
		rawSQL(t, s, `INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'bob', 'source.create', ?)`,
			fmt.Sprintf("2026-01-0%dT00:00:00.000000Z", i+1), `{"b": 1, "a": 2}`)
	}
	if err := s.sealAudit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(t.Context(), AuditEntry{Actor: "alice", Action: "backup.start"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.CheckAuditChain(t.Context())
	if err != nil || c.Problem != nil || c.Entries != 4 {
		t.Errorf("CheckAuditChain() = %+v, %v, want 4 entries and no problem", c, err)
	}
	// Sealing is once: an unchained entry found later is reported, not sealed.
	rawSQL(t, s, `UPDATE audit_log SET hash = NULL WHERE id = 2`)
	if err := s.sealAudit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c, err := s.CheckAuditChain(t.Context()); err != nil || c.Problem == nil || c.Problem.ID != 2 {
		t.Errorf("CheckAuditChain() after unsealing entry 2 = %+v, %v, want entry 2 reported", c, err)
	}
}

// TestAuditHash pins the canonical encoding: a change to it breaks every stored chain.
func TestAuditHash(t *testing.T) {
	r := auditRecord{id: 7, at: "2026-12-07T05:37:00.123456Z", actor: "alice", action: "source.create", target: "<db>",
		ip: "192.0.2.7", prev: AuditGenesis}
	r.detail.String, r.detail.Valid = `{"a":"<&>","n":1}`, true
	// printf '["backstop-audit-1",7,"2026-12-07T05:37:00.123456Z","alice","source.create","<db>",{"a":"<&>","n":1},"192.0.2.7","'"$(printf "0%.0s" $(seq 64))"'"]' | sha256sum
	const want = "13c9ffd8ace111abf53001217f79350d35aed5dfbb427def1cac4c082db655a7"
	if got := r.hash(); got != want {
		t.Errorf("hash() = %s, want %s", got, want)
	}
}
