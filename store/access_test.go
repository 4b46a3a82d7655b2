package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSessionAbsoluteExpiry: a session used every few minutes still ends at its maximum
// age; touching it never extends it past that.
func TestSessionAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	alice := createUser(t, s, "alice", RoleAdmin)
	start := clock.Now().UTC().Truncate(time.Microsecond)
	token, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 3*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // 2h30m of activity
		clock.Advance(30 * time.Minute)
		if err := s.TouchSession(ctx, token, time.Hour); err != nil {
			t.Fatalf("TouchSession at %s = %v", clock.Now().Sub(start), err)
		}
	}
	ss, _, err := s.SessionByToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(3 * time.Hour); !ss.ExpiresAt.Equal(want) {
		t.Errorf("after touching at 2h30m, ExpiresAt = %s, want the absolute limit %s", ss.ExpiresAt, want)
	}
	clock.Advance(30 * time.Minute) // exactly 3h: over
	_, _, err = s.SessionByToken(ctx, token)
	wantErr(t, "SessionByToken(past max age)", err, ErrNotFound)
	wantErr(t, "TouchSession(past max age)", s.TouchSession(ctx, token, time.Hour), ErrNotFound)
	if n, err := s.DeleteExpiredSessions(ctx); err != nil || n != 1 {
		t.Errorf("DeleteExpiredSessions() = %d, %v, want 1", n, err)
	}
	_, _, err = s.CreateSession(ctx, alice.ID, time.Hour, 0, "", "")
	wantValidation(t, "CreateSession(max age 0)", err, "max_age", "must be positive")
}

// TestSessionLists: sessions are listed per user or for all, expired ones left out; one can
// be ended by its hash, and a user's others ended while one is kept.
func TestSessionLists(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	alice := createUser(t, s, "alice", RoleAdmin)
	bob := createUser(t, s, "bob", RoleOperator)
	a1, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "Firefox", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	a2, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "Chrome", "192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.CreateSession(ctx, alice.ID, time.Second, 24*time.Hour, "expired", "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	b1, _, err := s.CreateSession(ctx, bob.ID, time.Hour, 24*time.Hour, "curl", "192.0.2.3")
	if err != nil {
		t.Fatal(err)
	}
	names := func(ss []SessionInfo) []string {
		var out []string
		for _, x := range ss {
			out = append(out, x.UserName+"/"+x.UserAgent)
		}
		return out
	}
	all, err := s.Sessions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"bob/curl", "alice/Chrome", "alice/Firefox"}, names(all)); diff != "" {
		t.Errorf("Sessions(all) mismatch (-want +got):\n%s", diff)
	}
	mine, err := s.Sessions(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alice/Chrome", "alice/Firefox"}, names(mine)); diff != "" {
		t.Errorf("Sessions(alice) mismatch (-want +got):\n%s", diff)
	}
	got, err := s.SessionByHash(ctx, hashToken(b1))
	if err != nil || got.UserName != "bob" || got.IP != "192.0.2.3" {
		t.Errorf("SessionByHash(bob's) = %+v, %v", got, err)
	}

	if err := s.DeleteSessionByHash(ctx, hashToken(b1)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteSessionByHash(again)", s.DeleteSessionByHash(ctx, hashToken(b1)), ErrNotFound)
	if _, _, err := s.SessionByToken(ctx, b1); err == nil {
		t.Error("bob's revoked session still signs him in")
	}
	ended, err := s.DeleteOtherSessions(ctx, alice.ID, hashToken(a2))
	if err != nil || len(ended) != 2 { // a1 and the expired one
		t.Errorf("DeleteOtherSessions() = %v, %v, want 2 ended", ended, err)
	}
	if _, _, err := s.SessionByToken(ctx, a1); err == nil {
		t.Error("alice's other session survived DeleteOtherSessions")
	}
	if _, _, err := s.SessionByToken(ctx, a2); err != nil {
		t.Errorf("the kept session ended: %v", err)
	}

	// A password change keeps the session it was made from, and only that one.
	a3, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, alice.ID, "another long password", hashToken(a2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionByToken(ctx, a3); err == nil {
		t.Error("a session other than the kept one survived SetPassword")
	}
	if _, _, err := s.SessionByToken(ctx, a2); err != nil {
		t.Errorf("SetPassword ended the kept session: %v", err)
	}
	wantErr(t, "CheckPassword(old)", s.CheckPassword(ctx, alice.ID, testPassword), ErrBadCredentials)
	if err := s.CheckPassword(ctx, alice.ID, "another long password"); err != nil {
		t.Errorf("CheckPassword(new) = %v", err)
	}
}

// TestRestoreScope: a user restores every source until limited; limited to none they
// restore nothing; an unknown source changes nothing.
func TestRestoreScope(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	op := createUser(t, s, "olga", RoleOperator)
	var ids []int64
	for i, name := range []string{"orders", "billing"} {
		src, err := s.CreateSource(ctx, SourceParams{Name: name, DSN: "postgres://x@127.0.0.1:1/postgres",
			SystemIdentifier: "730000000000000000" + string(rune('1'+i)), PGVersion: 150004})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, src.ID)
	}
	get := func() RestoreScope {
		t.Helper()
		sc, err := s.RestoreScope(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	if sc := get(); sc.Limited || !sc.Allows(ids[0]) || !sc.Allows(ids[1]) {
		t.Errorf("a new user's scope = %+v, want every source", sc)
	}
	if err := s.SetRestoreScope(ctx, op.ID, RestoreScope{Limited: true, SourceIDs: []int64{ids[1]}}); err != nil {
		t.Fatal(err)
	}
	if sc := get(); !sc.Limited || sc.Allows(ids[0]) || !sc.Allows(ids[1]) {
		t.Errorf("scope = %+v, want billing only", sc)
	}
	wantErr(t, "SetRestoreScope(unknown source)", s.SetRestoreScope(ctx, op.ID, RestoreScope{Limited: true, SourceIDs: []int64{ids[0], 999}}), ErrNotFound)
	if sc := get(); sc.Allows(ids[0]) || !sc.Allows(ids[1]) {
		t.Errorf("a refused change changed the scope: %+v", sc)
	}
	if err := s.SetRestoreScope(ctx, op.ID, RestoreScope{Limited: true}); err != nil {
		t.Fatal(err)
	}
	if sc := get(); !sc.Limited || sc.Allows(ids[0]) || sc.Allows(ids[1]) {
		t.Errorf("limited to no source, scope = %+v, want nothing allowed", sc)
	}
	if err := s.SetRestoreScope(ctx, op.ID, RestoreScope{}); err != nil {
		t.Fatal(err)
	}
	if sc := get(); sc.Limited || !sc.Allows(ids[0]) {
		t.Errorf("unlimited again, scope = %+v", sc)
	}
	wantErr(t, "SetRestoreScope(user 99)", s.SetRestoreScope(ctx, 99, RestoreScope{}), ErrNotFound)
	_, err := s.RestoreScope(ctx, 99)
	wantErr(t, "RestoreScope(user 99)", err, ErrNotFound)
}
