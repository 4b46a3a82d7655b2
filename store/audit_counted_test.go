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

	es, err := s.AuditEntries(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("AuditEntries() = %d entries, want 3 (one per account and address)", len(es))
	}
	if r := es[2].Repeats; r == nil || r.Count != 50 || !r.First.Equal(first) || !r.Last.Equal(first.Add(49*time.Second)) {
		t.Errorf("first window's repeats so far = %+v, want count 50 from %v to %v", r, first, first.Add(49*time.Second))
	}

	clock.Advance(window)
	fail("admin", "192.0.2.7") // the first window has passed: it is closed, a new one opens
	if n, err := s.CloseAuditCounts(ctx, clock.Now()); err != nil || n != 2 {
		t.Errorf("CloseAuditCounts() = %d, %v, want the 2 other windows closed", n, err)
	}
	es, err = s.AuditEntries(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action+" "+e.Target+" "+e.IP)
	}
	want := []string{"user.login_failed admin 192.0.2.7", "user.login_failed.total admin 192.0.2.7",
		"user.login_failed bob 192.0.2.7", "user.login_failed admin 198.51.100.1", "user.login_failed admin 192.0.2.7"}
	if len(es) != len(want) {
		t.Fatalf("entries after the windows closed = %q, want %q (totals only for windows that counted repeats)", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("entries after the windows closed = %q, want %q", actions, want)
		}
	}
	var total AuditCountTotal
	if err := json.Unmarshal(es[1].Detail, &total); err != nil || total.Entry != es[4].ID || total.Count != 50 ||
		!total.First.Equal(first) || !total.Last.Equal(first.Add(49*time.Second)) {
		t.Errorf("total's detail = %s (%v), want entry %d counted 50 times", es[1].Detail, err, es[4].ID)
	}
	if es[0].Repeats == nil || es[0].Repeats.Count != 1 || es[4].Repeats != nil {
		t.Errorf("repeats = %+v (new window), %+v (closed), want 1 and none", es[0].Repeats, es[4].Repeats)
	}
	if c, err := s.CheckAuditChain(ctx); err != nil || c.Problem != nil || c.Entries != 5 {
		t.Errorf("CheckAuditChain() = %+v, %v; want 5 entries and no problem", c, err)
	}
}
