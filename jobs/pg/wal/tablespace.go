package wal

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// Tablespace record layout (src/include/commands/tablespace.h).
const (
	tblspcOpMask = 0xF0 // the record kind, in the high bits of xl_info
	tblspcCreate = 0x00 // XLOG_TBLSPC_CREATE

	// maxTablespacePath bounds ts_path: PostgreSQL's MAXPGPATH.
	maxTablespacePath = 1024
)

// TablespaceCreation is a CREATE TABLESPACE as its WAL record tells it.
// Recovery replays it by creating the tablespace at Location on the host
// it runs on, whatever directory the restored data lives in: on the
// source's own host, that is the source's live tablespace directory.
type TablespaceCreation struct {
	// LSN is where the record starts, EndLSN where the next one starts,
	// PrevLSN where the one before it starts: recovery_target_lsn = PrevLSN
	// (inclusive) or LSN (exclusive) stops just before it.
	LSN     pglogrepl.LSN
	EndLSN  pglogrepl.LSN
	PrevLSN pglogrepl.LSN
	// Timeline is the timeline in the header of the page the record starts
	// on.
	Timeline uint32
	// OID is the new tablespace's OID (ts_id).
	OID uint32
	// Location is the directory given to CREATE TABLESPACE … LOCATION
	// (ts_path): absolute, or empty for an in-place tablespace
	// (allow_in_place_tablespaces).
	Location string
}

// parseTablespaceCreation reads an XLOG_TBLSPC_CREATE record: ok is false
// for the other tablespace records (drop).
func parseTablespaceCreation(rec Record) (tc TablespaceCreation, ok bool, err error) {
	if rec.Info&tblspcOpMask != tblspcCreate {
		return TablespaceCreation{}, false, nil
	}
	d := rec.MainData
	if len(d) < 5 {
		return TablespaceCreation{}, false, fmt.Errorf("wal: %w: tablespace creation at %s: main data is %d bytes, want an OID and a path",
			ErrMalformed, rec.LSN, len(d))
	}
	path := d[4:]
	end := -1
	for i, c := range path {
		if c == 0 {
			end = i
			break
		}
	}
	switch {
	case end < 0:
		return TablespaceCreation{}, false, fmt.Errorf("wal: %w: tablespace creation at %s: path is not NUL-terminated", ErrMalformed, rec.LSN)
	case end >= maxTablespacePath:
		return TablespaceCreation{}, false, fmt.Errorf("wal: %w: tablespace creation at %s: path longer than %d bytes", ErrMalformed, rec.LSN, maxTablespacePath-1)
	}
	return TablespaceCreation{
		LSN:      rec.LSN,
		EndLSN:   rec.EndLSN,
		PrevLSN:  rec.PrevLSN,
		Timeline: rec.Timeline,
		OID:      binary.LittleEndian.Uint32(d),
		Location: string(path[:end]),
	}, true, nil
}
