package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// PrevHash and Hash chain the entry (see auditchain.go); set when read.
	PrevHash, Hash string
	// Repeats, on an entry that opened a counting window still open (see AuditCounted),
	// counts the repeats so far. It is outside the chain until the window closes.
	Repeats *AuditCount
}

const auditColumns = `a.id, a.at, a.actor, a.action, a.target, a.detail, a.ip, a.prev_hash, a.hash, c.count, c.first_at, c.last_at`

const auditFrom = ` FROM audit_log a LEFT JOIN audit_open_counts c ON c.entry_id = a.id`

// scanAuditEntry scans a row of auditColumns.
func scanAuditEntry(r rowScanner) (AuditEntry, error) {
	var e AuditEntry
	var count sql.NullInt64
	var first, last *time.Time
	err := r.Scan(&e.ID, scanTime(&e.At), &e.Actor, &e.Action, orZero(&e.Target), scanJSON(&e.Detail), orZero(&e.IP),
		orZero(&e.PrevHash), orZero(&e.Hash), &count, scanNullTime(&first), scanNullTime(&last))
	if count.Valid && first != nil && last != nil {
		e.Repeats = &AuditCount{Count: int(count.Int64), First: *first, Last: *last}
	}
	return e, err
}

// checkAuditEntry validates e and fills in its time; it returns the canonical detail.
func (s *Store) checkAuditEntry(e *AuditEntry) (sql.NullString, error) {
	switch {
	case e.Actor == "":
		return sql.NullString{}, invalid("actor", "is required")
	case e.Action == "":
		return sql.NullString{}, invalid("action", "is required")
	}
	if e.At.IsZero() {
		e.At = s.clock()
	}
	// The chain's encoding writes a byte that is not UTF-8 as U+FFFD: store what it covers.
	for _, f := range []*string{&e.Actor, &e.Action, &e.Target, &e.IP} {
		*f = strings.ToValidUTF8(*f, "\uFFFD")
	}
	if len(e.Detail) == 0 {
		return sql.NullString{}, nil
	}
	d, err := canonicalJSON(e.Detail)
	if err != nil {
		return sql.NullString{}, invalid("detail", "is not valid JSON")
	}
	return sql.NullString{String: d, Valid: true}, nil
}

// Audit appends e to the audit log, chained to the entry before it. Its ID is ignored.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	detail, err := s.checkAuditEntry(&e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		_, err := appendAudit(ctx, tx, e, detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditFilter selects audit entries. Zero fields select everything.
type AuditFilter struct {
	Actor string
	// ActionPrefix selects actions that start with it, such as "restore." or "user.login".
	ActionPrefix string
	// Target selects one target exactly, such as a source name.
	Target string
	// From and To bound the time: From <= at < To.
	From, To time.Time
	// BeforeID selects entries older than it (the next page, newest first); AfterID entries
	// newer than it (the previous page). At most one is set.
	BeforeID, AfterID int64
	// Limit caps the entries returned, 0 for no cap.
	Limit int
}

// where returns the filter's SQL condition and arguments, without paging.
func (f AuditFilter) where() (string, []any) {
	conds := []string{"1"}
	var args []any
	add := func(cond string, vs ...any) {
		conds = append(conds, cond)
		args = append(args, vs...)
	}
	if f.Actor != "" {
		add("a.actor = ?", f.Actor)
	}
	if f.ActionPrefix != "" {
		// 0xFF never occurs in UTF-8, so this is "starts with", and uses the index.
		add("a.action >= ? AND a.action < ?", f.ActionPrefix, f.ActionPrefix+"\xff")
	}
	if f.Target != "" {
		add("a.target = ?", f.Target)
	}
	if !f.From.IsZero() {
		add("a.at >= ?", formatTime(f.From))
	}
	if !f.To.IsZero() {
		add("a.at < ?", formatTime(f.To))
	}
	return strings.Join(conds, " AND "), args
}

// AuditPage returns the entries f selects, newest first: up to f.Limit entries older than
// f.BeforeID, or the f.Limit entries just newer than f.AfterID.
//
// An action prefix matches several actions, whose entries the (action, id) index holds in
// id order action by action; rather than sort every match, each action's page is read on
// its own, in index order, and the pages merged: a page stays a few index seeks per
// action at a million entries.
func (s *Store) AuditPage(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.ActionPrefix == "" {
		return s.auditPage(ctx, f, "")
	}
	actions, err := s.auditActions(ctx, f.ActionPrefix)
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	var es []AuditEntry
	for _, a := range actions {
		page, err := s.auditPage(ctx, f, a)
		if err != nil {
			return nil, err
		}
		es = append(es, page...)
	}
	slices.SortFunc(es, func(x, y AuditEntry) int { return cmp.Compare(y.ID, x.ID) })
	if f.Limit > 0 && len(es) > f.Limit {
		if f.AfterID > 0 {
			es = es[len(es)-f.Limit:] // the ones just newer than AfterID
		} else {
			es = es[:f.Limit]
		}
	}
	return es, nil
}

// auditActions returns the distinct actions that start with prefix, one index seek each.
func (s *Store) auditActions(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for {
		// One lower bound, so that SQLite seeks to it rather than scanning from the other.
		query, from := `SELECT min(action) FROM audit_log WHERE action >= ? AND action < ?`, prefix
		if len(out) > 0 {
			query, from = `SELECT min(action) FROM audit_log WHERE action > ? AND action < ?`, out[len(out)-1]
		}
		var a sql.NullString
		if err := s.db.QueryRowContext(ctx, query, from, prefix+"\xff").Scan(&a); err != nil {
			return nil, err
		}
		if !a.Valid {
			return out, nil
		}
		out = append(out, a.String)
	}
}

// auditPage is AuditPage for one exact action ("" for any, with f.ActionPrefix unset).
func (s *Store) auditPage(ctx context.Context, f AuditFilter, action string) ([]AuditEntry, error) {
	f.ActionPrefix = ""
	where, args := f.where()
	if action != "" {
		where += " AND a.action = ?"
		args = append(args, action)
	}
	order := "DESC"
	switch {
	case f.AfterID > 0:
		where += " AND a.id > ?"
		args = append(args, f.AfterID)
		order = "ASC"
	case f.BeforeID > 0:
		where += " AND a.id < ?"
		args = append(args, f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	es, err := queryAll(ctx, s.db, scanAuditEntry, `SELECT `+auditColumns+auditFrom+` WHERE `+where+
		` ORDER BY a.id `+order+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	if order == "ASC" {
		slices.Reverse(es)
	}
	return es, nil
}

// EachAuditEntry calls fn with every entry f selects (paging and limit aside), oldest
// first, streaming: an export of a million entries holds one in memory at a time.
func (s *Store) EachAuditEntry(ctx context.Context, f AuditFilter, fn func(AuditEntry) error) error {
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, `SELECT `+auditColumns+auditFrom+` WHERE `+where+` ORDER BY a.id`, args...)
	if err != nil {
		return fmt.Errorf("audit entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAuditEntry(rows)
		if err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit entries: %w", err)
	}
	return nil
}

// AuditEntries returns up to limit entries (0 for all) older than entry
// beforeID (0 for the newest), newest first.
func (s *Store) AuditEntries(ctx context.Context, limit int, beforeID int64) ([]AuditEntry, error) {
	return s.AuditPage(ctx, AuditFilter{Limit: limit, BeforeID: beforeID})
}

// AuditCount counts repeats of one action (see AuditCounted).
type AuditCount struct {
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// AuditCountTotal is the detail of the ".total" entry that closes a counting window.
type AuditCountTotal struct {
	// Entry is the entry that opened the window.
	Entry int64 `json:"entry"`
	AuditCount
}

// AuditCounted records e as one more repeat of the same action by the same actor on the
// same target from the same address. The first repeat in a window appends e to the chain
// like any entry; the ones after it, until window has passed, only raise a count kept
// beside the entry; when the window closes (at the next repeat after it, or when
// CloseAuditCounts runs), an entry "<action>.total" is appended to the chain with the final
// count, unless there was only the one. A password-guessing loop thus leaves at most two
// entries per account, address and window instead of one per attempt, so the log stays
// readable and the catalog does not grow with the attack, while every chained entry stays
// immutable.
func (s *Store) AuditCounted(ctx context.Context, e AuditEntry, window time.Duration) error {
	if window <= 0 {
		return fmt.Errorf("audit: %w", invalid("window", "must be positive"))
	}
	e.Detail = nil
	if _, err := s.checkAuditEntry(&e); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `
			SELECT entry_id FROM audit_open_counts
			WHERE action = ? AND actor = ? AND target IS ? AND ip IS ? AND closes_at > ?
			ORDER BY entry_id DESC LIMIT 1`,
			e.Action, e.Actor, nullIfZero(e.Target), nullIfZero(e.IP), formatTime(e.At)).Scan(&id)
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE audit_open_counts SET count = count + 1, last_at = ? WHERE entry_id = ?`, formatTime(e.At), id)
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := closeAuditCounts(ctx, tx, e.At, "action = ? AND actor = ? AND target IS ? AND ip IS ? AND closes_at <= ?",
			e.Action, e.Actor, nullIfZero(e.Target), nullIfZero(e.IP), formatTime(e.At)); err != nil {
			return err
		}
		closes := e.At.Add(window)
		detail, _ := json.Marshal(map[string]any{"repeats_counted_until": formatTime(closes)})
		id, err = appendAudit(ctx, tx, e, sql.NullString{String: string(detail), Valid: true})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO audit_open_counts (entry_id, action, actor, target, ip, first_at, last_at, closes_at, count)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			id, e.Action, e.Actor, nullIfZero(e.Target), nullIfZero(e.IP), formatTime(e.At), formatTime(e.At), formatTime(closes))
		return err
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// CloseAuditCounts closes the counting windows that ended by now (see AuditCounted),
// appending their ".total" entries, and returns how many it closed.
func (s *Store) CloseAuditCounts(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_open_counts WHERE closes_at <= ?`, formatTime(now)).Scan(&n)
		if err != nil || n == 0 {
			return err
		}
		return closeAuditCounts(ctx, tx, s.clock(), "closes_at <= ?", formatTime(now))
	})
	if err != nil {
		return 0, fmt.Errorf("close audit counts: %w", err)
	}
	return n, nil
}

// closeAuditCounts closes the windows that match cond, appending at time at a total for
// each that counted more than the one entry.
func closeAuditCounts(ctx context.Context, tx *sql.Tx, at time.Time, cond string, args ...any) error {
	type open struct {
		e AuditEntry
		t AuditCountTotal
	}
	scan := func(r rowScanner) (open, error) {
		var o open
		err := r.Scan(&o.t.Entry, &o.e.Action, &o.e.Actor, orZero(&o.e.Target), orZero(&o.e.IP),
			scanTime(&o.t.First), scanTime(&o.t.Last), &o.t.Count)
		return o, err
	}
	opens, err := queryAll(ctx, tx, scan, `
		SELECT entry_id, action, actor, target, ip, first_at, last_at, count FROM audit_open_counts
		WHERE `+cond+` ORDER BY entry_id`, args...)
	if err != nil {
		return err
	}
	for _, o := range opens {
		if o.t.Count > 1 {
			e := o.e
			e.Action += ".total"
			e.At = at
			b, err := json.Marshal(o.t)
			if err != nil {
				return err
			}
			d, err := canonicalJSON(b)
			if err != nil {
				return err
			}
			if _, err := appendAudit(ctx, tx, e, sql.NullString{String: d, Valid: true}); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_open_counts WHERE entry_id = ?`, o.t.Entry); err != nil {
			return err
		}
	}
	return nil
}
