package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/backstop/backstop/store/pgwal"
	"github.com/jackc/pglogrepl"
)

// PageSize is the size of a WAL page (XLOG_BLCKSZ). PostgreSQL can be built
// with another; Scan refuses segments whose first page says so.
const PageSize = 8192

// Page and record layout, from src/include/access/xlog_internal.h and
// xlogrecord.h.
const (
	shortHeaderSize  = 24 // SizeOfXLogShortPHD: MAXALIGN of 20 bytes
	longHeaderSize   = 40 // SizeOfXLogLongPHD
	recordHeaderSize = 24 // SizeOfXLogRecord

	flagFirstIsContRecord          = 0x0001 // XLP_FIRST_IS_CONTRECORD
	flagLongHeader                 = 0x0002 // XLP_LONG_HEADER
	flagFirstIsOverwriteContRecord = 0x0008 // XLP_FIRST_IS_OVERWRITE_CONTRECORD
	allPageFlags                   = 0x000F // XLP_ALL_FLAGS

	// maxRecordSize bounds xl_tot_len: PostgreSQL never writes a record
	// larger than a palloc can hold (1 GiB; 1020 MiB from version 16).
	maxRecordSize = 1 << 30
)

// Resource manager IDs and record kinds that this package interprets
// (src/include/access/rmgrlist.h, pg_control.h, xact.h).
const (
	// RMXLOG is the resource manager of checkpoints, segment switches,
	// restore points and other records of the log itself.
	RMXLOG = 0
	// RMTransaction is the resource manager of commit and abort records.
	RMTransaction = 1
	// RMTablespace is the resource manager of tablespace creation and
	// removal records.
	RMTablespace = 5

	xlogSwitch       = 0x40 // XLOG_SWITCH, in the high bits of xl_info
	xlogRestorePoint = 0x70 // XLOG_RESTORE_POINT
)

// pageFormat describes the record format that a page magic number (one per
// PostgreSQL major version) implies.
type pageFormat struct {
	major int
	// compressedImage is the mask of bimg_info bits that mark a compressed
	// full-page image: BKPIMAGE_IS_COMPRESSED up to version 14, one bit per
	// method (pglz, lz4, zstd) from 15.
	compressedImage uint8
}

// formats maps XLOG_PAGE_MAGIC to the versions this package reads. A new
// major version needs its magic added here once its record format (block
// headers, xl_xact_* and xl_restore_point) is checked unchanged.
var formats = map[uint16]pageFormat{
	0xD10D: {major: 14, compressedImage: 0x02},
	0xD110: {major: 15, compressedImage: 0x04 | 0x08 | 0x10},
	0xD113: {major: 16, compressedImage: 0x04 | 0x08 | 0x10},
	0xD116: {major: 17, compressedImage: 0x04 | 0x08 | 0x10},
}

// ErrNotSegment is returned (wrapped) by Scan when its input does not begin
// like a WAL segment of the expected size and a supported version.
var ErrNotSegment = errors.New("not a WAL segment")

// ScanOptions tell Scan where its input sits in the log.
type ScanOptions struct {
	// SegmentSize is the cluster's WAL segment size; 0 means
	// pgwal.DefaultSegmentSize. The first page of every segment must agree.
	SegmentSize int64
	// StartLSN is the LSN of the first byte of the input, the start of a
	// segment: pgwal.SegmentStart of the number that pgwal.ParseSegmentName returns for
	// the file. Zero means trusting the address in the first page header.
	StartLSN pglogrepl.LSN
	// EndLSN, if not zero, ends the scan before the first record that
	// starts at or after it; a record that starts before it is read to its
	// end even past it. To find the records of one segment, including the
	// last one when it runs on into the next segment, pass the segment
	// followed by the next one (io.MultiReader) and EndLSN at the end of
	// the first. Without EndLSN, the scan runs to the end of the input,
	// which may hold several consecutive segments.
	EndLSN pglogrepl.LSN
}

// Record is one valid WAL record, as Scan passes it to its callback.
type Record struct {
	// LSN is where the record starts.
	LSN pglogrepl.LSN
	// EndLSN is where the next record starts (PostgreSQL's EndRecPtr): just
	// past this one, rounded up to 8 bytes, or the end of the segment after
	// a segment switch record.
	EndLSN pglogrepl.LSN
	// RMID is the resource manager (RMXLOG, RMTransaction, ...).
	RMID uint8
	// Info is xl_info: the high four bits are the resource manager's record
	// kind, the low four are flags.
	Info uint8
	// XID is the transaction that wrote the record (0 for none).
	XID uint32
	// Timeline is the timeline in the header of the page where the record
	// starts: the copy of a parent timeline's WAL at the start of a new
	// timeline's first segment keeps the parent's.
	Timeline uint32
	// PrevLSN is where the record before it starts (xl_prev): a
	// recovery_target_lsn after it, inclusive, stops after this record.
	PrevLSN pglogrepl.LSN
	// TotalLen is the record's length, headers included (xl_tot_len).
	TotalLen uint32
	// MainData is the record's main data, after its block references. It
	// points into the scanner's buffers and is valid only until the
	// callback returns: copy what must outlive it.
	MainData []byte
}

// ScanResult says how far a scan got and why it stopped.
type ScanResult struct {
	// Timeline and SystemID come from the first page of the input
	// (xlp_tli, and xlp_sysid of its long header). The first segment of a
	// new timeline begins with a copy of its parent's WAL, whose pages
	// keep the parent's timeline.
	Timeline uint32
	SystemID uint64
	// Major is the PostgreSQL major version that wrote the WAL, from the
	// page magic number: a restore must replay it with the same version.
	Major int
	// FirstLSN is where the first record that starts in the input starts
	// (zero if there is none).
	FirstLSN pglogrepl.LSN
	// EndOfValidWAL is the end of the last valid record (its EndLSN), or
	// where the first record would have started if there is none: the WAL
	// before it is intact, and a restore can replay up to it.
	EndOfValidWAL pglogrepl.LSN
	// Records is the number of valid records passed to the callback.
	Records int
	// Complete reports that the scan reached the end of its range with no
	// invalid data before it: EndLSN, the end of the last whole segment in
	// the input, or the end of a segment closed by a segment switch
	// record. A partial segment, or one cut short, is not complete.
	Complete bool
	// ContinuationAtStart reports that the input began in the middle of a
	// record that started in the previous segment; Scan skipped that tail
	// (ContinuationLen bytes of it, page headers excluded).
	ContinuationAtStart bool
	ContinuationLen     uint32
	// Unfinished, if not zero, is the start of a record whose end is not in
	// the input: it runs on into the next segment, or the input was cut or
	// zeroed in its middle. EndOfValidWAL is there too, or at the boundary
	// of its page when it starts a page.
	Unfinished pglogrepl.LSN
	// Invalid, if not nil, says why the valid WAL ended before the end of
	// the input: a record with a wrong CRC, an unexpected page address (a
	// recycled segment), a broken continuation, ... It is nil when the scan
	// ended at the end of its range, at zeroed space or at the end of the
	// input.
	Invalid error
}

// Scan reads the WAL in r, which starts at the beginning of a segment,
// page by page: it checks page headers, reassembles records that span
// pages and segments, checks every record's CRC-32C and calls fn for each
// valid record in order. It stops at the end of the input or of
// opts.EndLSN, at zeroed space (the unwritten end of a partial segment) or
// at the first invalid record, as PostgreSQL's reader does; ScanResult says
// which. If the input begins with the tail of a record from the previous
// segment, Scan skips it.
//
// Scan returns an error if r fails, if fn does (that error, as is), or if
// the first page is not the start of a WAL segment (ErrNotSegment); invalid
// WAL after that is not an error but the end of the valid log.
func Scan(r io.Reader, opts ScanOptions, fn func(Record) error) (ScanResult, error) {
	segSize, err := pgwal.SegmentSize(opts.SegmentSize)
	if err != nil {
		return ScanResult{}, err
	}
	if uint64(opts.StartLSN)%uint64(segSize) != 0 {
		return ScanResult{}, fmt.Errorf("wal: start LSN %s is not the start of a %d-byte segment", opts.StartLSN, segSize)
	}
	s := &scanner{
		r:       r,
		segSize: segSize,
		endLSN:  opts.EndLSN,
		pageLSN: opts.StartLSN,
		page:    make([]byte, PageSize),
	}
	err = s.run(fn)
	return s.res, err
}

// stop says why a read could not go on.
type stop int

const (
	stopNone    stop = iota
	stopInput        // the input ended (possibly in the middle of a page)
	stopZero         // zeroed space where a page header or record should be
	stopInvalid      // an invalid page or record: s.res.Invalid says which
	stopRange        // the next record starts at or after EndLSN
)

// scanner holds one scan's state. It reads pages strictly in order.
type scanner struct {
	r       io.Reader
	segSize int64
	endLSN  pglogrepl.LSN
	magic   uint16
	format  pageFormat
	// read counts the bytes read from r, to tell whether the input ended
	// on a segment boundary.
	read int64

	// The current page: page[:pageLen] are the bytes read, fewer than
	// PageSize only when the input ended in the middle of it.
	page    []byte
	pageLSN pglogrepl.LSN
	pageLen int
	hdrLen  int
	info    uint16
	remLen  uint32
	tli     uint32

	// pos is where the next record starts, or the page boundary before
	// it; prevLSN is the start of the last valid record, for the xl_prev
	// check (zero before the first).
	pos     pglogrepl.LSN
	prevLSN pglogrepl.LSN
	// switched is set by a segment switch record, until the next segment:
	// the rest of its segment is unused.
	switched bool

	// rec reassembles records that span pages.
	rec []byte
	res ScanResult
}

func (s *scanner) invalid(format string, args ...any) stop {
	s.res.Invalid = fmt.Errorf(format, args...)
	return stopInvalid
}

func (s *scanner) run(fn func(Record) error) error {
	st, err := s.readFirstPage()
	if err != nil || st != stopNone {
		s.finish(st)
		return err
	}
	s.pos = s.pageLSN
	if s.info&flagFirstIsContRecord != 0 {
		s.res.ContinuationAtStart = true
		s.res.ContinuationLen = s.remLen
		if st, err = s.skipContinuation(); err != nil || st != stopNone {
			s.finish(st)
			return err
		}
		s.res.EndOfValidWAL = s.pos
	}
	for {
		if s.endLSN != 0 && s.pos >= s.endLSN {
			s.finish(stopRange)
			return nil
		}
		rec, st, err := s.next()
		if err != nil || st != stopNone {
			s.finish(st)
			return err
		}
		if s.res.Records == 0 {
			s.res.FirstLSN = rec.LSN
		}
		s.res.Records++
		s.res.EndOfValidWAL = rec.EndLSN
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// finish sets Complete for a scan that stopped for reason st: at the end
// of its range, or at the end of the input if that is on a segment
// boundary or anywhere after a segment switch record in the last segment.
func (s *scanner) finish(st stop) {
	switch st {
	case stopRange:
		s.res.Complete = true
	case stopInput:
		s.res.Complete = s.switched || s.read > 0 && s.read%s.segSize == 0
	}
}

// readFull reads the next page into s.page and returns how many bytes it
// got: fewer than PageSize only at the end of the input.
func (s *scanner) readFull() (int, error) {
	n, err := io.ReadFull(s.r, s.page)
	s.read += int64(n)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return n, fmt.Errorf("wal: read: %w", err)
	}
	return n, nil
}

// readFirstPage reads the first page of the input, which must be the
// first page of a segment. No input or a page of zeros ends the scan
// quietly; a page that is not a segment's first page is an error.
func (s *scanner) readFirstPage() (stop, error) {
	n, err := s.readFull()
	if err != nil {
		return stopNone, err
	}
	s.pageLen = n
	s.res.EndOfValidWAL = s.pageLSN
	switch {
	case n == 0:
		return stopInput, nil
	case allZero(s.page[:n]):
		return stopZero, nil
	case n < longHeaderSize:
		return stopNone, fmt.Errorf("wal: %w: input is %d bytes, shorter than a segment's first page header", ErrNotSegment, n)
	}
	magic := binary.LittleEndian.Uint16(s.page[0:])
	f, ok := formats[magic]
	if !ok {
		return stopNone, fmt.Errorf("wal: %w: unknown page magic %04X (PostgreSQL 14 to 17 write D10D to D116)", ErrNotSegment, magic)
	}
	s.magic, s.format = magic, f
	s.res.Major = f.major
	info := binary.LittleEndian.Uint16(s.page[2:])
	if info&flagLongHeader == 0 || info&^allPageFlags != 0 {
		return stopNone, fmt.Errorf("wal: %w: first page has info bits %04X, want a long header", ErrNotSegment, info)
	}
	if seg := binary.LittleEndian.Uint32(s.page[32:]); int64(seg) != s.segSize {
		return stopNone, fmt.Errorf("wal: %w: segment size %d in the first page header, want %d", ErrNotSegment, seg, s.segSize)
	}
	if bs := binary.LittleEndian.Uint32(s.page[36:]); bs != PageSize {
		return stopNone, fmt.Errorf("wal: %w: WAL page size %d in the first page header, want %d", ErrNotSegment, bs, PageSize)
	}
	if s.pageLSN == 0 {
		addr := pglogrepl.LSN(binary.LittleEndian.Uint64(s.page[8:]))
		if uint64(addr)%uint64(s.segSize) != 0 {
			return stopNone, fmt.Errorf("wal: %w: first page address %s is not the start of a segment", ErrNotSegment, addr)
		}
		s.pageLSN = addr
		s.res.EndOfValidWAL = addr
	}
	s.res.Timeline = binary.LittleEndian.Uint32(s.page[4:])
	s.res.SystemID = binary.LittleEndian.Uint64(s.page[24:])
	return s.checkPage(), nil
}

// readPage reads the page after the current one and checks its header. At
// the end of the input the current page stays as it was.
func (s *scanner) readPage() (stop, error) {
	n, err := s.readFull()
	if err != nil {
		return stopNone, err
	}
	if n == 0 {
		return stopInput, nil
	}
	s.pageLSN += PageSize
	s.pageLen = n
	return s.checkPage(), nil
}

// checkPage checks the header of the page just read, as PostgreSQL's
// XLogReaderValidatePageHeader does, and notes its fields.
func (s *scanner) checkPage() stop {
	p := s.page[:s.pageLen]
	if allZero(p) {
		return stopZero
	}
	if len(p) < shortHeaderSize {
		return stopInput
	}
	magic := binary.LittleEndian.Uint16(p[0:])
	info := binary.LittleEndian.Uint16(p[2:])
	tli := binary.LittleEndian.Uint32(p[4:])
	addr := pglogrepl.LSN(binary.LittleEndian.Uint64(p[8:]))
	if magic != s.magic {
		return s.invalid("invalid magic number %04X in page at %s", magic, s.pageLSN)
	}
	if info&^allPageFlags != 0 {
		return s.invalid("invalid info bits %04X in page at %s", info, s.pageLSN)
	}
	hdrLen := shortHeaderSize
	if info&flagLongHeader != 0 {
		hdrLen = longHeaderSize
		if len(p) < longHeaderSize {
			return stopInput
		}
		if id := binary.LittleEndian.Uint64(p[24:]); id != s.res.SystemID {
			return s.invalid("page at %s is from another database system: system identifier %d, want %d", s.pageLSN, id, s.res.SystemID)
		}
		if seg := binary.LittleEndian.Uint32(p[32:]); int64(seg) != s.segSize {
			return s.invalid("segment size %d in page at %s, want %d", seg, s.pageLSN, s.segSize)
		}
		if bs := binary.LittleEndian.Uint32(p[36:]); bs != PageSize {
			return s.invalid("WAL page size %d in page at %s, want %d", bs, s.pageLSN, PageSize)
		}
	} else if uint64(s.pageLSN)%uint64(s.segSize) == 0 {
		return s.invalid("first page of the segment at %s has no long header (info bits %04X)", s.pageLSN, info)
	}
	if addr != s.pageLSN {
		return s.invalid("unexpected page address %s in page at %s", addr, s.pageLSN)
	}
	if tli == 0 || tli < s.tli {
		return s.invalid("out-of-sequence timeline %d (after %d) in page at %s", tli, s.tli, s.pageLSN)
	}
	s.tli = tli
	s.hdrLen = hdrLen
	s.info = info
	s.remLen = binary.LittleEndian.Uint32(p[16:])
	return stopNone
}

// skipContinuation skips the tail of a record that began in the previous
// segment, as PostgreSQL's XLogFindNextRecord does, and sets s.pos to the
// first record that starts in this segment.
func (s *scanner) skipContinuation() (stop, error) {
	rem := s.remLen
	for {
		if rem == 0 {
			return s.invalid("continuation of length 0 in page at %s", s.pageLSN), nil
		}
		room := uint32(PageSize - s.hdrLen)
		if rem <= room {
			s.pos = s.pageLSN + pglogrepl.LSN(s.hdrLen) + pglogrepl.LSN(align8(rem))
			return stopNone, nil
		}
		s.pos = s.pageLSN + PageSize
		if s.endLSN != 0 && s.pos >= s.endLSN {
			return stopNone, nil
		}
		if st, err := s.readPage(); err != nil || st != stopNone {
			return st, err
		}
		if s.info&flagFirstIsContRecord == 0 || s.remLen != rem-room {
			return s.invalid("continuation in page at %s has %d bytes left (contrecord flag %t), want %d",
				s.pageLSN, s.remLen, s.info&flagFirstIsContRecord != 0, rem-room), nil
		}
		rem = s.remLen
	}
}

// skipTo discards, unread, the pages between the current one and the one
// that starts at lsn.
func (s *scanner) skipTo(lsn pglogrepl.LSN) (stop, error) {
	skip := int64(lsn-s.pageLSN)/PageSize - 1
	if skip <= 0 {
		return stopNone, nil
	}
	n, err := io.CopyN(io.Discard, s.r, skip*PageSize)
	s.read += n
	if err == io.EOF {
		return stopInput, nil
	}
	if err != nil {
		return stopNone, fmt.Errorf("wal: read: %w", err)
	}
	s.pageLSN += pglogrepl.LSN(skip * PageSize)
	return stopNone, nil
}

// next reads the record at s.pos and moves s.pos past it.
func (s *scanner) next() (Record, stop, error) {
	for {
		recPtr := s.pos
		if recPtr%PageSize == 0 && recPtr != s.pageLSN {
			// A new page, after the rest of the segment if a switch
			// record closed it.
			if st, err := s.skipTo(recPtr); err != nil || st != stopNone {
				return Record{}, st, err
			}
			if uint64(recPtr)%uint64(s.segSize) == 0 {
				s.switched = false
			}
			if st, err := s.readPage(); err != nil || st != stopNone {
				return Record{}, st, err
			}
		}
		if recPtr%PageSize == 0 {
			if s.info&flagFirstIsContRecord != 0 {
				return Record{}, s.invalid("page at %s continues a record, but none is pending", s.pageLSN), nil
			}
			recPtr += pglogrepl.LSN(s.hdrLen)
			if s.endLSN != 0 && recPtr >= s.endLSN {
				return Record{}, stopRange, nil
			}
		}
		rec, st, restart, err := s.readRecord(recPtr)
		if restart {
			// The record was abandoned (its writer crashed) and a new
			// record overwrote its continuation: read on from there.
			s.pos = s.pageLSN
			continue
		}
		return rec, st, err
	}
}

// readRecord reads, checks and decodes the record at recPtr, which is on
// the current page, and moves s.pos past it. restart is set if the record
// turns out to have been overwritten.
func (s *scanner) readRecord(recPtr pglogrepl.LSN) (rec Record, st stop, restart bool, err error) {
	off := int(recPtr - s.pageLSN)
	tli := s.tli // the page the record starts on; continuation pages may follow
	if off+4 > s.pageLen {
		return Record{}, stopInput, false, nil
	}
	totLen := binary.LittleEndian.Uint32(s.page[off:])
	if totLen == 0 {
		return Record{}, stopZero, false, nil
	}
	if totLen < recordHeaderSize || totLen > maxRecordSize {
		return Record{}, s.invalid("invalid record length %d at %s", totLen, recPtr), false, nil
	}
	unfinished := func() (Record, stop, bool, error) {
		s.res.Unfinished = recPtr
		return Record{}, stopInput, false, nil
	}
	haveHeader := false
	if off+recordHeaderSize <= PageSize {
		if off+recordHeaderSize > s.pageLen {
			return unfinished()
		}
		if st := s.checkHeader(recPtr, s.page[off:off+recordHeaderSize]); st != stopNone {
			return Record{}, st, false, nil
		}
		haveHeader = true
	}

	var data []byte
	var end pglogrepl.LSN
	if off+int(totLen) <= PageSize {
		if off+int(totLen) > s.pageLen {
			return unfinished()
		}
		data = s.page[off : off+int(totLen)]
		end = recPtr + pglogrepl.LSN(align8(totLen))
	} else {
		// The record goes on in the next pages, each of which must say
		// how much of it is left. s.rec grows only with what was read.
		if s.pageLen < PageSize {
			return unfinished()
		}
		s.rec = append(s.rec[:0], s.page[off:]...)
		for uint32(len(s.rec)) < totLen {
			st, err := s.readPage()
			if err != nil {
				return Record{}, stopNone, false, err
			}
			if st == stopInput || st == stopZero {
				s.res.Unfinished = recPtr
			}
			if st != stopNone {
				return Record{}, st, false, nil
			}
			if s.info&flagFirstIsOverwriteContRecord != 0 {
				return Record{}, stopNone, true, nil
			}
			need := totLen - uint32(len(s.rec))
			if s.info&flagFirstIsContRecord == 0 {
				return Record{}, s.invalid("no contrecord flag in page at %s for the record at %s", s.pageLSN, recPtr), false, nil
			}
			if s.remLen != need {
				return Record{}, s.invalid("invalid contrecord length %d (want %d) in page at %s for the record at %s",
					s.remLen, need, s.pageLSN, recPtr), false, nil
			}
			n := min(int(need), PageSize-s.hdrLen)
			if s.hdrLen+n > s.pageLen {
				return unfinished()
			}
			s.rec = append(s.rec, s.page[s.hdrLen:s.hdrLen+n]...)
			if !haveHeader && len(s.rec) >= recordHeaderSize {
				if st := s.checkHeader(recPtr, s.rec[:recordHeaderSize]); st != stopNone {
					return Record{}, st, false, nil
				}
				haveHeader = true
			}
		}
		data = s.rec
		end = s.pageLSN + pglogrepl.LSN(s.hdrLen) + pglogrepl.LSN(align8(s.remLen))
	}

	// The CRC covers the data after the header, then the header up to the
	// CRC field (xlogreader.c, ValidXLogRecord).
	crc := crc32.Update(0, castagnoli, data[recordHeaderSize:])
	crc = crc32.Update(crc, castagnoli, data[:20])
	if crc != binary.LittleEndian.Uint32(data[20:]) {
		return Record{}, s.invalid("incorrect CRC in record at %s", recPtr), false, nil
	}
	main, derr := mainData(data, s.format.compressedImage)
	if derr != nil {
		return Record{}, s.invalid("record at %s: %v", recPtr, derr), false, nil
	}
	rec = Record{
		LSN:      recPtr,
		XID:      binary.LittleEndian.Uint32(data[4:]),
		Timeline: tli,
		PrevLSN:  pglogrepl.LSN(binary.LittleEndian.Uint64(data[8:])),
		Info:     data[16],
		RMID:     data[17],
		TotalLen: totLen,
		MainData: main,
	}
	if rec.RMID == RMXLOG && rec.Info&0xF0 == xlogSwitch {
		// The rest of the segment is unused: the next record starts in
		// the next segment.
		seg := uint64(s.segSize)
		end = pglogrepl.LSN((uint64(end) + seg - 1) / seg * seg)
		s.switched = true
	}
	rec.EndLSN = end
	s.pos = end
	s.prevLSN = recPtr
	return rec, stopNone, false, nil
}

// checkHeader checks a record header as ValidXLogRecordHeader does: xl_prev
// must point at the record before it or, for the first record of the scan,
// somewhere before it.
func (s *scanner) checkHeader(recPtr pglogrepl.LSN, h []byte) stop {
	prev := pglogrepl.LSN(binary.LittleEndian.Uint64(h[8:]))
	if s.prevLSN == 0 {
		if prev >= recPtr {
			return s.invalid("record with incorrect prev-link %s at %s", prev, recPtr)
		}
	} else if prev != s.prevLSN {
		return s.invalid("record with incorrect prev-link %s at %s, want %s", prev, recPtr, s.prevLSN)
	}
	return stopNone
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Block reference layout (src/include/access/xlogrecord.h).
const (
	maxBlockID         = 32  // XLR_MAX_BLOCK_ID
	blockIDDataShort   = 255 // XLR_BLOCK_ID_DATA_SHORT
	blockIDDataLong    = 254 // XLR_BLOCK_ID_DATA_LONG
	blockIDOrigin      = 253 // XLR_BLOCK_ID_ORIGIN
	blockIDToplevelXID = 252 // XLR_BLOCK_ID_TOPLEVEL_XID

	bkpBlockHasImage = 0x10 // BKPBLOCK_HAS_IMAGE
	bkpBlockHasData  = 0x20 // BKPBLOCK_HAS_DATA
	bkpBlockSameRel  = 0x80 // BKPBLOCK_SAME_REL
	bkpImageHasHole  = 0x01 // BKPIMAGE_HAS_HOLE

	relFileNodeSize = 12 // RelFileNode (RelFileLocator from 16): three Oids
)

var errShortRecord = errors.New("record with invalid length")

// mainData walks the fragment headers of a whole, CRC-checked record the
// way DecodeXLogRecord does and returns its main data, the record's last
// fragment. compressed is the mask of bimg_info bits that mark a
// compressed full-page image, whose header then carries the hole length.
func mainData(rec []byte, compressed uint8) ([]byte, error) {
	p := rec[recordHeaderSize:]
	// take consumes n header bytes.
	take := func(n int) ([]byte, bool) {
		if len(p) < n {
			return nil, false
		}
		b := p[:n]
		p = p[n:]
		return b, true
	}
	var datatotal, mainLen uint64
	maxID := -1
	haveRel := false
headers:
	for uint64(len(p)) > datatotal {
		b, ok := take(1)
		if !ok {
			return nil, errShortRecord
		}
		switch id := b[0]; {
		case id == blockIDDataShort:
			b, ok := take(1)
			if !ok {
				return nil, errShortRecord
			}
			mainLen = uint64(b[0])
			datatotal += mainLen
			break headers // the main data always comes last
		case id == blockIDDataLong:
			b, ok := take(4)
			if !ok {
				return nil, errShortRecord
			}
			mainLen = uint64(binary.LittleEndian.Uint32(b))
			datatotal += mainLen
			break headers
		case id == blockIDOrigin:
			if _, ok := take(2); !ok {
				return nil, errShortRecord
			}
		case id == blockIDToplevelXID:
			if _, ok := take(4); !ok {
				return nil, errShortRecord
			}
		case id <= maxBlockID:
			if int(id) <= maxID {
				return nil, fmt.Errorf("out-of-order block_id %d", id)
			}
			maxID = int(id)
			b, ok := take(3)
			if !ok {
				return nil, errShortRecord
			}
			forkFlags := b[0]
			dataLen := binary.LittleEndian.Uint16(b[1:])
			if hasData := forkFlags&bkpBlockHasData != 0; hasData != (dataLen != 0) {
				return nil, fmt.Errorf("BKPBLOCK_HAS_DATA is %t but the data length is %d", hasData, dataLen)
			}
			datatotal += uint64(dataLen)
			if forkFlags&bkpBlockHasImage != 0 {
				b, ok := take(5) // length, hole_offset, bimg_info
				if !ok {
					return nil, errShortRecord
				}
				datatotal += uint64(binary.LittleEndian.Uint16(b[0:]))
				if info := b[4]; info&compressed != 0 && info&bkpImageHasHole != 0 {
					if _, ok := take(2); !ok { // hole_length
						return nil, errShortRecord
					}
				}
			}
			if forkFlags&bkpBlockSameRel == 0 {
				if _, ok := take(relFileNodeSize); !ok {
					return nil, errShortRecord
				}
				haveRel = true
			} else if !haveRel {
				return nil, errors.New("BKPBLOCK_SAME_REL set but no previous rel")
			}
			if _, ok := take(4); !ok { // BlockNumber
				return nil, errShortRecord
			}
		default:
			return nil, fmt.Errorf("invalid block_id %d", id)
		}
	}
	if uint64(len(p)) != datatotal {
		return nil, errShortRecord
	}
	return rec[len(rec)-int(mainLen):], nil
}

func align8(n uint32) uint32 {
	return (n + 7) &^ 7
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
