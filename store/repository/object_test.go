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
	"strings"
	"sync"
	"sync/atomic"
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
			if !validObjectName(ref.Name) || ref.Size != int64(len(tt.data)) {
				t.Errorf("Put(%s) = %+v, want a valid name and size %d", tt.name, ref, len(tt.data))
			}
			fi, err := os.Stat(r.objectPath(ref.Name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != ref.StoredSize || fi.Mode().Perm() != 0o440 {
				t.Errorf("stored file of Put(%s) = %d bytes, mode %v, want %d bytes, mode %v", tt.name, fi.Size(), fi.Mode().Perm(), ref.StoredSize, fs.FileMode(0o440))
			}
			if size, err := r.Stat(ctx, ref.Name); err != nil || size != ref.StoredSize {
				t.Errorf("Stat(%s) = %d, %v, want %d, nil", ref.Name, size, err, ref.StoredSize)
			}
			if ok, err := r.Has(ctx, ref.Name); err != nil || !ok {
				t.Errorf("Has(%s) = %v, %v, want true, nil", ref.Name, ok, err)
			}
			if err := r.Sync(ctx); err != nil {
				t.Errorf("Sync() = %v, want nil", err)
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
	files, _ := countFiles(t, r.localDir())
	second, written, err := r.Put(ctx, data)
	if err != nil || written || second != first {
		t.Fatalf("second Put(data) = %+v, %v, %v, want %+v, false, nil", second, written, err, first)
	}
	if got, _ := countFiles(t, r.localDir()); got != files {
		t.Errorf("files after second Put(data) = %d, want %d", got, files)
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
		testPutConcurrent(t, []*Repo{r}, 16, true)
	})
	// Two Repos on one directory stand for two processes racing to write.
	t.Run("two repos", func(t *testing.T) {
		t.Parallel()
		r, key := setup(t)
		r2, err := Open(r.localDir(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer r2.Close()
		testPutConcurrent(t, []*Repo{r, r2}, 8, false)
	})
}

func testPutConcurrent(t *testing.T, repos []*Repo, perRepo int, exactlyOne bool) {
	t.Helper()
	data := randomBytes(16, 1<<20)
	var (
		wg      sync.WaitGroup
		written atomic.Int32
		start   = make(chan struct{})
		refs    = make([]ObjectRef, len(repos)*perRepo)
		errs    = make([]error, len(refs))
	)
	for i := range refs {
		wg.Go(func() {
			<-start
			var w bool
			refs[i], w, errs[i] = repos[i%len(repos)].Put(t.Context(), data)
			if w {
				written.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put(data) in goroutine %d = %v, want nil", i, err)
		}
		if refs[i].Name != refs[0].Name {
			t.Errorf("Put(data) in goroutine %d = %s, want %s", i, refs[i].Name, refs[0].Name)
		}
	}
	if n := written.Load(); n < 1 || (exactlyOne && n != 1) {
		t.Errorf("Puts reporting a new object = %d, want 1", n)
	}
	files, temps := countFiles(t, filepath.Join(repos[0].localDir(), "objects"))
	if files != 1 || temps != 0 {
		t.Errorf("files after concurrent Puts = %d (%d temporary), want 1 (0)", files, temps)
	}
	got, err := repos[0].Get(t.Context(), refs[0].Name, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get(%s) after concurrent Puts = %d bytes, %v, want the %d bytes put", refs[0].Name, len(got), err, len(data))
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
			rewrite(t, r.objectPath(ref.Name), func(b []byte) []byte {
				b[tt.at(len(b))] ^= 0x01
				return b
			})
			got, err := r.Get(t.Context(), ref.Name, nil)
			wantCorrupt(t, fmt.Sprintf("Get(%s) with %s flipped", ref.Name, tt.name), err, ref.Name)
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
		n := keep(int(ref.StoredSize))
		t.Run(fmt.Sprintf("%d of %d bytes", n, ref.StoredSize), func(t *testing.T) {
			t.Parallel()
			rewrite(t, r.objectPath(ref.Name), func(b []byte) []byte { return b[:n] })
			_, err := r.Get(t.Context(), ref.Name, nil)
			wantCorrupt(t, fmt.Sprintf("Get(%s) truncated to %d bytes", ref.Name, n), err, ref.Name)
		})
	}
}

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

	// Renamed to a name that was free.
	moved := strings.Repeat("0f", 32)
	mkdir(t, filepath.Dir(r.objectPath(moved)))
	if err := os.Rename(r.objectPath(a.Name), r.objectPath(moved)); err != nil {
		t.Fatal(err)
	}
	_, err = r.Get(ctx, moved, nil)
	wantCorrupt(t, fmt.Sprintf("Get(%s) of object %s moved there", moved, a.Name), err, moved)

	// Copied over another object.
	sealed, err := os.ReadFile(r.objectPath(moved))
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, r.objectPath(b.Name), func([]byte) []byte { return sealed })
	_, err = r.Get(ctx, b.Name, nil)
	wantCorrupt(t, fmt.Sprintf("Get(%s) holding another object", b.Name), err, b.Name)
}

func TestGetContentMismatch(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ref, _, err := r.Put(t.Context(), []byte("the real content"))
	if err != nil {
		t.Fatal(err)
	}
	// Only a writer holding the key can produce this: a sealed object whose
	// plaintext does not hash to its name.
	forged, err := r.seal(nil, objectMagic, []byte(ref.Name), []byte("other content"))
	if err != nil {
		t.Fatal(err)
	}
	rewrite(t, r.objectPath(ref.Name), func([]byte) []byte { return forged })
	_, err = r.Get(t.Context(), ref.Name, nil)
	wantCorrupt(t, fmt.Sprintf("Get(%s) of forged content", ref.Name), err, ref.Name)
	if !strings.Contains(err.Error(), "content does not match its name") {
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
	if _, err := r.Stat(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", name, err)
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
		if _, err := r.Stat(ctx, name); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want an invalid name error", name, err)
		}
		if ok, err := r.Has(ctx, name); err == nil {
			t.Errorf("Has(%q) = %v, nil, want an invalid name error", name, ok)
		}
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	for i := range 5 {
		if _, _, err := r.Put(ctx, randomBytes(uint64(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	dirty := r.st.(*storage.Local).Pending()
	if dirty < 3 {
		t.Errorf("directories to sync after 5 Puts = %d, want at least 3 (object dirs, objects, root)", dirty)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Sync(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync(canceled) = %v, want context.Canceled", err)
	}
	kept := r.st.(*storage.Local).Pending()
	if kept != dirty {
		t.Errorf("directories to sync after a failed Sync = %d, want %d", kept, dirty)
	}

	if err := r.Sync(ctx); err != nil {
		t.Fatalf("Sync() = %v, want nil", err)
	}
	left := r.st.(*storage.Local).Pending()
	if left != 0 {
		t.Errorf("directories to sync after Sync = %d, want 0", left)
	}
}

func TestCorruptErrorMessage(t *testing.T) {
	t.Parallel()
	name := strings.Repeat("3f", 32)
	var err error = fmt.Errorf("verify: %w", &CorruptError{Object: name, Reason: "authentication failed: stored bytes were altered"})
	want := "verify: object " + name + ": authentication failed: stored bytes were altered"
	if err.Error() != want {
		t.Errorf("CorruptError.Error() = %q, want %q", err.Error(), want)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Object != name {
		t.Errorf("errors.As(%v) = %v, want the CorruptError", err, ce)
	}
}
