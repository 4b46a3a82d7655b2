package pg

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// BackupOptions are the options of a base backup.
type BackupOptions struct {
	// Label names the backup in the server's backup_label; "" means
	// "backstop". At most 1024 bytes, no control characters.
	Label string
	// Fast asks for an immediate checkpoint instead of a spread one.
	Fast bool
	// WAL includes the WAL segments from the start to the end of the backup
	// (as pg_wal/<segment> entries), making the backup self-contained.
	WAL bool
	// MaxRate limits the server's transfer rate in kB/s (32 to 1048576);
	// 0 means no limit.
	MaxRate int
}

// Tablespace is a tablespace of the source server.
type Tablespace struct {
	// OID is the tablespace's OID; 0 for the main tablespace (pg_default,
	// which the server sends as base.tar).
	OID uint32
	// Name is the tablespace's name; "" when unknown (BASE_BACKUP does not
	// send it).
	Name string
	// Location is the tablespace's directory on the server; "" for the
	// main tablespace.
	Location string
	// Size is the server's estimate of its size in bytes; -1 if unknown.
	Size int64
}

// BackupStart is what the server reports when a base backup starts.
type BackupStart struct {
	// StartLSN is where WAL replay must begin.
	StartLSN pglogrepl.LSN
	// Timeline is the server's timeline at the start.
	Timeline int32
	// Tablespaces lists the tablespaces the server will send.
	Tablespaces []Tablespace
	// TotalBytes is the sum of the server's size estimates, not counting WAL.
	TotalBytes int64
}

// Handler receives a base backup as it streams. Its methods are called on
// the goroutine that called BaseBackup, in this order: Start once, then
// File for each entry and Progress from time to time, then Manifest once.
type Handler interface {
	// Start is called once the server has started the backup.
	Start(ctx context.Context, start BackupStart) error
	// File is called for each entry: r yields exactly e.Size bytes (none
	// for directories and links) and is valid until File returns; what is
	// not read is skipped.
	File(ctx context.Context, e Entry, r io.Reader) error
	// Progress reports the server's cumulative count of bytes sent, about
	// once a second and at the end of each archive. It can exceed
	// BackupStart.TotalBytes, whose estimate leaves out WAL and growth
	// during the backup. It may be called from within a Read of File's
	// reader, so it must not block or wait on File.
	Progress(ctx context.Context, done int64)
	// Manifest receives the server's backup_manifest, to be stored as is.
	Manifest(ctx context.Context, r io.Reader) error
}

// BackupResult is the outcome of a complete base backup.
type BackupResult struct {
	// StartLSN and EndLSN bound the WAL needed to make the backup consistent.
	StartLSN pglogrepl.LSN
	EndLSN   pglogrepl.LSN
	// Timeline is the timeline at the end of the backup.
	Timeline int32
	// Manifest is the server's backup manifest, parsed; every file it
	// lists arrived with the listed size.
	Manifest ServerManifest
}

// maxLabelLen is the server's limit on backup labels.
const maxLabelLen = 1024

// BaseBackup takes a base backup of the server at dsn over a replication
// connection and streams it to h, in constant memory apart from the backup
// manifest and the list of paths received. Every tablespace is included: the
// files of tablespace OID arrive below pg_tblspc/OID (as a directory, which
// h.File receives first), where the server's backup_manifest lists them, and
// base.tar carries a tablespace_map instead of pg_tblspc symbolic links, so
// that nothing in the backup points at the source's directories. With opts.WAL, a temporary replication slot keeps the server from
// recycling the WAL to include while the backup runs (so the server needs a
// free slot under max_replication_slots). The stream is treated as
// untrusted (see ReadTar) and checked against the server's manifest, and
// with opts.WAL for the presence of every WAL segment from the start to the
// end LSN. Cancelling ctx closes the connection, which aborts the backup on
// the server. The server is told not to wait for WAL archiving (WAIT
// false): Backstop gets WAL by streaming it, or from opts.WAL.
func BaseBackup(ctx context.Context, dsn string, opts BackupOptions, h Handler) (BackupResult, error) {
	query, err := baseBackupQuery(opts)
	if err != nil {
		return BackupResult{}, fmt.Errorf("base backup: %w", err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return BackupResult{}, fmt.Errorf("base backup: invalid connection string: %s", parseCause(err))
	}
	cfg.RuntimeParams["replication"] = "true"
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	// The backup is a stream of ~32 kB messages: read the socket in large chunks rather
	// than pgproto3's default 8 kB, which costs a system call per few kilobytes.
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, 1<<20), w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return BackupResult{}, fmt.Errorf("base backup: %w", ctxErr)
		}
		return BackupResult{}, fmt.Errorf("base backup: connect: %w", err)
	}
	b := &backup{ctx: ctx, conn: conn, h: h, opts: opts, files: make(map[string]int64)}
	res, err := b.run(query)
	if err != nil {
		// Drop the connection without a goodbye: the server may be in the
		// middle of sending, and closing aborts its side of the backup.
		conn.Conn().Close()
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.Close(closeCtx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return BackupResult{}, fmt.Errorf("base backup: %w", ctxErr)
		}
		return BackupResult{}, fmt.Errorf("base backup: %w", err)
	}
	return res, nil
}

func baseBackupQuery(opts BackupOptions) (string, error) {
	label := opts.Label
	if label == "" {
		label = "backstop"
	}
	if len(label) > maxLabelLen {
		return "", fmt.Errorf("label longer than %d bytes", maxLabelLen)
	}
	for _, r := range label {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("label %q holds a control character", label)
		}
	}
	if opts.MaxRate != 0 && (opts.MaxRate < 32 || opts.MaxRate > 1048576) {
		return "", fmt.Errorf("max rate %d kB/s out of range (32 to 1048576, or 0 for no limit)", opts.MaxRate)
	}
	parts := []string{
		"LABEL '" + strings.ReplaceAll(label, "'", "''") + "'",
		"PROGRESS",
		"WAIT false",
		"MANIFEST 'yes'",
		// A tablespace_map file rather than pg_tblspc/OID links to the
		// source's paths: a restore decides where tablespaces go.
		"TABLESPACE_MAP",
	}
	if opts.Fast {
		parts = append(parts, "CHECKPOINT 'fast'")
	} else {
		parts = append(parts, "CHECKPOINT 'spread'")
	}
	if opts.WAL {
		parts = append(parts, "WAL")
	}
	if opts.MaxRate != 0 {
		parts = append(parts, "MAX_RATE "+strconv.Itoa(opts.MaxRate))
	}
	return "BASE_BACKUP (" + strings.Join(parts, ", ") + ")", nil
}

// backup is one running base backup.
type backup struct {
	ctx  context.Context
	conn *pgconn.PgConn
	h    Handler
	opts BackupOptions

	// files maps each file received to its size.
	files map[string]int64
}

func (b *backup) run(query string) (BackupResult, error) {
	var segSize int64
	if b.opts.WAL {
		var err error
		if segSize, err = b.walSegmentSize(); err != nil {
			return BackupResult{}, err
		}
		if err := b.reserveWAL(); err != nil {
			return BackupResult{}, err
		}
	}

	b.conn.Frontend().SendQuery(&pgproto3.Query{String: query})
	if err := b.conn.Frontend().Flush(); err != nil {
		return BackupResult{}, fmt.Errorf("send BASE_BACKUP: %w", err)
	}

	startRows, err := b.resultSet("start position", 2)
	if err != nil {
		return BackupResult{}, err
	}
	startLSN, startTLI, err := parsePosition(startRows)
	if err != nil {
		return BackupResult{}, fmt.Errorf("start position: %w", err)
	}
	tsRows, err := b.resultSet("tablespace list", 3)
	if err != nil {
		return BackupResult{}, err
	}
	start := BackupStart{StartLSN: startLSN, Timeline: startTLI}
	locations := make(map[uint32]string) // the tablespaces besides the main one
	for _, row := range tsRows {
		ts, err := parseTablespace(row)
		if err != nil {
			return BackupResult{}, fmt.Errorf("tablespace list: %w", err)
		}
		if ts.OID != 0 {
			if _, dup := locations[ts.OID]; dup {
				return BackupResult{}, fmt.Errorf("tablespace list: protocol: tablespace %d listed twice", ts.OID)
			}
			locations[ts.OID] = ts.Location
		}
		start.Tablespaces = append(start.Tablespaces, ts)
		if ts.Size > 0 {
			start.TotalBytes += ts.Size
		}
	}
	if len(start.Tablespaces) == len(locations) {
		return BackupResult{}, errors.New("tablespace list: the server listed no main tablespace")
	}
	if err := b.copyOutResponse(); err != nil {
		return BackupResult{}, err
	}
	if err := b.h.Start(b.ctx, start); err != nil {
		return BackupResult{}, err
	}

	s := &copyStream{ctx: b.ctx, conn: b.conn, progress: func(n int64) { b.h.Progress(b.ctx, n) }}
	var manifest *ServerManifest
	archives := make(map[string]bool)
	for {
		ev, err := s.nextSection()
		if err != nil {
			return BackupResult{}, err
		}
		if ev.kind == sectionEnd {
			break
		}
		if manifest != nil {
			return BackupResult{}, errors.New("protocol: data after the backup manifest")
		}
		if ev.kind == sectionManifest {
			m, err := b.manifest(s)
			if err != nil {
				return BackupResult{}, err
			}
			manifest = &m
			continue
		}
		prefix, oid, err := archivePrefix(ev.name, ev.location, locations)
		if err != nil {
			return BackupResult{}, err
		}
		if archives[ev.name] {
			return BackupResult{}, fmt.Errorf("protocol: archive %q sent twice", ev.name)
		}
		archives[ev.name] = true
		fn := b.entry
		if oid != 0 {
			if fn, err = b.tablespace(oid); err != nil {
				return BackupResult{}, fmt.Errorf("archive %s: %w", ev.name, err)
			}
		}
		if err := ReadTar(s, prefix, fn); err != nil {
			return BackupResult{}, fmt.Errorf("archive %s: %w", ev.name, err)
		}
	}
	if !archives["base.tar"] {
		return BackupResult{}, errors.New("protocol: the server sent no base.tar")
	}
	for oid, loc := range locations {
		if !archives[tablespaceArchive(oid)] {
			return BackupResult{}, fmt.Errorf("protocol: the server sent no archive for tablespace %d at %s", oid, loc)
		}
	}
	if manifest == nil {
		return BackupResult{}, errors.New("protocol: the server sent no backup manifest")
	}

	endRows, err := b.resultSet("end position", 2)
	if err != nil {
		return BackupResult{}, err
	}
	endLSN, endTLI, err := parsePosition(endRows)
	if err != nil {
		return BackupResult{}, fmt.Errorf("end position: %w", err)
	}
	if err := b.commandEnd(); err != nil {
		return BackupResult{}, err
	}

	res := BackupResult{StartLSN: startLSN, EndLSN: endLSN, Timeline: endTLI, Manifest: *manifest}
	if err := checkAgainstManifest(res, b.files); err != nil {
		return BackupResult{}, err
	}
	if b.opts.WAL && startTLI == endTLI {
		if err := checkWALSegments(b.files, startTLI, startLSN, endLSN, segSize); err != nil {
			return BackupResult{}, err
		}
	}
	return res, nil
}

// entry checks one tar entry against what the server announced and hands
// it to the handler.
func (b *backup) entry(e Entry, r io.Reader) error {
	if e.Type == Symlink {
		return fmt.Errorf("tablespace link %s -> %s: the server announced no such tablespace", e.Path, e.LinkTarget)
	}
	if _, dup := b.files[e.Path]; dup {
		return fmt.Errorf("protocol: %s sent twice", e.Path)
	}
	if err := b.h.File(b.ctx, e, r); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	if e.Type == File {
		b.files[e.Path] = e.Size
	}
	return nil
}

// manifest hands the manifest to the handler while keeping a copy to parse.
func (b *backup) manifest(s *copyStream) (ServerManifest, error) {
	var buf bytes.Buffer
	tee := io.TeeReader(io.LimitReader(s, maxManifestSize+1), &buf)
	if err := b.h.Manifest(b.ctx, tee); err != nil {
		return ServerManifest{}, fmt.Errorf("backup manifest: %w", err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return ServerManifest{}, fmt.Errorf("backup manifest: %w", err)
	}
	m, err := ParseServerManifest(&buf)
	if err != nil {
		return ServerManifest{}, err
	}
	return m, nil
}

// tablespace announces the directory of tablespace oid to the handler and
// returns the function that checks the entries of its archive: each lies
// below the server's version directory (PG_15_202209061), as the server
// writes nothing else into a tablespace.
func (b *backup) tablespace(oid uint32) (func(Entry, io.Reader) error, error) {
	dir := "pg_tblspc/" + strconv.FormatUint(uint64(oid), 10)
	if err := b.entry(Entry{Path: dir, Type: Dir, Mode: 0o700, ModTime: time.Now()}, strings.NewReader("")); err != nil {
		return nil, err
	}
	return func(e Entry, r io.Reader) error {
		rest := strings.TrimPrefix(e.Path, dir+"/")
		top, _, _ := strings.Cut(rest, "/")
		if rest == e.Path || !strings.HasPrefix(top, "PG_") {
			return fmt.Errorf("tablespace %d: %s is outside the server's version directory (PG_<version>_<catalog version>)", oid, e.Path)
		}
		return b.entry(e, r)
	}, nil
}

// tablespaceArchive is the name of tablespace oid's archive in the stream.
func tablespaceArchive(oid uint32) string { return strconv.FormatUint(uint64(oid), 10) + ".tar" }

// archivePrefix maps an archive sent by the server to the directory its
// entries belong in, and the tablespace it holds (0 for the main one). A
// tablespace's archive is "<oid>.tar" with the location announced for it.
func archivePrefix(name, location string, locations map[uint32]string) (string, uint32, error) {
	switch {
	case name == "base.tar" && location == "":
		return "", 0, nil
	case name == "pg_wal.tar" && location == "":
		return "pg_wal/", 0, nil
	}
	for oid, loc := range locations {
		if name == tablespaceArchive(oid) && location == loc {
			return "pg_tblspc/" + strconv.FormatUint(uint64(oid), 10) + "/", oid, nil
		}
	}
	return "", 0, fmt.Errorf("protocol: unexpected archive %q (tablespace location %q)", name, location)
}

// checkAgainstManifest checks that every file the manifest lists arrived
// with its size, that every file that arrived is listed (WAL files, which
// manifests leave out, excepted), and that the WAL range matches.
func checkAgainstManifest(res BackupResult, files map[string]int64) error {
	m := res.Manifest
	listed := make(map[string]bool, len(m.Files))
	var missing []string
	for _, f := range m.Files {
		listed[f.Path] = true
		size, ok := files[f.Path]
		switch {
		case !ok:
			missing = append(missing, f.Path)
		case size != f.Size:
			return fmt.Errorf("check manifest: %s arrived with %d bytes, the manifest says %d", f.Path, size, f.Size)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check manifest: %d file(s) listed in the manifest never arrived, such as %s", len(missing), missing[0])
	}
	for p := range files {
		if !listed[p] && path.Dir(p) != "pg_wal" {
			return fmt.Errorf("check manifest: %s arrived but is not in the manifest", p)
		}
	}
	first, last := m.WALRanges[0], m.WALRanges[len(m.WALRanges)-1]
	if first.StartLSN != res.StartLSN || last.EndLSN != res.EndLSN || last.Timeline != res.Timeline {
		return fmt.Errorf("check manifest: WAL range %s-%s on timeline %d, but the backup ran from %s to %s ending on timeline %d",
			first.StartLSN, last.EndLSN, last.Timeline, res.StartLSN, res.EndLSN, res.Timeline)
	}
	return nil
}

// checkWALSegments checks that the segments holding start to end arrived
// whole.
func checkWALSegments(files map[string]int64, tli int32, start, end pglogrepl.LSN, segSize int64) error {
	if end <= start {
		return fmt.Errorf("check WAL: end %s not after start %s", end, start)
	}
	first, last := uint64(start)/uint64(segSize), (uint64(end)-1)/uint64(segSize)
	for seg := first; seg <= last; seg++ {
		name := "pg_wal/" + walFileName(tli, seg, segSize)
		size, ok := files[name]
		if !ok {
			return fmt.Errorf("check WAL: segment %s, needed from %s to %s, never arrived", name, start, end)
		}
		if size != segSize {
			return fmt.Errorf("check WAL: segment %s has %d bytes, want %d", name, size, segSize)
		}
	}
	return nil
}

// walFileName returns the name of WAL segment number seg on timeline tli,
// for segments of segSize bytes.
func walFileName(tli int32, seg uint64, segSize int64) string {
	perID := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", uint32(tli), uint32(seg/perID), uint32(seg%perID))
}

// reserveWAL creates a temporary physical replication slot that keeps the
// server from removing the WAL the backup will include before it is sent:
// checkpoints during a long backup would otherwise recycle it, and the
// backup would fail with "requested WAL segment ... has already been
// removed". The slot lives as long as the connection.
func (b *backup) reserveWAL() error {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("reserve WAL: %w", err)
	}
	slot := "backstop_backup_" + hex.EncodeToString(id[:])
	_, err := b.conn.Exec(b.ctx, "CREATE_REPLICATION_SLOT "+slot+" TEMPORARY PHYSICAL (RESERVE_WAL true)").ReadAll()
	if err != nil {
		return fmt.Errorf("reserve WAL: temporary replication slot (is max_replication_slots too low?): %w", err)
	}
	return nil
}

// walSegmentSize asks the server for its WAL segment size.
func (b *backup) walSegmentSize() (int64, error) {
	results, err := b.conn.Exec(b.ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_segment_size: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return 0, errors.New("show wal_segment_size: unexpected result")
	}
	size, err := parseSize(string(results[0].Rows[0][0]))
	if err != nil || size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return 0, fmt.Errorf("show wal_segment_size: unexpected value %q", results[0].Rows[0][0])
	}
	return size, nil
}

// parseSize parses a size as SHOW prints it: "16MB", "1GB", "8192".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

// resultSet reads one result set of the BASE_BACKUP command, up to its
// CommandComplete, and returns its rows (copied).
func (b *backup) resultSet(what string, columns int) ([][][]byte, error) {
	var rows [][][]byte
	described := false
	for {
		msg, err := b.conn.ReceiveMessage(b.ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.RowDescription:
			if len(msg.Fields) != columns {
				return nil, fmt.Errorf("%s: protocol: %d columns, want %d", what, len(msg.Fields), columns)
			}
			described = true
		case *pgproto3.DataRow:
			if !described || len(msg.Values) != columns {
				return nil, fmt.Errorf("%s: protocol: unexpected data row", what)
			}
			row := make([][]byte, len(msg.Values))
			for i, v := range msg.Values {
				if v != nil {
					row[i] = bytes.Clone(v)
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			if !described {
				return nil, fmt.Errorf("%s: protocol: result without columns", what)
			}
			return rows, nil
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("%s: %w", what, pgconn.ErrorResponseToPgError(msg))
		default:
			return nil, fmt.Errorf("%s: protocol: unexpected %T", what, msg)
		}
	}
}

// copyOutResponse waits for the start of the COPY stream.
func (b *backup) copyOutResponse() error {
	for {
		msg, err := b.conn.ReceiveMessage(b.ctx)
		if err != nil {
			return fmt.Errorf("start of copy: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyOutResponse:
			return nil
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("start of copy: %w", pgconn.ErrorResponseToPgError(msg))
		default:
			return fmt.Errorf("start of copy: protocol: unexpected %T", msg)
		}
	}
}

// commandEnd reads the end of the command: CommandComplete, ReadyForQuery.
func (b *backup) commandEnd() error {
	completed := false
	for {
		msg, err := b.conn.ReceiveMessage(b.ctx)
		if err != nil {
			return fmt.Errorf("end of command: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CommandComplete:
			completed = true
		case *pgproto3.ReadyForQuery:
			if !completed {
				return errors.New("end of command: protocol: ready for query before command complete")
			}
			return nil
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("end of command: %w", pgconn.ErrorResponseToPgError(msg))
		default:
			return fmt.Errorf("end of command: protocol: unexpected %T", msg)
		}
	}
}

func parsePosition(rows [][][]byte) (pglogrepl.LSN, int32, error) {
	if len(rows) != 1 || rows[0][0] == nil || rows[0][1] == nil {
		return 0, 0, errors.New("protocol: want one row with an LSN and a timeline")
	}
	lsn, err := pglogrepl.ParseLSN(string(rows[0][0]))
	if err != nil {
		return 0, 0, fmt.Errorf("protocol: %w", err)
	}
	tli, err := strconv.ParseInt(string(rows[0][1]), 10, 32)
	if err != nil || tli <= 0 {
		return 0, 0, fmt.Errorf("protocol: invalid timeline %q", rows[0][1])
	}
	return lsn, int32(tli), nil
}

func parseTablespace(row [][]byte) (Tablespace, error) {
	ts := Tablespace{Size: -1}
	if row[0] != nil {
		oid, err := strconv.ParseUint(string(row[0]), 10, 32)
		if err != nil || oid == 0 {
			return Tablespace{}, fmt.Errorf("protocol: invalid tablespace OID %q", row[0])
		}
		ts.OID = uint32(oid)
	}
	if row[1] != nil {
		ts.Location = string(row[1])
	}
	if (ts.OID == 0) != (ts.Location == "") {
		return Tablespace{}, fmt.Errorf("protocol: tablespace %d with location %q", ts.OID, ts.Location)
	}
	if ts.OID != 0 && (len(ts.Location) > maxPathLen || strings.IndexByte(ts.Location, 0) >= 0) {
		return Tablespace{}, fmt.Errorf("protocol: tablespace %d: invalid location %q", ts.OID, ts.Location)
	}
	if row[2] != nil {
		kb, err := strconv.ParseInt(string(row[2]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<50 {
			return Tablespace{}, fmt.Errorf("protocol: invalid tablespace size %q", row[2])
		}
		ts.Size = kb * 1024
	}
	return ts, nil
}

// The kinds of sections of the COPY stream.
const (
	sectionArchive = iota + 1
	sectionManifest
	sectionEnd
)

// section is the start of a part of the COPY stream: a new archive, the
// manifest, or the end of the stream.
type section struct {
	kind           int
	name, location string
}

// copyStream reads the data of the current section of the BASE_BACKUP COPY
// stream, one CopyData message at a time, straight from the connection:
// the data of a message is used before the next one is received, as the
// connection reuses its buffer.
type copyStream struct {
	ctx      context.Context
	conn     *pgconn.PgConn
	progress func(done int64)

	data      []byte   // unread data of the current message
	next      *section // the section that ends the current one, once seen
	inSection bool
	ended     bool
}

// Read reads the current section's data; it returns io.EOF at its end.
func (s *copyStream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(s.data) == 0 {
		if s.next != nil || !s.inSection {
			return 0, io.EOF
		}
		if err := s.receive(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// nextSection skips what is left of the current section, which may only be
// zero bytes (the padding at the end of a tar archive), and returns the
// next section.
func (s *copyStream) nextSection() (section, error) {
	for s.next == nil {
		if s.ended {
			return section{}, errors.New("protocol: read past the end of the copy stream")
		}
		for _, c := range s.data {
			if c != 0 {
				return section{}, errors.New("protocol: data after the end of the archive")
			}
		}
		s.data = nil
		if err := s.receive(); err != nil {
			return section{}, err
		}
	}
	sec := *s.next
	s.next, s.data = nil, nil
	s.inSection = sec.kind != sectionEnd
	s.ended = sec.kind == sectionEnd
	return sec, nil
}

// receive reads one message of the COPY stream.
func (s *copyStream) receive() error {
	msg, err := s.conn.ReceiveMessage(s.ctx)
	if err != nil {
		if ctxErr := s.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("receive: %w", err)
	}
	switch msg := msg.(type) {
	case *pgproto3.CopyData:
		return s.copyData(msg.Data)
	case *pgproto3.CopyDone:
		s.next = &section{kind: sectionEnd}
		return nil
	case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		return nil
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("server: %w", pgconn.ErrorResponseToPgError(msg))
	default:
		return fmt.Errorf("protocol: unexpected %T in the copy stream", msg)
	}
}

func (s *copyStream) copyData(d []byte) error {
	if len(d) == 0 {
		return errors.New("protocol: empty copy data message")
	}
	switch d[0] {
	case 'd':
		if !s.inSection || s.next != nil {
			return errors.New("protocol: data outside an archive")
		}
		s.data = d[1:]
	case 'p':
		if len(d) != 9 {
			return errors.New("protocol: malformed progress message")
		}
		done := int64(binary.BigEndian.Uint64(d[1:]))
		if done >= 0 && s.progress != nil {
			s.progress(done)
		}
	case 'n':
		fields := bytes.Split(d[1:], []byte{0})
		if len(fields) != 3 || len(fields[2]) != 0 {
			return errors.New("protocol: malformed new-archive message")
		}
		s.next = &section{kind: sectionArchive, name: string(fields[0]), location: string(fields[1])}
	case 'm':
		if len(d) != 1 {
			return errors.New("protocol: malformed manifest message")
		}
		s.next = &section{kind: sectionManifest}
	default:
		return fmt.Errorf("protocol: unknown copy data message type %q", d[0])
	}
	return nil
}
