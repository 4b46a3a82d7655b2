// Package migrations holds the catalog's schema as numbered SQL files,
// embedded into the binary and applied in order by store.Open.
//
// Files are named NNNN_description.sql, numbered from 0001 without gaps.
// Each file runs in its own transaction, with foreign keys enforced (SQLite
// cannot turn them off inside a transaction, so a migration that rebuilds a
// referenced table needs care). A file that has been applied anywhere must
// never be edited: add a new file instead.
package migrations

import "embed"

// FS holds the migration files, at the root of the file system.
//
//go:embed *.sql
var FS embed.FS
