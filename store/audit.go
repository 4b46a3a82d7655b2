package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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

// AuditCount is the detail of an entry that counts repeats of one action (see AuditCounted).
type AuditCount struct {
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// AuditCounted records e as one more repeat of the same action by the same actor on the same
// target from the same address: the newest such entry begun less than window ago has its
// count raised and its last time moved, else a new entry with a count of 1 is added. A
// password-guessing loop thus leaves one row per account, address and window instead of one
// per attempt, so the log stays readable and the catalog does not grow with the attack.
// e.Detail is replaced by an AuditCount.
func (s *Store) AuditCounted(ctx context.Context, e AuditEntry, window time.Duration) error {
	switch {
	case e.Actor == "":
		return fmt.Errorf("audit: %w", invalid("actor", "is required"))
	case e.Action == "":
		return fmt.Errorf("audit: %w", invalid("action", "is required"))
	case window <= 0:
		return fmt.Errorf("audit: %w", invalid("window", "must be positive"))
	}
	if e.At.IsZero() {
		e.At = s.clock()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		var raw json.RawMessage
		err := tx.QueryRowContext(ctx, `
			SELECT id, detail FROM audit_log
			WHERE action = ? AND actor = ? AND target IS ? AND ip IS ? AND at >= ?
			ORDER BY id DESC LIMIT 1`,
			e.Action, e.Actor, nullIfZero(e.Target), nullIfZero(e.IP), formatTime(e.At.Add(-window))).Scan(&id, scanJSON(&raw))
		var c AuditCount
		if err == nil && json.Unmarshal(raw, &c) == nil && c.Count > 0 {
			c.Count++
			c.Last = e.At
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE audit_log SET detail = ? WHERE id = ?`, string(b), id)
			return err
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		b, err := json.Marshal(AuditCount{Count: 1, First: e.At, Last: e.At})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO audit_log (at, actor, action, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?)`,
			formatTime(e.At), e.Actor, e.Action, nullIfZero(e.Target), string(b), nullIfZero(e.IP))
		return err
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}
