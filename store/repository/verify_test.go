package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository/storage"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// verifyFixture is a repository holding a few backups and archived WAL files, spread
// over several small packs, and what refers to each blob.
type verifyFixture struct {
	r     *Repo
	st    storage.Storage
	key   []byte
	refs  map[string][]FindingRef // blob name → what refers to it, sorted
	plain map[string][]byte       // blob name → its content
	// only names the blobs only one file or WAL file refers to.
	only []string
}

const fixtureChunk = 8192

// newVerifyFixture stores, in st, three backups that share some blocks, each with a file
// of inline blocks and a file with a block map, and archived WAL that shares a block with
// a backup.
func newVerifyFixture(t *testing.T, st storage.Storage) *verifyFixture {
	t.Helper()
	ctx := t.Context()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := InitStorage(ctx, st, key, Options{PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	fx := &verifyFixture{r: r, st: st, key: key, refs: map[string][]FindingRef{}, plain: map[string][]byte{}}
	put := func(data []byte, ref FindingRef) string {
		t.Helper()
		obj, _, err := r.Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(fx.refs[obj.Name], ref) {
			fx.refs[obj.Name] = append(fx.refs[obj.Name], ref)
		}
		fx.plain[obj.Name] = bytes.Clone(data)
		return obj.Name
	}
	shared := randomBytes(1000, fixtureChunk)
	var walShared []byte
	for b := range 3 {
		id := fmt.Sprintf("b%d", b+1)
		m := &Manifest{BackupID: id, BlockSize: r.BlockSize(), StartLSN: "0/1000028", EndLSN: "0/2000000", Timeline: 1}
		version := FindingRef{Manifest: id, Path: "PG_VERSION"}
		m.Files = append(m.Files, File{Path: "PG_VERSION", Type: TypeFile, Mode: 0o600, Size: 3, Blocks: []string{put([]byte("16\n"), version)}})
		m.Files = append(m.Files, File{Path: "base", Type: TypeDir, Mode: 0o700})
		heap := FindingRef{Manifest: id, Path: "base/5/1259"}
		var blocks []string
		for i := range 5 {
			data := randomBytes(uint64(100*b+i), fixtureChunk)
			if b == 0 && i == 0 {
				walShared = data
			}
			blocks = append(blocks, put(data, heap))
		}
		m.Files = append(m.Files, File{Path: "base/5/1259", Type: TypeFile, Mode: 0o600, Size: 5 * fixtureChunk, ChunkSize: fixtureChunk, Blocks: blocks})
		mapped := FindingRef{Manifest: id, Path: "base/5/16384"}
		var names [][32]byte
		for i := range 4 {
			data := randomBytes(uint64(100*b+50+i), fixtureChunk)
			if i < 2 {
				data = shared
				if i == 1 {
					data = randomBytes(2000, fixtureChunk)
				}
			}
			var n [32]byte
			copy(n[:], mustHex(put(data, mapped)))
			names = append(names, n)
		}
		mapName := put(blockMap(names), mapped)
		m.Files = append(m.Files, File{Path: "base/5/16384", Type: TypeFile, Mode: 0o600, Size: 4 * fixtureChunk, ChunkSize: fixtureChunk, Map: mapName})
		if _, err := r.PutManifest(ctx, id, m); err != nil {
			t.Fatal(err)
		}
	}
	wal := []struct {
		name string
		data []byte
	}{
		{"00000002.history", []byte("1\t0/3000000\tno recovery target specified\n")},
		{PartialWALName(pgwal.SegmentName(1, 3, segSize), fixtureChunk), walShared},
		{PartialWALName(pgwal.SegmentName(1, 4, segSize), 3*fixtureChunk), randomBytes(3000, 3*fixtureChunk)},
	}
	for _, w := range wal {
		ref := FindingRef{System: testSystemID, WAL: w.name}
		if _, _, err := r.PutWAL(ctx, testSystemID, w.name, bytes.NewReader(w.data), int64(len(w.data))); err != nil {
			t.Fatal(err)
		}
		name := r.objectName(w.data)
		fx.plain[name] = w.data
		if !slices.Contains(fx.refs[name], ref) {
			fx.refs[name] = append(fx.refs[name], ref)
		}
	}
	for name, refs := range fx.refs {
		sortRefs(refs)
		if len(refs) == 1 {
			fx.only = append(fx.only, name)
		}
	}
	slices.Sort(fx.only)
	return fx
}

func sortRefs(refs []FindingRef) {
	slices.SortFunc(refs, func(a, b FindingRef) int {
		return strings.Compare(a.Manifest+"\x00"+a.Path+"\x00"+a.System+"\x00"+a.WAL, b.Manifest+"\x00"+b.Path+"\x00"+b.System+"\x00"+b.WAL)
	})
}

// packs returns the stored packs and their sizes, sorted by id.
func (fx *verifyFixture) packs(t testing.TB) (ids []string, sizes map[string]int64) {
	t.Helper()
	sizes = map[string]int64{}
	err := fx.st.List(context.Background(), packDir, func(key string, size int64) error {
		if id, ok := packIDOfKey(key, packDir); ok {
			ids = append(ids, id)
			sizes[id] = size
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids, sizes
}

// flip inverts one byte of an object through the storage interface.
func flip(t tb, st storage.Storage, key string, off int64) {
	t.Helper()
	ctx := context.Background()
	data, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0xff
	if err := st.Put(ctx, key, data, false); err != nil {
		t.Fatal(err)
	}
}

// wantFlipFinding is what a deep verify must report once the byte at off of pack id is
// flipped: the blob there, or the pack when the byte is its header or trailer.
func (fx *verifyFixture) wantFlipFinding(t tb, id string, off int64) Finding {
	t.Helper()
	idx, err := fx.r.readIndex(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if off < int64(len(packMagic)) || off >= idx.Bytes {
		return Finding{Kind: FindingCorruptPack, Object: packKey(id), Pack: id}
	}
	for _, e := range idx.Entries {
		if e.Offset <= off && off < e.Offset+e.Length {
			name := fmt.Sprintf("%x", e.Name)
			return Finding{Kind: FindingCorruptBlob, Object: name, Pack: id, Refs: fx.refs[name]}
		}
	}
	t.Fatalf("byte %d of pack %s is in no blob, header or trailer", off, id)
	return Finding{}
}

// ignoreReason compares findings without their wording.
var ignoreReason = cmpopts.IgnoreFields(Finding{}, "Reason", "OtherCopy")

func deepVerify(t tb, r *Repo, markBad bool) VerifyResult {
	t.Helper()
	res, err := r.Verify(context.Background(), VerifyOptions{Deep: true, MarkBad: markBad})
	if err != nil {
		t.Fatalf("Verify(deep) = %v", err)
	}
	return res
}

func localStorage(t *testing.T) storage.Storage {
	t.Helper()
	st, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestVerifyIntact(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	testVerifyIntact(t, fx)
}

func testVerifyIntact(t *testing.T, fx *verifyFixture) {
	ids, sizes := fx.packs(t)
	if len(ids) < 4 {
		t.Fatalf("the fixture has %d packs, want several", len(ids))
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	var calls int
	var last [2]int64
	res, err := fx.r.Verify(t.Context(), VerifyOptions{Deep: true, MarkBad: true, Progress: func(done, tot int64) {
		calls++
		last = [2]int64{done, tot}
	}})
	if err != nil {
		t.Fatalf("Verify(deep) = %v", err)
	}
	if len(res.Findings) != 0 {
		t.Errorf("Verify(deep) of an intact repository found %+v, want nothing", res.Findings)
	}
	blobs := int64(storedBlobs(t, fx.r))
	want := VerifyResult{PacksChecked: len(ids), PacksTotal: len(ids), BytesRead: total, BlobsChecked: blobs, BlobsRehashed: blobs,
		ManifestsChecked: 3, WALChecked: 3}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(VerifyResult{}, "NextSince")); diff != "" {
		t.Errorf("Verify(deep) result (-want +got):\n%s", diff)
	}
	if calls == 0 || last != [2]int64{total, total} {
		t.Errorf("Progress called %d times, last with %v, want (%d, %d) last", calls, last, total, total)
	}
	if bad, err := fx.r.BadObjects(t.Context()); err != nil || len(bad) != 0 {
		t.Errorf("BadObjects() = %v, %v, want none", bad, err)
	}
}

func TestVerifyFlippedByte(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	testVerifyFlippedByte(t, fx, rand.Uint64())
}

// testVerifyFlippedByte flips a byte of a pack holding a blob a single file refers to:
// the deep verify names the blob, the backup and the file, and marks the copy bad; the
// next one reports the backup's blob missing; once a good copy is stored again, a deep
// verify is clean and the backup reads.
func testVerifyFlippedByte(t *testing.T, fx *verifyFixture, seed uint64) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := t.Context()
	name := fx.only[rng.IntN(len(fx.only))]
	pack, off, n, err := fx.r.Locate(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	at := off + rng.Int64N(n)
	flip(t, fx.st, packKey(pack), at)

	res := deepVerify(t, fx.r, true)
	want := []Finding{{Kind: FindingCorruptBlob, Object: name, Pack: pack, Refs: fx.refs[name]}}
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Fatalf("Verify(deep) after flipping byte %d of pack %s (-want +got):\n%s", at, pack, diff)
	}
	bad, err := fx.r.BadObjects(ctx)
	if err != nil || len(bad) != 1 || bad[0].Name != name || bad[0].Pack != pack || bad[0].Reason == "" {
		t.Errorf("BadObjects() = %+v, %v, want %s in %s with a reason", bad, err, name, pack)
	}

	// Marked: not a new finding, but the backup still needs a good copy.
	res = deepVerify(t, fx.r, true)
	want = []Finding{{Kind: fx.missingKind(name), Object: name, Refs: fx.refs[name]}}
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) again (-want +got):\n%s", diff)
	}
	if res.KnownBad != 1 {
		t.Errorf("Verify(deep) again: KnownBad = %d, want 1", res.KnownBad)
	}

	// The next backup that meets the same content stores it again.
	content := fx.plain[name]
	if ref, written, err := fx.r.Put(ctx, content); err != nil || !written || ref.Pack == pack {
		t.Fatalf("Put(content of the bad copy) = %+v, %v, %v, want a new copy", ref, written, err)
	}
	if err := fx.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res = deepVerify(t, fx.r, true)
	if len(res.Findings) != 0 || res.KnownBad != 1 {
		t.Errorf("Verify(deep) after a good copy was stored = %+v, KnownBad %d, want no finding and 1", res.Findings, res.KnownBad)
	}
	if got, err := fx.r.Get(ctx, name, nil); err != nil || !bytes.Equal(got, content) {
		t.Errorf("Get(%s) after healing = %v, want the content", name, err)
	}
}

// TestVerifyFlipProperty flips a byte anywhere in any pack: a deep verify reports
// exactly the blob, or the pack's header or trailer, that holds it, and nothing else.
func TestVerifyFlipProperty(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ids, sizes := fx.packs(t)
	rapid.Check(t, func(rt *rapid.T) {
		id := rapid.SampledFrom(ids).Draw(rt, "pack")
		off := rapid.Int64Range(0, sizes[id]-1).Draw(rt, "offset")
		want := fx.wantFlipFinding(rt, id, off)
		flip(rt, fx.st, packKey(id), off)
		defer flip(rt, fx.st, packKey(id), off)
		res := deepVerify(rt, fx.r, false)
		if diff := cmp.Diff([]Finding{want}, res.Findings, ignoreReason); diff != "" {
			rt.Fatalf("Verify(deep) after flipping byte %d of pack %s (%d bytes) (-want +got):\n%s", off, id, sizes[id], diff)
		}
	})
	if res := deepVerify(t, fx.r, false); len(res.Findings) != 0 {
		t.Errorf("Verify(deep) with every byte back = %+v, want nothing", res.Findings)
	}
}

// TestVerifyFlippedIndex flips a byte of a pack's index object.
func TestVerifyFlippedIndex(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ids, _ := fx.packs(t)
	id := ids[len(ids)/2]
	// The finding names what uses the blobs of the pack: a process whose index cache does
	// not hold the pack's index cannot read them until pruning writes it again.
	_, idx, err := fx.r.readTrailer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var refs []FindingRef
	for _, e := range idx.Entries {
		for _, ref := range fx.refs[fmt.Sprintf("%x", e.Name)] {
			if !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
	}
	sortRefs(refs)
	blobs := int64(storedBlobs(t, fx.r))
	size, err := fx.st.Size(t.Context(), indexKey(id))
	if err != nil {
		t.Fatal(err)
	}
	flip(t, fx.st, indexKey(id), size/2)
	want := []Finding{{Kind: FindingCorruptPack, Object: indexKey(id), Pack: id, Refs: refs}}
	res := deepVerify(t, fx.r, true)
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) (-want +got):\n%s", diff)
	}
	// Another process, whose index cache never loaded it, finds it too, and checks the
	// pack's blobs through its trailer.
	other := reopenStorage(t, fx)
	res = deepVerify(t, other, true)
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" || res.PacksChecked != len(ids) || res.BlobsChecked != blobs {
		t.Errorf("Verify(deep) from a fresh cache: %d packs, %d blobs checked, want %d, %d; findings (-want +got):\n%s",
			res.PacksChecked, res.BlobsChecked, len(ids), blobs, diff)
	}
}

// TestVerifyMissingIndex deletes a pack's index object, as a writer that died between
// storing a pack and its index leaves it.
func TestVerifyMissingIndex(t *testing.T) {
	t.Parallel()
	st := localStorage(t)
	log := &rangeLog{Storage: st, packs: map[string]bool{}}
	fx := newVerifyFixture(t, log)
	ids, _ := fx.packs(t)
	blobs := int64(storedBlobs(t, fx.r))
	refsOf := func(id string) []FindingRef {
		_, idx, err := fx.r.readTrailer(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var refs []FindingRef
		for _, e := range idx.Entries {
			for _, ref := range fx.refs[fmt.Sprintf("%x", e.Name)] {
				if !slices.Contains(refs, ref) {
					refs = append(refs, ref)
				}
			}
		}
		sortRefs(refs)
		return refs
	}

	// Lost while Verify reads the pack.
	first := ids[0]
	want := []Finding{{Kind: FindingMissingIndex, Object: indexKey(first), Pack: first, Refs: refsOf(first)}}
	var once sync.Once
	log.beforeRange = func(key string) {
		if key == packKey(first) {
			once.Do(func() {
				if err := st.Delete(t.Context(), indexKey(first)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	if diff := cmp.Diff(want, deepVerify(t, fx.r, true).Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) losing the index of pack %s (-want +got):\n%s", first, diff)
	}

	// Missing before: the pack is checked through its trailer, and is a writer's on its
	// way until it is older than StaleAfter.
	if res := deepVerify(t, fx.r, true); len(res.Findings) != 0 || res.PacksChecked != len(ids) || res.BlobsChecked != blobs {
		t.Errorf("Verify(deep) of a young pack without an index = %+v, %d packs and %d blobs checked, want nothing, %d and %d",
			res.Findings, res.PacksChecked, res.BlobsChecked, len(ids), blobs)
	}
	fx.r.opts.StaleAfter = time.Nanosecond
	if diff := cmp.Diff(want, deepVerify(t, fx.r, true).Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) of an old pack without an index (-want +got):\n%s", diff)
	}
}

// reopenStorage opens the fixture's repository again with an index cache of its own.
func reopenStorage(t *testing.T, fx *verifyFixture) *Repo {
	t.Helper()
	return reopenWith(t, fx, fx.st)
}

func reopenWith(t *testing.T, fx *verifyFixture, st storage.Storage) *Repo {
	t.Helper()
	r, err := OpenStorage(t.Context(), st, fx.key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestVerifyMissingPack(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	testVerifyMissingPack(t, fx)
}

// testVerifyMissingPack deletes the pack holding the most referenced blobs: each blob
// whose only copy it held is reported with what refers to it.
func testVerifyMissingPack(t *testing.T, fx *verifyFixture) {
	ctx := t.Context()
	byPack := map[string][]string{}
	for name := range fx.refs {
		pack, _, _, err := fx.r.Locate(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		byPack[pack] = append(byPack[pack], name)
	}
	var victim string
	for p, names := range byPack {
		if len(names) > len(byPack[victim]) || (len(names) == len(byPack[victim]) && p < victim) {
			victim = p
		}
	}
	if err := fx.st.Delete(ctx, packKey(victim)); err != nil {
		t.Fatal(err)
	}
	want := []Finding{{Kind: FindingMissingPack, Object: packKey(victim), Pack: victim}}
	for _, name := range byPack[victim] {
		want = append(want, Finding{Kind: fx.missingKind(name), Object: name, Pack: victim, Refs: fx.refs[name]})
	}
	sortFindings(want)
	res := deepVerify(t, fx.r, true)
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) after deleting pack %s (-want +got):\n%s", victim, diff)
	}
	// Index object gone too: the blobs are simply not stored.
	if err := fx.st.Delete(ctx, indexKey(victim)); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(f Finding) bool { return f.Kind == FindingMissingPack })
	for i := range want {
		want[i].Pack = ""
	}
	res = deepVerify(t, fx.r, true)
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) after deleting pack %s and its index (-want +got):\n%s", victim, diff)
	}
}

// missingKind is the kind of finding for blob name when it has no readable copy.
func (fx *verifyFixture) missingKind(name string) string {
	for _, ref := range fx.refs[name] {
		if ref.Manifest != "" {
			return FindingMissingBlob
		}
	}
	return FindingMissingWALBlob
}

func sortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int {
		return strings.Compare(a.Kind+"\x00"+a.Object+"\x00"+a.Pack, b.Kind+"\x00"+b.Object+"\x00"+b.Pack)
	})
}

func TestVerifyCorruptManifestAndWAL(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	mkey := manifestKey("b2")
	size, err := fx.st.Size(ctx, mkey)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, fx.st, mkey, size-3)
	wname := PartialWALName(pgwal.SegmentName(1, 4, segSize), 3*fixtureChunk)
	wkey := walRel(testSystemID, wname)
	flip(t, fx.st, wkey, 2)
	want := []Finding{
		{Kind: FindingCorruptManifest, Object: mkey, Refs: []FindingRef{{Manifest: "b2"}}},
		{Kind: FindingCorruptWAL, Object: wkey, Refs: []FindingRef{{System: testSystemID, WAL: wname}}},
	}
	res := deepVerify(t, fx.r, true)
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) (-want +got):\n%s", diff)
	}
	if res.ManifestsChecked != 2 || res.WALChecked != 2 {
		t.Errorf("Verify(deep) checked %d manifests and %d WAL files, want 2 and 2", res.ManifestsChecked, res.WALChecked)
	}

	// Named ones only: b1 is fine, b9 is not stored, and the damaged WAL file is named.
	res, err = fx.r.Verify(ctx, VerifyOptions{Manifests: []string{"b1", "b9"}, WAL: []WALName{{testSystemID, wname}}})
	if err != nil {
		t.Fatal(err)
	}
	want = []Finding{
		{Kind: FindingCorruptWAL, Object: wkey, Refs: []FindingRef{{System: testSystemID, WAL: wname}}},
		{Kind: FindingMissingManifest, Object: manifestKey("b9"), Refs: []FindingRef{{Manifest: "b9"}}},
	}
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(b1, b9, %s) (-want +got):\n%s", wname, diff)
	}
	if res.ManifestsChecked != 1 || res.WALChecked != 0 {
		t.Errorf("Verify(b1, b9, %s) checked %d manifests and %d WAL files, want 1 and 0", wname, res.ManifestsChecked, res.WALChecked)
	}
}

// TestVerifyRoutineTracesOldBackups finds a corrupt blob in a new pack during a routine
// run that names only one backup: the older backups that use the blob are named too.
func TestVerifyRoutineTracesOldBackups(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	var shared string
	for name, refs := range fx.refs {
		if len(refs) == 3 && refs[0].Path == "base/5/16384" {
			shared = name
		}
	}
	pack, off, _, err := fx.r.Locate(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, fx.st, packKey(pack), off+40)
	res, err := fx.r.Verify(ctx, VerifyOptions{Manifests: []string{"b3"}, WAL: []WALName{}, MarkBad: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Finding{{Kind: FindingCorruptBlob, Object: shared, Pack: pack, Refs: fx.refs[shared]}}
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(routine, b3) (-want +got):\n%s", diff)
	}
	if res.ManifestsChecked != 1 {
		t.Errorf("Verify(routine, b3) checked %d manifests, want 1", res.ManifestsChecked)
	}
}

// rangeLog records which packs a storage's ranged reads touch.
type rangeLog struct {
	storage.Storage
	mu    sync.Mutex
	packs map[string]bool
	// beforeRange, when not nil, runs before each ranged read.
	beforeRange func(key string)
}

func (l *rangeLog) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if l.beforeRange != nil {
		l.beforeRange(key)
	}
	if id, ok := packIDOfKey(key, packDir); ok {
		l.mu.Lock()
		l.packs[id] = true
		l.mu.Unlock()
	}
	return l.Storage.GetRange(ctx, key, off, n)
}

func (l *rangeLog) take() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.packs
	l.packs = map[string]bool{}
	return p
}

func TestVerifyRoutineRotation(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	old, _ := fx.packs(t)
	time.Sleep(10 * time.Millisecond)
	since := time.Now()
	time.Sleep(10 * time.Millisecond)
	for i := range 40 {
		if _, _, err := fx.r.Put(ctx, randomBytes(uint64(9000+i), fixtureChunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fx.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	all, _ := fx.packs(t)
	var fresh []string
	for _, id := range all {
		if !slices.Contains(old, id) {
			fresh = append(fresh, id)
		}
	}
	if len(old) < 4 || len(fresh) < 2 {
		t.Fatalf("%d old and %d new packs, want more", len(old), len(fresh))
	}
	log := &rangeLog{Storage: fx.st, packs: map[string]bool{}}
	r := reopenWith(t, fx, log)
	log.take()

	seen := map[string]int{}
	cursor := ""
	per := (len(old) + 3) / 4
	for run := range 4 {
		res, err := r.Verify(ctx, VerifyOptions{Since: since, Sample: 0.25, Cursor: cursor, Manifests: []string{}, WAL: []WALName{}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Findings) != 0 {
			t.Errorf("run %d: findings %+v", run, res.Findings)
		}
		read := log.take()
		for _, id := range fresh {
			if !read[id] {
				t.Errorf("run %d did not read new pack %s", run, id)
			}
		}
		n := 0
		for _, id := range old {
			if read[id] {
				seen[id]++
				n++
			}
		}
		if n != per || res.PacksChecked != len(fresh)+per || res.PacksTotal != len(all) {
			t.Errorf("run %d read %d old packs, checked %d of %d, want %d old, %d of %d", run, n, res.PacksChecked, res.PacksTotal, per, len(fresh)+per, len(all))
		}
		if res.Cursor == cursor {
			t.Errorf("run %d left the cursor at %q", run, cursor)
		}
		cursor = res.Cursor
	}
	for _, id := range old {
		if seen[id] == 0 {
			t.Errorf("old pack %s was read by none of 4 runs with Sample 0.25", id)
		}
	}
}

// TestVerifyNextSince: the next routine run must read the packs a backup running now
// stores later, though they are dated from when it opened them.
func TestVerifyNextSince(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	before := time.Now()
	res, err := fx.r.Verify(ctx, VerifyOptions{Manifests: []string{}, WAL: []WALName{}})
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if res.NextSince.Before(before.Add(-clockSkew)) || res.NextSince.After(after.Add(-clockSkew)) {
		t.Errorf("NextSince = %s, want a minute before the run (%s to %s)", res.NextSince, before, after)
	}
	s, err := fx.r.Begin(ctx, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	time.Sleep(20 * time.Millisecond)
	if res, err = fx.r.Verify(ctx, VerifyOptions{Manifests: []string{}, WAL: []WALName{}}); err != nil {
		t.Fatal(err)
	}
	if want := s.rec.Started.Add(-clockSkew); !res.NextSince.Equal(want) {
		t.Errorf("NextSince with a backup running = %s, want %s, a minute before it began", res.NextSince, want)
	}
}

// TestVerifyPrunedMeanwhile deletes, as pruning does, a pack nothing needs just as Verify
// is about to read it: that is not a finding.
func TestVerifyPrunedMeanwhile(t *testing.T) {
	t.Parallel()
	st := localStorage(t)
	log := &rangeLog{Storage: st, packs: map[string]bool{}}
	fx := newVerifyFixture(t, log)
	ctx := t.Context()
	var unneeded string
	for i := range 12 {
		ref, _, err := fx.r.Put(ctx, randomBytes(uint64(7000+i), fixtureChunk))
		if err != nil {
			t.Fatal(err)
		}
		unneeded = ref.Pack
	}
	if err := fx.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ids, _ := fx.packs(t)
	var once sync.Once
	log.beforeRange = func(key string) {
		if key != packKey(unneeded) {
			return
		}
		once.Do(func() {
			for _, step := range []func() error{
				func() error { return st.Put(ctx, deadKey(unneeded), []byte(`{}`), false) },
				func() error { return st.Delete(ctx, indexKey(unneeded)) },
				func() error { return st.Delete(ctx, packKey(unneeded)) },
				func() error { return st.Delete(ctx, deadKey(unneeded)) },
			} {
				if err := step(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	res := deepVerify(t, fx.r, true)
	if len(res.Findings) != 0 || res.PacksTotal != len(ids)-1 || res.PacksChecked != len(ids)-1 {
		t.Errorf("Verify(deep) with pack %s pruned while it runs = %+v, %d of %d packs checked, want nothing and %d of %d",
			unneeded, res.Findings, res.PacksChecked, res.PacksTotal, len(ids)-1, len(ids)-1)
	}
}

// TestVerifyCorruptCopyBesideSoundOne damages one of two copies of a blob: the deep
// verify, which finds the other copy sound, still names the damaged one and every file
// that refers to the blob, and the copy readers use instead.
func TestVerifyCorruptCopyBesideSoundOne(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	name := fx.only[0]
	first, off, _, err := fx.r.Locate(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// A second copy: stored once the first is marked bad, then the mark is taken away.
	if err := fx.r.MarkBad(ctx, BadObject{Name: name, Pack: first, Reason: "to store a second copy"}); err != nil {
		t.Fatal(err)
	}
	second, written, err := fx.r.Put(ctx, fx.plain[name])
	if err != nil || !written || second.Pack == first {
		t.Fatalf("Put(content of %s) = %+v, %v, %v, want a copy outside pack %s", name, second, written, err, first)
	}
	if err := fx.r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fx.st.Delete(ctx, badKey(first, name)); err != nil {
		t.Fatal(err)
	}
	flip(t, fx.st, packKey(first), off+int64(len(blobMagic)))

	res := deepVerify(t, fx.r, false)
	want := []Finding{{Kind: FindingCorruptBlob, Object: name, Pack: first, Refs: fx.refs[name], OtherCopy: second.Pack}}
	if diff := cmp.Diff(want, res.Findings, cmpopts.IgnoreFields(Finding{}, "Reason")); diff != "" {
		t.Errorf("Verify(deep) with the copy in pack %s damaged and the one in %s sound (-want +got):\n%s", first, second.Pack, diff)
	}
}

// blockingRanges is a storage whose ranged reads of packs, once first is set, wait until
// their context ends, except for the first, which runs first() and returns its error.
type blockingRanges struct {
	storage.Storage
	mu      sync.Mutex
	started int
	first   func() error
}

func (b *blockingRanges) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	b.mu.Lock()
	_, isPack := packIDOfKey(key, packDir)
	armed := isPack && b.first != nil
	if armed {
		b.started++
	}
	first := armed && b.started == 1
	b.mu.Unlock()
	if !armed {
		return b.Storage.GetRange(ctx, key, off, n)
	}
	if first {
		if err := b.first(); err != nil {
			return nil, err
		}
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestVerifyStops checks that the readers of packs stop, and Verify returns, when its
// context ends or when one of them fails; the others would otherwise wait for ever.
func TestVerifyStops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := &blockingRanges{Storage: localStorage(t)}
	fx := newVerifyFixture(t, st)
	ids, _ := fx.packs(t)
	if len(ids) <= verifyWorkers() {
		t.Fatalf("%d packs: want more than the %d readers, so that some are left to read when they stop", len(ids), verifyWorkers())
	}
	reads := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.started
	}
	arm := func(first func() error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.started, st.first = 0, first
	}

	t.Run("cancelled", func(t *testing.T) {
		vctx, cancel := context.WithCancel(ctx)
		defer cancel()
		arm(func() error { cancel(); return nil })
		_, err := fx.r.Verify(vctx, VerifyOptions{Deep: true})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Verify(deep) cancelled while it reads = %v, want context.Canceled", err)
		}
		if n := reads(); n > verifyWorkers() {
			t.Errorf("Verify(deep) cancelled at its first read started %d reads, want at most one per reader (%d)", n, verifyWorkers())
		}
	})

	t.Run("failed", func(t *testing.T) {
		boom := errors.New("the disk is on fire")
		arm(func() error { return boom })
		_, err := fx.r.Verify(ctx, VerifyOptions{Deep: true})
		if !errors.Is(err, boom) {
			t.Errorf("Verify(deep) with a failing read = %v, want %v", err, boom)
		}
		if n := reads(); n > verifyWorkers() {
			t.Errorf("Verify(deep) failing at its first read started %d reads, want at most one per reader (%d)", n, verifyWorkers())
		}
	})
}

// TestVerifyS3 runs the main cases against a real S3 server.
func TestVerifyS3(t *testing.T) {
	t.Parallel()
	endpoint, access, secret, bucket := s3test.StartServer(t)
	prefix := 0
	newStorage := func(t *testing.T) storage.Storage {
		prefix++
		s, err := storage.NewS3(t.Context(), s3test.Config(endpoint, access, secret, bucket, fmt.Sprintf("verify-%d", prefix)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("Intact", func(t *testing.T) { testVerifyIntact(t, newVerifyFixture(t, newStorage(t))) })
	t.Run("FlippedByte", func(t *testing.T) { testVerifyFlippedByte(t, newVerifyFixture(t, newStorage(t)), rand.Uint64()) })
	t.Run("MissingPack", func(t *testing.T) { testVerifyMissingPack(t, newVerifyFixture(t, newStorage(t))) })
}

// TestVerifyMemoryFlat verifies a 200 MiB repository while sampling the heap: what
// Verify adds stays bounded by its workers' buffers, far below the repository's size
// and below even one pack per worker.
func TestVerifyMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MiB repository")
	}
	r, _ := setup(t)
	ctx := t.Context()
	const blocks = 200
	m := &Manifest{BackupID: "big", BlockSize: r.BlockSize()}
	for i := range blocks {
		ref, _, err := r.Put(ctx, randomBytes(uint64(50000+i), DefaultBlockSize))
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, File{Path: fmt.Sprintf("f%d", i), Type: TypeFile, Mode: 0o600, Size: DefaultBlockSize, Blocks: []string{ref.Name}})
	}
	if _, err := r.PutManifest(ctx, "big", m); err != nil {
		t.Fatal(err)
	}
	m = nil

	// Sampled: the live heap as the last collection marked it (what Verify holds, not the
	// garbage its ranged reads leave for the collector), and HeapAlloc (garbage included).
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	metrics.Read(live)
	base, baseAlloc, cycles := live[0].Value.Uint64(), ms.HeapAlloc, live[1].Value.Uint64()
	var peak, peakAlloc uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			metrics.Read(live)
			peak, peakAlloc = max(peak, live[0].Value.Uint64()), max(peakAlloc, ms.HeapAlloc)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	res, err := r.Verify(ctx, VerifyOptions{Deep: true, MarkBad: true})
	close(stop)
	<-done
	metrics.Read(live)
	cycles = live[1].Value.Uint64() - cycles

	var stored int64
	err = errors.Join(err, r.st.List(ctx, packDir, func(_ string, size int64) error { stored += size; return nil }))
	if err != nil || len(res.Findings) != 0 || res.BytesRead != stored || stored < blocks<<20 {
		t.Fatalf("Verify(deep) = %d bytes read, %+v, %v, want %d bytes (at least %d) and no finding", res.BytesRead, res.Findings, err, stored, blocks<<20)
	}
	// Each worker holds one ranged read (verifySegment) and the plaintext of one block.
	// A collection also counts as live what is allocated while it marks: up to another
	// read a worker. The zstd decoders' windows and the index cache's rows come on top
	// (8 MiB). With 4 workers that is 48 MiB; reading whole packs would hold 16 MiB a
	// worker, the whole repository 200 MiB.
	bound := uint64(2*verifyWorkers()*(verifySegment+DefaultBlockSize) + 8<<20)
	grown := peak - min(peak, base)
	t.Logf("repository %d MiB, %d workers, %d collections: live heap %.1f MiB before, +%.1f MiB at most (bound +%d MiB); HeapAlloc %.1f MiB before, %.1f MiB at most",
		stored>>20, verifyWorkers(), cycles, float64(base)/(1<<20), float64(grown)/(1<<20), bound>>20, float64(baseAlloc)/(1<<20), float64(peakAlloc)/(1<<20))
	if cycles < 3 {
		t.Fatalf("only %d collections during Verify: too few samples of the live heap", cycles)
	}
	if grown > bound {
		t.Errorf("Verify(deep) of %d MiB grew the live heap by %d MiB, want at most %d MiB", stored>>20, grown>>20, bound>>20)
	}
}

// BenchmarkVerifyDeep reads and checks a repository: MB/s is of packs read.
func BenchmarkVerifyDeep(b *testing.B) {
	for _, bc := range []struct {
		name  string
		chunk int
		bytes int
		data  func(rng *rand.Rand, n int) []byte
	}{
		{"pages-16KiB", 16 << 10, 96 << 20, pgLikeBlock},
		{"random-1MiB", 1 << 20, 128 << 20, func(rng *rand.Rand, n int) []byte { return randomBytes(rng.Uint64(), n) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, _ := setup(b)
			ctx := b.Context()
			rng := rand.New(rand.NewPCG(1, 2))
			batch := make([][]byte, 0, 64)
			for range bc.bytes / bc.chunk {
				batch = append(batch, bc.data(rng, bc.chunk))
				if len(batch) == cap(batch) {
					if _, _, err := r.PutMany(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if err := r.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			u, err := r.Usage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(u.Bytes)
			var blobs, read int64
			cpu := cpuTime()
			for b.Loop() {
				res, err := r.Verify(ctx, VerifyOptions{Deep: true})
				if err != nil || len(res.Findings) != 0 {
					b.Fatalf("Verify = %+v, %v", res.Findings, err)
				}
				blobs += res.BlobsChecked
				read += res.BytesRead
			}
			// On a shared machine the wall clock says how busy it was; the CPU time the
			// process used says what verification costs.
			b.ReportMetric(float64(read)/1e6/(cpuTime()-cpu).Seconds(), "MB/cpu-s")
			b.ReportMetric(float64(blobs)/b.Elapsed().Seconds(), "blobs/s")
			b.ReportMetric(float64(u.Bytes)/float64(bc.bytes), "stored/size")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
