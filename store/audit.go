package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEntry records who did what, for the audit log.
type AuditEntry struct {
	ID int64
	// At defaults to now.
	At time.Time
	// Actor is a user name, or "cli:<os user>" for the command line.
	Actor string
	// Action is what was done, such as "source.create", "backup.start",
	// "job.cancel", "user.login" or "user.login_failed".
	Action string
	// Target is what it was done to, such as a source name or a job id.
	Target string
	// Detail is more about it, as JSON; nil for nothing.
	Detail json.RawMessage
	// IP is the client's address, for actions over HTTP.
	IP string
}

const auditColumns = `id, at, actor, action, target, detail, ip`

// scanAuditEntry scans a row of auditColumns.
func scanAuditEntry(r rowScanner) (AuditEntry, error) {
	var e AuditEntry
	err := r.Scan(&e.ID, scanTime(&e.At), &e.Actor, &e.Action, orZero(&e.Target), scanJSON(&e.Detail), orZero(&e.IP))
	return e, err
}

// Audit appends e to the audit log. Its ID is ignored.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	switch {
	case e.Actor == "":
		return fmt.Errorf("audit: %w", invalid("actor", "is required"))
	case e.Action == "":
		return fmt.Errorf("audit: %w", invalid("action", "is required"))
	}
	detail, err := jsonArg("detail", e.Detail)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if e.At.IsZero() {
		e.At = s.clock()
	}
	_, err = s.wdb.ExecContext(ctx, `
		INSERT INTO audit_log (at, actor, action, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?)`,
		formatTime(e.At), e.Actor, e.Action, nullIfZero(e.Target), detail, nullIfZero(e.IP))
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditEntries returns up to limit entries (0 for all) older than entry
// beforeID (0 for the newest), newest first.
func (s *Store) AuditEntries(ctx context.Context, limit int, beforeID int64) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = -1 // no limit
	}
	es, err := queryAll(ctx, s.db, scanAuditEntry, `
		SELECT `+auditColumns+` FROM audit_log
		WHERE ?1 = 0 OR id < ?1
		ORDER BY id DESC
		LIMIT ?2`, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	return es, nil
}
