package store

// The audit chain.
//
// Every audit entry carries the hash of the entry before it (prev_hash) and its own hash.
// An entry's hash is the lowercase hex SHA-256 of its canonical encoding, the compact JSON
// array
//
//	["backstop-audit-1", id, at, actor, action, target, detail, ip, prev_hash]
//
// where id is a number; at is the time as stored (UTC, RFC 3339 with exactly six
// fractional digits, e.g. "2026-12-07T05:37:00.123456Z"); actor and action are strings;
// target and ip are strings or null when empty; detail is the stored detail text inserted
// verbatim (Backstop stores it canonical: compact, object keys sorted, no HTML escaping) or
// null; prev_hash is the previous entry's hash, or 64 zeros for the first entry. Strings
// are JSON-encoded without HTML escaping. Ids are consecutive: a gap is a deleted entry.
//
// Entries are appended in a write transaction that reads the previous hash, so the chain
// is serialized across processes. Entries that predate the chain (the audit_log rows that
// existed when migration 0009 ran) are chained once, at start-up, by sealAudit.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// auditChainTag starts every entry's canonical encoding; a new encoding gets a new tag.
const auditChainTag = "backstop-audit-1"

// AuditGenesis is the prev_hash of the first entry.
var AuditGenesis = strings.Repeat("0", 64)

// auditRecord is an entry as stored, as its hash covers it.
type auditRecord struct {
	id                    int64
	at                    string
	actor, action, target string
	detail                sql.NullString
	ip                    string
	prev                  string
}

// hash returns the hash of r's canonical encoding.
func (r *auditRecord) hash() string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	str := func(s string) {
		enc.Encode(s) //nolint:errcheck // encoding a string into a buffer cannot fail
		b.Truncate(b.Len() - 1)
	}
	opt := func(s string) {
		if s == "" {
			b.WriteString("null")
			return
		}
		str(s)
	}
	b.WriteString(`["` + auditChainTag + `",`)
	fmt.Fprintf(&b, "%d,", r.id)
	str(r.at)
	b.WriteByte(',')
	str(r.actor)
	b.WriteByte(',')
	str(r.action)
	b.WriteByte(',')
	opt(r.target)
	b.WriteByte(',')
	if r.detail.Valid {
		b.WriteString(r.detail.String)
	} else {
		b.WriteString("null")
	}
	b.WriteByte(',')
	opt(r.ip)
	b.WriteByte(',')
	str(r.prev)
	b.WriteByte(']')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// canonicalJSON returns raw compact, with object keys sorted and numbers as written.
func canonicalJSON(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if dec.More() {
		return "", errors.New("trailing data")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// appendAudit appends e, with its detail already canonical (nil for none), to the chain
// inside tx, and returns its id.
func appendAudit(ctx context.Context, tx *sql.Tx, e AuditEntry, detail sql.NullString) (int64, error) {
	var last sql.NullInt64
	var prev sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	// Ids are never reused, even after the newest entries were deleted: the gap stays
	// visible to the chain check.
	var seq sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	r := auditRecord{id: max(last.Int64, seq.Int64) + 1, at: formatTime(e.At), actor: e.Actor, action: e.Action,
		target: e.Target, detail: detail, ip: e.IP, prev: AuditGenesis}
	if last.Valid {
		r.prev = prev.String // a missing hash is the chain check's to report
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO audit_log (id, at, actor, action, target, detail, ip, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.id, r.at, r.actor, r.action, nullIfZero(r.target), r.detail, nullIfZero(r.ip), r.prev, r.hash())
	if err != nil {
		return 0, err
	}
	return r.id, nil
}

// sealAudit chains the entries written before the chain existed, once: when no entry is
// chained yet. An unchained entry after that is the chain check's to report, never
// silently sealed.
func (s *Store) sealAudit(ctx context.Context) error {
	var unsealed, sealed bool
	err := s.wdb.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM audit_log WHERE hash IS NULL), EXISTS (SELECT 1 FROM audit_log WHERE hash IS NOT NULL)`).
		Scan(&unsealed, &sealed)
	if err != nil {
		return fmt.Errorf("seal audit log: %w", err)
	}
	if !unsealed || sealed {
		return nil
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		prev, after := AuditGenesis, int64(0)
		for {
			rs, err := queryAll(ctx, tx, func(sc rowScanner) (auditRecord, error) {
				var r auditRecord
				err := sc.Scan(&r.id, &r.at, &r.actor, &r.action, orZero(&r.target), &r.detail, orZero(&r.ip))
				return r, err
			}, `SELECT id, at, actor, action, target, detail, ip FROM audit_log WHERE id > ? ORDER BY id LIMIT 1000`, after)
			if err != nil || len(rs) == 0 {
				return err
			}
			for _, r := range rs {
				r.prev = prev
				h := r.hash()
				if _, err := tx.ExecContext(ctx, `UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?`, r.prev, h, r.id); err != nil {
					return err
				}
				prev, after = h, r.id
			}
		}
	})
	if err != nil {
		return fmt.Errorf("seal audit log: %w", err)
	}
	return nil
}

// AuditHead is the newest entry of the chain: what the repository keeps a copy of.
type AuditHead struct {
	ID   int64     `json:"id"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

// AuditProblem is where the chain breaks, and why.
type AuditProblem struct {
	// ID is the first entry found wrong (or, for deleted entries, the first missing one).
	ID     int64
	Reason string
}

func (p *AuditProblem) Error() string { return fmt.Sprintf("audit entry %d: %s", p.ID, p.Reason) }

// AuditCheck is the result of checking the chain.
type AuditCheck struct {
	// Entries is how many entries were checked.
	Entries int64
	// Head is the newest entry; zero for an empty log.
	Head AuditHead
	// Problem is the first break found; nil when the chain holds.
	Problem *AuditProblem
}

// CheckAuditChain walks the whole audit log in id order, streaming, and reports the first
// entry that was edited (its content no longer matches its hash), deleted (a gap in the
// ids, or missing newest entries) or replaced (its prev_hash is not its predecessor's
// hash).
func (s *Store) CheckAuditChain(ctx context.Context) (AuditCheck, error) {
	var c AuditCheck
	// One read transaction: the walk and the sequence see the same snapshot.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return c, fmt.Errorf("check audit chain: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	rows, err := tx.QueryContext(ctx, `SELECT id, at, actor, action, target, detail, ip, prev_hash, hash FROM audit_log ORDER BY id`)
	if err != nil {
		return c, fmt.Errorf("check audit chain: %w", err)
	}
	defer rows.Close()
	var r auditRecord
	var prev, stored sql.NullString
	lastID, lastHash, lastAt := int64(0), AuditGenesis, ""
	for rows.Next() {
		if err := rows.Scan(&r.id, &r.at, &r.actor, &r.action, orZero(&r.target), &r.detail, orZero(&r.ip), &prev, &stored); err != nil {
			return c, fmt.Errorf("check audit chain: %w", err)
		}
		c.Entries++
		if c.Problem = checkAuditRecord(&r, prev, stored, lastID, lastHash); c.Problem != nil {
			return c, nil
		}
		lastID, lastHash, lastAt = r.id, stored.String, r.at
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("check audit chain: %w", err)
	}
	if lastID > 0 {
		c.Head = AuditHead{ID: lastID, Hash: lastHash}
		c.Head.At, _ = parseTime(lastAt)
	}
	var seq sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'`).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("check audit chain: %w", err)
	}
	if seq.Int64 > lastID {
		c.Problem = &AuditProblem{ID: lastID + 1, Reason: fmt.Sprintf("entries %d to %d are missing: the newest entries were deleted", lastID+1, seq.Int64)}
	}
	return c, nil
}

// checkAuditRecord checks one entry against its stored hashes and its predecessor.
func checkAuditRecord(r *auditRecord, prev, stored sql.NullString, lastID int64, lastHash string) *AuditProblem {
	switch {
	case !stored.Valid || !prev.Valid:
		return &AuditProblem{ID: r.id, Reason: "the entry is not chained (no hash): it was not written by Backstop"}
	case r.id != lastID+1 && r.id == lastID+2:
		return &AuditProblem{ID: lastID + 1, Reason: fmt.Sprintf("the entry is missing (deleted): entry %d follows entry %d", r.id, lastID)}
	case r.id != lastID+1:
		return &AuditProblem{ID: lastID + 1, Reason: fmt.Sprintf("entries %d to %d are missing (deleted): entry %d follows entry %d", lastID+1, r.id-1, r.id, lastID)}
	}
	r.prev = prev.String
	// Backstop stores only valid UTF-8, which the encoding keeps as it is; other bytes it
	// would write as U+FFFD, so that two different entries would share one hash.
	valid := utf8.ValidString(r.actor) && utf8.ValidString(r.action) && utf8.ValidString(r.target) && utf8.ValidString(r.ip) &&
		utf8.ValidString(r.detail.String)
	if !valid || r.hash() != stored.String {
		return &AuditProblem{ID: r.id, Reason: "the entry was edited: its content does not match its hash"}
	}
	if prev.String != lastHash {
		return &AuditProblem{ID: r.id, Reason: fmt.Sprintf("the entry does not follow entry %d: its prev_hash %s is not that entry's hash %s (entry %d was replaced)",
			lastID, short(prev.String), short(lastHash), lastID)}
	}
	return nil
}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// AuditEntryHash returns the stored hash of entry id, for comparing with the repository's
// copy of the head. A missing entry is ErrNotFound.
func (s *Store) AuditEntryHash(ctx context.Context, id int64) (string, error) {
	var h sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT hash FROM audit_log WHERE id = ?`, id).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("audit entry %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("audit entry %d: %w", id, err)
	}
	return h.String, nil
}

// LastAuditHead returns the newest entry's id, hash and time; zero for an empty log.
func (s *Store) LastAuditHead(ctx context.Context) (AuditHead, error) {
	var h AuditHead
	var hash sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, hash, at FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&h.ID, &hash, scanTime(&h.At))
	if errors.Is(err, sql.ErrNoRows) {
		return AuditHead{}, nil
	}
	if err != nil {
		return AuditHead{}, fmt.Errorf("audit head: %w", err)
	}
	h.Hash = hash.String
	return h, nil
}
