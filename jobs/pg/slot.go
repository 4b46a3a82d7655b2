package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// SlotStatus is a replication slot as pg_replication_slots shows it, with the
// server's WAL positions to measure it against.
type SlotStatus struct {
	// Exists is false when the slot is gone (dropped by hand, say); the other
	// slot fields are then zero.
	Exists bool
	// Active reports whether a WAL sender uses the slot now.
	Active bool
	// WALStatus is "reserved", "extended", "unreserved" or "lost" ("lost": the
	// server invalidated the slot and removed WAL it needed).
	WALStatus string
	// RestartLSN is the oldest WAL the slot keeps; 0 when it keeps none.
	RestartLSN pglogrepl.LSN
	// CurrentLSN is pg_current_wal_lsn(), FlushLSN pg_current_wal_flush_lsn().
	CurrentLSN, FlushLSN pglogrepl.LSN
}

// Retained is the WAL the slot keeps on the source: CurrentLSN - RestartLSN.
func (s SlotStatus) Retained() int64 {
	if !s.Exists || s.RestartLSN == 0 || s.CurrentLSN < s.RestartLSN {
		return 0
	}
	return int64(s.CurrentLSN - s.RestartLSN)
}

// Lost reports whether the server invalidated the slot.
func (s SlotStatus) Lost() bool { return s.Exists && s.WALStatus == "lost" }

// ReadSlotStatus reads the slot name of the server at dsn over a normal
// (not replication) connection. A slot that does not exist is not an error:
// Exists is false.
func ReadSlotStatus(ctx context.Context, dsn, name string) (SlotStatus, error) {
	if err := checkSlotName(name); err != nil {
		return SlotStatus{}, fmt.Errorf("slot status: %w", err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return SlotStatus{}, fmt.Errorf("slot status: invalid connection string: %s", parseCause(err))
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return SlotStatus{}, fmt.Errorf("slot status %s: %w", name, ctx.Err())
		}
		return SlotStatus{}, fmt.Errorf("slot status %s: %w", name, connectError(err, cfg, false))
	}
	defer closeConn(conn)
	// The name is checked above: it needs no quoting.
	rows, err := query(ctx, conn, `SELECT pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text,
		s.active::text, coalesce(s.wal_status, ''), coalesce(s.restart_lsn::text, '')
		FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = '`+name+`'`, 5)
	if err != nil {
		return SlotStatus{}, fmt.Errorf("slot status %s: %w", name, err)
	}
	if len(rows) != 1 {
		return SlotStatus{}, errors.New("slot status: protocol: want one row")
	}
	r := rows[0]
	var st SlotStatus
	if st.CurrentLSN, err = pglogrepl.ParseLSN(r[0]); err != nil {
		return SlotStatus{}, fmt.Errorf("slot status: %w", err)
	}
	if st.FlushLSN, err = pglogrepl.ParseLSN(r[1]); err != nil {
		return SlotStatus{}, fmt.Errorf("slot status: %w", err)
	}
	if r[2] == "" {
		return st, nil
	}
	st.Exists = true
	st.Active, _ = strconv.ParseBool(r[2])
	st.WALStatus = strings.TrimSpace(r[3])
	if r[4] != "" {
		if st.RestartLSN, err = pglogrepl.ParseLSN(r[4]); err != nil {
			return SlotStatus{}, fmt.Errorf("slot status: %w", err)
		}
	}
	return st, nil
}

// IsSlotLost reports whether err from ReceiveWAL means that the slot, or the
// WAL it should have kept, is gone: the server removed WAL that Backstop had
// not received, or the slot does not exist (it was dropped while streaming).
func IsSlotLost(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return errors.Is(err, ErrSlotNotFound) ||
		strings.Contains(msg, "has already been removed") ||
		(strings.Contains(msg, "replication slot") && strings.Contains(msg, "does not exist")) ||
		strings.Contains(msg, "has been invalidated")
}
