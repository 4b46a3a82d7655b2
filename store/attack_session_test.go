package store

import (
	"errors"
	"testing"
	"time"
)

// TestAttackSessionOfDisabledUser: sign-in checks the password (Authenticate, which
// refuses a disabled user) and then creates the session; an admin who disables the user
// between the two deletes the sessions that exist, not the one about to be made. A session
// of a disabled user must not let anyone in.
func TestAttackSessionOfDisabledUser(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	mallory := createUser(t, s, "mallory", RoleOperator)
	// Authenticate succeeded just before this.
	if _, err := s.SetUserDisabled(ctx, mallory.ID, true); err != nil {
		t.Fatal(err)
	}
	token, _, err := s.CreateSession(ctx, mallory.ID, time.Hour, 24*time.Hour, "curl", "192.0.2.9")
	if err != nil {
		return // refusing to create it is as good
	}
	if _, u, err := s.SessionByToken(ctx, token); !errors.Is(err, ErrNotFound) {
		t.Errorf("SessionByToken() of disabled user = %s, %v; want ErrNotFound", u.Name, err)
	}
}
