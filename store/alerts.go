package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// AlertState is where an alert is in its life.
type AlertState string

// Alert states.
const (
	AlertFiring       AlertState = "firing"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
)

// Alert severities, worst first.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// SeverityRank orders severities: critical 0, warning 1, info 2.
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityWarning:
		return 1
	}
	return 2
}

// Alert is a condition that broke a guarantee or needs attention, from the moment it was
// found until it cleared or someone resolved it.
type Alert struct {
	ID       int64
	Rule     string
	SourceID int64 // 0 for the installation
	// DedupeKey identifies the condition: while an alert is open, the same condition
	// updates it rather than opening another.
	DedupeKey   string
	Severity    string
	State       AlertState
	Title       string
	Explanation string
	Action      string
	Evidence    map[string]string
	FirstAt     time.Time
	LastSeenAt  time.Time

	AckedBy    string
	AckedAt    *time.Time
	AckComment string

	ResolvedAt     *time.Time
	ResolvedBy     string
	ResolveComment string
}

// Condition is an alert's condition as a rule reports it, each time it holds.
type Condition struct {
	Rule        string
	SourceID    int64
	DedupeKey   string
	Severity    string
	Title       string
	Explanation string
	Action      string
	Evidence    map[string]string
}

// AlertChange is what ObserveConditions changed: an alert opened or resolved.
type AlertChange struct {
	Alert Alert
	// Opened is true for an alert that started firing, false for one that resolved.
	Opened bool
}

const alertColumns = `id, rule, source_id, dedupe_key, severity, state, title, explanation, action, evidence,
	first_at, last_seen_at, acked_by, acked_at, ack_comment, resolved_at, resolved_by, resolve_comment`

func scanAlert(r rowScanner) (Alert, error) {
	var a Alert
	var evidence string
	err := r.Scan(&a.ID, &a.Rule, orZero(&a.SourceID), &a.DedupeKey, &a.Severity, &a.State, &a.Title, &a.Explanation,
		&a.Action, &evidence, scanTime(&a.FirstAt), scanTime(&a.LastSeenAt), orZero(&a.AckedBy), scanNullTime(&a.AckedAt),
		orZero(&a.AckComment), scanNullTime(&a.ResolvedAt), orZero(&a.ResolvedBy), orZero(&a.ResolveComment))
	if err == nil && evidence != "" {
		err = json.Unmarshal([]byte(evidence), &a.Evidence)
	}
	return a, err
}

// ObserveConditions records the conditions the rules found now, for the rules in rules
// (the rules evaluated): a condition with no open alert opens one; one with an open alert
// refreshes it (severity, words, evidence, last seen); an open alert of those rules whose
// condition no longer holds resolves by itself. Alerts of other rules are left alone. It
// returns what opened and what resolved, for notifications.
func (s *Store) ObserveConditions(ctx context.Context, rules []string, conds []Condition) ([]AlertChange, error) {
	now := formatTime(s.clock())
	var changes []AlertChange
	err := s.tx(ctx, func(tx *sql.Tx) error {
		open, err := queryAll(ctx, tx, scanAlert, `SELECT `+alertColumns+` FROM alerts WHERE state <> 'resolved'`)
		if err != nil {
			return err
		}
		byKey := make(map[string]Alert, len(open))
		for _, a := range open {
			byKey[a.DedupeKey] = a
		}
		seen := make(map[string]bool, len(conds))
		for _, c := range conds {
			if c.DedupeKey == "" || seen[c.DedupeKey] {
				continue
			}
			seen[c.DedupeKey] = true
			evidence, err := json.Marshal(c.Evidence)
			if c.Evidence == nil {
				evidence = []byte("{}")
			}
			if err != nil {
				return err
			}
			if a, ok := byKey[c.DedupeKey]; ok {
				if _, err := tx.ExecContext(ctx, `UPDATE alerts SET severity = ?, title = ?, explanation = ?, action = ?,
					evidence = ?, last_seen_at = ? WHERE id = ?`, c.Severity, c.Title, c.Explanation, c.Action, string(evidence), now, a.ID); err != nil {
					return err
				}
				continue
			}
			a, err := scanAlert(tx.QueryRowContext(ctx, `INSERT INTO alerts (rule, source_id, dedupe_key, severity, state,
				title, explanation, action, evidence, first_at, last_seen_at) VALUES (?, ?, ?, ?, 'firing', ?, ?, ?, ?, ?, ?)
				RETURNING `+alertColumns, c.Rule, nullID(c.SourceID), c.DedupeKey, c.Severity, c.Title, c.Explanation,
				c.Action, string(evidence), now, now))
			if err != nil {
				return err
			}
			changes = append(changes, AlertChange{Alert: a, Opened: true})
		}
		evaluated := make(map[string]bool, len(rules))
		for _, r := range rules {
			evaluated[r] = true
		}
		for _, a := range open {
			if seen[a.DedupeKey] || !evaluated[a.Rule] {
				continue
			}
			a, err := scanAlert(tx.QueryRowContext(ctx, `UPDATE alerts SET state = 'resolved', resolved_at = ?,
				resolved_by = 'backstop', resolve_comment = 'the condition cleared' WHERE id = ? RETURNING `+alertColumns, now, a.ID))
			if err != nil {
				return err
			}
			changes = append(changes, AlertChange{Alert: a})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("observe conditions: %w", err)
	}
	return changes, nil
}

// Alert returns alert id.
func (s *Store) Alert(ctx context.Context, id int64) (Alert, error) {
	a, err := scanAlert(s.db.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, fmt.Errorf("alert %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("alert %d: %w", id, err)
	}
	return a, nil
}

// AlertFilter selects alerts. Zero fields select everything.
type AlertFilter struct {
	// Open selects firing and acknowledged alerts only.
	Open     bool
	SourceID int64
	// BeforeID pages: alerts older than it.
	BeforeID int64
	Limit    int
}

// Alerts returns the alerts f selects: open ones worst first, then oldest first; others
// newest first.
func (s *Store) Alerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	var where []string
	var args []any
	order := `id DESC`
	if f.Open {
		where = append(where, `state <> 'resolved'`)
		order = `CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, first_at, id`
	}
	if f.SourceID != 0 {
		where = append(where, `source_id = ?`)
		args = append(args, f.SourceID)
	}
	if f.BeforeID != 0 {
		where = append(where, `id < ?`)
		args = append(args, f.BeforeID)
	}
	q := `SELECT ` + alertColumns + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY ` + order
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	as, err := queryAll(ctx, s.db, scanAlert, q, args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return as, nil
}

// OpenAlertCounts returns the number of open alerts by severity.
func (s *Store) OpenAlertCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT severity, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY severity`)
	if err != nil {
		return nil, fmt.Errorf("open alert counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sev string
		var n int
		if err := rows.Scan(&sev, &n); err != nil {
			return nil, fmt.Errorf("open alert counts: %w", err)
		}
		out[sev] = n
	}
	return out, rows.Err()
}

// AcknowledgeAlert records that by has seen firing alert id and is on it. An alert that
// is not firing is ErrConflict.
func (s *Store) AcknowledgeAlert(ctx context.Context, id int64, by, comment string) (Alert, error) {
	a, err := scanAlert(s.wdb.QueryRowContext(ctx, `UPDATE alerts SET state = 'acknowledged', acked_by = ?, acked_at = ?,
		ack_comment = ? WHERE id = ? AND state = 'firing' RETURNING `+alertColumns, by, formatTime(s.clock()), nullString(comment), id))
	if errors.Is(err, sql.ErrNoRows) {
		if cur, err := s.Alert(ctx, id); err != nil {
			return Alert{}, err
		} else {
			return Alert{}, fmt.Errorf("alert %d is %s: %w", id, cur.State, ErrConflict)
		}
	}
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert %d: %w", id, err)
	}
	return a, nil
}

// ResolveAlert closes open alert id by hand. If its condition still holds, the next
// evaluation opens a new alert. An alert already resolved is ErrConflict.
func (s *Store) ResolveAlert(ctx context.Context, id int64, by, comment string) (Alert, error) {
	a, err := scanAlert(s.wdb.QueryRowContext(ctx, `UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_by = ?,
		resolve_comment = ? WHERE id = ? AND state <> 'resolved' RETURNING `+alertColumns, formatTime(s.clock()), by, nullString(comment), id))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.Alert(ctx, id); err != nil {
			return Alert{}, err
		}
		return Alert{}, fmt.Errorf("alert %d is already resolved: %w", id, ErrConflict)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("resolve alert %d: %w", id, err)
	}
	return a, nil
}

// SourceSample is a source's archiving lag and WAL position at a moment.
type SourceSample struct {
	SourceID   int64
	At         time.Time
	LagSeconds float64
	LagBytes   int64
	// WALBytes is the WAL position archived (an LSN as a number): differences are WAL
	// volumes.
	WALBytes int64
}

// RecordSourceSample stores x.
func (s *Store) RecordSourceSample(ctx context.Context, x SourceSample) error {
	if x.At.IsZero() {
		x.At = s.clock()
	}
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO source_samples (source_id, at, lag_seconds, lag_bytes, wal_bytes)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_id, at) DO NOTHING`, x.SourceID, formatTime(x.At), x.LagSeconds, x.LagBytes, x.WALBytes)
	if err != nil {
		return fmt.Errorf("record sample of source %d: %w", x.SourceID, err)
	}
	return nil
}

// SourceSamples returns source sourceID's samples taken at or after since, oldest first.
func (s *Store) SourceSamples(ctx context.Context, sourceID int64, since time.Time) ([]SourceSample, error) {
	xs, err := queryAll(ctx, s.db, func(r rowScanner) (SourceSample, error) {
		var x SourceSample
		err := r.Scan(&x.SourceID, scanTime(&x.At), &x.LagSeconds, &x.LagBytes, &x.WALBytes)
		return x, err
	}, `SELECT source_id, at, lag_seconds, lag_bytes, wal_bytes FROM source_samples WHERE source_id = ? AND at >= ? ORDER BY at`,
		sourceID, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("samples of source %d: %w", sourceID, err)
	}
	return xs, nil
}

// DeleteSourceSamples removes samples taken before before, and returns how many.
func (s *Store) DeleteSourceSamples(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM source_samples WHERE at < ?`, formatTime(before))
	if err != nil {
		return 0, fmt.Errorf("delete samples: %w", err)
	}
	return res.RowsAffected()
}
