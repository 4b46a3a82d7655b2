package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do.
type Role string

// Roles, from most to least powerful.
const (
	// RoleAdmin may do everything, including managing users.
	RoleAdmin Role = "admin"
	// RoleOperator may manage sources, backups and restores.
	RoleOperator Role = "operator"
	// RoleOnCall may read everything and acknowledge what goes wrong, but changes no
	// source, backup or restore.
	RoleOnCall Role = "oncall"
	// RoleAuditor may only read, and download reports.
	RoleAuditor Role = "auditor"
)

// Roles lists every role, from most to least powerful.
var Roles = []Role{RoleAdmin, RoleOperator, RoleOnCall, RoleAuditor}

// ValidateRole checks that r names a role; anything else is a *ValidationError on "role".
func ValidateRole(r Role) error {
	for _, x := range Roles {
		if r == x {
			return nil
		}
	}
	return invalid("role", "must be admin, operator, oncall or auditor, not %q", r)
}

// defaultBcryptCost is the cost of password hashes.
const defaultBcryptCost = 12

// MinPasswordLength is the shortest password accepted, in characters.
const MinPasswordLength = 12

// maxPasswordLength is the longest password bcrypt can hash, in bytes.
const maxPasswordLength = 72

// User is a person who signs in to Backstop. The password hash never
// leaves the store.
type User struct {
	ID          int64
	Name        string
	Role        Role
	CreatedAt   time.Time
	LastLoginAt *time.Time
	// DisabledAt is when the user was disabled; a disabled user cannot sign in.
	DisabledAt *time.Time
}

// userName matches valid user names.
var userName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

const userColumns = `id, name, role, created_at, last_login_at, disabled_at`

// scanUser scans a row of userColumns.
func scanUser(r rowScanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Name, &u.Role, scanTime(&u.CreatedAt), scanNullTime(&u.LastLoginAt), scanNullTime(&u.DisabledAt))
	return u, err
}

// validatePassword checks a new password.
func validatePassword(password string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return invalid("password", "must be at least %d characters long", MinPasswordLength)
	case len(password) > maxPasswordLength:
		return invalid("password", "must be at most %d bytes long", maxPasswordLength)
	}
	return nil
}

// hashPassword hashes password with bcrypt.
func (s *Store) hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// newDummyHash returns the hash of a random password, to compare against
// when the user does not exist.
func newDummyHash(cost int) ([]byte, error) {
	return bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
}

// CreateUser adds a user. A user name must be 1 to 63 characters of
// lowercase letters, digits, '.', '_' and '-', and a password at least
// MinPasswordLength characters; anything else, or a name in use, is a
// *ValidationError. An empty role means RoleAdmin.
func (s *Store) CreateUser(ctx context.Context, name, password string, role Role) (User, error) {
	if role == "" {
		role = RoleAdmin
	}
	switch {
	case name == "":
		return User{}, fmt.Errorf("create user: %w", invalid("name", "is required"))
	case !userName.MatchString(name):
		return User{}, fmt.Errorf("create user: %w", invalid("name",
			"must be 1 to 63 characters: lowercase letters, digits, '.', '-' and '_', starting with a letter or digit"))
	}
	if err := ValidateRole(role); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if err := validatePassword(password); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	u, err := scanUser(s.wdb.QueryRowContext(ctx, `
		INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)
		RETURNING `+userColumns,
		name, hash, role, formatTime(s.clock())))
	if isUnique(err, "users.name") {
		return User{}, fmt.Errorf("create user: %w", invalid("name", "a user named %q already exists", name))
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// User returns the user with the given id.
func (s *Store) User(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// UserByName returns the user with the given name.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

// Users returns every user, by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	us, err := queryAll(ctx, s.db, scanUser, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return us, nil
}

// UserCount returns the number of users; 0 means Backstop still needs its
// first admin.
func (s *Store) UserCount(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("user count: %w", err)
	}
	return n, nil
}

// SetPassword replaces the password of user id and signs the user out
// everywhere but in the session whose token hashes to keepHash ("" for none),
// by deleting their other sessions.
func (s *Store) SetPassword(ctx context.Context, id int64, password, keepHash string) error {
	if err := validatePassword(password); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("user %d: %w", id, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?`, id, keepHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// CheckPassword reports whether password is user id's, as ErrBadCredentials when it is
// not; it records no login.
func (s *Store) CheckPassword(ctx context.Context, id int64, password string) error {
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = ?`, id).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check password: user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("check password: %w", err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return fmt.Errorf("check password: %w", ErrBadCredentials)
		}
		return fmt.Errorf("check password: %w", err)
	}
	return nil
}

// Authenticate checks name and password and records the login. An unknown
// name and a wrong password are both ErrBadCredentials, and take about as
// long.
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	var id int64
	var hash string
	err := s.db.QueryRowContext(ctx, `SELECT id, password_hash FROM users WHERE name = ? AND disabled_at IS NULL`, name).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		dummy, derr := s.dummyHash()
		if derr != nil {
			return User{}, fmt.Errorf("authenticate: %w", derr)
		}
		_ = bcrypt.CompareHashAndPassword(dummy, []byte(password))
		return User{}, fmt.Errorf("authenticate: %w", ErrBadCredentials)
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return User{}, fmt.Errorf("authenticate: %w", ErrBadCredentials)
		}
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	u, err := scanUser(s.wdb.QueryRowContext(ctx, `
		UPDATE users SET last_login_at = ? WHERE id = ? RETURNING `+userColumns,
		formatTime(s.clock()), id))
	if errors.Is(err, sql.ErrNoRows) {
		// Deleted between the two statements.
		return User{}, fmt.Errorf("authenticate: %w", ErrBadCredentials)
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	return u, nil
}

// SetRole changes the role of user id. Their sessions stay: the role is read on every
// request. Demoting the last admin who can sign in is ErrLastAdmin, decided in the same
// statement as the change, so that two admins demoting each other at once cannot both win.
func (s *Store) SetRole(ctx context.Context, id int64, role Role) (User, error) {
	if err := ValidateRole(role); err != nil {
		return User{}, fmt.Errorf("set role: %w", err)
	}
	u, err := scanUser(s.wdb.QueryRowContext(ctx, `UPDATE users SET role = ? WHERE id = ? AND (? = 'admin' OR NOT `+lastAdmin+`)
		RETURNING `+userColumns, role, id, role))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("set role: %w", s.whyUnchanged(ctx, id))
	}
	if err != nil {
		return User{}, fmt.Errorf("set role: %w", err)
	}
	return u, nil
}

// ErrLastAdmin refuses a change that would leave no admin able to sign in.
var ErrLastAdmin = errors.New("the last admin who can sign in cannot be demoted, disabled or removed: make another admin first")

// lastAdmin is true, in a statement on users, for the row of the only admin who can sign in.
const lastAdmin = `(role = 'admin' AND disabled_at IS NULL
	AND (SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL) <= 1)`

// whyUnchanged tells why a guarded change of user id touched no row.
func (s *Store) whyUnchanged(ctx context.Context, id int64) error {
	if _, err := s.User(ctx, id); err != nil {
		return err
	}
	return ErrLastAdmin
}

// SetUserDisabled disables (and signs out everywhere) or enables user id.
func (s *Store) SetUserDisabled(ctx context.Context, id int64, disabled bool) (User, error) {
	var at any
	if disabled {
		at = formatTime(s.clock())
	}
	var u User
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRowContext(ctx, `UPDATE users SET disabled_at = ? WHERE id = ? AND (? IS NULL OR NOT `+lastAdmin+`)
			RETURNING `+userColumns, at, id, at))
		if errors.Is(err, sql.ErrNoRows) {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("user %d: %w", id, ErrNotFound)
			}
			return ErrLastAdmin
		}
		if err != nil || !disabled {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, id)
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("disable user: %w", err)
	}
	return u, nil
}

// DeleteUser removes user id and their sessions.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM users WHERE id = ? AND NOT `+lastAdmin, id)
	if err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete user %d: %w", id, s.whyUnchanged(ctx, id))
	}
	return nil
}
