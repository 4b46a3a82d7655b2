package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
)

const testPassword = "correct horse battery"

// createUser creates a user or fails the test.
func createUser(t *testing.T, s *Store, name string, role Role) User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), name, testPassword, role)
	if err != nil {
		t.Fatalf("CreateUser(%q) = %v", name, err)
	}
	return u
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)

	if n, err := s.UserCount(ctx); err != nil || n != 0 {
		t.Errorf("UserCount() = %d, %v, want 0", n, err)
	}
	alice, err := s.CreateUser(ctx, "alice", testPassword, "")
	if err != nil {
		t.Fatalf("CreateUser() = %v", err)
	}
	want := User{ID: alice.ID, Name: "alice", Role: RoleAdmin, CreatedAt: now}
	if diff := cmp.Diff(want, alice); diff != "" {
		t.Errorf("CreateUser() mismatch (-want +got):\n%s", diff)
	}
	bob := createUser(t, s, "bob.smith", RoleAuditor)

	got, err := s.User(ctx, alice.ID)
	if err != nil {
		t.Fatalf("User() = %v", err)
	}
	if diff := cmp.Diff(alice, got); diff != "" {
		t.Errorf("User() mismatch (-want +got):\n%s", diff)
	}
	got, err = s.UserByName(ctx, "bob.smith")
	if err != nil {
		t.Fatalf("UserByName() = %v", err)
	}
	if diff := cmp.Diff(bob, got); diff != "" {
		t.Errorf("UserByName() mismatch (-want +got):\n%s", diff)
	}
	all, err := s.Users(ctx)
	if err != nil {
		t.Fatalf("Users() = %v", err)
	}
	if diff := cmp.Diff([]User{alice, bob}, all); diff != "" {
		t.Errorf("Users() mismatch (-want +got):\n%s", diff)
	}
	if n, err := s.UserCount(ctx); err != nil || n != 2 {
		t.Errorf("UserCount() = %d, %v, want 2", n, err)
	}

	_, err = s.User(ctx, 99)
	wantErr(t, "User(99)", err, ErrNotFound)
	_, err = s.UserByName(ctx, "carol")
	wantErr(t, "UserByName(carol)", err, ErrNotFound)
	wantErr(t, "SetPassword(99)", s.SetPassword(ctx, 99, testPassword, ""), ErrNotFound)
}

func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	createUser(t, s, "alice", RoleAdmin)

	const badName = "must be 1 to 63 characters: lowercase letters, digits, '.', '-' and '_', starting with a letter or digit"
	for _, tc := range []struct {
		name, user, password string
		role                 Role
		field, message       string
	}{
		{"empty name", "", testPassword, RoleAdmin, "name", "is required"},
		{"upper case", "Alice", testPassword, RoleAdmin, "name", badName},
		{"leading dot", ".alice", testPassword, RoleAdmin, "name", badName},
		{"space", "al ice", testPassword, RoleAdmin, "name", badName},
		{"too long", strings.Repeat("a", 64), testPassword, RoleAdmin, "name", badName},
		{"taken", "alice", testPassword, RoleAdmin, "name", `a user named "alice" already exists`},
		{"short password", "carol", "elevenchars", RoleAdmin, "password", "must be at least 12 characters long"},
		{"short multibyte password", "carol", "ééééééééééé", RoleAdmin, "password", "must be at least 12 characters long"},
		{"long password", "carol", strings.Repeat("x", 73), RoleAdmin, "password", "must be at most 72 bytes long"},
		{"bad role", "carol", testPassword, "root", "role", `must be admin, operator, oncall or auditor, not "root"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateUser(ctx, tc.user, tc.password, tc.role)
			wantValidation(t, "CreateUser()", err, tc.field, tc.message)
		})
	}
	wantValidation(t, "SetPassword(short)", s.SetPassword(ctx, 1, "short", ""), "password", "must be at least 12 characters long")
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	alice := createUser(t, s, "alice", RoleOperator)

	clock.Advance(time.Hour)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	got, err := s.Authenticate(ctx, "alice", testPassword)
	if err != nil {
		t.Fatalf("Authenticate() = %v", err)
	}
	want := alice
	want.LastLoginAt = &now
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Authenticate() mismatch (-want +got):\n%s", diff)
	}

	_, err = s.Authenticate(ctx, "alice", "wrong password!")
	wantErr(t, "Authenticate(wrong password)", err, ErrBadCredentials)
	_, err = s.Authenticate(ctx, "mallory", testPassword)
	wantErr(t, "Authenticate(unknown user)", err, ErrBadCredentials)
	_, err = s.Authenticate(ctx, "", "")
	wantErr(t, "Authenticate(empty)", err, ErrBadCredentials)

	// A new password replaces the old one and signs the user out.
	token, _, err := s.CreateSession(ctx, alice.ID, time.Hour, 24*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	const newPassword = "tr0ub4dor&3 is better"
	if err := s.SetPassword(ctx, alice.ID, newPassword, ""); err != nil {
		t.Fatalf("SetPassword() = %v", err)
	}
	_, err = s.Authenticate(ctx, "alice", testPassword)
	wantErr(t, "Authenticate(old password)", err, ErrBadCredentials)
	if _, err := s.Authenticate(ctx, "alice", newPassword); err != nil {
		t.Errorf("Authenticate(new password) = %v", err)
	}
	_, _, err = s.SessionByToken(ctx, token)
	wantErr(t, "SessionByToken(after password change)", err, ErrNotFound)
}

// TestPasswordHash checks the production cost and that only a hash is kept.
func TestPasswordHash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.CreateUser(ctx, "alice", testPassword, RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	if err := s.db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != 12 {
		t.Errorf("bcrypt.Cost(stored hash) = %d, %v, want 12", cost, err)
	}
	if strings.Contains(hash, testPassword) {
		t.Errorf("stored hash %q contains the password", hash)
	}
}

// TestLastAdminStays: two admins demoting, disabling or removing each other at the same
// time leave one admin who can sign in, whatever the order; the loser is ErrLastAdmin.
func TestLastAdminStays(t *testing.T) {
	for _, change := range []string{"demote", "disable", "remove"} {
		t.Run(change, func(t *testing.T) {
			s, _ := setup(t)
			ctx := t.Context()
			a, err := s.CreateUser(ctx, "ann", testPassword, RoleAdmin)
			if err != nil {
				t.Fatal(err)
			}
			b, err := s.CreateUser(ctx, "bob", testPassword, RoleAdmin)
			if err != nil {
				t.Fatal(err)
			}
			do := func(id int64) error {
				switch change {
				case "demote":
					_, err := s.SetRole(ctx, id, RoleAuditor)
					return err
				case "disable":
					_, err := s.SetUserDisabled(ctx, id, true)
					return err
				}
				return s.DeleteUser(ctx, id)
			}
			errs := make(chan error, 2)
			for _, id := range []int64{a.ID, b.ID} {
				go func() { errs <- do(id) }()
			}
			e1, e2 := <-errs, <-errs
			if (e1 == nil) == (e2 == nil) {
				t.Fatalf("%s each other: %v and %v; want exactly one refused", change, e1, e2)
			}
			if err := errors.Join(e1, e2); !errors.Is(err, ErrLastAdmin) {
				t.Errorf("refusal = %v, want ErrLastAdmin", err)
			}
		})
	}
}
