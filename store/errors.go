package store

import (
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound means the requested row does not exist (or, for a
	// session, has expired).
	ErrNotFound = errors.New("not found")
	// ErrLocked means a job could not be inserted because another queued or
	// running job holds its lock key. The error is a *LockedError.
	ErrLocked = errors.New("locked")
	// ErrBadCredentials means the user name or the password is wrong; which
	// one is deliberately not said.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrConflict means the change does not fit the row's current state,
	// such as finishing a job that is not running.
	ErrConflict = errors.New("conflict")
	// ErrSchemaTooNew means the catalog was migrated by a newer Backstop
	// than this one.
	ErrSchemaTooNew = errors.New("catalog schema is newer than this binary")
)

// ValidationError reports input that cannot be stored, naming the field at
// fault so that a form can show the message next to it.
type ValidationError struct {
	// Field is the input field, such as "name" or "password".
	Field string
	// Message says what is wrong, in words fit for the user.
	Message string
}

// Error implements error.
func (e *ValidationError) Error() string {
	return e.Field + ": " + e.Message
}

// invalid returns a *ValidationError.
func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// LockedError is returned by InsertJob when another active job holds the
// lock key. errors.Is(err, ErrLocked) reports true for it.
type LockedError struct {
	// LockKey is the contended key.
	LockKey string
	// JobID is the queued or running job that holds it.
	JobID int64
}

// Error implements error.
func (e *LockedError) Error() string {
	return fmt.Sprintf("lock %q is held by job %d", e.LockKey, e.JobID)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool {
	return target == ErrLocked
}

// isConstraint reports whether err is the SQLite constraint violation code
// (an extended code such as SQLITE_CONSTRAINT_UNIQUE) mentioning detail,
// such as "jobs.lock_key".
func isConstraint(err error, code int, detail string) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != code {
		return false
	}
	return strings.Contains(se.Error(), detail)
}

// isUnique reports whether err violates a UNIQUE constraint on column,
// written "table.column".
func isUnique(err error, column string) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, column)
}

// isPrimaryKey reports whether err violates a PRIMARY KEY constraint.
func isPrimaryKey(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, "")
}

// isForeignKey reports whether err violates a FOREIGN KEY constraint. An
// ON DELETE RESTRICT violation comes as SQLITE_CONSTRAINT_TRIGGER, so the
// message tells.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT &&
		strings.Contains(se.Error(), "FOREIGN KEY constraint failed")
}
