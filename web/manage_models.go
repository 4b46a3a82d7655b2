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
}

// UserRow is one user.
type UserRow struct {
	Name        string
	Role        string
	CreatedAt   time.Time
	LastLoginAt *time.Time
	Disabled    bool
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
	{"operator", "Operator", "sources, backups and restores"},
	{"oncall", "On-call", "read everything; no changes to sources, backups or restores"},
	{"auditor", "Auditor", "read-only"},
}
