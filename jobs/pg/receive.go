package pg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/backstop/backstop/store/pgwal"
)

// slotNamePattern is the server's rule for replication slot names (lower-case
// letters, digits and underscores, at most 63 bytes): such names need no
// quoting in replication commands.
var slotNamePattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ErrSlotNotFound is returned (wrapped) when a replication slot does not
// exist.
var ErrSlotNotFound = errors.New("replication slot not found")

func checkSlotName(name string) error {
	if !slotNamePattern.MatchString(name) {
		return fmt.Errorf("invalid replication slot name %q: want 1 to 63 lower-case letters, digits and underscores", name)
	}
	return nil
}

// connectReplication opens a physical replication connection to dsn. It
// returns the buffered reader under the connection's frontend, which tells
// whether more of the server's messages are already at hand.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, *bufio.Reader, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid connection string: %s", parseCause(err))
	}
	cfg.RuntimeParams["replication"] = "true"
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "backstop"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	var br *bufio.Reader
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		br = bufio.NewReaderSize(r, 1<<20)
		return pgproto3.NewFrontend(br, w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, nil, ctxErr
		}
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	return conn, br, nil
}

// CreatePhysicalSlot creates the physical replication slot name on the
// server at dsn, reserving WAL from now on, and returns the LSN it holds
// WAL from. It is idempotent: if the slot exists, created is false and
// restartLSN is the existing slot's (0 if it has reserved no WAL yet); a
// logical slot of that name is an error. Names are 1 to 63 lower-case
// letters, digits and underscores.
func CreatePhysicalSlot(ctx context.Context, dsn, name string) (created bool, restartLSN pglogrepl.LSN, err error) {
	if err := checkSlotName(name); err != nil {
		return false, 0, fmt.Errorf("create slot: %w", err)
	}
	conn, _, err := connectReplication(ctx, dsn)
	if err != nil {
		return false, 0, fmt.Errorf("create slot %s: %w", name, err)
	}
	defer closeConn(conn)
	// The reply's consistent_point is the slot's confirmed_flush_lsn,
	// which physical slots do not use (0/0): READ_REPLICATION_SLOT tells
	// the restart_lsn.
	_, err = conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+name+" PHYSICAL (RESERVE_WAL true)").ReadAll()
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		created = true
	case errors.As(err, &pgErr) && pgErr.Code == "42710": // duplicate_object
	case ctx.Err() != nil:
		return false, 0, fmt.Errorf("create slot %s: %w", name, ctx.Err())
	default:
		return false, 0, fmt.Errorf("create slot %s: %w", name, err)
	}
	pos, err := readSlot(ctx, conn, name)
	if err != nil {
		return false, 0, fmt.Errorf("create slot %s: %w", name, err)
	}
	return created, pos.restartLSN, nil
}

// DropSlot drops the replication slot name on the server at dsn. A slot
// that does not exist is not an error; a slot in use (by a running
// ReceiveWAL) is.
func DropSlot(ctx context.Context, dsn, name string) error {
	if err := checkSlotName(name); err != nil {
		return fmt.Errorf("drop slot: %w", err)
	}
	conn, _, err := connectReplication(ctx, dsn)
	if err != nil {
		return fmt.Errorf("drop slot %s: %w", name, err)
	}
	defer closeConn(conn)
	_, err = conn.Exec(ctx, "DROP_REPLICATION_SLOT "+name).ReadAll()
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "42704": // undefined_object
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("drop slot %s: %w", name, ctx.Err())
	default:
		return fmt.Errorf("drop slot %s: %w", name, err)
	}
}

// readSlot reads a physical slot's position with READ_REPLICATION_SLOT
// (PostgreSQL 15+).
func readSlot(ctx context.Context, conn *pgconn.PgConn, name string) (slotPosition, error) {
	results, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return slotPosition{}, fmt.Errorf("read replication slot: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 3 {
		return slotPosition{}, errors.New("read replication slot: protocol: want one row of 3 columns")
	}
	row := results[0].Rows[0]
	switch {
	case row[0] == nil:
		return slotPosition{}, fmt.Errorf("%w: %s (create it with CreatePhysicalSlot)", ErrSlotNotFound, name)
	case string(row[0]) != "physical":
		return slotPosition{}, fmt.Errorf("replication slot %s is a %s slot, not a physical one", name, row[0])
	}
	var pos slotPosition
	if row[1] != nil {
		lsn, err := pglogrepl.ParseLSN(string(row[1]))
		if err != nil {
			return slotPosition{}, fmt.Errorf("read replication slot: protocol: %w", err)
		}
		pos.restartLSN = lsn
	}
	if row[2] != nil {
		tli, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err != nil || tli == 0 {
			return slotPosition{}, fmt.Errorf("read replication slot: protocol: invalid timeline %q", row[2])
		}
		pos.restartTLI = uint32(tli)
	}
	return pos, nil
}

// ReceiveOptions are the options of ReceiveWAL.
type ReceiveOptions struct {
	// Slot is the physical replication slot to stream from; it must exist
	// (see CreatePhysicalSlot).
	Slot string
	// Dir is the spool directory (created if missing): completed segments
	// are stored as NAME, the segment being received as NAME.partial (the
	// bytes received so far, not padded), and timeline history files as
	// NNNNNNNN.history. Only one ReceiveWAL may use a spool at a time.
	Dir string
	// StatusInterval is how often the server is told the positions written
	// and flushed when nothing else prompts it (default 1s). The server
	// is also told after every fsync, and whenever it asks.
	StatusInterval time.Duration
	// OnSegment is called, on ReceiveWAL's goroutine, with the name of
	// each file of Dir that is complete and durable (fsynced, renamed, the
	// directory fsynced): a segment, the history file of a timeline, or
	// NAME.partial for the last segment of a timeline that ended inside
	// it, which will never grow. The caller stores the file and then
	// removes it from Dir. When ReceiveWAL starts it calls OnSegment for
	// every such file left in Dir, so a file can be handed over more than
	// once (storing it again must be harmless). OnSegment should return
	// quickly (hand the file to an uploader, say): the stream waits for
	// it. An error stops ReceiveWAL. May be nil.
	OnSegment func(ctx context.Context, name string) error
	// OnFlush is called, on ReceiveWAL's goroutine, with the position up
	// to which WAL is durable in Dir, when streaming starts and after each
	// fsync that moves it forward: it never decreases. The server is told
	// of a flush only after OnFlush returns. It must not block. May be
	// nil.
	OnFlush func(flushLSN pglogrepl.LSN)
	// OnServerWALEnd is called, on ReceiveWAL's goroutine, with the end of
	// the server's WAL as each message reports it, so that the caller can
	// tell how far behind it is. It must not block. May be nil.
	OnServerWALEnd func(lsn pglogrepl.LSN)
}

// Tuning of the receiver.
const (
	// defaultStatusInterval is ReceiveOptions.StatusInterval's default.
	defaultStatusInterval = time.Second
	// syncBatch bounds how much WAL is written between two fsyncs while
	// the server keeps sending.
	syncBatch = 256 << 10
	// maxSyncDelay bounds how long received WAL waits for its fsync while
	// the rest of a message is awaited.
	maxSyncDelay = 10 * time.Millisecond
	// pingAfter is how long the server may stay silent before status
	// updates ask it for a reply: a server that has nothing to send and
	// hears from us regularly sends nothing.
	pingAfter = 10 * time.Second
	// silenceLimit is how long the server may stay silent (despite being
	// asked for replies) before the connection is considered dead.
	silenceLimit = 60 * time.Second
)

// ReceiveWAL streams WAL from the physical replication slot opts.Slot of
// the server at dsn into the spool opts.Dir, as pg_receivewal
// --synchronous does, until ctx is cancelled or an error occurs; the
// caller restarts it (with a backoff) after an error. It never tells the
// server that WAL is flushed before it is fsynced in the spool.
//
// It resumes from the spool: after its newest complete segment, or in its
// partial segment from the point the slot last confirmed (receiving the
// rest of the file again, as it may not have been fsynced before a
// crash). With an empty spool, or one whose newest file is on an older
// timeline than the slot's confirmed position, it starts at the beginning
// of the segment that holds the slot's restart_lsn. A spool it does not
// understand (unknown files, two partial segments on a timeline, sizes
// that do not fit, segments of another cluster) is an error naming the
// file.
//
// When the server's timeline ends (the server was a standby that got
// promoted, or follows a new timeline), ReceiveWAL keeps the ended
// timeline's last segment as NAME.partial, fetches the new timeline's
// history file, and goes on streaming the new timeline from the start of
// the segment where it begins.
//
// When ctx is cancelled, it fsyncs what it has received, tells the server,
// closes the connection and returns ctx's error.
func ReceiveWAL(ctx context.Context, dsn string, opts ReceiveOptions) error {
	if err := receiveWAL(ctx, dsn, opts); err != nil {
		return fmt.Errorf("receive WAL: %w", err)
	}
	return nil
}

func receiveWAL(ctx context.Context, dsn string, opts ReceiveOptions) error {
	if err := checkSlotName(opts.Slot); err != nil {
		return err
	}
	if opts.Dir == "" {
		return errors.New("no spool directory given")
	}
	if opts.StatusInterval < 0 {
		return fmt.Errorf("negative status interval %s", opts.StatusInterval)
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = defaultStatusInterval
	}

	conn, br, err := connectReplication(ctx, dsn)
	if err != nil {
		return err
	}
	r := &receiver{ctx: ctx, conn: conn, br: br, opts: opts}
	defer r.close()
	if err := r.setup(); err != nil {
		return r.fail(err)
	}
	for {
		next, err := r.stream()
		if err != nil {
			return r.fail(err)
		}
		if err := r.switchTimeline(next); err != nil {
			return r.fail(err)
		}
	}
}

// receiver is one run of ReceiveWAL.
type receiver struct {
	ctx  context.Context
	conn *pgconn.PgConn
	br   *bufio.Reader
	opts ReceiveOptions

	sp      *spool
	segSize int64

	// tli is the timeline being received.
	tli uint32
	// written is the end of what is written to the spool, synced of what
	// is fsynced: written >= synced.
	written, synced pglogrepl.LSN
	// flushed is the highest position reported to OnFlush.
	flushed pglogrepl.LSN
	// file is the current segment's .partial file, nil at a segment
	// boundary; fileSeg is its segment number.
	file    *os.File
	fileSeg uint64
	// unsyncedSince is when written last moved past synced.
	unsyncedSince time.Time
	// lastStatus is when the server was last told our positions,
	// lastReceived when the server last sent something (or when we started
	// listening again after OnSegment: time spent away is not silence).
	lastStatus, lastReceived time.Time
	// streaming is set while the connection is in copy mode.
	streaming bool
	// cutTail is set while the resumed partial segment holds more than
	// r.written: WAL not confirmed before, to be received again.
	cutTail bool
}

// timelineSwitch is where the server's next timeline begins.
type timelineSwitch struct {
	tli uint32
	lsn pglogrepl.LSN
}

// setup reads the server's identity and the spool, and prepares the spool
// for streaming from the resume point.
func (r *receiver) setup() error {
	segSize, err := showWALSegmentSize(r.ctx, r.conn)
	if err != nil {
		return err
	}
	r.segSize = segSize
	ident, err := pglogrepl.IdentifySystem(r.ctx, r.conn)
	if err != nil {
		return fmt.Errorf("identify system: %w", err)
	}
	sysID, err := strconv.ParseUint(ident.SystemID, 10, 64)
	if err != nil || ident.Timeline <= 0 {
		return fmt.Errorf("identify system: protocol: system identifier %q, timeline %d", ident.SystemID, ident.Timeline)
	}
	serverTLI := uint32(ident.Timeline)

	sp, st, err := openSpool(r.opts.Dir, segSize)
	if err != nil {
		return err
	}
	r.sp = sp
	slot, err := readSlot(r.ctx, r.conn, r.opts.Slot)
	if err != nil {
		return err
	}
	start := chooseStart(st, slot, serverTLI, ident.XLogPos, segSize)
	for i, seg := range st.segments {
		trusted := seg.size
		if start.resume && i == len(st.segments)-1 {
			// What lies past the start point is received again.
			trusted = min(seg.size, int64(start.lsn-pgwal.SegmentStart(seg.segNo, segSize)))
		}
		if err := sp.checkHeader(seg, trusted, sysID); err != nil {
			return err
		}
	}
	if start.tli > serverTLI {
		return fmt.Errorf("spool %s: its newest WAL is on timeline %d, but the server is on timeline %d: the spool does not belong to this server's history",
			sp.dir, start.tli, serverTLI)
	}
	r.tli, r.written, r.synced = start.tli, start.lsn, start.lsn

	if start.resume {
		if err := r.resumePartial(*st.newest()); err != nil {
			return err
		}
	}
	for _, name := range st.finished(start.resume) {
		if err := r.handOver(name); err != nil {
			return err
		}
	}
	r.reportFlush()
	if r.tli > 1 {
		if err := r.fetchHistory(r.tli, nil); err != nil {
			return err
		}
	}
	// The resumed partial segment may have been whole already.
	if r.file != nil && r.written == pgwal.SegmentStart(r.fileSeg+1, segSize) {
		return r.completeSegment()
	}
	return nil
}

// resumePartial opens the spool's partial segment to go on writing it at
// r.written. What the file holds beyond r.written is cut off only when the
// server sends it again: until then it may be the only copy.
func (r *receiver) resumePartial(seg spoolSegment) error {
	f, err := os.OpenFile(r.sp.path(seg.name), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %s: %w", seg.name, err)
	}
	r.file, r.fileSeg = f, seg.segNo
	r.cutTail = int64(r.written-pgwal.SegmentStart(seg.segNo, r.segSize)) < seg.size
	return nil
}

// cutUnconfirmedTail truncates the resumed partial segment at r.written.
func (r *receiver) cutUnconfirmedTail() error {
	if !r.cutTail {
		return nil
	}
	if err := r.file.Truncate(pgwal.SegmentOffset(r.written, r.segSize)); err != nil {
		return fmt.Errorf("spool: %s: %w", r.partialName(), err)
	}
	r.cutTail = false
	return nil
}

// stream streams the current timeline from r.written until the timeline
// ends, and returns where the next one begins.
func (r *receiver) stream() (timelineSwitch, error) {
	err := pglogrepl.StartReplication(r.ctx, r.conn, r.opts.Slot, r.written,
		pglogrepl.StartReplicationOptions{Timeline: int32(r.tli), Mode: pglogrepl.PhysicalReplication})
	if err != nil {
		if tli, lsn, ok := pglogrepl.IsErrEndTimeline(err); ok {
			// The timeline ended exactly where we start.
			return r.checkSwitch(uint64(tli), lsn)
		}
		return timelineSwitch{}, fmt.Errorf("start replication on timeline %d at %s: %w", r.tli, r.written, err)
	}
	r.streaming = true
	now := time.Now()
	r.lastStatus, r.lastReceived = now, now
	for {
		if r.written > r.synced &&
			(r.written-r.synced >= syncBatch || time.Since(r.unsyncedSince) >= maxSyncDelay || !r.moreAtHand()) {
			if err := r.sync(); err != nil {
				return timelineSwitch{}, err
			}
		}
		now := time.Now()
		if now.Sub(r.lastStatus) >= r.opts.StatusInterval {
			if err := r.sendStatus(now.Sub(r.lastReceived) >= pingAfter); err != nil {
				return timelineSwitch{}, err
			}
		}
		if silent := now.Sub(r.lastReceived); silent >= silenceLimit {
			return timelineSwitch{}, fmt.Errorf("no message from the server for %s", silent.Round(time.Second))
		}

		deadline := r.lastStatus.Add(r.opts.StatusInterval)
		if r.written > r.synced {
			deadline = earliest(deadline, r.unsyncedSince.Add(maxSyncDelay))
		}
		deadline = earliest(deadline, r.lastReceived.Add(silenceLimit))
		msg, err := r.receive(deadline)
		if err != nil {
			if errors.Is(err, errReceiveTimeout) {
				continue
			}
			return timelineSwitch{}, err
		}
		r.lastReceived = time.Now()
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(msg.Data); err != nil {
				return timelineSwitch{}, err
			}
		case *pgproto3.CopyDone:
			return r.endOfTimeline()
		case *pgproto3.CommandComplete:
			// What a server that shuts down sends, once we have
			// confirmed the flush of all it sent.
			if err := r.sync(); err != nil {
				return timelineSwitch{}, err
			}
			return timelineSwitch{}, fmt.Errorf("the server ended streaming at %s (%s): is it shutting down?", r.written, msg.CommandTag)
		case *pgproto3.ErrorResponse:
			return timelineSwitch{}, fmt.Errorf("server: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return timelineSwitch{}, fmt.Errorf("protocol: unexpected %T while streaming", msg)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// errReceiveTimeout is returned by receive when the deadline passes first.
var errReceiveTimeout = errors.New("receive timeout")

// receive reads the next message, waiting until deadline at most.
func (r *receiver) receive(deadline time.Time) (pgproto3.BackendMessage, error) {
	ctx, cancel := context.WithDeadline(r.ctx, deadline)
	defer cancel()
	msg, err := r.conn.ReceiveMessage(ctx)
	if err == nil {
		return msg, nil
	}
	if r.ctx.Err() != nil {
		return nil, r.ctx.Err()
	}
	if ctx.Err() != nil {
		// A timeout leaves the connection usable: pgproto3 resumes a
		// message cut short.
		return nil, errReceiveTimeout
	}
	return nil, fmt.Errorf("receive: %w", err)
}

// moreAtHand reports whether the server's next bytes have already been
// read from the socket: then fsync can wait for them.
func (r *receiver) moreAtHand() bool {
	return r.conn.Frontend().ReadBufferLen() > 0 || r.br.Buffered() > 0
}

// copyData handles one message of the replication stream.
func (r *receiver) copyData(d []byte) error {
	if len(d) == 0 {
		return errors.New("protocol: empty copy data message")
	}
	switch d[0] {
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(d[1:])
		if err != nil {
			return fmt.Errorf("protocol: %w", err)
		}
		r.serverWALEnd(x.ServerWALEnd)
		return r.write(x.WALStart, x.WALData)
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(d[1:])
		if err != nil {
			return fmt.Errorf("protocol: %w", err)
		}
		r.serverWALEnd(k.ServerWALEnd)
		if k.ReplyRequested {
			if r.written > r.synced {
				return r.sync()
			}
			return r.sendStatus(false)
		}
		return nil
	default:
		return fmt.Errorf("protocol: unknown replication message type %q", d[0])
	}
}

// serverWALEnd calls OnServerWALEnd.
func (r *receiver) serverWALEnd(lsn pglogrepl.LSN) {
	if r.opts.OnServerWALEnd != nil && lsn != 0 {
		r.opts.OnServerWALEnd(lsn)
	}
}

// write writes WAL that starts at start into the spool, completing
// segments as it crosses their ends.
func (r *receiver) write(start pglogrepl.LSN, data []byte) error {
	if start != r.written {
		return fmt.Errorf("protocol: the server sent WAL from %s, want %s", start, r.written)
	}
	for len(data) > 0 {
		if r.file == nil {
			if err := r.createSegment(); err != nil {
				return err
			}
		}
		if err := r.cutUnconfirmedTail(); err != nil {
			return err
		}
		off := pgwal.SegmentOffset(r.written, r.segSize)
		n := int(min(int64(len(data)), r.segSize-off))
		if _, err := r.file.WriteAt(data[:n], off); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if r.written == r.synced {
			r.unsyncedSince = time.Now()
		}
		r.written += pglogrepl.LSN(n)
		data = data[n:]
		if off+int64(n) == r.segSize {
			if err := r.completeSegment(); err != nil {
				return err
			}
		}
	}
	return nil
}

// partialName returns the name of the current segment's .partial file.
func (r *receiver) partialName() string {
	return pgwal.SegmentName(r.tli, r.fileSeg, r.segSize) + pgwal.PartialSuffix
}

// createSegment creates the .partial file of the segment that starts at
// r.written, durably (the directory is fsynced before any of its data is
// confirmed).
func (r *receiver) createSegment() error {
	r.fileSeg = pgwal.SegmentOf(r.written, r.segSize)
	name := r.partialName()
	if pgwal.SegmentOffset(r.written, r.segSize) != 0 {
		return fmt.Errorf("spool: %s: no file to resume at %s", name, r.written)
	}
	f, err := os.OpenFile(r.sp.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := r.sp.syncDir(); err != nil {
		f.Close()
		return err
	}
	r.file = f
	return nil
}

// sync fsyncs what is written and tells the server.
func (r *receiver) sync() error {
	if r.written > r.synced {
		if r.file == nil {
			return fmt.Errorf("internal error: WAL written up to %s without a file to fsync", r.written)
		}
		if err := r.file.Sync(); err != nil {
			return fmt.Errorf("spool: fsync %s: %w", r.partialName(), err)
		}
	}
	r.synced = r.written
	r.reportFlush()
	return r.sendStatus(false)
}

// completeSegment makes the full current segment durable under its final
// name, tells the server, and hands the segment over.
func (r *receiver) completeSegment() error {
	partial := r.partialName()
	name := pgwal.SegmentName(r.tli, r.fileSeg, r.segSize)
	err := r.file.Sync()
	if cerr := r.file.Close(); err == nil {
		err = cerr
	}
	r.file = nil
	if err != nil {
		return fmt.Errorf("spool: %s: %w", partial, err)
	}
	if err := r.sp.renameDurable(partial, name); err != nil {
		return err
	}
	r.synced = r.written
	r.reportFlush()
	if err := r.sendStatus(false); err != nil {
		return err
	}
	return r.handOver(name)
}

// reportFlush calls OnFlush if the durable position moved forward.
func (r *receiver) reportFlush() {
	if r.synced <= r.flushed {
		return
	}
	r.flushed = r.synced
	if r.opts.OnFlush != nil {
		r.opts.OnFlush(r.synced)
	}
}

// handOver calls OnSegment.
func (r *receiver) handOver(name string) error {
	if r.opts.OnSegment == nil {
		return nil
	}
	err := r.opts.OnSegment(r.ctx, name)
	r.lastReceived = time.Now()
	if err != nil {
		return fmt.Errorf("hand over %s: %w", name, err)
	}
	return nil
}

// sendStatus tells the server how far WAL is written and flushed. The
// apply position is the flush position: WAL is "applied" once it is safe
// in the spool.
func (r *receiver) sendStatus(replyRequested bool) error {
	err := pglogrepl.SendStandbyStatusUpdate(r.ctx, r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: r.written,
		WALFlushPosition: r.synced,
		WALApplyPosition: r.synced,
		ReplyRequested:   replyRequested,
	})
	if err != nil {
		return fmt.Errorf("send status: %w", err)
	}
	r.lastStatus = time.Now()
	return nil
}

// endOfTimeline handles the server's CopyDone: everything on the timeline
// has been sent. It confirms the flush of all of it, ends the copy and
// reads where the next timeline begins.
func (r *receiver) endOfTimeline() (timelineSwitch, error) {
	if err := r.sync(); err != nil {
		return timelineSwitch{}, err
	}
	r.streaming = false
	r.conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := r.conn.Frontend().Flush(); err != nil {
		return timelineSwitch{}, fmt.Errorf("end of timeline %d: send copy done: %w", r.tli, err)
	}
	var (
		described, gotRow bool
		tli               uint64
		lsn               pglogrepl.LSN
	)
	for {
		msg, err := r.conn.ReceiveMessage(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return timelineSwitch{}, r.ctx.Err()
			}
			return timelineSwitch{}, fmt.Errorf("end of timeline %d: %w", r.tli, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.RowDescription:
			if len(msg.Fields) != 2 {
				return timelineSwitch{}, fmt.Errorf("end of timeline %d: protocol: %d columns, want 2", r.tli, len(msg.Fields))
			}
			described = true
		case *pgproto3.DataRow:
			if !described || gotRow || len(msg.Values) != 2 {
				return timelineSwitch{}, fmt.Errorf("end of timeline %d: protocol: unexpected data row", r.tli)
			}
			tli, err = strconv.ParseUint(string(msg.Values[0]), 10, 32)
			if err != nil {
				return timelineSwitch{}, fmt.Errorf("end of timeline %d: protocol: next timeline %q", r.tli, msg.Values[0])
			}
			if lsn, err = pglogrepl.ParseLSN(string(msg.Values[1])); err != nil {
				return timelineSwitch{}, fmt.Errorf("end of timeline %d: protocol: %w", r.tli, err)
			}
			gotRow = true
		case *pgproto3.CommandComplete, *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return timelineSwitch{}, fmt.Errorf("end of timeline %d: server: %w", r.tli, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.ReadyForQuery:
			if !gotRow {
				return timelineSwitch{}, fmt.Errorf("end of timeline %d: the server ended streaming without naming the next timeline", r.tli)
			}
			return r.checkSwitch(tli, lsn)
		default:
			return timelineSwitch{}, fmt.Errorf("end of timeline %d: protocol: unexpected %T", r.tli, msg)
		}
	}
}

// checkSwitch checks the next timeline the server named.
func (r *receiver) checkSwitch(tli uint64, lsn pglogrepl.LSN) (timelineSwitch, error) {
	if tli <= uint64(r.tli) || tli > 1<<32-1 {
		return timelineSwitch{}, fmt.Errorf("end of timeline %d: the server named %d as the next timeline", r.tli, tli)
	}
	if lsn > r.written {
		return timelineSwitch{}, fmt.Errorf("end of timeline %d: the server stopped streaming at %s, but says timeline %d begins at %s",
			r.tli, r.written, tli, lsn)
	}
	return timelineSwitch{tli: uint32(tli), lsn: lsn}, nil
}

// switchTimeline closes the ended timeline's last segment, stores the
// history file of the next one and moves to it. Streaming starts again at
// the start of the segment where the next timeline begins: the server's
// file of that segment on the new timeline starts with a copy of the old
// timeline's WAL, so the spool gets it whole.
func (r *receiver) switchTimeline(next timelineSwitch) error {
	if r.file != nil {
		// Synced by endOfTimeline; it will never grow. What a resumed
		// file held past the timeline's end, the server did not send again.
		name := r.partialName()
		err := r.cutUnconfirmedTail()
		if err == nil {
			err = r.file.Sync()
		}
		if cerr := r.file.Close(); err == nil {
			err = cerr
		}
		r.file = nil
		if err != nil {
			return fmt.Errorf("spool: %s: %w", name, err)
		}
		if err := r.handOver(name); err != nil {
			return err
		}
	}
	if err := r.fetchHistory(next.tli, &timelineSwitch{tli: r.tli, lsn: next.lsn}); err != nil {
		return err
	}
	r.tli = next.tli
	r.written = segmentFloor(next.lsn, r.segSize)
	r.synced = r.written
	return nil
}

// fetchHistory fetches the history file of timeline tli, stores it in the
// spool and hands it over. With from set, the history must say that
// timeline from.tli ended at from.lsn.
func (r *receiver) fetchHistory(tli uint32, from *timelineSwitch) error {
	h, err := pglogrepl.TimelineHistory(r.ctx, r.conn, int32(tli))
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		return fmt.Errorf("timeline history %d: %w", tli, err)
	}
	name := pgwal.HistoryFileName(tli)
	if h.FileName != name {
		return fmt.Errorf("timeline history %d: protocol: the server sent %q", tli, h.FileName)
	}
	entries, err := pgwal.ParseHistoryFile(bytes.NewReader(h.Content))
	if err != nil {
		return fmt.Errorf("timeline history %d: %w", tli, err)
	}
	if from != nil {
		found := false
		for _, e := range entries {
			if e.Parent == from.tli && e.SwitchLSN == from.lsn {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("timeline history %d: the server said timeline %d ended at %s, but its history file does not", tli, from.tli, from.lsn)
		}
	}
	if err := r.sp.writeHistory(name, h.Content); err != nil {
		return err
	}
	return r.handOver(name)
}

// fail fsyncs what was received (best effort: the next run fetches the
// unconfirmed tail again anyway) and, if ctx was cancelled, tells the
// server and returns ctx's error.
func (r *receiver) fail(err error) error {
	if r.ctx.Err() == nil {
		if r.file != nil {
			r.file.Sync()
		}
		return err
	}
	if r.file != nil && r.written > r.synced {
		if serr := r.file.Sync(); serr != nil {
			return fmt.Errorf("spool: fsync %s: %w", r.partialName(), serr)
		}
		r.synced = r.written
		r.reportFlush()
	}
	if r.streaming {
		// A final status; an error here changes nothing.
		r.sendStatus(false)
	}
	return r.ctx.Err()
}

// close releases everything.
func (r *receiver) close() {
	if r.file != nil {
		r.file.Close()
	}
	if r.sp != nil {
		r.sp.close()
	}
	closeConn(r.conn)
}

// showWALSegmentSize asks the server for its WAL segment size.
func showWALSegmentSize(ctx context.Context, conn *pgconn.PgConn) (int64, error) {
	results, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_segment_size: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return 0, errors.New("show wal_segment_size: protocol: unexpected result")
	}
	size, err := parseSize(string(results[0].Rows[0][0]))
	if err != nil || pgwal.CheckSegmentSize(size) != nil {
		return 0, fmt.Errorf("show wal_segment_size: unexpected value %q", results[0].Rows[0][0])
	}
	return size, nil
}
