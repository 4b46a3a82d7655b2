package repository

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// packTrailerIndex parses the index at the end of a stored pack with the package's own
// functions, and returns it with the sealed bytes it was read from.
func packTrailerIndex(t *testing.T, r *Repo, id string, pack []byte) (*packIndex, []byte) {
	t.Helper()
	if len(pack) < len(packMagic)+4+len(packTrailer) || string(pack[:len(packMagic)]) != packMagic ||
		string(pack[len(pack)-len(packTrailer):]) != packTrailer {
		t.Fatalf("pack %s = %d bytes, want %q ... %q", id, len(pack), packMagic, packTrailer)
	}
	lenAt := len(pack) - len(packTrailer) - 4
	n := int(binary.LittleEndian.Uint32(pack[lenAt:]))
	if n > lenAt-len(packMagic) {
		t.Fatalf("pack %s: index length %d, want at most %d", id, n, lenAt-len(packMagic))
	}
	sealed := bytes.Clone(pack[lenAt-n : lenAt])
	plain, err := r.open(nil, bytes.Clone(sealed), indexMagic, indexAD(id), "trailer of "+id)
	if err != nil {
		t.Fatalf("open trailer of pack %s = %v", id, err)
	}
	idx, err := parseIndex(id, plain)
	if err != nil {
		t.Fatalf("parseIndex(trailer of pack %s) = %v", id, err)
	}
	if idx.Bytes != int64(lenAt-n) {
		t.Errorf("trailer of pack %s says the blobs end at %d, want %d, where the index begins", id, idx.Bytes, lenAt-n)
	}
	return idx, sealed
}

func TestPackTrailer(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	refs := map[[32]byte]ObjectRef{}
	for i := range 20 {
		ref, _, err := r.Put(ctx, randomBytes(uint64(100+i), 1000*i))
		if err != nil {
			t.Fatal(err)
		}
		var name [32]byte
		hex.Decode(name[:], []byte(ref.Name))
		refs[name] = ref
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	packs, indexes := packIDs(t, r)
	if len(packs) != 1 || !slices.Equal(packs, indexes) {
		t.Fatalf("packs and indexes after Sync = %q, %q, want one pack and its index", packs, indexes)
	}
	id := packs[0]
	pack, err := os.ReadFile(filepath.Join(r.localDir(), filepath.FromSlash(packKey(id))))
	if err != nil {
		t.Fatal(err)
	}
	trailer, sealed := packTrailerIndex(t, r, id, pack)

	object, err := r.st.Get(ctx, indexKey(id))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, object) {
		t.Errorf("sealed index in pack %s = %d bytes, want the %d bytes of its index object", id, len(sealed), len(object))
	}
	idx, err := r.readIndex(ctx, id)
	if err != nil {
		t.Fatalf("readIndex(%s) = %v", id, err)
	}
	if diff := cmp.Diff(idx, trailer); diff != "" {
		t.Errorf("index in the trailer of pack %s differs from its index object (-object +trailer):\n%s", id, diff)
	}

	// The index lists every blob put, where Put said, back to back from the header.
	if len(idx.Entries) != len(refs) {
		t.Errorf("index of pack %s lists %d blobs, want %d", id, len(idx.Entries), len(refs))
	}
	at := int64(len(packMagic))
	for _, e := range idx.Entries {
		ref, ok := refs[e.Name]
		if !ok {
			t.Errorf("index of pack %s lists %x, which was not put", id, e.Name)
			continue
		}
		if e.Offset != at || e.Length != ref.StoredSize || e.Size != ref.Size || ref.Pack != id {
			t.Errorf("index entry of %s = [%d, +%d) of %d bytes, want [%d, +%d) of %d bytes in pack %s",
				ref.Name, e.Offset, e.Length, e.Size, at, ref.StoredSize, ref.Size, ref.Pack)
		}
		at = e.Offset + e.Length
	}
	if at != idx.Bytes {
		t.Errorf("blobs of pack %s end at %d, index says %d", id, at, idx.Bytes)
	}
	if idx.Created.IsZero() || time.Since(idx.Created) > time.Hour || idx.Pack != id {
		t.Errorf("index of pack %s = created %v, pack %s, want now and %s", id, idx.Created, idx.Pack, id)
	}
}

// TestManyPacks puts more than a small pack size holds, from several goroutines, and reads
// everything back in another Repo with a cache of its own.
func TestManyPacks(t *testing.T) {
	t.Parallel()
	const packSize = 64 << 10
	r, key := setupWith(t, Options{PackSize: packSize, CacheDir: t.TempDir()})
	ctx := t.Context()
	const n, size = 200, 3000 // random: about 600 KiB stored
	refs := make([]ObjectRef, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				refs[i], _, errs[i] = r.Put(ctx, randomBytes(uint64(1000+i), size))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Put() = %v", err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, ref := range refs {
		written[ref.Pack] = true
	}
	packs, indexes := packIDs(t, r)
	if len(packs) < n*size/packSize || !slices.Equal(packs, indexes) || len(written) != len(packs) {
		t.Errorf("Put of %d KiB with %d KiB packs: packs %d, indexes %d, reported by Put %d, want at least %d of each",
			n*size>>10, packSize>>10, len(packs), len(indexes), len(written), n*size/packSize)
	}
	for _, id := range packs {
		if !written[id] {
			t.Errorf("pack %s stored, want only the packs Put reported", id)
		}
		fi, err := os.Stat(filepath.Join(r.localDir(), filepath.FromSlash(packKey(id))))
		if err != nil {
			t.Fatal(err)
		}
		// A pack is closed by the blob that fills it; then come the index and trailer.
		if limit := int64(packSize + size + 1024 + 100*indexEntrySize); fi.Size() > limit {
			t.Errorf("pack %s = %d bytes, want at most %d", id, fi.Size(), limit)
		}
	}
	if got := storedBlobs(t, r); got != n {
		t.Errorf("blobs listed by the index objects = %d, want %d", got, n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := reopen(t, r, key, Options{CacheDir: t.TempDir(), PackSize: packSize})
	for i, ref := range refs {
		got, err := r2.Get(ctx, ref.Name, nil)
		if err != nil || !bytes.Equal(got, randomBytes(uint64(1000+i), size)) {
			t.Errorf("Get(%s) after reopening = %d bytes, %v, want data %d", ref.Name, len(got), err, i)
		}
		if pack, _, length, err := r2.Locate(ctx, ref.Name); err != nil || pack != ref.Pack || length != ref.StoredSize {
			t.Errorf("Locate(%s) after reopening = %s, %d, %v, want %s, %d", ref.Name, pack, length, err, ref.Pack, ref.StoredSize)
		}
		if again, written, err := r2.Put(ctx, randomBytes(uint64(1000+i), size)); err != nil || written || again != ref {
			t.Errorf("Put(data %d) after reopening = %+v, %v, %v, want %+v, false, nil", i, again, written, err, ref)
		}
	}
	if err := r2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := packIDs(t, r2); !slices.Equal(again, packs) {
		t.Errorf("packs after putting the same blobs again = %d, want the %d there were", len(again), len(packs))
	}
}

// TestGetPrefersGoodCopy: a copy marked bad is not deduplicated against, so the same
// content is stored anew, and Get reads the good copy.
func TestGetPrefersGoodCopy(t *testing.T) {
	t.Parallel()
	r, key := setup(t)
	ctx := t.Context()
	data := randomBytes(30, 50_000)
	bad, _, err := r.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	path, off, n := r.blobAt(t, bad.Name)
	rewrite(t, path, func(b []byte) []byte {
		b[off+n/2] ^= 0x10
		return b
	})
	_, err = r.Get(ctx, bad.Name, nil)
	wantCorruptIn(t, "Get(X) with its only copy damaged", err, bad.Name, bad.Pack)

	if err := r.MarkBad(ctx, BadObject{Name: bad.Name, Pack: bad.Pack, Reason: "test"}); err != nil {
		t.Fatalf("MarkBad(%s in %s) = %v", bad.Name, bad.Pack, err)
	}
	if ok, err := r.Has(ctx, bad.Name); ok || err != nil {
		t.Errorf("Has(X) with its only copy marked bad = %v, %v, want false, nil", ok, err)
	}
	good, written, err := r.Put(ctx, data)
	if err != nil || !written || good.Name != bad.Name || good.Pack == bad.Pack {
		t.Fatalf("Put(X) after MarkBad = %+v, %v, %v, want a new copy of %s in a new pack", good, written, err, bad.Name)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, good.Name, nil); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get(X) with a good copy = %d bytes, %v, want the %d bytes put", len(got), err, len(data))
	}
	if pack, _, _, err := r.Locate(ctx, good.Name); err != nil || pack != good.Pack {
		t.Errorf("Locate(X) = %s, %v, want the good copy's pack %s", pack, err, good.Pack)
	}

	// Another process learns of the bad copy from the repository.
	r2 := reopen(t, r, key, Options{})
	if got, err := r2.Get(ctx, good.Name, nil); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get(X) in another Repo = %d bytes, %v, want the %d bytes put", len(got), err, len(data))
	}
	if again, written, err := r2.Put(ctx, data); err != nil || written || again.Pack != good.Pack {
		t.Errorf("Put(X) in another Repo = %+v, %v, %v, want the good copy in %s", again, written, err, good.Pack)
	}
	marks, err := r2.BadObjects(ctx)
	if err != nil || len(marks) != 1 || marks[0].Name != bad.Name || marks[0].Pack != bad.Pack || marks[0].Reason != "test" {
		t.Errorf("BadObjects() = %+v, %v, want the copy in %s", marks, err, bad.Pack)
	}
}

// TestGetTriesOtherCopies: when the copy read first fails verification and no one marked
// it bad, Get reads another; when all fail, it names the first.
func TestGetTriesOtherCopies(t *testing.T) {
	t.Parallel()
	r1, key := setup(t)
	ctx := t.Context()
	// Two processes whose caches do not know each other's packs each store a copy.
	r2 := reopen(t, r1, key, Options{})
	data := randomBytes(31, 20_000)
	old, _, err := r1.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Begun after the first pack was stored, the second is newer, so read first.
	newer, written, err := r2.Put(ctx, data)
	if err != nil || !written || newer.Pack == old.Pack {
		t.Fatalf("Put(X) in a second Repo = %+v, %v, %v, want a second copy", newer, written, err)
	}
	if err := r2.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	r3 := reopen(t, r1, key, Options{})
	if pack, _, _, err := r3.Locate(ctx, old.Name); err != nil || pack != newer.Pack {
		t.Fatalf("Locate(X) = %s, %v, want the newer copy in %s", pack, err, newer.Pack)
	}
	damage := func(ref ObjectRef) {
		t.Helper()
		idx, err := r3.readIndex(ctx, ref.Pack)
		if err != nil || len(idx.Entries) != 1 {
			t.Fatalf("readIndex(%s) = %+v, %v, want one blob", ref.Pack, idx, err)
		}
		e := idx.Entries[0]
		rewrite(t, filepath.Join(r3.localDir(), filepath.FromSlash(packKey(ref.Pack))), func(b []byte) []byte {
			b[e.Offset+e.Length-1] ^= 0x01
			return b
		})
	}
	damage(newer)
	if got, err := r3.Get(ctx, old.Name, nil); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get(X) with its newer copy damaged = %d bytes, %v, want the %d bytes of the older copy", len(got), err, len(data))
	}
	damage(old)
	got, err := r3.Get(ctx, old.Name, nil)
	wantCorruptIn(t, "Get(X) with both copies damaged", err, old.Name, newer.Pack)
	if got != nil {
		t.Errorf("Get(X) with both copies damaged = %d bytes, want none", len(got))
	}
}

func TestParseIndex(t *testing.T) {
	t.Parallel()
	valid := sampleIndex().marshal()
	if _, err := parseIndex("p", valid); err != nil {
		t.Fatalf("parseIndex(sample) = %v, want nil", err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	for _, tt := range []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "not a version 2 index"},
		{"short head", valid[:indexHeadSize-1], "not a version 2 index"},
		{"version 1", edit(func(b []byte) []byte { b[0] = 1; return b }), "not a version 2 index"},
		{"entry cut", valid[:len(valid)-1], "2 entries in 87 bytes"},
		{"extra byte", append(bytes.Clone(valid), 0), "2 entries in 89 bytes"},
		{"count too large", edit(func(b []byte) []byte { b[17] = 3; return b }), "3 entries in 88 bytes"},
		{"no blobs", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[9:], 0); return b }), "invalid pack size 0"},
		{"huge pack", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[9:], 1<<40); return b }), "invalid pack size"},
		{"negative pack size", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[9:], 1<<63); return b }), "invalid pack size"},
		{"entry in the header", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[indexHeadSize+32:], 3)
			return b
		}), "entry 0 lies outside the pack"},
		{"entry past the blobs", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[indexHeadSize+indexEntrySize+36:], 1000)
			return b
		}), "entry 1 lies outside the pack"},
	} {
		if x, err := parseIndex("p", tt.data); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseIndex(%s) = %+v, %v, want an error containing %q", tt.name, x, err, tt.wantErr)
		}
	}
}

// sampleIndex returns a valid index of two blobs.
func sampleIndex() *packIndex {
	return &packIndex{
		Pack:    "p",
		Created: time.Date(2026, 11, 25, 2, 0, 0, 123456789, time.UTC),
		Bytes:   4 + 100 + 50,
		Entries: []indexEntry{
			{Name: [32]byte{1, 2, 3}, Offset: 4, Length: 100, Size: 200},
			{Name: [32]byte{0xff}, Offset: 104, Length: 50, Size: 0},
		},
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add(sampleIndex().marshal())
	f.Add((&packIndex{Bytes: 4}).marshal())
	f.Add((&packIndex{Created: time.Unix(0, -1), Bytes: maxPackSize, Entries: []indexEntry{{Offset: 4, Length: maxPackSize - 4, Size: 1<<32 - 1}}}).marshal())
	f.Add([]byte{indexVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := parseIndex("p", data)
		if err != nil {
			if x != nil {
				t.Fatalf("parseIndex(%x) = %+v, %v, want nil with the error", data, x, err)
			}
			return
		}
		if x.Pack != "p" || x.Bytes <= 0 || x.Bytes > maxPackSize {
			t.Fatalf("parseIndex(%x) accepted pack %q of %d bytes", data, x.Pack, x.Bytes)
		}
		for i, e := range x.Entries {
			if e.Offset < int64(len(packMagic)) || e.Length < 0 || e.Size < 0 || e.Offset+e.Length > x.Bytes {
				t.Fatalf("parseIndex(%x) accepted entry %d at [%d, +%d) of a %d-byte pack", data, i, e.Offset, e.Length, x.Bytes)
			}
		}
		if again := x.marshal(); !bytes.Equal(again, data) {
			t.Fatalf("marshal(parseIndex(%x)) = %x, want the bytes parsed", data, again)
		}
	})
}
