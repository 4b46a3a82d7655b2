package pg

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/store/pgwal"
)

// The spool is the directory where ReceiveWAL keeps the WAL it receives
// until the caller has stored it elsewhere. It holds only:
//
//   - complete segments, named as PostgreSQL names them, always exactly
//     one segment long;
//   - segments still being received, or the last segment of a timeline
//     that ended inside it, with the ".partial" suffix: the file holds the
//     first bytes of the segment, without padding;
//   - timeline history files, such as "00000002.history";
//   - history files being written, with the ".history.tmp" suffix, which
//     are removed when the spool is opened.
//
// Anything else is refused: after a crash the spool is outside input, and
// a file that does not fit is a reason to stop, not to guess.

// historyTempSuffix ends the name of a history file being written.
const historyTempSuffix = ".history.tmp"

// spoolSegment is a segment file in the spool.
type spoolSegment struct {
	name    string
	tli     uint32
	segNo   uint64
	partial bool
	size    int64
}

// spoolState is what a spool holds.
type spoolState struct {
	// histories are the history files, by timeline.
	histories []string
	// segments are the complete and partial segments, by timeline then
	// segment number: the last one is the newest.
	segments []spoolSegment
	// temps are leftover history files being written.
	temps []string
}

// newest returns the newest segment file, or nil for a spool without one.
func (s spoolState) newest() *spoolSegment {
	if len(s.segments) == 0 {
		return nil
	}
	return &s.segments[len(s.segments)-1]
}

// scanSpool reads the spool directory dir, which holds segments of segSize
// bytes, and checks that it holds only what ReceiveWAL writes there, in a
// state ReceiveWAL can leave behind.
func scanSpool(dir string, segSize int64) (spoolState, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return spoolState{}, fmt.Errorf("spool: %w", err)
	}
	var st spoolState
	complete := make(map[string]bool)
	partials := make(map[string]bool)
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			return spoolState{}, fmt.Errorf("spool %s: %s is a %s, not a regular file: the spool holds only WAL files", dir, name, fileKind(e.Type()))
		}
		switch {
		case strings.HasSuffix(name, historyTempSuffix):
			if _, err := pgwal.ParseHistoryFileName(strings.TrimSuffix(name, ".tmp")); err != nil {
				return spoolState{}, fmt.Errorf("spool %s: unexpected file %s: %v", dir, name, err)
			}
			st.temps = append(st.temps, name)
			continue
		case strings.HasSuffix(name, ".history"):
			if _, err := pgwal.ParseHistoryFileName(name); err != nil {
				return spoolState{}, fmt.Errorf("spool %s: unexpected file %s: %v", dir, name, err)
			}
			if err := checkHistoryFile(filepath.Join(dir, name)); err != nil {
				return spoolState{}, fmt.Errorf("spool %s: %w", dir, err)
			}
			st.histories = append(st.histories, name)
			continue
		}
		tli, segNo, err := pgwal.ParseSegmentName(name, segSize)
		if err != nil {
			return spoolState{}, fmt.Errorf("spool %s: unexpected file %s: want WAL segments (optionally %s) and history files only: %v",
				dir, name, pgwal.PartialSuffix, err)
		}
		info, err := e.Info()
		if err != nil {
			return spoolState{}, fmt.Errorf("spool %s: %w", dir, err)
		}
		seg := spoolSegment{name: name, tli: tli, segNo: segNo, partial: strings.HasSuffix(name, pgwal.PartialSuffix), size: info.Size()}
		base := strings.TrimSuffix(name, pgwal.PartialSuffix)
		if seg.partial {
			if seg.size > segSize {
				return spoolState{}, fmt.Errorf("spool %s: %s has %d bytes, more than a whole %d-byte segment", dir, name, seg.size, segSize)
			}
			partials[base] = true
		} else {
			if seg.size != segSize {
				return spoolState{}, fmt.Errorf("spool %s: complete segment %s has %d bytes, want %d", dir, name, seg.size, segSize)
			}
			complete[base] = true
		}
		if complete[base] && partials[base] {
			return spoolState{}, fmt.Errorf("spool %s: both %s and %s%s exist", dir, base, base, pgwal.PartialSuffix)
		}
		st.segments = append(st.segments, seg)
	}

	slices.SortFunc(st.segments, func(a, b spoolSegment) int {
		return cmp.Or(cmp.Compare(a.tli, b.tli), cmp.Compare(a.segNo, b.segNo), cmp.Compare(a.name, b.name))
	})
	slices.Sort(st.histories) // fixed-width upper-case hexadecimal: sorts by timeline
	slices.Sort(st.temps)

	// On each timeline, WAL is received in order: at most one partial
	// segment, after every complete one.
	for i, seg := range st.segments {
		if !seg.partial {
			continue
		}
		if i+1 < len(st.segments) && st.segments[i+1].tli == seg.tli {
			next := st.segments[i+1]
			if next.partial {
				return spoolState{}, fmt.Errorf("spool %s: two partial segments on timeline %d, %s and %s: only one can be in progress",
					dir, seg.tli, seg.name, next.name)
			}
			return spoolState{}, fmt.Errorf("spool %s: partial segment %s is older than complete segment %s on the same timeline",
				dir, seg.name, next.name)
		}
	}
	return st, nil
}

// checkHistoryFile checks that the history file at path is one PostgreSQL
// would read.
func checkHistoryFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := pgwal.ParseHistoryFile(f); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	default:
		return "special file"
	}
}

// spool is an open spool directory, locked against a second receiver.
type spool struct {
	dir     string
	segSize int64
	// dirFile holds the lock and is used to fsync the directory.
	dirFile *os.File
}

// openSpool creates dir if needed, locks it, removes leftover temporary
// files and scans it.
func openSpool(dir string, segSize int64) (*spool, spoolState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, spoolState{}, fmt.Errorf("spool: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, spoolState{}, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, spoolState{}, fmt.Errorf("spool %s: in use by another WAL receiver", dir)
		}
		return nil, spoolState{}, fmt.Errorf("spool %s: lock: %w", dir, err)
	}
	sp := &spool{dir: dir, segSize: segSize, dirFile: d}
	st, err := scanSpool(dir, segSize)
	if err != nil {
		sp.close()
		return nil, spoolState{}, err
	}
	if len(st.temps) > 0 {
		for _, name := range st.temps {
			if err := os.Remove(sp.path(name)); err != nil {
				sp.close()
				return nil, spoolState{}, fmt.Errorf("spool: %w", err)
			}
		}
		if err := sp.syncDir(); err != nil {
			sp.close()
			return nil, spoolState{}, err
		}
		st.temps = nil
	}
	return sp, st, nil
}

// close releases the lock.
func (sp *spool) close() {
	sp.dirFile.Close()
}

func (sp *spool) path(name string) string {
	return filepath.Join(sp.dir, name)
}

// syncDir makes the directory's entries (created, renamed or removed
// files) durable.
func (sp *spool) syncDir() error {
	if err := sp.dirFile.Sync(); err != nil {
		return fmt.Errorf("spool %s: fsync directory: %w", sp.dir, err)
	}
	return nil
}

// renameDurable renames a file whose content is already fsynced, and
// makes the rename durable.
func (sp *spool) renameDurable(from, to string) error {
	if err := os.Rename(sp.path(from), sp.path(to)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return sp.syncDir()
}

// writeHistory stores a timeline history file durably under name, or
// checks that the file already there has the same content.
func (sp *spool) writeHistory(name string, content []byte) error {
	existing, err := os.ReadFile(sp.path(name))
	switch {
	case err == nil && bytes.Equal(existing, content):
		return nil
	case err == nil:
		return fmt.Errorf("spool %s: %s differs from the server's history file of that timeline: the spool is not from this server's history", sp.dir, name)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("spool: %w", err)
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(sp.path(tmp), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(sp.path(tmp))
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	return sp.renameDurable(tmp, name)
}

// walPageHeaderSize is the size of the long header on the first page of
// every segment (XLogLongPageHeaderData).
const walPageHeaderSize = 40

// xlpLongHeader is the xlp_info flag of a long page header.
const xlpLongHeader = 0x0002

// errNoPageHeader is returned (wrapped) by checkSegmentHeader for bytes
// that are not the segment's first page header at all, such as the zeros
// a crash can leave in a file's unsynced tail; other errors mean a header
// of another cluster.
var errNoPageHeader = errors.New("no WAL page header")

// checkSegmentHeader checks that hdr, the first bytes of a segment file,
// is the long page header of segment segNo of the cluster sysID. WAL is
// written in the server's byte order, found from the page address.
func checkSegmentHeader(hdr []byte, segNo uint64, segSize int64, sysID uint64) error {
	if len(hdr) < walPageHeaderSize {
		return fmt.Errorf("%w: %d bytes, too short", errNoPageHeader, len(hdr))
	}
	want := uint64(pgwal.SegmentStart(segNo, segSize))
	var order binary.ByteOrder = binary.LittleEndian
	if order.Uint64(hdr[8:]) != want {
		order = binary.BigEndian
		if order.Uint64(hdr[8:]) != want {
			return fmt.Errorf("%w: does not start with the WAL page of address %s", errNoPageHeader, pglogrepl.LSN(want))
		}
	}
	if order.Uint16(hdr[2:])&xlpLongHeader == 0 {
		return fmt.Errorf("%w: does not start with a long WAL page header", errNoPageHeader)
	}
	if got := order.Uint64(hdr[24:]); got != sysID {
		return fmt.Errorf("belongs to the cluster with system identifier %d, but the server's is %d", got, sysID)
	}
	if got := order.Uint32(hdr[32:]); int64(got) != segSize {
		return fmt.Errorf("was written with %d-byte segments, but the server's are %d bytes", got, segSize)
	}
	return nil
}

// checkHeader checks the page header of a segment file in the spool (if
// it is long enough to hold one). Only the first trusted bytes of the file
// must be WAL: beyond them, bytes that are no page header at all are
// tolerated (they will be received again), but a header of another
// cluster never is.
func (sp *spool) checkHeader(seg spoolSegment, trusted int64, sysID uint64) error {
	if seg.size < walPageHeaderSize {
		return nil
	}
	f, err := os.Open(sp.path(seg.name))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, walPageHeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return fmt.Errorf("spool: %s: %w", seg.name, err)
	}
	err = checkSegmentHeader(hdr, seg.segNo, sp.segSize, sysID)
	if err != nil && (trusted >= walPageHeaderSize || !errors.Is(err, errNoPageHeader)) {
		return fmt.Errorf("spool %s: %s %w", sp.dir, seg.name, err)
	}
	return nil
}

// slotPosition is where a replication slot holds WAL from.
type slotPosition struct {
	// restartLSN is 0 if the slot has not reserved WAL.
	restartLSN pglogrepl.LSN
	// restartTLI is the timeline of restartLSN in the server's history, 0
	// if unknown.
	restartTLI uint32
}

// startPoint is where streaming starts.
type startPoint struct {
	tli uint32
	lsn pglogrepl.LSN
	// resume is set when streaming goes on in the spool's newest segment
	// file, a partial one.
	resume bool
}

// chooseStart decides where to start streaming:
//
//   - after the newest complete segment in the spool;
//   - in a partial segment, where the slot says we last confirmed a flush
//     (within the segment): a physical slot's restart_lsn is the flush
//     position we last reported, so everything before it was fsynced,
//     while what the file holds after it may not have been (a crash can
//     leave an unsynced tail of zeros or garbage in an appended file). The
//     server keeps the WAL from the slot's restart_lsn on, so the tail is
//     fetched again. Without a usable slot position, the whole segment is;
//   - if the slot confirmed a position on a later timeline than the
//     newest segment file's, that file is the finished last segment of its
//     timeline (the caller stored and removed what came after it): start
//     as with an empty spool;
//   - with an empty spool, at the start of the segment that holds the
//     slot's restart_lsn (so that the first segment is whole), or of the
//     server's current position if the slot reserved no WAL.
func chooseStart(st spoolState, slot slotPosition, serverTLI uint32, serverPos pglogrepl.LSN, segSize int64) startPoint {
	seg := st.newest()
	if seg != nil && slot.restartLSN != 0 && slot.restartTLI > seg.tli {
		seg = nil
	}
	switch {
	case seg == nil && slot.restartLSN != 0 && slot.restartTLI != 0:
		return startPoint{tli: slot.restartTLI, lsn: segmentFloor(slot.restartLSN, segSize)}
	case seg == nil:
		return startPoint{tli: serverTLI, lsn: segmentFloor(serverPos, segSize)}
	case !seg.partial:
		return startPoint{tli: seg.tli, lsn: pgwal.SegmentStart(seg.segNo+1, segSize)}
	}
	base := pgwal.SegmentStart(seg.segNo, segSize)
	end := base + pglogrepl.LSN(seg.size)
	lsn := base
	if slot.restartLSN != 0 && slot.restartTLI == seg.tli {
		lsn = min(max(slot.restartLSN, base), end)
	}
	return startPoint{tli: seg.tli, lsn: lsn, resume: true}
}

// segmentFloor returns the start of the segment that holds lsn.
func segmentFloor(lsn pglogrepl.LSN, segSize int64) pglogrepl.LSN {
	return pgwal.SegmentStart(pgwal.SegmentOf(lsn, segSize), segSize)
}

// finished returns the files of the spool that are complete and will not
// change, in the order to hand them over: history files, then segments
// (complete ones, and the partial last segments of ended timelines), by
// timeline and position. With resume set, the newest segment file is a
// partial one that streaming goes on with, and is left out.
func (s spoolState) finished(resume bool) []string {
	names := slices.Clone(s.histories)
	for i, seg := range s.segments {
		if resume && i == len(s.segments)-1 {
			continue
		}
		names = append(names, seg.name)
	}
	return names
}
