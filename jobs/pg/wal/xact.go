package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pglogrepl"
)

// ErrMalformed is returned (wrapped) for a record that passed its CRC check
// but whose content this package cannot read: a format it does not know.
var ErrMalformed = errors.New("malformed WAL record")

// Kind is what a transaction record did to its transaction.
type Kind uint8

// Kinds of transaction records, with their xl_info opcodes (xact.h).
const (
	KindCommit         Kind = 0x00 // XLOG_XACT_COMMIT
	KindAbort          Kind = 0x20 // XLOG_XACT_ABORT
	KindCommitPrepared Kind = 0x30 // XLOG_XACT_COMMIT_PREPARED
	KindAbortPrepared  Kind = 0x40 // XLOG_XACT_ABORT_PREPARED
)

// String returns the name pg_waldump gives the record kind, such as
// "COMMIT_PREPARED".
func (k Kind) String() string {
	switch k {
	case KindCommit:
		return "COMMIT"
	case KindAbort:
		return "ABORT"
	case KindCommitPrepared:
		return "COMMIT_PREPARED"
	case KindAbortPrepared:
		return "ABORT_PREPARED"
	}
	return fmt.Sprintf("Kind(%#02x)", uint8(k))
}

// Committed reports whether the transaction committed (rather than
// aborted).
func (k Kind) Committed() bool {
	return k == KindCommit || k == KindCommitPrepared
}

// Commit is the end of a transaction as its WAL record tells it. Recovery
// with recovery_target_time stops at the first commit or abort whose Time
// is past the target (or at it, with recovery_target_inclusive off).
type Commit struct {
	// LSN is where the record starts, EndLSN where the next one starts:
	// replay must reach EndLSN to apply it.
	LSN    pglogrepl.LSN
	EndLSN pglogrepl.LSN
	// XID is the transaction; for a prepared transaction, the one that
	// prepared it (the record itself may carry another XID, or none).
	XID uint32
	// Time is xact_time: when the transaction committed or aborted, in
	// UTC, to the microsecond.
	Time time.Time
	// Kind says whether it committed or aborted, and whether it had been
	// prepared (two-phase commit).
	Kind Kind
}

// RestorePoint is a named restore point that pg_create_restore_point
// wrote, a possible recovery_target_name.
type RestorePoint struct {
	// LSN is where the record starts, EndLSN where the next one starts.
	LSN    pglogrepl.LSN
	EndLSN pglogrepl.LSN
	// Time is when the point was created, in UTC.
	Time time.Time
	// Name is the name given to pg_create_restore_point.
	Name string
}

// Summary is what one pass over WAL finds that bounds a point-in-time
// restore.
type Summary struct {
	// Commits lists the commit and abort records, in WAL order.
	Commits []Commit
	// RestorePoints lists the named restore points, in WAL order.
	RestorePoints []RestorePoint
	// Tablespaces lists the tablespace creations, in WAL order: a restore
	// that replays one would create the tablespace at the source's path.
	Tablespaces []TablespaceCreation
	// Result is how far the scan got.
	Result ScanResult
}

// Summarize scans r as Scan does and collects its commit and abort records,
// its restore points and its tablespace creations. It returns what it found
// so far with an error.
func Summarize(r io.Reader, opts ScanOptions) (Summary, error) {
	var sum Summary
	res, err := Scan(r, opts, func(rec Record) error {
		switch {
		case rec.RMID == RMTransaction:
			c, ok, err := parseXact(rec)
			if err != nil {
				return err
			}
			if ok {
				sum.Commits = append(sum.Commits, c)
			}
		case rec.RMID == RMXLOG && rec.Info&0xF0 == xlogRestorePoint:
			p, err := parseRestorePoint(rec)
			if err != nil {
				return err
			}
			sum.RestorePoints = append(sum.RestorePoints, p)
		case rec.RMID == RMTablespace:
			tc, ok, err := parseTablespaceCreation(rec)
			if err != nil {
				return err
			}
			if ok {
				sum.Tablespaces = append(sum.Tablespaces, tc)
			}
		}
		return nil
	})
	sum.Result = res
	return sum, err
}

// Commits scans r as Scan does and returns its commit and abort records.
func Commits(r io.Reader, opts ScanOptions) ([]Commit, ScanResult, error) {
	sum, err := Summarize(r, opts)
	return sum.Commits, sum.Result, err
}

// RestorePoints scans r as Scan does and returns its restore points.
func RestorePoints(r io.Reader, opts ScanOptions) ([]RestorePoint, ScanResult, error) {
	sum, err := Summarize(r, opts)
	return sum.RestorePoints, sum.Result, err
}

// Transaction record layout (src/include/access/xact.h, and
// ParseCommitRecord in src/backend/access/rmgrdesc/xactdesc.c).
const (
	xactOpMask  = 0x70 // XLOG_XACT_OPMASK
	xactHasInfo = 0x80 // XLOG_XACT_HAS_INFO: an xinfo word follows xact_time

	xinfoHasDBInfo       = 1 << 0 // xl_xact_dbinfo: two Oids
	xinfoHasSubxacts     = 1 << 1 // xl_xact_subxacts: count, xids
	xinfoHasRelFileNodes = 1 << 2 // xl_xact_relfilenodes: count, RelFileNodes
	xinfoHasInvals       = 1 << 3 // xl_xact_invals: count, 16-byte messages
	xinfoHasTwoPhase     = 1 << 4 // xl_xact_twophase: xid (then the GID)
	xinfoHasDroppedStats = 1 << 8 // xl_xact_stats_items: count, 12-byte items

	droppedStatSize  = 12 // xl_xact_stats_item: kind, dboid, objoid
	invalMessageSize = 16 // SharedInvalidationMessage
)

// parseXact reads a commit or abort record; ok is false for the other
// transaction records (prepare, assignment, invalidations).
func parseXact(rec Record) (c Commit, ok bool, err error) {
	kind := Kind(rec.Info & xactOpMask)
	switch kind {
	case KindCommit, KindAbort, KindCommitPrepared, KindAbortPrepared:
	default:
		return Commit{}, false, nil
	}
	d := rec.MainData
	malformed := func(what string) (Commit, bool, error) {
		return Commit{}, false, fmt.Errorf("wal: %w: %s record at %s: %s", ErrMalformed, kind, rec.LSN, what)
	}
	if len(d) < 8 {
		return malformed("main data shorter than xact_time")
	}
	c = Commit{
		LSN:    rec.LSN,
		EndLSN: rec.EndLSN,
		XID:    rec.XID,
		Time:   timestamp(int64(binary.LittleEndian.Uint64(d))),
		Kind:   kind,
	}
	if rec.Info&xactHasInfo == 0 {
		if kind == KindCommitPrepared || kind == KindAbortPrepared {
			return malformed("no xinfo, so no prepared transaction ID")
		}
		return c, true, nil
	}
	if len(d) < 12 {
		return malformed("main data shorter than xinfo")
	}
	xinfo := binary.LittleEndian.Uint32(d[8:])
	if xinfo&xinfoHasTwoPhase == 0 {
		if kind == KindCommitPrepared || kind == KindAbortPrepared {
			return malformed("no prepared transaction ID")
		}
		return c, true, nil
	}
	// The prepared transaction's ID comes after the variable-length
	// parts, in this order; aborts never carry invalidations.
	p := 12
	if xinfo&xinfoHasDBInfo != 0 {
		p += 8
	}
	for _, part := range []struct {
		flag uint32
		size int
	}{
		{xinfoHasSubxacts, 4},
		{xinfoHasRelFileNodes, relFileNodeSize},
		{xinfoHasDroppedStats, droppedStatSize},
		{xinfoHasInvals, invalMessageSize},
	} {
		if xinfo&part.flag == 0 {
			continue
		}
		if p+4 > len(d) {
			return malformed("main data too short")
		}
		n := int32(binary.LittleEndian.Uint32(d[p:]))
		if n < 0 || int64(n)*int64(part.size) > int64(len(d)) {
			return malformed(fmt.Sprintf("invalid item count %d", n))
		}
		p += 4 + int(n)*part.size
	}
	if p+4 > len(d) {
		return malformed("main data too short for the prepared transaction ID")
	}
	c.XID = binary.LittleEndian.Uint32(d[p:])
	return c, true, nil
}

// restorePointSize is the size of xl_restore_point: a TimestampTz and a
// name of up to 63 bytes in a 64-byte field (MAXFNAMELEN).
const restorePointSize = 8 + 64

func parseRestorePoint(rec Record) (RestorePoint, error) {
	d := rec.MainData
	if len(d) < restorePointSize {
		return RestorePoint{}, fmt.Errorf("wal: %w: restore point at %s: main data is %d bytes, want %d",
			ErrMalformed, rec.LSN, len(d), restorePointSize)
	}
	name := d[8:restorePointSize]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return RestorePoint{
		LSN:    rec.LSN,
		EndLSN: rec.EndLSN,
		Time:   timestamp(int64(binary.LittleEndian.Uint64(d))),
		Name:   string(name),
	}, nil
}

// pgEpochUnix is 2000-01-01 00:00:00 UTC, PostgreSQL's epoch, in Unix
// seconds.
const pgEpochUnix = 946684800

// timestamp converts a TimestampTz (microseconds since PostgreSQL's epoch)
// to a time in UTC.
func timestamp(us int64) time.Time {
	return time.Unix(us/1e6+pgEpochUnix, us%1e6*1e3).UTC()
}
