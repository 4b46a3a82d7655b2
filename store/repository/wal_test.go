package repository

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository/storage"
)

const (
	testSystemID = "7301234567890123456"
	segSize      = pgwal.DefaultSegmentSize
	mib          = 1 << 20
)

// seg3 is the name of segment 3 of timeline 1 with 16 MiB segments.
var seg3 = pgwal.SegmentName(1, 3, segSize)

// putWAL archives data as name of testSystemID or fails the test.
func putWAL(t *testing.T, r *Repo, name string, data []byte) (WALRef, bool) {
	t.Helper()
	ref, isNew, err := r.PutWAL(t.Context(), testSystemID, name, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("PutWAL(%s, %d bytes) = %v", name, len(data), err)
	}
	return ref, isNew
}

// readWAL returns the content of archived file name of testSystemID.
func readWAL(t *testing.T, r *Repo, name string) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	err := r.ReadWAL(t.Context(), testSystemID, name, &buf)
	return buf.Bytes(), err
}

// walPath returns the path of the WAL manifest of name of testSystemID.
func walPath(r *Repo, name string) string {
	return filepath.Join(r.localDir(), "wal", testSystemID, name+walSuffix)
}

func TestWALRoundTrip(t *testing.T) {
	t.Parallel()
	segment := randomBytes(1, segSize)
	history := []byte("1\t0/3000158\tno recovery target specified\n")
	tests := []struct {
		desc       string
		name       string
		data       []byte
		kind       WALKind
		wantBlocks int
	}{
		{"segment", seg3, segment, WALSegment, 16},
		{"1 MiB segment", pgwal.SegmentName(1, 0xFFF, 1<<20), segment[:1<<20], WALSegment, 1},
		{"partial", PartialWALName(seg3, 3*mib+512), segment[:3*mib+512], WALPartial, 4},
		{"partial of one byte", PartialWALName(seg3, 1), segment[:1], WALPartial, 1},
		{"history", "00000002.history", history, WALHistory, 1},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			r, _ := setup(t)
			ctx := t.Context()
			before := time.Now().UTC()
			ref, isNew := putWAL(t, r, tt.name, tt.data)
			after := time.Now().UTC()
			if !isNew {
				t.Errorf("PutWAL(%s) new = false, want true", tt.name)
			}
			wantRef := WALRef{Name: tt.name, Kind: tt.kind, Size: int64(len(tt.data)), Blocks: tt.wantBlocks, BlocksNew: tt.wantBlocks}
			gotRef := ref
			gotRef.StoredBytesNew = 0
			if diff := cmp.Diff(wantRef, gotRef); diff != "" {
				t.Errorf("PutWAL(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
			if ref.StoredBytesNew <= 0 {
				t.Errorf("PutWAL(%s).StoredBytesNew = %d, want > 0", tt.name, ref.StoredBytesNew)
			}

			f, err := r.WAL(ctx, testSystemID, tt.name)
			if err != nil {
				t.Fatalf("WAL(%s) = %v", tt.name, err)
			}
			if f.Name != tt.name || f.Kind != tt.kind || f.Size != int64(len(tt.data)) || len(f.Blocks) != tt.wantBlocks {
				t.Errorf("WAL(%s) = %+v, want kind %s, size %d, %d blocks", tt.name, f, tt.kind, len(tt.data), tt.wantBlocks)
			}
			if f.CreatedAt.Before(before) || f.CreatedAt.After(after) || f.CreatedAt.Location() != time.UTC {
				t.Errorf("WAL(%s).CreatedAt = %v, want UTC within [%v, %v]", tt.name, f.CreatedAt, before, after)
			}
			got, err := readWAL(t, r, tt.name)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("ReadWAL(%s) = %d bytes, %v, want the %d bytes stored", tt.name, len(got), err, len(tt.data))
			}
			names, err := r.WALNames(ctx, testSystemID)
			if err != nil || !cmp.Equal(names, []string{tt.name}) {
				t.Errorf("WALNames() = %q, %v, want [%s]", names, err, tt.name)
			}
			fi, err := os.Stat(walPath(r, tt.name))
			if err != nil || fi.Mode().Perm() != fs.FileMode(0o440) {
				t.Errorf("stat WAL manifest = %v, %v, want mode %v", fi, err, fs.FileMode(0o440))
			}
			dirty := r.st.(*storage.Local).Pending()
			if dirty != 0 {
				t.Errorf("directories to sync after PutWAL = %d, want 0", dirty)
			}
		})
	}

	// A name valid only for 1 GiB segments: a 16 MiB segment cannot have it.
	r, _ := setup(t)
	big := pgwal.SegmentName(1, 3, 1<<30)
	if _, _, err := r.PutWAL(t.Context(), testSystemID, big, bytes.NewReader(segment), segSize); err != nil {
		t.Errorf("PutWAL(%s, 16 MiB) = %v, want nil (segment 0x3 exists with 16 MiB segments)", big, err)
	}
	odd := "000000010000000000000100" // segment part 0x100: at most 8 MiB segments
	if _, _, err := r.PutWAL(t.Context(), testSystemID, odd, bytes.NewReader(segment), segSize); err == nil {
		t.Errorf("PutWAL(%s, 16 MiB) = nil, want an error: no such 16 MiB segment", odd)
	}
}

func TestPutWALIdempotent(t *testing.T) {
	t.Parallel()
	segment := randomBytes(2, segSize)
	for _, tt := range []struct {
		name string
		data []byte
		what string
	}{
		{seg3, segment, "segment"},
		{PartialWALName(seg3, 5*mib), segment[:5*mib], "partial segment piece"},
		{"00000002.history", []byte("1\t0/3000158\tno recovery target specified\n"), "timeline history file"},
	} {
		t.Run(tt.what, func(t *testing.T) {
			t.Parallel()
			r, _ := setup(t)
			ctx := t.Context()
			first, _ := putWAL(t, r, tt.name, tt.data)
			packs, _ := packIDs(t, r)
			blobs := storedBlobs(t, r)
			if blobs != first.Blocks || len(packs) != 1 {
				t.Errorf("PutWAL(%s) stored %d blobs in %d packs, want %d in 1", tt.name, blobs, len(packs), first.Blocks)
			}

			ref, isNew := putWAL(t, r, tt.name, tt.data)
			want := first
			want.BlocksNew, want.StoredBytesNew = 0, 0
			if isNew || !cmp.Equal(ref, want) {
				t.Errorf("PutWAL(%s) again = %+v, %v, want %+v, false", tt.name, ref, isNew, want)
			}

			changed := bytes.Clone(tt.data)
			changed[len(changed)-1] ^= 1
			ref, isNew, err := r.PutWAL(ctx, testSystemID, tt.name, bytes.NewReader(changed), int64(len(changed)))
			if !errors.Is(err, ErrWALConflict) {
				t.Fatalf("PutWAL(%s, other content) = %+v, %v, %v, want ErrWALConflict", tt.name, ref, isNew, err)
			}
			wantMsg := fmt.Sprintf("%s %s of system %s is already archived with different content: refusing to overwrite it", tt.what, tt.name, testSystemID)
			if !strings.Contains(err.Error(), wantMsg) {
				t.Errorf("PutWAL(%s, other content) = %q, want it to say %q", tt.name, err, wantMsg)
			}
			// Conflicting content is hashed, never stored.
			if err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if now, _ := packIDs(t, r); !slices.Equal(now, packs) || storedBlobs(t, r) != blobs {
				t.Errorf("after a refused overwrite: packs %q holding %d blobs, want %q holding %d", now, storedBlobs(t, r), packs, blobs)
			}
			if _, temps := countFiles(t, r.localDir()); temps != 0 {
				t.Errorf("temporary files after a refused overwrite = %d, want 0", temps)
			}
			got, err := readWAL(t, r, tt.name)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("ReadWAL(%s) after a refused overwrite = %d bytes, %v, want the original", tt.name, len(got), err)
			}
			if n, temps := countFiles(t, filepath.Join(r.localDir(), "wal")); n != 1 || temps != 0 {
				t.Errorf("files in wal/ = %d (%d temporary), want 1 (0)", n, temps)
			}
		})
	}
}

// TestPutWALRace archives one name from several goroutines at once: with the
// same content all succeed and exactly one reports a new file; with
// different content exactly one wins and the others conflict.
func TestPutWALRace(t *testing.T) {
	t.Parallel()
	const n = 6
	for _, same := range []bool{true, false} {
		t.Run(fmt.Sprintf("same content %v", same), func(t *testing.T) {
			t.Parallel()
			r, _ := setup(t)
			var wg sync.WaitGroup
			news := make([]bool, n)
			errs := make([]error, n)
			for i := range n {
				data := randomBytes(3, 2*mib+7)
				if !same {
					data[0] = byte(i)
				}
				name := PartialWALName(seg3, int64(len(data)))
				wg.Go(func() {
					_, news[i], errs[i] = r.PutWAL(t.Context(), testSystemID, name, bytes.NewReader(data), int64(len(data)))
				})
			}
			wg.Wait()
			newCount, conflicts := 0, 0
			for i := range n {
				switch {
				case errs[i] == nil && news[i]:
					newCount++
				case errors.Is(errs[i], ErrWALConflict):
					conflicts++
				case errs[i] != nil:
					t.Errorf("PutWAL() = %v", errs[i])
				}
			}
			wantConflicts := 0
			if !same {
				wantConflicts = n - 1
			}
			if newCount != 1 || conflicts != wantConflicts {
				t.Errorf("concurrent PutWAL() = %d new, %d conflicts, want 1, %d", newCount, conflicts, wantConflicts)
			}
		})
	}
}

func TestPutWALPartialDedupe(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	segment := randomBytes(4, segSize)
	steps := []struct {
		size      int64
		name      string
		blocks    int
		blocksNew int
	}{
		{3 * mib, PartialWALName(seg3, 3*mib), 3, 3},
		{5 * mib, PartialWALName(seg3, 5*mib), 5, 2},
		// A piece ending mid-block shares the whole blocks before it.
		{5*mib + 4096, PartialWALName(seg3, 5*mib+4096), 6, 1},
		{7*mib + 8192, PartialWALName(seg3, 7*mib+8192), 8, 3},
		// The complete segment stores the tail its last piece lacked.
		{segSize, seg3, 16, 16 - 7},
	}
	blobs := storedBlobs(t, r)
	for _, s := range steps {
		ref, isNew := putWAL(t, r, s.name, segment[:s.size])
		if !isNew || ref.Blocks != s.blocks || ref.BlocksNew != s.blocksNew {
			t.Errorf("PutWAL(%s) = %d blocks, %d new (new file %v), want %d, %d (true)", s.name, ref.Blocks, ref.BlocksNew, isNew, s.blocks, s.blocksNew)
		}
		// PutWAL stores its new blobs before it returns.
		now := storedBlobs(t, r)
		if now-blobs != s.blocksNew {
			t.Errorf("PutWAL(%s) stored %d blobs, want %d", s.name, now-blobs, s.blocksNew)
		}
		blobs = now
		if s.blocksNew > 0 && ref.StoredBytesNew < int64(s.blocksNew-1)*mib {
			t.Errorf("PutWAL(%s).StoredBytesNew = %d, want about %d MiB of random data", s.name, ref.StoredBytesNew, s.blocksNew)
		}
	}
	for _, s := range steps {
		got, err := readWAL(t, r, s.name)
		if err != nil || !bytes.Equal(got, segment[:s.size]) {
			t.Errorf("ReadWAL(%s) = %d bytes, %v, want the first %d bytes of the segment", s.name, len(got), err, s.size)
		}
	}
	names, err := r.WALNames(ctx, testSystemID)
	want := []string{seg3}
	for _, s := range steps[:len(steps)-1] {
		want = append(want, s.name)
	}
	if err != nil || !cmp.Equal(names, want) {
		t.Errorf("WALNames() = %q, %v, want %q", names, err, want)
	}
}

func TestPutWALInvalid(t *testing.T) {
	t.Parallel()
	segment := randomBytes(5, segSize)
	seg := func(n int) []byte { return segment[:n] }
	tests := []struct {
		desc     string
		systemID string
		name     string
		data     []byte
		size     int64 // -1: len(data)
		wantErr  string
		badName  bool // the error wraps pgwal.ErrInvalidName
	}{
		{"empty system id", "", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"zero system id", "0", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"leading zero system id", "07301234567890123456", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"negative system id", "-7", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"system id beyond 64 bits", "18446744073709551616", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"path as system id", "../7301234567890123456", seg3, seg(segSize), -1, "invalid system identifier", false},
		{"hex system id", "0x1", seg3, seg(segSize), -1, "invalid system identifier", false},

		{"empty name", testSystemID, "", nil, -1, "invalid WAL file name", true},
		{"short name", testSystemID, seg3[:23], seg(segSize), -1, "invalid WAL file name", true},
		{"long name", testSystemID, seg3 + "0", seg(segSize), -1, "invalid WAL file name", true},
		{"lower-case name", testSystemID, "00000001000000000000000a", seg(segSize), -1, "upper-case", true},
		{"timeline 0", testSystemID, "000000000000000000000003", seg(segSize), -1, "timeline 0", true},
		{"segment part beyond 1 MiB segments", testSystemID, "000000010000000000001000", seg(segSize), -1, "too large", true},
		{"path", testSystemID, "../../backups/x", nil, -1, "invalid WAL file name", true},
		{"slash", testSystemID, seg3 + "/x", nil, -1, "invalid WAL file name", true},
		{"suffix", testSystemID, seg3 + ".wal", seg(segSize), -1, "invalid WAL file name", true},
		{"partial without END", testSystemID, seg3 + ".partial", seg(mib), -1, "invalid WAL file name", true},
		{"partial END short", testSystemID, seg3 + ".partial.100000", seg(mib), -1, "8 upper-case", true},
		{"partial END long", testSystemID, seg3 + ".partial.000100000", seg(mib), -1, "8 upper-case", true},
		{"partial END lower case", testSystemID, seg3 + ".partial.00a00000", seg(10 * mib), -1, "8 upper-case", true},
		{"partial END decimal sign", testSystemID, seg3 + ".partial.+0100000", seg(mib), -1, "8 upper-case", true},
		{"partial END zero", testSystemID, seg3 + ".partial.00000000", nil, 0, "outside 1 to", true},
		{"partial END beyond 1 GiB", testSystemID, seg3 + ".partial.40000001", nil, 1<<30 + 1, "outside 1 to", true},
		{"partial END beyond its segment", testSystemID, "000000010000000000000100.partial.00900000", seg(9 * mib), -1, "outside 1 to 8388608", true},
		{"partial of a bad segment", testSystemID, "0000000100000000000000.partial.00100000", seg(mib), -1, "invalid WAL file name", true},
		{"history timeline 0", testSystemID, "00000000.history", []byte("x\n"), -1, "timeline 0", true},
		{"history short", testSystemID, "0000002.history", []byte("x\n"), -1, "invalid WAL file name", true},
		{"history lower case", testSystemID, "0000000a.history", []byte("x\n"), -1, "invalid WAL file name", true},
		{"history upper-case suffix", testSystemID, "00000002.HISTORY", []byte("x\n"), -1, "invalid WAL file name", true},
		{"partial history", testSystemID, "00000002.partial.00000001.history", []byte("x"), -1, "invalid WAL file name", true},

		{"segment not a power of two", testSystemID, seg3, seg(segSize - 1), -1, "not a WAL segment size", false},
		{"segment of 3 MiB", testSystemID, seg3, seg(3 * mib), -1, "not a WAL segment size", false},
		{"segment of 512 KiB", testSystemID, seg3, seg(512 << 10), -1, "not a WAL segment size", false},
		{"segment name too large for its size", testSystemID, "000000010000000000000100", seg(segSize), -1, "no such segment", false},
		{"partial size differs from END", testSystemID, PartialWALName(seg3, 2*mib), seg(mib), -1, "want END", false},
		{"history empty", testSystemID, "00000002.history", []byte{}, -1, "outside 1 to", false},
		{"history too large", testSystemID, "00000002.history", seg(4*mib + 1), -1, "outside 1 to", false},
		{"data shorter than size", testSystemID, seg3, seg(segSize - 10), segSize, "data ends after 16777206 bytes, want 16777216", false},
		{"data longer than size", testSystemID, PartialWALName(seg3, mib), seg(mib + 1), mib, "data is longer than 1048576 bytes", false},
	}
	r, _ := setup(t)
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			size := tt.size
			if size < 0 {
				size = int64(len(tt.data))
			}
			ref, isNew, err := r.PutWAL(t.Context(), tt.systemID, tt.name, bytes.NewReader(tt.data), size)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PutWAL(%q, %q, %d bytes) = %+v, %v, %v, want an error containing %q", tt.systemID, tt.name, size, ref, isNew, err, tt.wantErr)
			}
			if got := errors.Is(err, pgwal.ErrInvalidName); got != tt.badName {
				t.Errorf("PutWAL(%q, %q) = %v: wraps pgwal.ErrInvalidName %v, want %v", tt.systemID, tt.name, err, got, tt.badName)
			}
			if tt.badName {
				if _, err := r.WAL(t.Context(), testSystemID, tt.name); !errors.Is(err, pgwal.ErrInvalidName) {
					t.Errorf("WAL(%q) = %v, want pgwal.ErrInvalidName", tt.name, err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(r.localDir(), "wal")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("invalid PutWAL calls left wal/ behind (stat: %v)", err)
		}
	})
}

func TestPutWALReadError(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	boom := errors.New("disk on fire")
	rd := ioErrAfter{n: mib + 5, err: boom}
	if _, _, err := r.PutWAL(t.Context(), testSystemID, PartialWALName(seg3, 2*mib), &rd, 2*mib); !errors.Is(err, boom) {
		t.Errorf("PutWAL(failing reader) = %v, want %v", err, boom)
	}
	if _, err := r.WAL(t.Context(), testSystemID, PartialWALName(seg3, 2*mib)); !errors.Is(err, ErrNotFound) {
		t.Errorf("WAL() after a failed PutWAL = %v, want ErrNotFound", err)
	}
	// A reader that hands out one byte at a time is read in full.
	segment := randomBytes(7, mib+3)
	name := PartialWALName(seg3, int64(len(segment)))
	if _, _, err := r.PutWAL(t.Context(), testSystemID, name, iotest.OneByteReader(bytes.NewReader(segment)), int64(len(segment))); err != nil {
		t.Fatalf("PutWAL(one byte at a time) = %v", err)
	}
	if got, err := readWAL(t, r, name); err != nil || !bytes.Equal(got, segment) {
		t.Errorf("ReadWAL(%s) = %d bytes, %v, want the data", name, len(got), err)
	}
}

// ioErrAfter yields n zero bytes, then err.
type ioErrAfter struct {
	n   int
	err error
}

func (r *ioErrAfter) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

func TestWALCorrupt(t *testing.T) {
	t.Parallel()
	segment := randomBytes(8, segSize)
	const other = "7309999999999999999"

	// setupWAL returns a repository holding seg3 and segment 4.
	setupWAL := func(t *testing.T) *Repo {
		t.Helper()
		r, _ := setup(t)
		putWAL(t, r, seg3, segment)
		putWAL(t, r, pgwal.SegmentName(1, 4, segSize), randomBytes(9, segSize))
		return r
	}
	rel := "wal/" + testSystemID + "/" + seg3 + ".wal"

	for _, at := range []func(n int) int{
		func(int) int { return 0 },
		func(int) int { return 10 },
		func(int) int { return 28 },
		func(n int) int { return n / 2 },
		func(n int) int { return n - 1 },
	} {
		r := setupWAL(t)
		fi, err := os.Stat(walPath(r, seg3))
		if err != nil {
			t.Fatal(err)
		}
		i := at(int(fi.Size()))
		t.Run(fmt.Sprintf("byte %d flipped", i), func(t *testing.T) {
			t.Parallel()
			rewrite(t, walPath(r, seg3), func(b []byte) []byte {
				b[i] ^= 0x80
				return b
			})
			_, err := r.WAL(t.Context(), testSystemID, seg3)
			wantCorrupt(t, "WAL(tampered)", err, rel)
			_, err = readWAL(t, r, seg3)
			wantCorrupt(t, "ReadWAL(tampered)", err, rel)
			// A tampered manifest is not replaced by a new push either.
			_, _, err = r.PutWAL(t.Context(), testSystemID, seg3, bytes.NewReader(segment), segSize)
			wantCorrupt(t, "PutWAL(over tampered)", err, rel)
		})
	}

	t.Run("truncated", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		rewrite(t, walPath(r, seg3), func(b []byte) []byte { return b[:20] })
		_, err := r.WAL(t.Context(), testSystemID, seg3)
		wantCorrupt(t, "WAL(truncated)", err, rel)
	})

	t.Run("copied from another name", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		seg4 := pgwal.SegmentName(1, 4, segSize)
		data, err := os.ReadFile(walPath(r, seg4))
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, walPath(r, seg3), func([]byte) []byte { return data })
		_, err = r.WAL(t.Context(), testSystemID, seg3)
		wantCorrupt(t, "WAL(seg3 holding seg4's manifest)", err, rel)
	})

	t.Run("copied to another system", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		if _, err := r.WAL(t.Context(), other, seg3); !errors.Is(err, ErrNotFound) {
			t.Errorf("WAL(other system) = %v, want ErrNotFound", err)
		}
		if err := r.ReadWAL(t.Context(), other, seg3, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadWAL(other system) = %v, want ErrNotFound", err)
		}
		data, err := os.ReadFile(walPath(r, seg3))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(r.localDir(), "wal", other)
		mkdir(t, dir)
		if err := os.WriteFile(filepath.Join(dir, seg3+walSuffix), data, 0o440); err != nil {
			t.Fatal(err)
		}
		_, err = r.WAL(t.Context(), other, seg3)
		wantCorrupt(t, "WAL(copied to another system)", err, "wal/"+other+"/"+seg3+".wal")
	})

	t.Run("inconsistent content", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		f, err := r.WAL(t.Context(), testSystemID, seg3)
		if err != nil {
			t.Fatal(err)
		}
		// Only a writer holding the key can produce these.
		for _, tc := range []struct {
			desc string
			edit func(m *walManifest)
			want string
		}{
			{"other name inside", func(m *walManifest) { m.Name = pgwal.SegmentName(1, 4, segSize) }, "WAL manifest is for"},
			{"other system inside", func(m *walManifest) { m.SystemID = other }, "WAL manifest is for"},
			{"missing block", func(m *walManifest) { m.Blocks = m.Blocks[1:] }, "15 blocks for"},
			{"kind", func(m *walManifest) { m.Kind = WALPartial }, "does not match"},
		} {
			m := walManifest{Format: WALFormat, SystemID: testSystemID, Name: seg3, Kind: WALSegment, Size: segSize,
				BlockSize: r.blockSize, Blocks: f.Blocks, CreatedAt: f.CreatedAt}
			tc.edit(&m)
			plain, err := json.Marshal(&m)
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := r.seal(nil, walMagic, walAD(testSystemID, seg3), plain)
			if err != nil {
				t.Fatal(err)
			}
			rewrite(t, walPath(r, seg3), func([]byte) []byte { return sealed })
			_, err = r.WAL(t.Context(), testSystemID, seg3)
			wantCorrupt(t, "WAL("+tc.desc+")", err, rel)
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("WAL(%s) = %v, want it to say %q", tc.desc, err, tc.want)
			}
		}
	})

	t.Run("block altered", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		f, err := r.WAL(t.Context(), testSystemID, seg3)
		if err != nil {
			t.Fatal(err)
		}
		path, off, n := r.blobAt(t, f.Blocks[7])
		rewrite(t, path, func(b []byte) []byte {
			b[off+n/2] ^= 1
			return b
		})
		_, err = readWAL(t, r, seg3)
		wantCorrupt(t, "ReadWAL(block altered)", err, f.Blocks[7])
	})

	t.Run("block swapped", func(t *testing.T) {
		t.Parallel()
		r := setupWAL(t)
		f, err := r.WAL(t.Context(), testSystemID, seg3)
		if err != nil {
			t.Fatal(err)
		}
		path0, off0, n0 := r.blobAt(t, f.Blocks[0])
		path1, off1, n1 := r.blobAt(t, f.Blocks[1])
		if path0 != path1 || n0 != n1 {
			t.Fatalf("blocks 0 and 1 at %s [%d, +%d) and %s [%d, +%d), want ranges of one length in one pack", path0, off0, n0, path1, off1, n1)
		}
		rewrite(t, path0, func(b []byte) []byte {
			copy(b[off0:off0+n0], b[off1:off1+n1])
			return b
		})
		_, err = readWAL(t, r, seg3)
		wantCorrupt(t, "ReadWAL(block swapped)", err, f.Blocks[0])
	})

	t.Run("block missing", func(t *testing.T) {
		t.Parallel()
		// Packs of one block each, so that only the last block goes with its pack.
		r, _ := setupWith(t, Options{PackSize: mib})
		putWAL(t, r, seg3, segment)
		f, err := r.WAL(t.Context(), testSystemID, seg3)
		if err != nil {
			t.Fatal(err)
		}
		path, _, _ := r.blobAt(t, f.Blocks[15])
		if p, _, _ := r.blobAt(t, f.Blocks[14]); p == path {
			t.Fatalf("blocks 14 and 15 both in %s, want a pack each", path)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err = r.ReadWAL(t.Context(), testSystemID, seg3, &buf)
		wantCorrupt(t, "ReadWAL(block missing)", err, rel)
		if errors.Is(err, ErrNotFound) {
			t.Errorf("ReadWAL(block missing) = %v: a missing block must not read as a missing file", err)
		}
		if err != nil && !strings.Contains(err.Error(), "block 15 ") {
			t.Errorf("ReadWAL(block missing) = %v, want it to name block 15", err)
		}
		if buf.Len() != 15*mib {
			t.Errorf("ReadWAL(block missing) wrote %d bytes, want the %d before block 15", buf.Len(), 15*mib)
		}
	})
}

func TestWALMissing(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	if _, err := r.WAL(ctx, testSystemID, seg3); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), seg3) {
		t.Errorf("WAL(missing) = %v, want ErrNotFound naming it", err)
	}
	var buf bytes.Buffer
	if err := r.ReadWAL(ctx, testSystemID, seg3, &buf); !errors.Is(err, ErrNotFound) || buf.Len() != 0 {
		t.Errorf("ReadWAL(missing) = %v (%d bytes written), want ErrNotFound and nothing written", err, buf.Len())
	}
	if names, err := r.WALNames(ctx, testSystemID); err != nil || names == nil || len(names) != 0 {
		t.Errorf("WALNames() of a new repository = %#v, %v, want an empty list", names, err)
	}
	if _, err := r.WALNames(ctx, "x"); err == nil {
		t.Errorf("WALNames(x) = nil error, want an invalid system identifier")
	}
}

func TestWALNames(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	seg := func(tli uint32, n uint64) string { return pgwal.SegmentName(tli, n, segSize) }
	data := randomBytes(10, segSize)
	history := []byte("1\t0/4000000\tno recovery target specified\n")
	for _, name := range []string{
		seg(2, 4), PartialWALName(seg(2, 5), 0x20000), seg(1, 3), "00000002.history",
		PartialWALName(seg(1, 4), 0x100000), PartialWALName(seg(1, 4), 0xA00), seg(1, 4), seg(1, 0x100),
	} {
		switch kind, end, _ := parseWALName(name); kind {
		case WALHistory:
			putWAL(t, r, name, history)
		case WALPartial:
			putWAL(t, r, name, data[:end])
		default:
			putWAL(t, r, name, data)
		}
	}
	// Another system's WAL, and what is not WAL at all, are not listed.
	if _, _, err := r.PutWAL(ctx, "42", seg(1, 9), bytes.NewReader(data), segSize); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.localDir(), "wal", testSystemID)
	for _, name := range []string{".tmp-" + seg(1, 5) + ".wal-123", "notes.txt", "junk.wal", seg(1, 6)} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, filepath.Join(dir, seg(1, 7)+".wal"))

	names, err := r.WALNames(ctx, testSystemID)
	want := []string{
		seg(1, 3), seg(1, 4), PartialWALName(seg(1, 4), 0xA00), PartialWALName(seg(1, 4), 0x100000), seg(1, 0x100),
		"00000002.history", seg(2, 4), PartialWALName(seg(2, 5), 0x20000),
	}
	if diff := cmp.Diff(want, names); err != nil || diff != "" {
		t.Errorf("WALNames() = %v, mismatch (-want +got):\n%s", err, diff)
	}
	if names, err := r.WALNames(ctx, "42"); err != nil || !cmp.Equal(names, []string{seg(1, 9)}) {
		t.Errorf("WALNames(42) = %q, %v, want [%s]", names, err, seg(1, 9))
	}
}

func TestPartialWALName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		end  int64
		want string
	}{
		{1, seg3 + ".partial.00000001"},
		{0xA3C000, seg3 + ".partial.00A3C000"},
		{segSize, seg3 + ".partial.01000000"},
		{1 << 30, seg3 + ".partial.40000000"},
	} {
		got := PartialWALName(seg3, tt.end)
		if got != tt.want {
			t.Errorf("PartialWALName(%s, %d) = %q, want %q", seg3, tt.end, got, tt.want)
		}
		kind, end, err := parseWALName(got)
		if err != nil || kind != WALPartial || end != tt.end {
			t.Errorf("parseWALName(%q) = %s, %d, %v, want partial, %d", got, kind, end, err, tt.end)
		}
	}
}

// sampleWALManifests returns valid WAL manifest JSON of each kind.
func sampleWALManifests(t testing.TB) [][]byte {
	t.Helper()
	block := strings.Repeat("ab", 32)
	at := time.Date(2026, 11, 25, 9, 41, 7, 123456789, time.UTC)
	var out [][]byte
	for _, m := range []walManifest{
		{WALFormat, testSystemID, seg3, WALSegment, segSize, mib, slicesRepeat(block, 16), at},
		{WALFormat, testSystemID, PartialWALName(seg3, 0xA3C000), WALPartial, 0xA3C000, mib, slicesRepeat(block, 11), at},
		{WALFormat, "1", "00000002.history", WALHistory, 42, mib, []string{block}, at},
		{WALFormat, "18446744073709551615", pgwal.SegmentName(7, 0xFFF, 1<<20), WALSegment, 1 << 20, 4096, slicesRepeat(block, 256), at},
	} {
		data, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestParseWALManifest(t *testing.T) {
	t.Parallel()
	for _, data := range sampleWALManifests(t) {
		if _, err := parseWALManifest(data); err != nil {
			t.Errorf("parseWALManifest(%s) = %v, want nil", data, err)
		}
	}
	valid := string(sampleWALManifests(t)[0])
	for _, tt := range []struct {
		desc, old, new, wantErr string
	}{
		{"format 2", `"format":1`, `"format":2`, "unsupported WAL manifest format 2"},
		{"format 2 other shape", `"format":1`, `"format":2,"blocks":{}`, "unsupported WAL manifest format 2"},
		{"bad system id", testSystemID, "007", "invalid system identifier"},
		{"bad name", seg3, "../../x", "invalid WAL file name"},
		{"wrong kind", `"kind":"segment"`, `"kind":"history"`, "does not match"},
		{"unknown kind", `"kind":"segment"`, `"kind":"tar"`, "does not match"},
		{"bad size", `"size":16777216`, `"size":16777215`, "not a WAL segment size"},
		{"zero block size", `"block_size":1048576`, `"block_size":0`, "invalid block size"},
		{"huge block size", `"block_size":1048576`, `"block_size":1099511627776`, "invalid block size"},
		{"path as block", strings.Repeat("ab", 32), "../../../../../../../../../../../../../../../../../../etc/passwd", "invalid object name"},
		{"no created_at", `"created_at":"2026-11-25T09:41:07.123456789Z"`, `"created_at":"0001-01-01T00:00:00Z"`, "no created_at"},
		{"trailing garbage", `}`, `}x`, "invalid character"},
	} {
		data := strings.Replace(valid, tt.old, tt.new, 1)
		if data == valid {
			t.Fatalf("%s: %q not found in %s", tt.desc, tt.old, valid)
		}
		if m, err := parseWALManifest([]byte(data)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseWALManifest(%s) = %+v, %v, want an error containing %q", tt.desc, m, err, tt.wantErr)
		}
	}
}

func FuzzParseWALManifest(f *testing.F) {
	for _, data := range sampleWALManifests(f) {
		f.Add(data)
	}
	f.Add([]byte(`{"format":1,"system_id":"1","name":"00000001.history","kind":"history","size":1,"block_size":1,"blocks":["` +
		strings.Repeat("0", 64) + `"],"created_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"format":1,"size":-1,"block_size":-1}`))
	f.Add([]byte(`{"format":1,"name":"000000010000000000000003.partial.7FFFFFFF","kind":"partial","size":9223372036854775807,"block_size":1}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseWALManifest(data)
		if err != nil {
			if m != nil {
				t.Fatalf("parseWALManifest(%q) = %+v, %v, want nil with the error", data, m, err)
			}
			return
		}
		if err := validateSystemID(m.SystemID); err != nil {
			t.Fatalf("parseWALManifest(%q) accepted system %q: %v", data, m.SystemID, err)
		}
		if strings.ContainsAny(m.Name, "/\\\x00") || strings.Contains(m.Name, "..") {
			t.Fatalf("parseWALManifest(%q) accepted name %q", data, m.Name)
		}
		kind, _, err := parseWALName(m.Name)
		if err != nil || kind != m.Kind {
			t.Fatalf("parseWALManifest(%q) accepted %s named %q (%v)", data, m.Kind, m.Name, err)
		}
		if m.Size <= 0 || m.Size > maxSegmentSize || m.BlockSize <= 0 || m.BlockSize > maxBlockSize {
			t.Fatalf("parseWALManifest(%q) accepted size %d, block size %d", data, m.Size, m.BlockSize)
		}
		if n := int64(len(m.Blocks)); n == 0 || (n-1)*int64(m.BlockSize) >= m.Size || n*int64(m.BlockSize) < m.Size {
			t.Fatalf("parseWALManifest(%q) accepted %d blocks of %d bytes for %d bytes", data, n, m.BlockSize, m.Size)
		}
		for _, b := range m.Blocks {
			if !validObjectName(b) {
				t.Fatalf("parseWALManifest(%q) accepted block %q", data, b)
			}
		}
		// What was accepted survives a round trip unchanged.
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseWALManifest(again)
		if err != nil {
			t.Fatalf("parseWALManifest(Marshal(parseWALManifest(%q))) = %v, want nil", data, err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip of %q changed the manifest (-first +second):\n%s", data, diff)
		}
	})
}

// TestMaxSegmentSizeOf checks the closed form against its definition: the largest
// size whose names include the segment, for every last part up to the first that no
// size allows, and some beyond.
func TestMaxSegmentSizeOf(t *testing.T) {
	los := []uint64{1 << 16, 1<<32 - 1}
	for lo := range uint64(4097) {
		los = append(los, lo)
	}
	for _, lo := range los {
		name := fmt.Sprintf("00000001%08X%08X", 7, lo)
		want := int64(0)
		for size := int64(maxSegmentSize); size >= minSegmentSize; size >>= 1 {
			if _, _, err := pgwal.ParseSegmentName(name, size); err == nil {
				want = size
				break
			}
		}
		got, err := maxSegmentSizeOf(name)
		if want == 0 {
			if err == nil {
				t.Errorf("maxSegmentSizeOf(%s) = %d, want an error: no size allows it", name, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("maxSegmentSizeOf(%s) = %d, %v, want %d", name, got, err, want)
		}
	}
}
