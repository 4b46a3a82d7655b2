package repository

// Archived WAL.
//
// Layout:
//
//	wal/<system id>/<name>.wal   one archived WAL file: a sealed WAL manifest
//	                             naming the blocks (objects) that hold it
//
// <system id> is the cluster's system identifier in decimal. <name> is one of
//
//	000000010000000000000003                   a complete segment
//	000000010000000000000003.partial.00A3C000  a piece of a segment still being
//	                                           written: its first 0xA3C000 bytes
//	00000002.history                           a timeline history file
//
// WAL files are cut into blocks of the repository's block size at fixed
// offsets and stored with Put, so successive pieces of a growing partial
// segment share all their blocks but the last one or two, and a complete
// segment shares the blocks of its last piece but its tail.
//
// A WAL manifest is written once and never replaced: archiving the same file
// again with the same content succeeds without writing anything; with other
// content it fails with ErrWALConflict.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository/storage"
)

// WALKind is what an archived WAL file holds.
type WALKind string

// Kinds of archived WAL files.
const (
	// WALSegment is a complete WAL segment.
	WALSegment WALKind = "segment"
	// WALPartial is a prefix of a segment that was not complete when it was
	// archived, named NAME.partial.END (see PartialWALName).
	WALPartial WALKind = "partial"
	// WALHistory is a timeline history file, such as "00000002.history".
	WALHistory WALKind = "history"
)

// WALFormat is the version of the WAL manifest this package writes and reads.
const WALFormat = 1

const (
	walMagic     = "BSW1"
	walSuffix    = ".wal"
	walDir       = "wal"
	partialInfix = pgwal.PartialSuffix + "."

	minSegmentSize = 1 << 20
	maxSegmentSize = 1 << 30
	// maxHistorySize bounds a timeline history file, as jobs/pg/wal's reader
	// does: each line is under 200 bytes.
	maxHistorySize = 4 << 20
)

// ErrWALConflict reports (wrapped) an attempt to archive a WAL file under a
// name that already holds different content. Archived WAL is never replaced.
var ErrWALConflict = errors.New("already archived with different content")

// WALFile describes an archived WAL file, as its WAL manifest records it.
type WALFile struct {
	// Name is the file's name, such as "000000010000000000000003".
	Name string
	Kind WALKind
	// Size is the number of bytes of WAL: the segment size for a segment,
	// END for a partial piece.
	Size int64
	// Blocks names the objects holding the file's content, in order: each
	// holds the repository's block size at the time of writing, except the
	// last.
	Blocks []string
	// CreatedAt is when the file was archived.
	CreatedAt time.Time
}

// WALRef reports what PutWAL stored.
type WALRef struct {
	Name   string
	Kind   WALKind
	Size   int64
	Blocks int
	// BlocksNew is the number of blocks this call wrote: 0 when the file
	// was already archived, or when every block was already stored.
	BlocksNew int
	// StoredBytesNew is what this call added to the repository on disk: its
	// new blocks and the WAL manifest.
	StoredBytesNew int64
}

// walManifest is the sealed JSON content of wal/<system id>/<name>.wal.
type walManifest struct {
	Format   int     `json:"format"`
	SystemID string  `json:"system_id"`
	Name     string  `json:"name"`
	Kind     WALKind `json:"kind"`
	Size     int64   `json:"size"`
	// BlockSize is the size of every block but the last.
	BlockSize int       `json:"block_size"`
	Blocks    []string  `json:"blocks"`
	CreatedAt time.Time `json:"created_at"`
}

// PartialWALName returns the name under which PutWAL stores the first end
// bytes of the segment named segment: "000000010000000000000003.partial.00A3C000".
// END is written as eight upper-case hexadecimal digits, so that there is one
// name per piece and names sort by END.
func PartialWALName(segment string, end int64) string {
	return fmt.Sprintf("%s%s%08X", segment, partialInfix, end)
}

// PutWAL archives the WAL file name of the cluster with system identifier
// systemID (in decimal), reading exactly size bytes from data.
//
// name is a segment name, in which case size must be the cluster's segment
// size (a power of two from 1 MiB to 1 GiB); a partial piece name (see
// PartialWALName), in which case data is the first END bytes of the segment
// and size must equal END; or a timeline history file name, of at most 4 MiB.
// Names and sizes are checked before anything is read; an invalid name yields
// an error wrapping pgwal.ErrInvalidName.
//
// PutWAL reads data one block at a time, so it holds about two blocks in
// memory whatever the segment size. It stores each block with Put, calls Sync,
// then writes the WAL manifest atomically without replacing an existing one,
// and fsyncs its directories: once PutWAL returns, the file is durable.
//
// When the file is already archived, PutWAL hashes data without storing it and
// compares the result with the archived block list: if they are the same it
// returns the archived file and false; otherwise it fails with an error
// wrapping ErrWALConflict and stores nothing. An archived WAL manifest that
// fails verification yields a *CorruptError and is left alone.
func (r *Repo) PutWAL(ctx context.Context, systemID, name string, data io.Reader, size int64) (WALRef, bool, error) {
	fail := func(err error) (WALRef, bool, error) {
		return WALRef{}, false, fmt.Errorf("put WAL %s/%s: %w", systemID, name, err)
	}
	if err := validateSystemID(systemID); err != nil {
		return WALRef{}, false, fmt.Errorf("put WAL: %w", err)
	}
	kind, end, err := parseWALName(name)
	if err != nil {
		return WALRef{}, false, fmt.Errorf("put WAL %s: %w", systemID, err)
	}
	if err := checkWALSize(name, kind, end, size); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	ref := WALRef{Name: name, Kind: kind, Size: size}

	archived, err := r.readWALManifest(ctx, systemID, name)
	switch {
	case err == nil:
		// Hash only: content that conflicts must leave nothing behind.
		var blocks []string
		err := r.cutWAL(ctx, data, size, func(block []byte) error {
			blocks = append(blocks, r.objectName(block))
			return nil
		})
		if err != nil {
			return fail(err)
		}
		if err := sameWAL(systemID, archived, size, blocks); err != nil {
			return WALRef{}, false, err
		}
		ref.Blocks = len(blocks)
		return ref, false, nil
	case !errors.Is(err, ErrNotFound):
		return fail(err)
	}

	var blocks []string
	packs := map[string]struct{}{}
	err = r.cutWAL(ctx, data, size, func(block []byte) error {
		obj, written, err := r.Put(ctx, block)
		if err != nil {
			return err
		}
		packs[obj.Pack] = struct{}{}
		blocks = append(blocks, obj.Name)
		if written {
			ref.BlocksNew++
			ref.StoredBytesNew += obj.StoredSize
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	ref.Blocks = len(blocks)

	m := walManifest{
		Format:    WALFormat,
		SystemID:  systemID,
		Name:      name,
		Kind:      kind,
		Size:      size,
		BlockSize: r.blockSize,
		Blocks:    blocks,
		CreatedAt: time.Now().UTC(),
	}
	if err := m.validate(); err != nil { // refuse now what WAL would refuse later
		return fail(err)
	}
	plain, err := json.Marshal(&m)
	if err != nil {
		return fail(err)
	}
	sealed, err := r.seal(nil, walMagic, walAD(systemID, name), plain)
	if err != nil {
		return fail(err)
	}
	// The blocks must be durable, in packs pruning keeps, before the manifest that
	// refers to them.
	names := func(fn func(string) error) error {
		for _, b := range blocks {
			if err := fn(b); err != nil {
				return err
			}
		}
		return nil
	}
	err = r.commit(ctx, packs, names, nil, func(ctx context.Context) error {
		return r.st.Put(ctx, walRel(systemID, name), sealed, true)
	})
	if errors.Is(err, storage.ErrExists) {
		// Another writer archived it since we looked.
		archived, err := r.readWALManifest(ctx, systemID, name)
		if err != nil {
			return fail(err)
		}
		if err := sameWAL(systemID, archived, size, blocks); err != nil {
			return WALRef{}, false, err
		}
		return ref, false, nil
	}
	if err != nil {
		return fail(err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return fail(err)
	}
	ref.StoredBytesNew += int64(len(sealed))
	return ref, true, nil
}

// cutWAL reads exactly size bytes from data and calls fn with each block of
// the repository's block size (the last one shorter). The block passed to fn
// is reused for the next one.
func (r *Repo) cutWAL(ctx context.Context, data io.Reader, size int64, fn func(block []byte) error) error {
	buf := r.getBuf()
	defer r.putBuf(buf)
	block := slices.Grow((*buf)[:0], r.blockSize)[:r.blockSize]
	*buf = block
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(r.blockSize), size-done))
		got, err := io.ReadFull(data, block[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("data ends after %d bytes, want %d", done+int64(got), size)
		}
		if err != nil {
			return fmt.Errorf("read data: %w", err)
		}
		if err := fn(block[:n]); err != nil {
			return err
		}
		done += int64(n)
	}
	var one [1]byte
	switch n, err := io.ReadFull(data, one[:]); {
	case n > 0:
		return fmt.Errorf("data is longer than %d bytes", size)
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("read data: %w", err)
	}
	return nil
}

// sameWAL returns nil if the archived manifest m holds size bytes in blocks,
// and an error wrapping ErrWALConflict otherwise.
func sameWAL(systemID string, m *walManifest, size int64, blocks []string) error {
	if m.Size == size && slices.Equal(m.Blocks, blocks) {
		return nil
	}
	what := map[WALKind]string{
		WALSegment: "segment",
		WALPartial: "partial segment piece",
		WALHistory: "timeline history file",
	}[m.Kind]
	return fmt.Errorf("put WAL: %s %s of system %s is %w: refusing to overwrite it",
		what, m.Name, systemID, ErrWALConflict)
}

// WAL reads and verifies the WAL manifest of the archived file name of system
// systemID. A file that is not archived yields an error wrapping ErrNotFound;
// a manifest that fails verification, including one copied from another name
// or system, yields a *CorruptError.
func (r *Repo) WAL(ctx context.Context, systemID, name string) (WALFile, error) {
	if err := validateSystemID(systemID); err != nil {
		return WALFile{}, fmt.Errorf("read WAL: %w", err)
	}
	if _, _, err := parseWALName(name); err != nil {
		return WALFile{}, fmt.Errorf("read WAL %s: %w", systemID, err)
	}
	m, err := r.readWALManifest(ctx, systemID, name)
	if err != nil {
		return WALFile{}, err
	}
	return WALFile{Name: m.Name, Kind: m.Kind, Size: m.Size, Blocks: m.Blocks, CreatedAt: m.CreatedAt}, nil
}

// ReadWAL writes the content of the archived file name of system systemID to
// w, verifying every block (authenticated, named by its content, of the
// expected length) before writing it. A file that is not archived yields an
// error wrapping ErrNotFound; a manifest or block that fails verification,
// including a missing block, yields a *CorruptError: a missing block is
// never reported as a missing file, so that a restore_command cannot mistake
// a damaged archive for the end of the WAL.
//
// On error, w may have received part of the file: write to a temporary file
// and rename it only when ReadWAL succeeds.
func (r *Repo) ReadWAL(ctx context.Context, systemID, name string, w io.Writer) error {
	if err := validateSystemID(systemID); err != nil {
		return fmt.Errorf("read WAL: %w", err)
	}
	if _, _, err := parseWALName(name); err != nil {
		return fmt.Errorf("read WAL %s: %w", systemID, err)
	}
	m, err := r.readWALManifest(ctx, systemID, name)
	if err != nil {
		return err
	}
	rel := walRel(systemID, name)
	var plain []byte
	var total int64
	for i, b := range m.Blocks {
		want := int64(m.BlockSize)
		if i == len(m.Blocks)-1 {
			want = m.Size - int64(i)*int64(m.BlockSize)
		}
		plain, err = r.Get(ctx, b, plain)
		if errors.Is(err, ErrNotFound) {
			return &CorruptError{Object: rel, Reason: fmt.Sprintf("block %d (%s) is missing from the repository", i, b)}
		}
		if err != nil {
			return fmt.Errorf("read WAL %s/%s: block %d: %w", systemID, name, i, err)
		}
		if int64(len(plain)) != want {
			return &CorruptError{Object: rel, Reason: fmt.Sprintf("block %d (%s) holds %d bytes, want %d", i, b, len(plain), want)}
		}
		if _, err := w.Write(plain); err != nil {
			return fmt.Errorf("read WAL %s/%s: write: %w", systemID, name, err)
		}
		total += want
	}
	if total != m.Size {
		return &CorruptError{Object: rel, Reason: fmt.Sprintf("blocks hold %d bytes, want %d", total, m.Size)}
	}
	return nil
}

// WALNames returns the names of the archived WAL files of system systemID,
// sorted: by timeline and segment, each timeline's history file first, and a
// segment's partial pieces after it by END.
func (r *Repo) WALNames(ctx context.Context, systemID string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	if err := validateSystemID(systemID); err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	prefix := walDir + "/" + systemID + "/"
	names := []string{}
	err := storage.Keys(ctx, r.st, prefix, func(key string) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(key, prefix), walSuffix)
		if !ok || strings.Contains(name, "/") {
			return nil
		}
		if _, _, err := parseWALName(name); err == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list WAL %s: %w", systemID, err)
	}
	slices.Sort(names)
	return names, nil
}

// readWALManifest reads, opens and validates wal/<systemID>/<name>.wal,
// whose arguments the caller has validated.
func (r *Repo) readWALManifest(ctx context.Context, systemID, name string) (*walManifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read WAL %s/%s: %w", systemID, name, err)
	}
	rel := walRel(systemID, name)
	sealed, err := r.st.Get(ctx, rel)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("read WAL %s/%s: %w", systemID, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read WAL %s/%s: %w", systemID, name, err)
	}
	plain, err := r.open(nil, sealed, walMagic, walAD(systemID, name), rel)
	if err != nil {
		return nil, err
	}
	m, err := parseWALManifest(plain)
	if err != nil {
		return nil, &CorruptError{Object: rel, Reason: "invalid WAL manifest: " + err.Error()}
	}
	// The associated data already binds both; the content must agree.
	if m.SystemID != systemID || m.Name != name {
		return nil, &CorruptError{Object: rel, Reason: fmt.Sprintf("WAL manifest is for %s/%s", m.SystemID, m.Name)}
	}
	return m, nil
}

// walRel returns the repository-relative, slash-separated path of a WAL
// manifest.
func walRel(systemID, name string) string {
	return walDir + "/" + systemID + "/" + name + walSuffix
}

// walAD is the associated data that binds a sealed WAL manifest to its
// system and name.
func walAD(systemID, name string) []byte {
	return []byte("wal:" + systemID + "/" + name)
}

// parseWALManifest parses and validates the JSON of a WAL manifest.
func parseWALManifest(data []byte) (*walManifest, error) {
	var m walManifest
	if err := json.Unmarshal(data, &m); err != nil {
		var head struct {
			Format int `json:"format"`
		}
		if json.Unmarshal(data, &head) == nil && head.Format != WALFormat {
			return nil, fmt.Errorf("unsupported WAL manifest format %d (this version reads format %d)", head.Format, WALFormat)
		}
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// validate checks everything ReadWAL relies on.
func (m *walManifest) validate() error {
	if m.Format != WALFormat {
		return fmt.Errorf("unsupported WAL manifest format %d (this version reads format %d)", m.Format, WALFormat)
	}
	if err := validateSystemID(m.SystemID); err != nil {
		return err
	}
	kind, end, err := parseWALName(m.Name)
	if err != nil {
		return err
	}
	if m.Kind != kind {
		return fmt.Errorf("kind %q does not match name %s (a %s)", m.Kind, m.Name, kind)
	}
	if err := checkWALSize(m.Name, kind, end, m.Size); err != nil {
		return err
	}
	if m.BlockSize <= 0 || m.BlockSize > maxBlockSize {
		return fmt.Errorf("invalid block size %d", m.BlockSize)
	}
	bs := int64(m.BlockSize)
	want := m.Size / bs
	if m.Size%bs != 0 {
		want++
	}
	if int64(len(m.Blocks)) != want {
		return fmt.Errorf("%d blocks for %d bytes, want %d", len(m.Blocks), m.Size, want)
	}
	for i, b := range m.Blocks {
		if !validObjectName(b) {
			return fmt.Errorf("blocks[%d]: invalid object name %q", i, b)
		}
	}
	if m.CreatedAt.IsZero() {
		return errors.New("no created_at")
	}
	return nil
}

// validateSystemID checks that id is a PostgreSQL system identifier in
// canonical decimal: a non-zero 64-bit unsigned integer without leading zeros.
func validateSystemID(id string) error {
	v, err := strconv.ParseUint(id, 10, 64)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != id {
		return fmt.Errorf("invalid system identifier %q: want a non-zero 64-bit number in decimal", id)
	}
	return nil
}

// parseWALName returns the kind of the WAL file name, and for a partial
// piece its END.
func parseWALName(name string) (kind WALKind, end int64, err error) {
	switch {
	case strings.HasSuffix(name, ".history"):
		if _, err := pgwal.ParseHistoryFileName(name); err != nil {
			return "", 0, err
		}
		return WALHistory, 0, nil

	case strings.Contains(name, partialInfix):
		segment, endText, _ := strings.Cut(name, partialInfix)
		if len(segment) != 24 {
			return "", 0, fmt.Errorf("%w %q: want a segment name, %s and END", pgwal.ErrInvalidName, name, partialInfix)
		}
		maxSize, err := maxSegmentSizeOf(segment)
		if err != nil {
			return "", 0, err
		}
		if len(endText) != 8 || !isUpperHexString(endText) {
			return "", 0, fmt.Errorf("%w %q: END %q is not 8 upper-case hexadecimal digits", pgwal.ErrInvalidName, name, endText)
		}
		end, _ := strconv.ParseInt(endText, 16, 64)
		if end < 1 || end > maxSize {
			return "", 0, fmt.Errorf("%w %q: END %d is outside 1 to %d, the largest segment size that has this segment",
				pgwal.ErrInvalidName, name, end, maxSize)
		}
		return WALPartial, end, nil

	case len(name) == 24:
		if _, err := maxSegmentSizeOf(name); err != nil {
			return "", 0, err
		}
		return WALSegment, 0, nil
	}
	return "", 0, fmt.Errorf("%w %q: want a segment name (24 hexadecimal digits), a partial piece (SEGMENT%sEND) or a history file (TIMELINE.history)",
		pgwal.ErrInvalidName, name, partialInfix)
}

// maxSegmentSizeOf returns the largest segment size for which segment (24
// characters) names a segment: the last eight digits count segments within
// 4 GiB of WAL, so large segments allow fewer.
func maxSegmentSizeOf(segment string) (int64, error) {
	// The smallest segments allow every name another size allows.
	if _, _, err := pgwal.ParseSegmentName(segment, minSegmentSize); err != nil {
		return 0, err
	}
	// Size s allows a last part lo when lo < 4 GiB / s, that is s <= 4 GiB / (lo+1): the
	// largest power of two up to that, within the sizes PostgreSQL allows.
	lo, _ := strconv.ParseUint(segment[16:24], 16, 32)
	return min(int64(1)<<(bits.Len64((1<<32)/(lo+1))-1), maxSegmentSize), nil
}

// checkWALSize checks size against the kind of file name and its END.
func checkWALSize(name string, kind WALKind, end, size int64) error {
	switch kind {
	case WALSegment:
		if err := pgwal.CheckSegmentSize(size); err != nil {
			return fmt.Errorf("segment %s: size %d is not a WAL segment size (a power of two from 1 MiB to 1 GiB)", name, size)
		}
		if _, _, err := pgwal.ParseSegmentName(name, size); err != nil {
			return fmt.Errorf("segment %s: no such segment with %d-byte segments: %v", name, size, err)
		}
	case WALPartial:
		if size != end {
			return fmt.Errorf("partial piece %s: size %d, want END (%d): a piece holds the segment's first END bytes", name, size, end)
		}
	case WALHistory:
		if size < 1 || size > maxHistorySize {
			return fmt.Errorf("history file %s: size %d is outside 1 to %d", name, size, maxHistorySize)
		}
	default:
		return fmt.Errorf("unknown WAL kind %q", kind)
	}
	return nil
}

// isUpperHexString reports whether s is made of digits and upper-case A to F.
func isUpperHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
