package web

import "time"

// SourceEditVM is the page that changes a source's connection string or removes it.
type SourceEditVM struct {
	ID        int64
	Name      string
	MaskedDSN string
	// DSN is the new connection string as typed, kept in the form after an error
	// (with its password removed).
	DSN string
	// Errors holds messages by field: "dsn", and "" for the general error.
	Errors map[string]string
	Hint   string
	// Slot is the replication slot Backstop holds on the server.
	Slot string
	// Backups is how many backups the source has; they are kept when it is removed.
	Backups int
}

// UsersVM is the user administration page.
type UsersVM struct {
	Now  time.Time
	Self string
	Rows []UserRow
	Form UserFormVM
	// Created names a user just added, with the generated password shown once.
	Created         string
	CreatedPassword string
	// SourceNames are every source, for choosing which ones a user may restore.
	SourceNames []string
	// Sessions are every user's unexpired sessions.
	Sessions []SessionRow
}

// UserRow is one user.
type UserRow struct {
	Name        string
	Role        string
	CreatedAt   time.Time
	LastLoginAt *time.Time
	Disabled    bool
	// MayRestore is whether the user's role may restore at all; RestoreAll, whether they
	// may restore every source; else RestoreSources names those they may (none: no source).
	MayRestore     bool
	RestoreAll     bool
	RestoreSources []string
}

// SessionRow is one signed-in browser.
type SessionRow struct {
	// ID is the hash of the session's token: it names the session without granting it.
	ID        string
	User      string
	CreatedAt time.Time
	// LastSeenAt is when the session was last used (to about a minute).
	LastSeenAt time.Time
	// ExpiresAt is when it ends unless used again; AbsoluteExpiresAt, when it ends anyway.
	ExpiresAt         time.Time
	AbsoluteExpiresAt time.Time
	IP                string
	UserAgent         string
	// Current is the session of the browser showing the page.
	Current bool
}

// AccountVM is the signed-in user's own page: their password and their sessions.
type AccountVM struct {
	Now      time.Time
	Name     string
	Role     string
	Sessions []SessionRow
	// Errors of the password form by field: "current", "password".
	Errors map[string]string
}

// UserFormVM is the add-user form.
type UserFormVM struct {
	Name   string
	Role   string
	Errors map[string]string
}

// Roles are the roles a user can have, for the role pickers, most powerful first.
var Roles = []struct{ Value, Label, Help string }{
	{"admin", "Admin", "everything, including users"},
	{"operator", "Operator", "sources, backups, policies and restores (restores can be limited per source)"},
	{"oncall", "On-call", "read everything; verify, drills, acknowledge and resolve alerts; no restores"},
	{"auditor", "Auditor", "read-only: reports and the audit log"},
}
