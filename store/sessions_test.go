package store

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	alice := createUser(t, s, "alice", RoleAdmin)

	token, ss, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "Firefox", "192.0.2.7")
	if err != nil {
		t.Fatalf("CreateSession() = %v", err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(token); err != nil || len(raw) != 32 {
		t.Errorf("CreateSession() token %q decodes to %d bytes, %v, want 32", token, len(raw), err)
	}
	want := Session{
		TokenHash: hashToken(token), UserID: alice.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		AbsoluteExpiresAt: now.Add(24 * time.Hour), LastSeenAt: now, UserAgent: "Firefox", IP: "192.0.2.7",
	}
	if diff := cmp.Diff(want, ss); diff != "" {
		t.Errorf("CreateSession() mismatch (-want +got):\n%s", diff)
	}
	var stored int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE token_hash = ?`, token).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the raw token is stored (%d rows, %v)", stored, err)
	}

	gotSession, gotUser, err := s.SessionByToken(ctx, token)
	if err != nil {
		t.Fatalf("SessionByToken() = %v", err)
	}
	if diff := cmp.Diff(want, gotSession); diff != "" {
		t.Errorf("SessionByToken() session mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(alice, gotUser); diff != "" {
		t.Errorf("SessionByToken() user mismatch (-want +got):\n%s", diff)
	}

	// Touching without a ttl keeps the expiry; with one, slides it.
	clock.Advance(30 * time.Minute)
	if err := s.TouchSession(ctx, token, 0); err != nil {
		t.Fatalf("TouchSession(0) = %v", err)
	}
	gotSession, _, err = s.SessionByToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	want.LastSeenAt = now.Add(30 * time.Minute)
	if diff := cmp.Diff(want, gotSession); diff != "" {
		t.Errorf("after TouchSession(0) mismatch (-want +got):\n%s", diff)
	}
	if err := s.TouchSession(ctx, token, time.Hour); err != nil {
		t.Fatalf("TouchSession(1h) = %v", err)
	}
	gotSession, _, err = s.SessionByToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	want.ExpiresAt = now.Add(90 * time.Minute)
	if diff := cmp.Diff(want, gotSession); diff != "" {
		t.Errorf("after TouchSession(1h) mismatch (-want +got):\n%s", diff)
	}

	if err := s.DeleteSession(ctx, token); err != nil {
		t.Fatalf("DeleteSession() = %v", err)
	}
	_, _, err = s.SessionByToken(ctx, token)
	wantErr(t, "SessionByToken(deleted)", err, ErrNotFound)
	wantErr(t, "TouchSession(deleted)", s.TouchSession(ctx, token, 0), ErrNotFound)
	if err := s.DeleteSession(ctx, token); err != nil {
		t.Errorf("DeleteSession(again) = %v, want nil", err)
	}

	_, _, err = s.CreateSession(ctx, 99, time.Hour, 24*time.Hour, "", "")
	wantErr(t, "CreateSession(user 99)", err, ErrNotFound)
	_, _, err = s.CreateSession(ctx, alice.ID, 0, 24*time.Hour, "", "")
	wantValidation(t, "CreateSession(ttl 0)", err, "ttl", "must be positive")
	_, _, err = s.SessionByToken(ctx, "")
	wantErr(t, "SessionByToken(empty)", err, ErrNotFound)
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	alice := createUser(t, s, "alice", RoleAdmin)

	short, _, err := s.CreateSession(ctx, alice.ID, time.Minute, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	long, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}

	clock.Advance(time.Minute) // exactly at expiry: expired
	_, _, err = s.SessionByToken(ctx, short)
	wantErr(t, "SessionByToken(expired)", err, ErrNotFound)
	wantErr(t, "TouchSession(expired)", s.TouchSession(ctx, short, time.Hour), ErrNotFound)
	if _, _, err := s.SessionByToken(ctx, long); err != nil {
		t.Errorf("SessionByToken(live) = %v", err)
	}

	n, err := s.DeleteExpiredSessions(ctx)
	if err != nil || n != 1 {
		t.Errorf("DeleteExpiredSessions() = %d, %v, want 1", n, err)
	}
	var left int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&left); err != nil || left != 1 {
		t.Errorf("%d sessions left, %v, want 1", left, err)
	}
}
