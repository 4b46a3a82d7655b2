package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/backstop/backstop/store/repository/storage"
)

// countFiles returns the number of files under dir, and how many of them are
// temporary files.
func countFiles(t *testing.T, dir string) (files, temps int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return nil // nothing stored yet
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files++
			if strings.HasPrefix(d.Name(), ".tmp-") {
				temps++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, temps
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"1 byte", []byte{42}},
		{"8191 random", randomBytes(8191, 8191)},
		{"1MiB random", randomBytes(1<<20, 1<<20)},
		{"1MiB zeros", make([]byte, 1<<20)},
		{"1MiB pages", pgLikeBlock(rng, 1<<20)},
		{"3MiB random", randomBytes(3<<20, 3<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := setup(t)
			ctx := t.Context()
			ref, written, err := r.Put(ctx, tt.data)
			if err != nil || !written {
				t.Fatalf("Put(%s) = %+v, %v, %v, want a new object", tt.name, ref, written, err)
			}
			if !validObjectName(ref.Name) || ref.Size != int64(len(tt.data)) || !validPackID(ref.Pack) || ref.StoredSize <= 0 {
				t.Errorf("Put(%s) = %+v, want a valid name and pack, size %d and a stored size", tt.name, ref, len(tt.data))
			}

			// Before Sync the blob is in the pack being filled: found, read, not on disk.
			if ok, err := r.Has(ctx, ref.Name); err != nil || !ok {
				t.Errorf("Has(%s) before Sync = %v, %v, want true, nil", ref.Name, ok, err)
			}
			if got, err := r.Get(ctx, ref.Name, nil); err != nil || !bytes.Equal(got, tt.data) {
				t.Errorf("Get(%s) before Sync = %d bytes, %v, want the %d bytes put", ref.Name, len(got), err, len(tt.data))
			}
			if packs, indexes := packIDs(t, r); len(packs) != 0 || len(indexes) != 0 {
				t.Errorf("packs and indexes stored before Sync = %q, %q, want none", packs, indexes)
			}
			if err := r.Sync(ctx); err != nil {
				t.Errorf("Sync() = %v, want nil", err)
			}

			// After Sync the pack and its index are stored, read-only, and the blob's copy
			// in the pack is the sealed size Put reported.
			packs, indexes := packIDs(t, r)
			if want := []string{ref.Pack}; !slices.Equal(packs, want) || !slices.Equal(indexes, want) {
				t.Errorf("packs and indexes after Sync = %q, %q, want %q for both", packs, indexes, want)
			}
			path, off, n := r.blobAt(t, ref.Name)
			if want := filepath.Join(r.localDir(), "packs", ref.Pack[:2], ref.Pack); path != want {
				t.Errorf("blobAt(%s) = %s, want %s", ref.Name, path, want)
			}
			if off < int64(len(packMagic)) || n != ref.StoredSize {
				t.Errorf("blobAt(%s) = [%d, +%d), want a range of %d bytes after the pack header", ref.Name, off, n, ref.StoredSize)
			}
			if pack, _, length, err := r.Locate(ctx, ref.Name); err != nil || pack != ref.Pack || length != ref.StoredSize {
				t.Errorf("Locate(%s) = %s, %d, %v, want %s, %d, nil", ref.Name, pack, length, err, ref.Pack, ref.StoredSize)
			}
			for _, p := range []string{path, filepath.Join(r.localDir(), "index", ref.Pack[:2], ref.Pack)} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o440 {
					t.Errorf("mode of %s = %v, want %v", p, fi.Mode().Perm(), fs.FileMode(0o440))
				}
				if p == path && fi.Size() < off+n {
					t.Errorf("size of pack %s = %d, want at least %d", p, fi.Size(), off+n)
				}
			}
			pack, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(pack[:len(packMagic)]) != packMagic || string(pack[off:off+int64(len(blobMagic))]) != blobMagic {
				t.Errorf("pack %s = %q... with %q at %d, want %q and %q", ref.Pack, pack[:len(packMagic)], pack[off:off+int64(len(blobMagic))], off, packMagic, blobMagic)
			}
			if ok, err := r.Has(ctx, ref.Name); err != nil || !ok {
				t.Errorf("Has(%s) = %v, %v, want true, nil", ref.Name, ok, err)
			}

			got, err := r.Get(ctx, ref.Name, nil)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("Get(%s) = %d bytes, %v, want the %d bytes put", ref.Name, len(got), err, len(tt.data))
			}
			// dst is reused when large enough.
			dst := make([]byte, 10, len(tt.data)+10)
			got, err = r.Get(ctx, ref.Name, dst)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("Get(%s, dst) = %d bytes, %v, want the %d bytes put", ref.Name, len(got), err, len(tt.data))
			}
			if len(tt.data) > 0 && &got[0] != &dst[:1][0] {
				t.Errorf("Get(%s, dst) did not reuse dst", ref.Name)
			}
		})
	}
}

func TestPutDedupe(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	data := randomBytes(7, 100_000)
	first, written, err := r.Put(ctx, data)
	if err != nil || !written {
		t.Fatalf("Put(data) = %+v, %v, %v, want a new object", first, written, err)
	}
	// Against the pack being filled.
	second, written, err := r.Put(ctx, data)
	if err != nil || written || second != first {
		t.Fatalf("second Put(data) = %+v, %v, %v, want %+v, false, nil", second, written, err, first)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Against the stored pack, through the index cache.
	third, written, err := r.Put(ctx, data)
	if err != nil || written || third != first {
		t.Fatalf("Put(data) after Sync = %+v, %v, %v, want %+v, false, nil", third, written, err, first)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	packs, _ := packIDs(t, r)
	if n := storedBlobs(t, r); n != 1 || len(packs) != 1 {
		t.Errorf("after three Puts of one content: %d copies in %d packs, want 1 in 1", n, len(packs))
	}
	other, written, err := r.Put(ctx, append(data, 0))
	if err != nil || !written || other.Name == first.Name {
		t.Errorf("Put(data+1 byte) = %+v, %v, %v, want a new object under a new name", other, written, err)
	}
}

func TestNamesAreKeyed(t *testing.T) {
	t.Parallel()
	r1, _ := setup(t)
	r2, _ := setup(t)
	data := []byte("same plaintext in two repositories")
	ref1, _, err := r1.Put(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	ref2, _, err := r2.Put(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	if ref1.Name == ref2.Name {
		t.Errorf("Put(data) under two keys = %s twice, want different names", ref1.Name)
	}
}

func TestPutConcurrent(t *testing.T) {
	t.Parallel()
	t.Run("one repo", func(t *testing.T) {
		t.Parallel()
		r, _ := setup(t)
		testPutConcurrent(t, []*Repo{r}, 16)
	})
	// Two Repos on one directory stand for two processes racing to write: each dedupes
	// against its own index cache and pack, so each stores one copy.
	t.Run("two repos", func(t *testing.T) {
		t.Parallel()
		r, key := setup(t)
		r2, err := Open(r.localDir(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		testPutConcurrent(t, []*Repo{r, r2}, 8)
	})
}

func testPutConcurrent(t *testing.T, repos []*Repo, perRepo int) {
	t.Helper()
	data := randomBytes(16, 1<<20)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		refs    = make([]ObjectRef, len(repos)*perRepo)
		written = make([]bool, len(refs))
		errs    = make([]error, len(refs))
	)
	for i := range refs {
		wg.Go(func() {
			<-start
			refs[i], written[i], errs[i] = repos[i%len(repos)].Put(t.Context(), data)
		})
	}
	close(start)
	wg.Wait()
	packs := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(data) in goroutine %d = %v, want nil", i, err)
		}
		if refs[i].Name != refs[0].Name {
			t.Errorf("Put(data) in goroutine %d = %s, want %s", i, refs[i].Name, refs[0].Name)
		}
		if written[i] {
			packs[refs[i].Pack] = true
		}
	}
	// Exactly one Put per Repo writes, and every Put of a Repo reports its copy.
	for j := range repos {
		n := 0
		for i := j; i < len(refs); i += len(repos) {
			if written[i] {
				n++
			}
			if refs[i] != refs[j] {
				t.Errorf("Put(data) in goroutine %d = %+v, want %+v as the other Puts of its Repo", i, refs[i], refs[j])
			}
		}
		if n != 1 {
			t.Errorf("Puts of Repo %d reporting a new object = %d, want 1", j, n)
		}
	}
	for _, r := range repos {
		if err := r.Sync(t.Context()); err != nil {
			t.Fatalf("Sync() = %v", err)
		}
	}
	stored, indexes := packIDs(t, repos[0])
	if len(stored) != len(repos) || len(packs) != len(repos) || !slices.Equal(stored, indexes) {
		t.Errorf("packs after concurrent Puts = %q, indexes %q, written to %d packs, want %d", stored, indexes, len(packs), len(repos))
	}
	for _, p := range stored {
		if !packs[p] {
			t.Errorf("pack %s stored, want only the packs Put reported", p)
		}
	}
	if n := storedBlobs(t, repos[0]); n != len(repos) {
		t.Errorf("copies of the blob stored = %d, want %d", n, len(repos))
	}
	if files, temps := countFiles(t, repos[0].localDir()); temps != 0 {
		t.Errorf("files after concurrent Puts = %d (%d temporary), want no temporary file", files, temps)
	}
	for i, r := range repos {
		got, err := r.Get(t.Context(), refs[0].Name, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("Get(%s) from Repo %d after concurrent Puts = %d bytes, %v, want the %d bytes put", refs[0].Name, i, len(got), err, len(data))
		}
	}
}

func TestPutConcurrentDistinct(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	const n = 64
	var wg sync.WaitGroup
	refs := make([]ObjectRef, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { refs[i], _, errs[i] = r.Put(t.Context(), randomBytes(uint64(i), 10_000)) })
	}
	wg.Wait()
	if err := r.Sync(t.Context()); err != nil {
		t.Fatalf("Sync() = %v, want nil", err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Put(data %d) = %v, want nil", i, errs[i])
		}
		got, err := r.Get(t.Context(), refs[i].Name, nil)
		if err != nil || !bytes.Equal(got, randomBytes(uint64(i), 10_000)) {
			t.Errorf("Get(%s) = %d bytes, %v, want data %d", refs[i].Name, len(got), err, i)
		}
	}
}

// wantCorrupt checks that err is a *CorruptError about object.
func wantCorrupt(t *testing.T, call string, err error, object string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("%s = %v, want a *CorruptError", call, err)
	}
	if ce.Object != object || !strings.Contains(err.Error(), object) {
		t.Errorf("%s = %v (object %q), want an error naming %s", call, err, ce.Object, object)
	}
}

// wantCorruptIn checks that err is a *CorruptError about the copy of blob name in pack.
func wantCorruptIn(t *testing.T, call string, err error, name, pack string) {
	t.Helper()
	wantCorrupt(t, call, err, name)
	var ce *CorruptError
	if errors.As(err, &ce) && (ce.Pack != pack || !strings.Contains(err.Error(), pack)) {
		t.Errorf("%s = %v (pack %q), want an error naming pack %s", call, err, ce.Pack, pack)
	}
}

func TestGetCorrupt(t *testing.T) {
	t.Parallel()
	data := pgLikeBlock(rand.New(rand.NewPCG(3, 4)), 64<<10)
	tests := []struct {
		name   string
		at     func(n int) int // which byte to flip in n stored bytes
		reason string
	}{
		{"magic first byte", func(int) int { return 0 }, "bad header"},
		{"magic last byte", func(int) int { return 3 }, "bad header"},
		{"nonce first byte", func(int) int { return 4 }, "authentication failed"},
		{"nonce last byte", func(int) int { return 27 }, "authentication failed"},
		{"ciphertext first byte", func(int) int { return 28 }, "authentication failed"},
		{"ciphertext middle", func(n int) int { return n / 2 }, "authentication failed"},
		{"tag first byte", func(n int) int { return n - 16 }, "authentication failed"},
		{"tag last byte", func(n int) int { return n - 1 }, "authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := setup(t)
			ref, _, err := r.Put(t.Context(), data)
			if err != nil {
				t.Fatal(err)
			}
			path, off, n := r.blobAt(t, ref.Name)
			rewrite(t, path, func(b []byte) []byte {
				b[off+int64(tt.at(int(n)))] ^= 0x01
				return b
			})
			got, err := r.Get(t.Context(), ref.Name, nil)
			wantCorruptIn(t, fmt.Sprintf("Get(%s) with %s flipped", ref.Name, tt.name), err, ref.Name, ref.Pack)
			if got != nil || err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Get(%s) with %s flipped = %d bytes, %v, want no bytes and %q", ref.Name, tt.name, len(got), err, tt.reason)
			}
		})
	}
}

func TestGetTruncated(t *testing.T) {
	t.Parallel()
	data := randomBytes(5, 20_000)
	for _, keep := range []func(n int) int{
		func(int) int { return 0 },
		func(int) int { return 3 },
		func(int) int { return 20 },
		func(int) int { return 28 + 15 },
		func(n int) int { return n - 17 },
		func(n int) int { return n - 1 },
	} {
		r, _ := setup(t)
		ref, _, err := r.Put(t.Context(), data)
		if err != nil {
			t.Fatal(err)
		}
		path, off, length := r.blobAt(t, ref.Name)
		n := keep(int(length))
		t.Run(fmt.Sprintf("%d of %d bytes", n, ref.StoredSize), func(t *testing.T) {
			t.Parallel()
			// The pack ends inside the blob: its index object still says where it was.
			rewrite(t, path, func(b []byte) []byte { return b[:off+int64(n)] })
			_, err := r.Get(t.Context(), ref.Name, nil)
			wantCorruptIn(t, fmt.Sprintf("Get(%s) truncated to %d bytes", ref.Name, n), err, ref.Name, ref.Pack)
			if err != nil && !strings.Contains(err.Error(), "truncated") {
				t.Errorf("Get(%s) truncated to %d bytes = %v, want it to say truncated", ref.Name, n, err)
			}
		})
	}
}

// TestGetMoved swaps the sealed bytes of two blobs of the same length in their pack:
// each is bound to its name, so neither reads as the other.
func TestGetMoved(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	a, _, err := r.Put(ctx, randomBytes(10, 3000))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := r.Put(ctx, randomBytes(11, 3000))
	if err != nil {
		t.Fatal(err)
	}
	pathA, offA, nA := r.blobAt(t, a.Name)
	pathB, offB, nB := r.blobAt(t, b.Name)
	if pathA != pathB || nA != nB {
		t.Fatalf("blobAt(a), blobAt(b) = %s [%d, +%d), %s [%d, +%d), want two ranges of one length in one pack", pathA, offA, nA, pathB, offB, nB)
	}
	rewrite(t, pathA, func(p []byte) []byte {
		sealedA := bytes.Clone(p[offA : offA+nA])
		copy(p[offA:offA+nA], p[offB:offB+nB])
		copy(p[offB:offB+nB], sealedA)
		return p
	})
	for _, x := range []struct{ ref, other ObjectRef }{{a, b}, {b, a}} {
		got, err := r.Get(ctx, x.ref.Name, nil)
		wantCorruptIn(t, fmt.Sprintf("Get(%s) holding blob %s", x.ref.Name, x.other.Name), err, x.ref.Name, x.ref.Pack)
		if got != nil || err == nil || !strings.Contains(err.Error(), "authentication failed") {
			t.Errorf("Get(%s) holding blob %s = %d bytes, %v, want no bytes and an authentication failure", x.ref.Name, x.other.Name, len(got), err)
		}
	}
}

func TestGetContentMismatch(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ref, _, err := r.Put(t.Context(), []byte("the real content"))
	if err != nil {
		t.Fatal(err)
	}
	// Only a writer holding the key can produce this: a sealed blob whose plaintext does
	// not hash to its name, of the same sealed length.
	forged, err := r.seal(nil, blobMagic, blobAD(ref.Name), []byte("the fake content"))
	if err != nil {
		t.Fatal(err)
	}
	path, off, n := r.blobAt(t, ref.Name)
	if int64(len(forged)) != n {
		t.Fatalf("forged blob = %d bytes, want %d", len(forged), n)
	}
	rewrite(t, path, func(b []byte) []byte {
		copy(b[off:off+n], forged)
		return b
	})
	_, err = r.Get(t.Context(), ref.Name, nil)
	wantCorruptIn(t, fmt.Sprintf("Get(%s) of forged content", ref.Name), err, ref.Name, ref.Pack)
	if err != nil && !strings.Contains(err.Error(), "content does not match its name") {
		t.Errorf("Get(%s) of forged content = %v, want a content mismatch", ref.Name, err)
	}
}

func TestMissingObject(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	name := strings.Repeat("a1", 32)
	if _, err := r.Get(ctx, name, nil); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), name) {
		t.Errorf("Get(%s) = %v, want ErrNotFound naming the object", name, err)
	}
	if pack, _, _, err := r.Locate(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Locate(%s) = %s, %v, want ErrNotFound", name, pack, err)
	}
	if ok, err := r.Has(ctx, name); ok || err != nil {
		t.Errorf("Has(%s) = %v, %v, want false, nil", name, ok, err)
	}
}

func TestInvalidObjectName(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	for _, name := range []string{
		"",
		"ab",
		strings.Repeat("A1", 32),
		strings.Repeat("a1", 32) + "0",
		strings.Repeat("a1", 31) + "g0",
		"../" + strings.Repeat("a", 61),
	} {
		if got, err := r.Get(ctx, name, nil); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %q, %v, want an invalid name error", name, got, err)
		}
		if pack, _, _, err := r.Locate(ctx, name); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Locate(%q) = %s, %v, want an invalid name error", name, pack, err)
		}
		if ok, err := r.Has(ctx, name); err == nil {
			t.Errorf("Has(%q) = %v, nil, want an invalid name error", name, ok)
		}
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	r, key := setup(t)
	ctx := t.Context()
	var names []string
	for i := range 5 {
		ref, _, err := r.Put(ctx, randomBytes(uint64(i), 100))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ref.Name)
	}
	// The blobs are in a pack in memory: nothing is on disk yet.
	if dirty := r.st.(*storage.Local).Pending(); dirty != 0 {
		t.Errorf("directories to sync after 5 Puts = %d, want 0", dirty)
	}
	if packs, indexes := packIDs(t, r); len(packs) != 0 || len(indexes) != 0 {
		t.Errorf("packs and indexes after 5 Puts = %q, %q, want none", packs, indexes)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Sync(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync(canceled) = %v, want context.Canceled", err)
	}
	// A failed Sync loses nothing: the next one stores every blob.
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("Sync() after Sync(canceled) = %v, want nil", err)
	}
	if left := r.st.(*storage.Local).Pending(); left != 0 {
		t.Errorf("directories to sync after Sync = %d, want 0", left)
	}
	packs, indexes := packIDs(t, r)
	if len(packs) != 1 || !slices.Equal(packs, indexes) {
		t.Errorf("packs and indexes after Sync = %q, %q, want one pack and its index", packs, indexes)
	}
	// Another process sees them.
	r2 := reopen(t, r, key, Options{})
	for i, name := range names {
		got, err := r2.Get(ctx, name, nil)
		if err != nil || !bytes.Equal(got, randomBytes(uint64(i), 100)) {
			t.Errorf("Get(%s) in another Repo after Sync = %d bytes, %v, want data %d", name, len(got), err, i)
		}
	}
	// A Sync with nothing new stores nothing.
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("Sync() with nothing new = %v, want nil", err)
	}
	if again, _ := packIDs(t, r); !slices.Equal(again, packs) {
		t.Errorf("packs after a Sync with nothing new = %q, want %q", again, packs)
	}

	// Directories whose fsync failed are synced by the next Sync.
	if err := r.st.Put(ctx, "sources/x.source", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	dirty := r.st.(*storage.Local).Pending()
	if dirty == 0 {
		t.Fatalf("directories to sync after a write = 0, want some")
	}
	if err := r.st.Sync(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("storage Sync(canceled) = %v, want context.Canceled", err)
	}
	if kept := r.st.(*storage.Local).Pending(); kept != dirty {
		t.Errorf("directories to sync after a failed Sync = %d, want %d", kept, dirty)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("Sync() = %v, want nil", err)
	}
	if left := r.st.(*storage.Local).Pending(); left != 0 {
		t.Errorf("directories to sync after Sync = %d, want 0", left)
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("3f", 32)
	pack := strings.Repeat("0a", 16)
	for _, tt := range []struct {
		err  *CorruptError
		want string
	}{
		{&CorruptError{Object: name, Reason: "authentication failed: stored bytes were altered"},
			"verify: object " + name + ": authentication failed: stored bytes were altered"},
		{&CorruptError{Object: name, Pack: pack, Reason: "authentication failed: stored bytes were altered"},
			"verify: object " + name + " in pack " + pack + ": authentication failed: stored bytes were altered"},
	} {
		var err error = fmt.Errorf("verify: %w", tt.err)
		if err.Error() != tt.want {
			t.Errorf("CorruptError.Error() = %q, want %q", err.Error(), tt.want)
		}
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Object != name || ce.Pack != tt.err.Pack {
			t.Errorf("errors.As(%v) = %v, want the CorruptError", err, ce)
		}
	}
}
