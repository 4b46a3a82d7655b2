package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ArchiverStateKind is what a source's WAL archiver is doing.
type ArchiverStateKind string

// Archiver states.
const (
	// ArchiverStarting: connecting, creating the slot, resuming the spool.
	ArchiverStarting ArchiverStateKind = "starting"
	// ArchiverStreaming: receiving WAL and keeping up with the server.
	ArchiverStreaming ArchiverStateKind = "streaming"
	// ArchiverBehind: receiving WAL, but far behind the server.
	ArchiverBehind ArchiverStateKind = "behind"
	// ArchiverStopped: not receiving; Reason says why. It retries by itself.
	ArchiverStopped ArchiverStateKind = "stopped"
	// ArchiverRecovering: the slot was lost; the archiver is saving its spool,
	// recording the gap and recreating the slot.
	ArchiverRecovering ArchiverStateKind = "recovering"
)

// Causes of a stopped archiver, for the advice health gives.
const (
	CauseUnreachable = "unreachable" // the server cannot be reached or refuses us
	CauseSlotLost    = "slot_lost"   // the slot was dropped or invalidated
	CauseIdentity    = "identity"    // the server is not the registered cluster
	CauseSpool       = "spool"       // the local spool cannot be used
	CauseError       = "error"       // anything else
)

// ArchiverState is the WAL archiver's state for one source, as it last saved it.
type ArchiverState struct {
	SourceID int64
	State    ArchiverStateKind
	// Since is when the archiver entered State.
	Since time.Time
	// Reason says, in words for a person, why it is stopped or recovering;
	// Cause is one of the Cause constants. Both empty otherwise.
	Reason, Cause string
	// ReceivedLSN and FlushedLSN are what the spool holds (written, fsynced);
	// ServerLSN is the server's WAL flush position when last seen. Empty
	// when unknown.
	ReceivedLSN, FlushedLSN, ServerLSN string
	// BehindBytes is ServerLSN - FlushedLSN.
	BehindBytes int64
	// CaughtUpAt is when the spool last held all the server had; nil when
	// never seen.
	CaughtUpAt *time.Time
	// SlotName, SlotWALStatus and SlotRetainedBytes describe the replication
	// slot as pg_replication_slots shows it; empty or zero when unknown.
	SlotName          string
	SlotWALStatus     string
	SlotRetainedBytes int64
	// GapFromLSN, GapToLSN and GapAt are the newest WAL gap accepted after a
	// lost slot; empty and nil when there was none.
	GapFromLSN, GapToLSN string
	GapAt                *time.Time
	// NeedsBackupSince is set with a gap and cleared when a base backup
	// completes after it: until then the window cannot continue past the gap.
	NeedsBackupSince *time.Time
	// Recoveries counts the recoveries from a lost slot.
	Recoveries int64
	UpdatedAt  time.Time
}

// BehindSeconds is how long ago the spool last held everything the server
// had: zero when nothing was missing at the last update, or when never
// caught up.
func (a ArchiverState) BehindSeconds(now time.Time) time.Duration {
	if a.CaughtUpAt == nil || a.BehindBytes == 0 {
		return 0
	}
	return max(0, now.Sub(*a.CaughtUpAt))
}

const archiverColumns = `source_id, state, since, reason, cause, received_lsn, flushed_lsn, server_lsn, behind_bytes,
	caught_up_at, slot_name, slot_wal_status, slot_retained_bytes, gap_from_lsn, gap_to_lsn, gap_at,
	needs_backup_since, recoveries, updated_at`

func scanArchiverState(r rowScanner) (ArchiverState, error) {
	var a ArchiverState
	err := r.Scan(&a.SourceID, &a.State, scanTime(&a.Since), orZero(&a.Reason), orZero(&a.Cause),
		orZero(&a.ReceivedLSN), orZero(&a.FlushedLSN), orZero(&a.ServerLSN), &a.BehindBytes,
		scanNullTime(&a.CaughtUpAt), orZero(&a.SlotName), orZero(&a.SlotWALStatus), orZero(&a.SlotRetainedBytes),
		orZero(&a.GapFromLSN), orZero(&a.GapToLSN), scanNullTime(&a.GapAt), scanNullTime(&a.NeedsBackupSince),
		&a.Recoveries, scanTime(&a.UpdatedAt))
	return a, err
}

func nullTime(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return formatTime(*t)
}

// SaveArchiverState stores a's state for its source, replacing the previous
// one; UpdatedAt is set to now. A reason is required for the stopped and
// recovering states, and refused for the others.
func (s *Store) SaveArchiverState(ctx context.Context, a ArchiverState) error {
	switch a.State {
	case ArchiverStarting, ArchiverStreaming, ArchiverBehind:
		a.Reason, a.Cause = "", ""
	case ArchiverStopped, ArchiverRecovering:
		if a.Reason == "" {
			return fmt.Errorf("save archiver state: %w", invalid("reason", "is required when %s", a.State))
		}
	default:
		return fmt.Errorf("save archiver state: %w", invalid("state", "%q is not an archiver state", a.State))
	}
	if a.Since.IsZero() {
		a.Since = s.clock()
	}
	_, err := s.wdb.ExecContext(ctx, `
		INSERT INTO archiver_state (`+archiverColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (source_id) DO UPDATE SET
			state = excluded.state, since = excluded.since, reason = excluded.reason, cause = excluded.cause,
			received_lsn = excluded.received_lsn, flushed_lsn = excluded.flushed_lsn,
			server_lsn = excluded.server_lsn, behind_bytes = excluded.behind_bytes,
			caught_up_at = excluded.caught_up_at, slot_name = excluded.slot_name,
			slot_wal_status = excluded.slot_wal_status, slot_retained_bytes = excluded.slot_retained_bytes,
			gap_from_lsn = excluded.gap_from_lsn, gap_to_lsn = excluded.gap_to_lsn, gap_at = excluded.gap_at,
			needs_backup_since = excluded.needs_backup_since, recoveries = excluded.recoveries,
			updated_at = excluded.updated_at`,
		a.SourceID, a.State, formatTime(a.Since), nullIfZero(a.Reason), nullIfZero(a.Cause),
		nullIfZero(a.ReceivedLSN), nullIfZero(a.FlushedLSN), nullIfZero(a.ServerLSN), max(a.BehindBytes, 0),
		nullTime(a.CaughtUpAt), nullIfZero(a.SlotName), nullIfZero(a.SlotWALStatus), nullIfZero(a.SlotRetainedBytes),
		nullIfZero(a.GapFromLSN), nullIfZero(a.GapToLSN), nullTime(a.GapAt), nullTime(a.NeedsBackupSince),
		a.Recoveries, formatTime(s.clock()))
	if err != nil {
		return fmt.Errorf("save archiver state of source %d: %w", a.SourceID, err)
	}
	return nil
}

// ArchiverState returns the archiver's state for source sourceID.
// ErrNotFound means no archiver has run for it yet.
func (s *Store) ArchiverState(ctx context.Context, sourceID int64) (ArchiverState, error) {
	a, err := scanArchiverState(s.db.QueryRowContext(ctx, `SELECT `+archiverColumns+` FROM archiver_state WHERE source_id = ?`, sourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return ArchiverState{}, fmt.Errorf("archiver state of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return ArchiverState{}, fmt.Errorf("archiver state of source %d: %w", sourceID, err)
	}
	return a, nil
}

// ArchiverStates returns the archiver state of every source that has one, by source.
func (s *Store) ArchiverStates(ctx context.Context) ([]ArchiverState, error) {
	out, err := queryAll(ctx, s.db, scanArchiverState, `SELECT `+archiverColumns+` FROM archiver_state ORDER BY source_id`)
	if err != nil {
		return nil, fmt.Errorf("archiver states: %w", err)
	}
	return out, nil
}

// WALGap is WAL that a source removed before Backstop had it.
type WALGap struct {
	ID       int64
	SourceID int64
	Timeline int64
	// FromLSN and ToLSN bound the missing WAL: [FromLSN, ToLSN).
	FromLSN, ToLSN string
	// Reason says why it is missing, in words for a person.
	Reason     string
	DetectedAt time.Time
}

// RecordWALGap records a gap; its ID and, if zero, DetectedAt are set.
func (s *Store) RecordWALGap(ctx context.Context, g WALGap) (WALGap, error) {
	if g.DetectedAt.IsZero() {
		g.DetectedAt = s.clock()
	}
	err := s.wdb.QueryRowContext(ctx, `
		INSERT INTO wal_gaps (source_id, timeline, from_lsn, to_lsn, reason, detected_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		g.SourceID, g.Timeline, g.FromLSN, g.ToLSN, g.Reason, formatTime(g.DetectedAt)).Scan(&g.ID)
	if err != nil {
		return WALGap{}, fmt.Errorf("record WAL gap of source %d: %w", g.SourceID, err)
	}
	return g, nil
}

// WALGaps returns the recorded gaps of source sourceID, oldest first.
func (s *Store) WALGaps(ctx context.Context, sourceID int64) ([]WALGap, error) {
	out, err := queryAll(ctx, s.db, func(r rowScanner) (WALGap, error) {
		var g WALGap
		err := r.Scan(&g.ID, &g.SourceID, &g.Timeline, &g.FromLSN, &g.ToLSN, &g.Reason, scanTime(&g.DetectedAt))
		return g, err
	}, `SELECT id, source_id, timeline, from_lsn, to_lsn, reason, detected_at FROM wal_gaps WHERE source_id = ? ORDER BY id`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("WAL gaps of source %d: %w", sourceID, err)
	}
	return out, nil
}

// ProbeWrite proves that the catalog can be written: it rewrites one row in a
// committed transaction. /healthz calls it.
func (s *Store) ProbeWrite(ctx context.Context) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO health_probe (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, formatTime(s.clock()))
	if err != nil {
		return fmt.Errorf("write the catalog: %w", err)
	}
	return nil
}

// File returns the path of the catalog's database file, to check the free
// space of the disk that holds it.
func (s *Store) File(ctx context.Context) (string, error) {
	rows, err := s.db.QueryContext(ctx, `PRAGMA database_list`)
	if err != nil {
		return "", fmt.Errorf("catalog file: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int
		var name, file string
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", fmt.Errorf("catalog file: %w", err)
		}
		if name == "main" {
			return file, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("catalog file: %w", err)
	}
	return "", fmt.Errorf("catalog file: %w", ErrNotFound)
}
