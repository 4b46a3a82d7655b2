package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WALKind is what an archived WAL file holds.
type WALKind string

// Kinds of archived WAL files, as the repository names them.
const (
	// WALSegment is a complete segment, such as "000000010000000000000003".
	WALSegment WALKind = "segment"
	// WALPartial is a piece of a segment still being written: its first
	// bytes, such as "000000010000000000000003.partial.00A3C000".
	WALPartial WALKind = "partial"
	// WALHistory is a timeline history file, such as "00000002.history".
	WALHistory WALKind = "history"
)

// WALVia is how a WAL file reached the repository.
type WALVia string

// Ways WAL reaches the repository.
const (
	// WALViaStream is WAL received from a replication slot.
	WALViaStream WALVia = "stream"
	// WALViaPush is WAL handed over by archive_command (backstop wal-push).
	WALViaPush WALVia = "push"
)

// Bounds of PostgreSQL's WAL segment sizes (initdb --wal-segsize).
const (
	minWALSegmentSize = 1 << 20
	maxWALSegmentSize = 1 << 30
)

// maxRestorePointName is the longest restore point name PostgreSQL accepts,
// in bytes (MAXFNAMELEN - 1).
const maxRestorePointName = 63

// WALFile is an archived WAL file of a source, as the catalog records it.
type WALFile struct {
	ID       int64
	SourceID int64
	// Name is the file's name in the repository.
	Name     string
	Kind     WALKind
	Timeline int64
	// SegNo is the segment number; 0 for a history file (Kind tells).
	SegNo int64
	// StartLSN and EndLSN bound the WAL the file holds, [StartLSN, EndLSN),
	// in PostgreSQL's text form ("0/3A000028"); empty for a history file.
	StartLSN string
	EndLSN   string
	// Size is the file's length in bytes.
	Size int64
	// StoredBytes is what archiving the file added to the repository.
	StoredBytes int64
	// Commits is the number of commit records in the file; FirstCommitAt
	// and LastCommitAt are the commit times of the first and last, nil
	// when there are none.
	Commits       int64
	FirstCommitAt *time.Time
	LastCommitAt  *time.Time
	// RestorePoints is the number of recorded restore points whose newest
	// file is this one.
	RestorePoints int64
	Via           WALVia
	ArchivedAt    time.Time
}

// WALFileParams describe a WAL file that was just archived.
type WALFileParams struct {
	SourceID int64
	Name     string
	Kind     WALKind
	Timeline int64
	// SegNo is the segment number; 0 for a history file.
	SegNo int64
	// StartLSN and EndLSN bound the WAL the file holds; empty for a history
	// file. For a segment they span the segment size; for a partial piece,
	// its length. Any case of hexadecimal digits is accepted and stored
	// upper-case.
	StartLSN string
	EndLSN   string
	Size     int64
	// StoredBytes is what archiving the file added to the repository.
	StoredBytes int64
	// Commits, FirstCommitAt and LastCommitAt describe the commit records
	// found in the file: the times are zero exactly when Commits is.
	Commits       int64
	FirstCommitAt time.Time
	LastCommitAt  time.Time
	// RestorePoints are the restore points found in the file, recorded with
	// it.
	RestorePoints []RestorePointParams
	// Tablespaces are the tablespace creations found in the file, recorded
	// with it (again harmlessly when the file is recorded again).
	Tablespaces []TablespaceCreationParams
	Via         WALVia
	// ArchivedAt defaults to now.
	ArchivedAt time.Time
}

// RestorePoint is a named restore point (pg_create_restore_point) found in
// archived WAL: a target for recovery_target_name.
type RestorePoint struct {
	ID       int64
	SourceID int64
	Timeline int64
	Name     string
	// LSN is where the restore point's record starts.
	LSN string
	// At is the time written in the record.
	At time.Time
	// WALFileID is the newest WAL file that holds the record, 0 when that
	// file is no longer in the catalog.
	WALFileID int64
}

// RestorePointParams describe a restore point found in a WAL file.
type RestorePointParams struct {
	// Name is at most 63 bytes, as PostgreSQL allows.
	Name string
	// LSN is where the record starts: inside the file's range.
	LSN string
	At  time.Time
}

// TablespaceCreation is a CREATE TABLESPACE found in archived WAL. Recovery
// replays it by creating the tablespace at Location on the restoring host,
// which on the source's own host is the source's live tablespace directory:
// restores whose WAL holds one are refused.
type TablespaceCreation struct {
	ID       int64
	SourceID int64
	// Timeline is the timeline in the header of the WAL page the record
	// starts on.
	Timeline int64
	// LSN is where the record starts, EndLSN where the next one starts,
	// PrevLSN where the one before it starts.
	LSN     string
	EndLSN  string
	PrevLSN string
	// OID and Location are the tablespace's (Location is "" for an in-place
	// tablespace).
	OID      uint32
	Location string
	// PrevCommitAt is the commit time of the last commit before the record
	// in the WAL file it was found in; nil when that file holds none.
	PrevCommitAt *time.Time
	// WALFile is the repository name of the WAL file it was recorded from.
	WALFile    string
	RecordedAt time.Time
}

// TablespaceCreationParams describe a tablespace creation found in a WAL
// file.
type TablespaceCreationParams struct {
	// Timeline is the timeline of the page the record starts on; it may be
	// a parent of the file's.
	Timeline int64
	// LSN is where the record starts: inside the file's range; EndLSN is
	// after it, PrevLSN (the record before it) before it.
	LSN     string
	EndLSN  string
	PrevLSN string
	// OID must not be 0.
	OID      uint32
	Location string
	// PrevCommitAt is the commit time of the last commit before it in the
	// file; zero when there is none.
	PrevCommitAt time.Time
}

// WALFilter selects the WAL files of one source.
type WALFilter struct {
	SourceID int64
	// Timeline selects one timeline; 0 selects all.
	Timeline int64
	// FromSegNo skips segments and partial pieces numbered below it.
	// History files, which have no number, are selected regardless.
	FromSegNo int64
	// Kinds selects these kinds only; empty selects all.
	Kinds []WALKind
	// Limit caps the number of files returned, 0 for no cap.
	Limit int
}

// WALSummary sums up the archived WAL of a source for the overview.
type WALSummary struct {
	// Segments, Partials and HistoryFiles count the files by kind.
	Segments     int64
	Partials     int64
	HistoryFiles int64
	// Bytes is the WAL the files hold; StoredBytes what archiving them
	// added to the repository.
	Bytes       int64
	StoredBytes int64
	// Commits counts the commit records in the files; FirstCommitAt and
	// LastCommitAt are the oldest and newest commit times, nil when none.
	Commits       int64
	FirstCommitAt *time.Time
	LastCommitAt  *time.Time
	// RestorePoints counts the source's named restore points.
	RestorePoints int64
	// LastArchivedAt is when the newest file was archived, nil when none.
	LastArchivedAt *time.Time
}

const walFileColumns = `id, source_id, name, kind, timeline, segno, start_lsn, end_lsn, size, stored_bytes,
	commits, first_commit_at, last_commit_at, restore_points, via, archived_at`

// scanWALFile scans a row of walFileColumns.
func scanWALFile(r rowScanner) (WALFile, error) {
	var f WALFile
	err := r.Scan(&f.ID, &f.SourceID, &f.Name, &f.Kind, &f.Timeline, orZero(&f.SegNo), orZero(&f.StartLSN), orZero(&f.EndLSN),
		&f.Size, &f.StoredBytes, &f.Commits, scanNullTime(&f.FirstCommitAt), scanNullTime(&f.LastCommitAt),
		&f.RestorePoints, &f.Via, scanTime(&f.ArchivedAt))
	return f, err
}

// walFileWhere returns the one WAL file that where (with args) selects, or
// an error matching ErrNotFound.
func walFileWhere(ctx context.Context, q querier, what, where string, args ...any) (WALFile, error) {
	f, err := scanWALFile(q.QueryRowContext(ctx, `SELECT `+walFileColumns+` FROM wal_files WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return WALFile{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return WALFile{}, fmt.Errorf("%s: %w", what, err)
	}
	return f, nil
}

// RecordWAL records a WAL file that the repository now holds, with the
// restore points found in it, in one transaction, and returns the row that
// stands for it:
//
//   - A segment or history file is recorded once per source and name.
//     Recording it again with the same kind, position and size changes
//     nothing and returns the existing row; with other values it is
//     ErrConflict, as is a segment whose position already holds another
//     segment.
//   - Of the partial pieces of a segment, only the longest is kept: a
//     longer piece replaces the recorded one, a shorter or equal one is
//     ignored and the recorded piece is returned instead (its Name differs
//     from p.Name).
//   - Recording a segment deletes the row of its partial piece; a piece that
//     arrives after its segment is ignored and the segment is returned.
//
// Restore points of a replaced piece move to the row that replaces it. An
// unknown source is ErrNotFound; invalid parameters are a *ValidationError.
func (s *Store) RecordWAL(ctx context.Context, p WALFileParams) (WALFile, error) {
	_, end, err := p.normalize()
	if err != nil {
		return WALFile{}, fmt.Errorf("record WAL %s: %w", p.Name, err)
	}
	if p.ArchivedAt.IsZero() {
		p.ArchivedAt = s.clock()
	}
	var f WALFile
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := sourceExists(ctx, tx, p.SourceID); err != nil {
			return err
		}
		// Before anything else: a file recorded before (or superseded) still
		// must not hide a tablespace creation from the planner.
		if err := insertTablespaceCreations(ctx, tx, p, s.clock()); err != nil {
			return err
		}
		old, err := walFileWhere(ctx, tx, p.Name, `source_id = ? AND name = ?`, p.SourceID, p.Name)
		switch {
		case err == nil:
			if old.Kind != p.Kind || old.Timeline != p.Timeline || old.SegNo != p.SegNo ||
				old.StartLSN != p.StartLSN || old.EndLSN != p.EndLSN || old.Size != p.Size {
				return fmt.Errorf("%s %s is already recorded with other values: %w", old.Kind, old.Name, ErrConflict)
			}
			f = old
			return nil
		case !errors.Is(err, ErrNotFound):
			return err
		}

		var replaced int64 // the partial piece that p supersedes
		if p.Kind != WALHistory {
			at, err := walFileWhere(ctx, tx, p.Name, `source_id = ? AND timeline = ? AND segno = ?`, p.SourceID, p.Timeline, p.SegNo)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			case at.Kind == WALSegment && p.Kind == WALSegment:
				return fmt.Errorf("segment %d of timeline %d is already recorded as %s: %w", p.SegNo, p.Timeline, at.Name, ErrConflict)
			case at.Kind == WALSegment:
				f = at // the complete segment supersedes any piece of it
				return nil
			case p.Kind == WALPartial && !pieceIsLonger(end, at):
				f = at
				return nil
			default:
				replaced = at.ID
			}
		}

		var moved []int64
		if replaced != 0 {
			moved, err = queryAll(ctx, tx, func(r rowScanner) (int64, error) {
				var id int64
				return id, r.Scan(&id)
			}, `SELECT id FROM wal_restore_points WHERE wal_file_id = ?`, replaced)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM wal_files WHERE id = ?`, replaced); err != nil {
				return err
			}
		}
		f, err = scanWALFile(tx.QueryRowContext(ctx, `
			INSERT INTO wal_files (source_id, name, kind, timeline, segno, start_lsn, end_lsn, size, stored_bytes,
				commits, first_commit_at, last_commit_at, via, archived_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			RETURNING `+walFileColumns,
			p.SourceID, p.Name, p.Kind, p.Timeline, segNoArg(p.Kind, p.SegNo), nullIfZero(p.StartLSN), nullIfZero(p.EndLSN),
			p.Size, p.StoredBytes, p.Commits, nullTimeArg(p.FirstCommitAt), nullTimeArg(p.LastCommitAt),
			p.Via, formatTime(p.ArchivedAt)))
		if err != nil {
			return err
		}
		if len(moved) > 0 {
			_, err := tx.ExecContext(ctx, `UPDATE wal_restore_points SET wal_file_id = ? WHERE id IN (SELECT value FROM json_each(?))`,
				f.ID, jsonList(moved))
			if err != nil {
				return err
			}
		}
		if err := insertRestorePoints(ctx, tx, f, p.RestorePoints); err != nil {
			return err
		}
		f, err = countRestorePoints(ctx, tx, f.ID)
		return err
	})
	if err != nil {
		return WALFile{}, fmt.Errorf("record WAL %s: %w", p.Name, err)
	}
	return f, nil
}

// pieceIsLonger reports whether a partial piece ending at end is longer than
// the recorded piece f.
func pieceIsLonger(end uint64, f WALFile) bool {
	recorded, ok := parseLSN(f.EndLSN)
	return !ok || end > recorded
}

// RecordRestorePoints records restore points found in WAL file walFileID
// (they must lie inside it), and makes it their newest file. Recording a
// restore point again is harmless; one at the LSN of a recorded point with
// another name or time is ErrConflict.
func (s *Store) RecordRestorePoints(ctx context.Context, walFileID int64, points []RestorePointParams) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		f, err := walFileWhere(ctx, tx, fmt.Sprintf("WAL file %d", walFileID), `id = ?`, walFileID)
		if err != nil {
			return err
		}
		if f.Kind == WALHistory {
			return invalid("restore_points", "a history file holds no restore points")
		}
		start, _ := parseLSN(f.StartLSN)
		end, _ := parseLSN(f.EndLSN)
		points, err := normalizeRestorePoints(points, start, end)
		if err != nil {
			return err
		}
		if err := insertRestorePoints(ctx, tx, f, points); err != nil {
			return err
		}
		_, err = countRestorePoints(ctx, tx, f.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("record restore points: %w", err)
	}
	return nil
}

// insertRestorePoints records normalized points found in f.
func insertRestorePoints(ctx context.Context, tx *sql.Tx, f WALFile, points []RestorePointParams) error {
	for _, rp := range points {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO wal_restore_points (source_id, timeline, name, lsn, at, wal_file_id)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (source_id, timeline, lsn) DO UPDATE SET wal_file_id = excluded.wal_file_id
			WHERE wal_restore_points.name = excluded.name AND wal_restore_points.at = excluded.at`,
			f.SourceID, f.Timeline, rp.Name, rp.LSN, formatTime(rp.At), f.ID)
		if err != nil {
			return fmt.Errorf("restore point %q: %w", rp.Name, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("restore point %q at %s of timeline %d: another name or time is recorded at that LSN: %w",
				rp.Name, rp.LSN, f.Timeline, ErrConflict)
		}
	}
	return nil
}

// countRestorePoints updates the restore point count of WAL file id and
// returns the file.
func countRestorePoints(ctx context.Context, tx *sql.Tx, id int64) (WALFile, error) {
	return scanWALFile(tx.QueryRowContext(ctx, `
		UPDATE wal_files SET restore_points = (SELECT count(*) FROM wal_restore_points WHERE wal_file_id = wal_files.id)
		WHERE id = ?
		RETURNING `+walFileColumns, id))
}

// WALFiles returns the WAL files that f selects, by timeline and segment
// number, each timeline's history file first. An unknown source is
// ErrNotFound.
func (s *Store) WALFiles(ctx context.Context, f WALFilter) ([]WALFile, error) {
	where := []string{`source_id = ?`}
	args := []any{f.SourceID}
	if f.Timeline != 0 {
		where = append(where, `timeline = ?`)
		args = append(args, f.Timeline)
	}
	if f.FromSegNo > 0 {
		where = append(where, `(segno IS NULL OR segno >= ?)`)
		args = append(args, f.FromSegNo)
	}
	if len(f.Kinds) > 0 {
		where = append(where, `kind IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(f.Kinds))
	}
	query := `SELECT ` + walFileColumns + ` FROM wal_files WHERE ` + strings.Join(where, ` AND `) +
		` ORDER BY timeline, segno NULLS FIRST, id`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	files, err := queryAll(ctx, s.db, scanWALFile, query, args...)
	if err != nil {
		return nil, fmt.Errorf("WAL files of source %d: %w", f.SourceID, err)
	}
	if len(files) == 0 {
		if err := sourceExists(ctx, s.db, f.SourceID); err != nil {
			return nil, fmt.Errorf("WAL files: %w", err)
		}
	}
	return files, nil
}

// LatestWAL returns the newest segment or partial piece of source sourceID:
// on its highest timeline, the highest segment number. ErrNotFound means
// there is none.
func (s *Store) LatestWAL(ctx context.Context, sourceID int64) (WALFile, error) {
	return walFileWhere(ctx, s.db, fmt.Sprintf("latest WAL of source %d", sourceID), `
		source_id = ? AND segno IS NOT NULL
		ORDER BY timeline DESC, segno DESC
		LIMIT 1`, sourceID)
}

const restorePointColumns = `id, source_id, timeline, name, lsn, at, wal_file_id`

// scanRestorePoint scans a row of restorePointColumns.
func scanRestorePoint(r rowScanner) (RestorePoint, error) {
	var rp RestorePoint
	err := r.Scan(&rp.ID, &rp.SourceID, &rp.Timeline, &rp.Name, &rp.LSN, scanTime(&rp.At), orZero(&rp.WALFileID))
	return rp, err
}

// RestorePoints returns the restore points of source sourceID by LSN (and
// timeline, for a point copied into a new timeline's first segment). An
// unknown source is ErrNotFound.
func (s *Store) RestorePoints(ctx context.Context, sourceID int64) ([]RestorePoint, error) {
	points, err := queryAll(ctx, s.db, scanRestorePoint,
		`SELECT `+restorePointColumns+` FROM wal_restore_points WHERE source_id = ?`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("restore points of source %d: %w", sourceID, err)
	}
	if len(points) == 0 {
		if err := sourceExists(ctx, s.db, sourceID); err != nil {
			return nil, fmt.Errorf("restore points: %w", err)
		}
	}
	sortRestorePoints(points)
	return points, nil
}

// RestorePointByName returns the restore point of source sourceID named
// name. PostgreSQL allows a name to be used twice and recovery stops at the
// first one it replays, so of several, the one with the lowest LSN is
// returned. ErrNotFound means there is none.
func (s *Store) RestorePointByName(ctx context.Context, sourceID int64, name string) (RestorePoint, error) {
	points, err := queryAll(ctx, s.db, scanRestorePoint,
		`SELECT `+restorePointColumns+` FROM wal_restore_points WHERE source_id = ? AND name = ?`, sourceID, name)
	if err != nil {
		return RestorePoint{}, fmt.Errorf("restore point %q of source %d: %w", name, sourceID, err)
	}
	if len(points) == 0 {
		return RestorePoint{}, fmt.Errorf("restore point %q of source %d: %w", name, sourceID, ErrNotFound)
	}
	sortRestorePoints(points)
	return points[0], nil
}

// sortRestorePoints sorts points by LSN, then timeline.
func sortRestorePoints(points []RestorePoint) {
	slices.SortFunc(points, func(a, b RestorePoint) int {
		la, _ := parseLSN(a.LSN)
		lb, _ := parseLSN(b.LSN)
		return cmp.Or(cmp.Compare(la, lb), cmp.Compare(a.Timeline, b.Timeline), cmp.Compare(a.ID, b.ID))
	})
}

// WALSummary sums up the archived WAL of source sourceID. A source without
// WAL has a zero summary; an unknown source is ErrNotFound.
func (s *Store) WALSummary(ctx context.Context, sourceID int64) (WALSummary, error) {
	if err := sourceExists(ctx, s.db, sourceID); err != nil {
		return WALSummary{}, fmt.Errorf("WAL summary: %w", err)
	}
	var sum WALSummary
	err := s.db.QueryRowContext(ctx, `
		SELECT coalesce(sum(kind = 'segment'), 0), coalesce(sum(kind = 'partial'), 0), coalesce(sum(kind = 'history'), 0),
			coalesce(sum(size), 0), coalesce(sum(stored_bytes), 0), coalesce(sum(commits), 0),
			min(first_commit_at), max(last_commit_at), max(archived_at),
			(SELECT count(*) FROM wal_restore_points WHERE source_id = ?)
		FROM wal_files WHERE source_id = ?`, sourceID, sourceID).Scan(
		&sum.Segments, &sum.Partials, &sum.HistoryFiles, &sum.Bytes, &sum.StoredBytes, &sum.Commits,
		scanNullTime(&sum.FirstCommitAt), scanNullTime(&sum.LastCommitAt), scanNullTime(&sum.LastArchivedAt),
		&sum.RestorePoints)
	if err != nil {
		return WALSummary{}, fmt.Errorf("WAL summary of source %d: %w", sourceID, err)
	}
	return sum, nil
}

// normalize checks p, writes its LSNs (and its restore points' LSNs, in a
// copy of the slice) in canonical form, and returns its LSN range.
func (p *WALFileParams) normalize() (start, end uint64, err error) {
	switch {
	case p.Name == "":
		return 0, 0, invalid("name", "is required")
	case len(p.Name) > 255 || strings.ContainsAny(p.Name, "/\\\x00"):
		return 0, 0, invalid("name", "must be a WAL file name, such as 000000010000000000000003")
	}
	switch p.Kind {
	case WALSegment, WALPartial, WALHistory:
	default:
		return 0, 0, invalid("kind", "must be %s, %s or %s, not %q", WALSegment, WALPartial, WALHistory, p.Kind)
	}
	switch p.Via {
	case WALViaStream, WALViaPush:
	default:
		return 0, 0, invalid("via", "must be %s or %s, not %q", WALViaStream, WALViaPush, p.Via)
	}
	switch {
	case p.Timeline <= 0:
		return 0, 0, invalid("timeline", "must be positive")
	case p.Size <= 0:
		return 0, 0, invalid("size", "must be positive")
	case p.StoredBytes < 0:
		return 0, 0, invalid("stored_bytes", "must not be negative")
	case p.Commits < 0:
		return 0, 0, invalid("commits", "must not be negative")
	case (p.Commits == 0) != p.FirstCommitAt.IsZero() || (p.Commits == 0) != p.LastCommitAt.IsZero():
		return 0, 0, invalid("first_commit_at", "commit times must be given exactly when there are commits")
	case p.LastCommitAt.Before(p.FirstCommitAt):
		return 0, 0, invalid("last_commit_at", "is before first_commit_at")
	}

	if p.Kind == WALHistory {
		switch {
		case p.SegNo != 0:
			return 0, 0, invalid("segno", "must be 0 for a history file")
		case p.StartLSN != "" || p.EndLSN != "":
			return 0, 0, invalid("start_lsn", "must be empty for a history file")
		case p.Commits != 0:
			return 0, 0, invalid("commits", "must be 0 for a history file")
		case len(p.RestorePoints) > 0:
			return 0, 0, invalid("restore_points", "a history file holds no restore points")
		case len(p.Tablespaces) > 0:
			return 0, 0, invalid("tablespaces", "a history file holds no WAL records")
		}
		return 0, 0, nil
	}

	if p.SegNo < 0 {
		return 0, 0, invalid("segno", "must not be negative")
	}
	var ok bool
	if start, ok = parseLSN(p.StartLSN); !ok {
		return 0, 0, invalid("start_lsn", "must be an LSN such as 0/3A000000, not %q", p.StartLSN)
	}
	if end, ok = parseLSN(p.EndLSN); !ok {
		return 0, 0, invalid("end_lsn", "must be an LSN such as 0/3B000000, not %q", p.EndLSN)
	}
	p.StartLSN, p.EndLSN = formatLSN(start), formatLSN(end)
	if end <= start {
		return 0, 0, invalid("end_lsn", "must be after start_lsn %s", p.StartLSN)
	}
	if end-start != uint64(p.Size) {
		return 0, 0, invalid("size", "is %d bytes, but %s to %s spans %d", p.Size, p.StartLSN, p.EndLSN, end-start)
	}
	segNo := uint64(p.SegNo)
	if p.Kind == WALSegment {
		if !isWALSegmentSize(p.Size) {
			return 0, 0, invalid("size", "a segment's size must be a power of two from 1 MiB to 1 GiB, not %d", p.Size)
		}
		if start%uint64(p.Size) != 0 || start/uint64(p.Size) != segNo {
			return 0, 0, invalid("start_lsn", "%s is not the start of segment %d of %d-byte segments", p.StartLSN, p.SegNo, p.Size)
		}
	} else if !startsPiece(start, segNo, p.Size) {
		return 0, 0, invalid("start_lsn", "%s is not the start of a segment numbered %d holding %d bytes, whatever the segment size", p.StartLSN, p.SegNo, p.Size)
	}
	p.RestorePoints, err = normalizeRestorePoints(p.RestorePoints, start, end)
	if err != nil {
		return 0, 0, err
	}
	p.Tablespaces, err = normalizeTablespaceCreations(p.Tablespaces, start, end)
	return start, end, err
}

// normalizeTablespaceCreations checks creations found in WAL [start, end)
// and returns a copy with canonical LSNs.
func normalizeTablespaceCreations(tcs []TablespaceCreationParams, start, end uint64) ([]TablespaceCreationParams, error) {
	out := slices.Clone(tcs)
	for i := range out {
		tc := &out[i]
		field := fmt.Sprintf("tablespaces[%d]", i)
		lsn, ok1 := parseLSN(tc.LSN)
		next, ok2 := parseLSN(tc.EndLSN)
		prev, ok3 := parseLSN(tc.PrevLSN)
		switch {
		case !ok1 || !ok2 || !ok3:
			return nil, invalid(field, "LSNs %q, %q and %q must be LSNs", tc.LSN, tc.EndLSN, tc.PrevLSN)
		case prev >= lsn:
			return nil, invalid(field, "previous record %s is not before %s", formatLSN(prev), formatLSN(lsn))
		case lsn < start || lsn >= end:
			return nil, invalid(field, "LSN %s is outside the file (%s to %s)", formatLSN(lsn), formatLSN(start), formatLSN(end))
		case next <= lsn:
			return nil, invalid(field, "end LSN %s is not after %s", formatLSN(next), formatLSN(lsn))
		case tc.Timeline <= 0:
			return nil, invalid(field, "timeline must be positive")
		case tc.OID == 0:
			return nil, invalid(field, "OID must not be 0")
		case strings.ContainsRune(tc.Location, 0) || len(tc.Location) > 1024:
			return nil, invalid(field, "location must be a path of at most 1024 bytes")
		}
		tc.LSN, tc.EndLSN, tc.PrevLSN = formatLSN(lsn), formatLSN(next), formatLSN(prev)
	}
	return out, nil
}

// insertTablespaceCreations records the normalized creations of p; one
// already recorded at the same timeline and LSN is kept as it is.
func insertTablespaceCreations(ctx context.Context, tx *sql.Tx, p WALFileParams, now time.Time) error {
	for _, tc := range p.Tablespaces {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO wal_tablespaces (source_id, timeline, lsn, end_lsn, prev_lsn, oid, location, prev_commit_at, wal_file, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (source_id, timeline, lsn) DO NOTHING`,
			p.SourceID, tc.Timeline, tc.LSN, tc.EndLSN, tc.PrevLSN, int64(tc.OID), tc.Location, nullTimeArg(tc.PrevCommitAt), p.Name, formatTime(now))
		if err != nil {
			return fmt.Errorf("tablespace %d at %s: %w", tc.OID, tc.LSN, err)
		}
	}
	return nil
}

// TablespaceCreations returns the tablespace creations found in the
// archived WAL of source sourceID, by LSN then timeline. An unknown source
// is ErrNotFound.
func (s *Store) TablespaceCreations(ctx context.Context, sourceID int64) ([]TablespaceCreation, error) {
	tcs, err := queryAll(ctx, s.db, func(r rowScanner) (TablespaceCreation, error) {
		var tc TablespaceCreation
		var oid int64
		err := r.Scan(&tc.ID, &tc.SourceID, &tc.Timeline, &tc.LSN, &tc.EndLSN, &tc.PrevLSN, &oid, &tc.Location,
			scanNullTime(&tc.PrevCommitAt), &tc.WALFile, scanTime(&tc.RecordedAt))
		tc.OID = uint32(oid)
		return tc, err
	}, `SELECT id, source_id, timeline, lsn, end_lsn, prev_lsn, oid, location, prev_commit_at, wal_file, recorded_at
		FROM wal_tablespaces WHERE source_id = ?`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("tablespace creations of source %d: %w", sourceID, err)
	}
	if len(tcs) == 0 {
		if err := sourceExists(ctx, s.db, sourceID); err != nil {
			return nil, fmt.Errorf("tablespace creations: %w", err)
		}
	}
	slices.SortFunc(tcs, func(a, b TablespaceCreation) int {
		la, _ := parseLSN(a.LSN)
		lb, _ := parseLSN(b.LSN)
		return cmp.Or(cmp.Compare(la, lb), cmp.Compare(a.Timeline, b.Timeline), cmp.Compare(a.ID, b.ID))
	})
	return tcs, nil
}

// startsPiece reports whether a partial piece of size bytes starting at
// start can be the start of segment segNo for some segment size.
func startsPiece(start, segNo uint64, size int64) bool {
	for segSize := uint64(minWALSegmentSize); segSize <= maxWALSegmentSize; segSize <<= 1 {
		if start%segSize == 0 && start/segSize == segNo && uint64(size) <= segSize {
			return true
		}
	}
	return false
}

// isWALSegmentSize reports whether size is a power of two from 1 MiB to
// 1 GiB.
func isWALSegmentSize(size int64) bool {
	return size >= minWALSegmentSize && size <= maxWALSegmentSize && size&(size-1) == 0
}

// normalizeRestorePoints checks points found in WAL [start, end) and returns
// a copy with canonical LSNs.
func normalizeRestorePoints(points []RestorePointParams, start, end uint64) ([]RestorePointParams, error) {
	out := slices.Clone(points)
	for i := range out {
		rp := &out[i]
		field := fmt.Sprintf("restore_points[%d]", i)
		if rp.Name == "" || len(rp.Name) > maxRestorePointName || strings.ContainsRune(rp.Name, 0) {
			return nil, invalid(field, "name must be 1 to %d bytes", maxRestorePointName)
		}
		lsn, ok := parseLSN(rp.LSN)
		if !ok {
			return nil, invalid(field, "%q is not an LSN", rp.LSN)
		}
		if lsn < start || lsn >= end {
			return nil, invalid(field, "LSN %s is outside the file (%s to %s)", formatLSN(lsn), formatLSN(start), formatLSN(end))
		}
		if rp.At.IsZero() {
			return nil, invalid(field, "time is required")
		}
		rp.LSN = formatLSN(lsn)
	}
	return out, nil
}

// parseLSN parses PostgreSQL's text form of an LSN: two groups of 1 to 8
// hexadecimal digits separated by a slash.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// formatLSN returns lsn as PostgreSQL prints it, such as "0/3A000028".
func formatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}

// segNoArg returns the segno column value: NULL for a history file.
func segNoArg(kind WALKind, segNo int64) any {
	if kind == WALHistory {
		return nil
	}
	return segNo
}

// nullTimeArg returns t as stored, or NULL for the zero time.
func nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// WindowVersion returns a value that changes whenever what source sourceID's restorable
// window is computed from changes (its WAL files, complete backups, restore points and
// tablespace creations: triggers count the changes), so that a computed window can be
// reused until then.
func (s *Store) WindowVersion(ctx context.Context, sourceID int64) (string, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT coalesce((SELECT version FROM window_versions WHERE source_id = ?), 0)`, sourceID).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("window version of source %d: %w", sourceID, err)
	}
	return fmt.Sprint(v), nil
}

// WALCursor is how far a reader of a source's WAL rows got (see WALSince): the newest
// row ID and the newest change it has seen. Its zero value has seen nothing.
type WALCursor struct {
	// ID is the highest WAL row ID given (to any source) when the rows were read: IDs
	// only grow, so a row with a higher one was added since.
	ID int64
	// Seq is the newest entry of the log of changed and deleted rows then.
	Seq int64
	// read is whether the rows were read: the zero cursor has read nothing.
	read bool
}

// WALDelta is what changed in a source's WAL rows since a WALCursor.
type WALDelta struct {
	// Full says Files are all of the source's rows, as WALFiles returns them: the
	// cursor was zero, or so old that the log no longer holds every change since.
	Full bool
	// Files are the rows added or changed since the cursor, in WALFiles' order.
	Files []WALFile
	// Gone are the IDs of rows read up to the cursor that changed or were deleted since:
	// a reader drops these from what it read before, then adds Files (which holds the
	// changed ones).
	Gone []int64
	// Cursor is where the next call continues from.
	Cursor WALCursor
}

// WALSince returns what changed in source sourceID's WAL rows since cursor, read in one
// snapshot: every row when cursor is zero or too old. Keeping a source's rows this way
// costs the rows that changed, not all of them.
func (s *Store) WALSince(ctx context.Context, sourceID int64, cursor WALCursor) (WALDelta, error) {
	fail := func(err error) (WALDelta, error) {
		return WALDelta{}, fmt.Errorf("WAL files of source %d: %w", sourceID, err)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var d WALDelta
	var oldest int64
	// Both tables' IDs come from AUTOINCREMENT: never reused, they only grow.
	if err := tx.QueryRowContext(ctx, `SELECT
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'wal_files'), 0),
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'wal_file_changes'), 0),
		coalesce((SELECT min(seq) FROM wal_file_changes), 0)`).Scan(&d.Cursor.ID, &d.Cursor.Seq, &oldest); err != nil {
		return fail(err)
	}
	// The log is bounded: it holds every change after cursor.Seq when its oldest entry
	// is at most the one right after. A cursor ahead of the catalog is from another one.
	d.Cursor.read = true
	d.Full = !cursor.read || oldest > cursor.Seq+1 ||
		d.Cursor.ID < cursor.ID || d.Cursor.Seq < cursor.Seq
	if d.Full {
		if d.Files, err = queryAll(ctx, tx, scanWALFile, `SELECT `+walFileColumns+` FROM wal_files WHERE source_id = ?
			ORDER BY timeline, segno NULLS FIRST, id`, sourceID); err != nil {
			return fail(err)
		}
		return d, nil
	}
	// Only rows the reader has can be gone: a row added since (recording one also updates
	// it) is in Files if it still exists, and the common case stays an append.
	if d.Gone, err = queryAll(ctx, tx, func(r rowScanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	}, `SELECT DISTINCT wal_file_id FROM wal_file_changes WHERE source_id = ? AND seq > ? AND wal_file_id <= ? ORDER BY wal_file_id`,
		sourceID, cursor.Seq, cursor.ID); err != nil {
		return fail(err)
	}
	// "+source_id" keeps SQLite from walking every row of the source through its index:
	// the rows wanted are found by ID.
	if d.Files, err = queryAll(ctx, tx, scanWALFile, `SELECT `+walFileColumns+` FROM wal_files
		WHERE +source_id = ? AND (id > ? OR id IN (SELECT value FROM json_each(?)))
		ORDER BY timeline, segno NULLS FIRST, id`, sourceID, cursor.ID, jsonList(d.Gone)); err != nil {
		return fail(err)
	}
	return d, nil
}

// Apply returns rows, the source's rows as read up to d's cursor (in WALFiles' order),
// brought up to date with d: d.Files when d is Full. Apply may append to rows' array, so
// a caller applies each delta to the newest rows only, and never to rows being appended
// to elsewhere.
func (d WALDelta) Apply(rows []WALFile) []WALFile {
	if d.Full {
		return d.Files
	}
	if len(d.Gone) == 0 && (len(rows) == 0 || len(d.Files) == 0 || compareWALOrder(rows[len(rows)-1], d.Files[0]) < 0) {
		return append(rows, d.Files...) // the common case: new segments after the newest
	}
	gone := make(map[int64]bool, len(d.Gone))
	for _, id := range d.Gone {
		gone[id] = true
	}
	out := make([]WALFile, 0, len(rows)+len(d.Files))
	for _, f := range rows {
		if !gone[f.ID] {
			out = append(out, f)
		}
	}
	out = append(out, d.Files...)
	slices.SortFunc(out, compareWALOrder)
	return out
}

// compareWALOrder orders WAL rows as WALFiles returns them: by timeline, then segment
// number with history files (no segment) first, then ID.
func compareWALOrder(a, b WALFile) int {
	segment := func(f WALFile) int64 {
		if f.Kind == WALHistory {
			return -1
		}
		return f.SegNo
	}
	return cmp.Or(cmp.Compare(a.Timeline, b.Timeline), cmp.Compare(segment(a), segment(b)), cmp.Compare(a.ID, b.ID))
}
