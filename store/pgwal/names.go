package pgwal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
)

// DefaultSegmentSize is the WAL segment size that initdb uses unless told
// otherwise (--wal-segsize).
const DefaultSegmentSize = 16 << 20

// PartialSuffix ends the name of a segment that was not finished when its
// timeline ended or its writer stopped: "000000010000000000000003.partial".
const PartialSuffix = ".partial"

// historySuffix ends the name of a timeline history file.
const historySuffix = ".history"

// ErrInvalidName is returned (wrapped) for a file name that is not a WAL
// segment or timeline history file name.
var ErrInvalidName = errors.New("invalid WAL file name")

// ErrInvalidHistory is returned (wrapped) for a timeline history file that
// PostgreSQL would refuse to read.
var ErrInvalidHistory = errors.New("invalid timeline history file")

// CheckSegmentSize returns an error unless size is a WAL segment size that
// PostgreSQL allows: a power of two from 1 MiB to 1 GiB.
func CheckSegmentSize(size int64) error {
	if size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return fmt.Errorf("invalid WAL segment size %d: want a power of two from 1 MiB to 1 GiB", size)
	}
	return nil
}

// SegmentSize returns size, or DefaultSegmentSize for 0, checked.
func SegmentSize(size int64) (int64, error) {
	if size == 0 {
		return DefaultSegmentSize, nil
	}
	return size, CheckSegmentSize(size)
}

// segmentsPerID is the number of segments in 4 GiB of WAL, the unit of the
// middle part of a segment name (PostgreSQL's XLogSegmentsPerXLogId).
func segmentsPerID(segSize int64) uint64 {
	return (1 << 32) / uint64(segSize)
}

// SegmentName returns the file name of segment segNo on timeline tli for
// segments of segSize bytes (0 means DefaultSegmentSize), as PostgreSQL's
// XLogFileName writes it: 24 upper-case hexadecimal digits.
func SegmentName(tli uint32, segNo uint64, segSize int64) string {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	per := segmentsPerID(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(segNo/per), uint32(segNo%per))
}

// ParseSegmentName parses a segment file name (with or without
// PartialSuffix) for segments of segSize bytes (0 means
// DefaultSegmentSize) and returns its timeline and segment number. Callers
// that care whether the segment is partial check the suffix themselves.
func ParseSegmentName(name string, segSize int64) (tli uint32, segNo uint64, err error) {
	segSize, err = SegmentSize(segSize)
	if err != nil {
		return 0, 0, err
	}
	base := strings.TrimSuffix(name, PartialSuffix)
	if len(base) != 24 || !isUpperHex(base) {
		return 0, 0, fmt.Errorf("wal: %w %q: want 24 upper-case hexadecimal digits", ErrInvalidName, name)
	}
	t, _ := strconv.ParseUint(base[0:8], 16, 32)
	hi, _ := strconv.ParseUint(base[8:16], 16, 32)
	lo, _ := strconv.ParseUint(base[16:24], 16, 32)
	per := segmentsPerID(segSize)
	if t == 0 {
		return 0, 0, fmt.Errorf("wal: %w %q: timeline 0", ErrInvalidName, name)
	}
	if lo >= per {
		return 0, 0, fmt.Errorf("wal: %w %q: segment part %s is too large for %d-byte segments", ErrInvalidName, name, base[16:24], segSize)
	}
	return uint32(t), hi*per + lo, nil
}

// SegmentStart returns the LSN of the first byte of segment segNo.
func SegmentStart(segNo uint64, segSize int64) pglogrepl.LSN {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	return pglogrepl.LSN(segNo * uint64(segSize))
}

// SegmentOf returns the number of the segment that holds the byte at lsn
// (PostgreSQL's XLByteToSeg). For the end of a range, which points just past
// its last byte, use SegmentOf(end-1).
func SegmentOf(lsn pglogrepl.LSN, segSize int64) uint64 {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	return uint64(lsn) / uint64(segSize)
}

// SegmentOffset returns the offset of lsn within its segment.
func SegmentOffset(lsn pglogrepl.LSN, segSize int64) int64 {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	return int64(uint64(lsn) % uint64(segSize))
}

// HistoryFileName returns the name of the history file of timeline tli,
// such as "00000002.history".
func HistoryFileName(tli uint32) string {
	return fmt.Sprintf("%08X%s", tli, historySuffix)
}

// IsHistoryFile reports whether name is a timeline history file name.
func IsHistoryFile(name string) bool {
	_, err := ParseHistoryFileName(name)
	return err == nil
}

// ParseHistoryFileName returns the timeline whose history file is name.
func ParseHistoryFileName(name string) (uint32, error) {
	base, ok := strings.CutSuffix(name, historySuffix)
	if !ok || len(base) != 8 || !isUpperHex(base) {
		return 0, fmt.Errorf("wal: %w %q: want 8 upper-case hexadecimal digits and %s", ErrInvalidName, name, historySuffix)
	}
	t, _ := strconv.ParseUint(base, 16, 32)
	if t == 0 {
		return 0, fmt.Errorf("wal: %w %q: timeline 0", ErrInvalidName, name)
	}
	return uint32(t), nil
}

// HistoryEntry is one line of a timeline history file: timeline Parent
// ended, and its child began, at SwitchLSN.
type HistoryEntry struct {
	// Parent is an ancestor timeline of the file's timeline.
	Parent uint32
	// SwitchLSN is where Parent ended: WAL from SwitchLSN on belongs to the
	// next timeline in the file (or to the file's own timeline, for the
	// last entry).
	SwitchLSN pglogrepl.LSN
	// Reason is the free text PostgreSQL wrote after the LSN, such as "no
	// recovery target specified" or "before 2026-11-25 09:30:00+00".
	Reason string
}

// maxHistorySize bounds how much of a history file ParseHistoryFile reads:
// each line takes well under 200 bytes, and a cluster would need tens of
// thousands of promotions to come near.
const maxHistorySize = 4 << 20

// ParseHistoryFile reads a timeline history file ("00000002.history") the
// way PostgreSQL's readTimeLineHistory does: blank lines and lines starting
// with '#' are skipped; every other line holds a timeline, a tab, and the
// LSN where that timeline ended, then an optional reason. Timelines must
// increase from line to line.
func ParseHistoryFile(r io.Reader) ([]HistoryEntry, error) {
	lr := &io.LimitedReader{R: r, N: maxHistorySize + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), maxHistorySize+1)
	var entries []HistoryEntry
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t\r\v\f")
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseHistoryLine(line)
		if err != nil {
			return nil, fmt.Errorf("wal: %w: line %d: %v", ErrInvalidHistory, n, err)
		}
		if len(entries) > 0 && e.Parent <= entries[len(entries)-1].Parent {
			return nil, fmt.Errorf("wal: %w: line %d: timeline %d does not follow %d: timelines must increase",
				ErrInvalidHistory, n, e.Parent, entries[len(entries)-1].Parent)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("wal: %w: longer than %d bytes", ErrInvalidHistory, maxHistorySize)
		}
		return nil, fmt.Errorf("wal: read history file: %w", err)
	}
	if lr.N == 0 {
		return nil, fmt.Errorf("wal: %w: longer than %d bytes", ErrInvalidHistory, maxHistorySize)
	}
	return entries, nil
}

// parseHistoryLine parses "2\t0/3000158\tno recovery target specified",
// the line having no leading white space.
func parseHistoryLine(line string) (HistoryEntry, error) {
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i == 0 {
		return HistoryEntry{}, errors.New("expected a numeric timeline ID")
	}
	tli, err := strconv.ParseUint(line[:i], 10, 32)
	if err != nil || tli == 0 {
		return HistoryEntry{}, fmt.Errorf("invalid timeline ID %q", line[:i])
	}
	rest := strings.TrimLeft(line[i:], " \t\r\v\f")
	if len(rest) == len(line[i:]) {
		return HistoryEntry{}, errors.New("expected a write-ahead log switchpoint location after the timeline")
	}
	j := strings.IndexAny(rest, " \t\r\v\f")
	if j < 0 {
		j = len(rest)
	}
	lsn, err := parseLSN(rest[:j])
	if err != nil {
		return HistoryEntry{}, fmt.Errorf("expected a write-ahead log switchpoint location: %v", err)
	}
	return HistoryEntry{
		Parent:    uint32(tli),
		SwitchLSN: lsn,
		Reason:    strings.TrimSpace(rest[j:]),
	}, nil
}

// parseLSN parses "X/Y" strictly: one to eight hexadecimal digits on each
// side (pglogrepl.ParseLSN accepts more).
func parseLSN(s string) (pglogrepl.LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !isHex(hi) || !isHex(lo) || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return pglogrepl.LSN(h<<32 | l), nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
