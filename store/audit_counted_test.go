package store

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAuditCountedFoldsRepeatsIntoOneEntryPerWindow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	const window = 15 * time.Minute
	fail := func(name, ip string) {
		t.Helper()
		e := AuditEntry{Actor: "anonymous", Action: "user.login_failed", Target: name, IP: ip}
		if err := s.AuditCounted(ctx, e, window); err != nil {
			t.Fatalf("AuditCounted(%+v) = %v", e, err)
		}
	}
	first := clock.Now().UTC().Truncate(time.Microsecond)
	for range 50 {
		fail("admin", "192.0.2.7")
		clock.Advance(time.Second)
	}
	fail("admin", "198.51.100.1") // another address: its own entry
	fail("bob", "192.0.2.7")      // another account: its own entry
	clock.Advance(window)
	fail("admin", "192.0.2.7") // a new window: a new entry

	es, err := s.AuditEntries(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("AuditEntries() = %d entries, want 4 (one per account, address and window)", len(es))
	}
	var c AuditCount
	if err := json.Unmarshal(es[3].Detail, &c); err != nil {
		t.Fatalf("detail %s: %v", es[3].Detail, err)
	}
	if c.Count != 50 || !c.First.Equal(first) || !c.Last.Equal(first.Add(49*time.Second)) {
		t.Errorf("first window's detail = %+v, want count 50 from %v to %v", c, first, first.Add(49*time.Second))
	}
	for _, e := range es[:3] {
		if err := json.Unmarshal(e.Detail, &c); err != nil || c.Count != 1 {
			t.Errorf("entry %s %s %s: detail %s, want count 1", e.Action, e.Target, e.IP, e.Detail)
		}
	}
}
