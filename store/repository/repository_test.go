package repository

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/store/repository/storage"
)

// setup returns a new repository in a fresh directory, and its key.
func setup(t testing.TB) (*Repo, []byte) {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(filepath.Join(t.TempDir(), "repo"), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, key
}

// setupWith returns a new repository opened with opts in a fresh directory, and its key.
func setupWith(t testing.TB, opts Options) (*Repo, []byte) {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := InitStorage(t.Context(), st, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, key
}

// reopen opens the repository of r again with opts, as another process would.
func reopen(t testing.TB, r *Repo, key []byte, opts Options) *Repo {
	t.Helper()
	st, err := storage.NewLocal(r.localDir())
	if err != nil {
		t.Fatal(err)
	}
	r2, err := OpenStorage(t.Context(), st, key, opts)
	if err != nil {
		t.Fatalf("OpenStorage(%s) = %v", r.localDir(), err)
	}
	t.Cleanup(func() { r2.Close() })
	return r2
}

// packIDs returns the ids of the packs stored under packs/ and of the index objects
// stored under index/, each sorted.
func packIDs(t testing.TB, r *Repo) (packs, indexes []string) {
	t.Helper()
	for _, dir := range []struct {
		prefix string
		ids    *[]string
	}{{packDir, &packs}, {indexDir, &indexes}} {
		err := r.st.List(t.Context(), dir.prefix, func(key string, _ int64) error {
			id, ok := packIDOfKey(key, dir.prefix)
			if !ok || key != dir.prefix+id[:2]+"/"+id {
				t.Errorf("unexpected key %q under %s", key, dir.prefix)
			}
			*dir.ids = append(*dir.ids, id)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(*dir.ids)
	}
	return packs, indexes
}

// storedBlobs returns how many blob copies the index objects of r list.
func storedBlobs(t testing.TB, r *Repo) int {
	t.Helper()
	_, indexes := packIDs(t, r)
	n := 0
	for _, id := range indexes {
		idx, err := r.readIndex(t.Context(), id)
		if err != nil {
			t.Fatalf("readIndex(%s) = %v", id, err)
		}
		n += len(idx.Entries)
	}
	return n
}

// rewrite replaces the content of a read-only repository file with
// edit(content).
func rewrite(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(data), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, fs.FileMode(0o440)); err != nil {
		t.Fatal(err)
	}
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	rng.Read(b)
	return b
}

// pgLikeBlock returns size bytes laid out like full PostgreSQL heap pages:
// page headers, line pointers and tuples mixing repeated structure (headers,
// status words, sequential ids) with random columns (amounts, uuids).
func pgLikeBlock(rng *rand.Rand, size int) []byte {
	const pageSize = 8192
	words := []string{"pending", "paid", "shipped", "delivered", "cancelled", "refunded"}
	b := make([]byte, size)
	id := rng.Uint32()
	for off := 0; off+pageSize <= size; off += pageSize {
		p := b[off : off+pageSize]
		binary.LittleEndian.PutUint64(p[0:], rng.Uint64()>>24) // pd_lsn
		binary.LittleEndian.PutUint16(p[8:], uint16(rng.Uint32()))
		binary.LittleEndian.PutUint16(p[18:], 0x2004) // page size and version
		lower, upper := 24, pageSize
		for {
			w := words[rng.IntN(len(words))]
			n := 24 + 4 + 8 + 1 + len(w) + 8 + 16
			start := (upper - n) &^ 7
			if start < lower+4 {
				break
			}
			binary.LittleEndian.PutUint32(p[lower:], uint32(start)|1<<15|uint32(n)<<17)
			lower += 4
			t := p[start:]
			binary.LittleEndian.PutUint32(t[0:], 731+rng.Uint32N(4)) // xmin
			binary.LittleEndian.PutUint16(t[18:], 5)                 // natts
			t[22] = 24                                               // t_hoff
			id++
			binary.LittleEndian.PutUint32(t[24:], id)
			binary.LittleEndian.PutUint64(t[28:], 815000000000000+uint64(id)*1000+uint64(rng.IntN(1000)))
			t[36] = byte(len(w)<<1 | 1)
			copy(t[37:], w)
			binary.LittleEndian.PutUint64(t[37+len(w):], uint64(rng.IntN(100000)))
			binary.LittleEndian.PutUint64(t[45+len(w):], rng.Uint64())
			binary.LittleEndian.PutUint64(t[53+len(w):], rng.Uint64())
			upper = start
		}
		binary.LittleEndian.PutUint16(p[12:], uint16(lower))
		binary.LittleEndian.PutUint16(p[14:], uint16(upper))
		binary.LittleEndian.PutUint16(p[16:], pageSize)
	}
	return b
}

func TestKeyText(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize {
		t.Fatalf("len(GenerateKey()) = %d, want %d", len(key), KeySize)
	}
	text := EncodeKey(key)
	for _, in := range []string{text, text + "\n", "  " + strings.ToUpper(text) + "\r\n"} {
		got, err := DecodeKey(in)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("DecodeKey(%q) = %x, %v, want %x", in, got, err, key)
		}
	}
	for _, in := range []string{"", text[:62], text + "00", "zz" + text[2:], text[:31] + " " + text[32:]} {
		if got, err := DecodeKey(in); err == nil {
			t.Errorf("DecodeKey(%q) = %x, want an error", in, got)
		}
	}
}

func TestInit(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string                         // under a temporary directory
		prepare func(t *testing.T, dir string) // dir does not exist yet
		key     []byte
		wantErr string
		wantIs  error
	}{
		{name: "missing dir", prepare: func(*testing.T, string) {}, key: key},
		{name: "missing parents", path: "a/b/repo", prepare: func(*testing.T, string) {}, key: key},
		{name: "empty dir", prepare: mkdir, key: key},
		{
			name: "existing repository",
			prepare: func(t *testing.T, dir string) {
				r, err := Init(dir, key)
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
			},
			key:     key,
			wantErr: "already holds a repository",
			wantIs:  fs.ErrExist,
		},
		{
			name: "non-empty dir",
			prepare: func(t *testing.T, dir string) {
				mkdir(t, dir)
				if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			key:     key,
			wantErr: "not empty",
		},
		{name: "short key", prepare: func(*testing.T, string) {}, key: key[:31], wantErr: "key is 31 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.path == "" {
				tt.path = "repo"
			}
			dir := filepath.Join(t.TempDir(), filepath.FromSlash(tt.path))
			tt.prepare(t, dir)
			r, err := Init(dir, tt.key)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Init(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("Init(%s) = %v, want an error wrapping %v", tt.name, err, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init(%s) = %v, want nil", tt.name, err)
			}
			defer r.Close()
			data, err := os.ReadFile(filepath.Join(dir, configName))
			if err != nil {
				t.Fatal(err)
			}
			var c config
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			if c.Format != 2 || c.ID != r.ID() || len(c.ID) != 32 || c.BlockSize != DefaultBlockSize || c.CreatedAt.IsZero() || len(c.KeyCheck) == 0 {
				t.Errorf("config after Init = %+v, want format 2, id %q, block size %d, created_at and key_check set", c, r.ID(), DefaultBlockSize)
			}
			if bytes.Contains(data, []byte(EncodeKey(key))) {
				t.Errorf("config after Init holds the key")
			}
		})
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	otherKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	editConfig := func(edit func(map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, configName), func(data []byte) []byte {
				var c map[string]any
				if err := json.Unmarshal(data, &c); err != nil {
					t.Fatal(err)
				}
				edit(c)
				out, err := json.Marshal(c)
				if err != nil {
					t.Fatal(err)
				}
				return out
			})
		}
	}
	tests := []struct {
		name     string
		prepare  func(t *testing.T, dir string)
		wrongKey bool
		wantErr  string
		wantIs   error
	}{
		{name: "ok", prepare: func(*testing.T, string) {}},
		{name: "wrong key", prepare: func(*testing.T, string) {}, wrongKey: true, wantErr: "repository key does not match this repository", wantIs: ErrWrongKey},
		{
			name: "missing",
			prepare: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, configName)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "no repository here", wantIs: fs.ErrNotExist,
		},
		{name: "format 1", prepare: editConfig(func(c map[string]any) { c["format"] = 1 }), wantErr: "format 1", wantIs: ErrOldFormat},
		{name: "unknown format", prepare: editConfig(func(c map[string]any) { c["format"] = 3 }), wantErr: "unsupported repository format 3"},
		{name: "format 0", prepare: editConfig(func(c map[string]any) { delete(c, "format") }), wantErr: "unsupported repository format 0"},
		{name: "id changed", prepare: editConfig(func(c map[string]any) { c["id"] = strings.Repeat("ab", 16) }), wantIs: ErrWrongKey},
		{name: "bad id", prepare: editConfig(func(c map[string]any) { c["id"] = "../x" }), wantErr: "invalid id"},
		{name: "bad block size", prepare: editConfig(func(c map[string]any) { c["block_size"] = 0 }), wantErr: "invalid block size 0"},
		{name: "no key check", prepare: editConfig(func(c map[string]any) { delete(c, "key_check") }), wantErr: "has no key_check"},
		{name: "garbage", prepare: func(t *testing.T, dir string) {
			rewrite(t, filepath.Join(dir, configName), func([]byte) []byte { return []byte("{") })
		}, wantErr: "read " + configName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r0, key := setup(t)
			tt.prepare(t, r0.localDir())
			if tt.wrongKey {
				key = otherKey
			}
			r, err := Open(r0.localDir(), key)
			if tt.wantErr == "" && tt.wantIs == nil {
				if err != nil {
					t.Fatalf("Open(%s) = %v, want nil", tt.name, err)
				}
				defer r.Close()
				if r.ID() != r0.ID() || r.BlockSize() != r0.BlockSize() {
					t.Errorf("Open(%s) = id %s block size %d, want %s, %d", tt.name, r.ID(), r.BlockSize(), r0.ID(), r0.BlockSize())
				}
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("Open(%s) = nil error, want %q", tt.name, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Open(%s) = %v, want an error wrapping %v", tt.name, err, tt.wantIs)
			}
		})
	}
}

func TestOpenReadsObjectsOfInit(t *testing.T) {
	t.Parallel()
	r, key := setup(t)
	data := randomBytes(1, 5000)
	ref, _, err := r.Put(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	// Put only fills a pack in memory; Sync stores it.
	early, err := Open(r.localDir(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if ok, err := early.Has(t.Context(), ref.Name); ok || err != nil {
		t.Errorf("Has(%s) in another Repo before Sync = %v, %v, want false, nil", ref.Name, ok, err)
	}
	if err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(r.localDir(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got, err := r2.Get(t.Context(), ref.Name, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get(%s) after Open = %d bytes, %v, want the %d bytes stored", ref.Name, len(got), err, len(data))
	}
	if ref2, written, err := r2.Put(t.Context(), data); err != nil || written || ref2 != ref {
		t.Errorf("Put(same data) after Open = %+v, %v, %v, want %+v, false, nil", ref2, written, err, ref)
	}
}

// TestOpenOldFormat opens a repository written by Backstop before packs: one file per
// block under objects/. Open refuses it and leaves every file as it was.
func TestOpenOldFormat(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	name := strings.Repeat("3f", 32)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	files := map[string]string{
		configName: `{"format": 1, "id": "` + strings.Repeat("ab", 16) + `", "created_at": "2025-03-01T12:00:00Z", ` +
			`"block_size": 1048576, "key_check": "QlNLMQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}` + "\n",
		"objects/3f/" + name:                                   "BSO1 a sealed block",
		"backups/nightly.manifest":                             "BSM1 a sealed manifest",
		"wal/7301234567890123456/000000010000000000000003.wal": "BSW1 a sealed WAL manifest",
	}
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		mkdir(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(content), 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, created, created); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, dir)

	cacheDir := t.TempDir()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, open := range []struct {
		name string
		fn   func() (*Repo, error)
	}{
		{"Open", func() (*Repo, error) { return Open(dir, key) }},
		{"OpenStorage", func() (*Repo, error) { return OpenStorage(t.Context(), st, key, Options{CacheDir: cacheDir}) }},
	} {
		r, err := open.fn()
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, ErrOldFormat) {
			t.Errorf("%s(format 1 repository) = %v, want an error wrapping ErrOldFormat", open.name, err)
		}
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("repository after Open of format 1 changed (-before +after):\n%s", diff)
	}
	if entries, err := os.ReadDir(cacheDir); err != nil || len(entries) != 0 {
		t.Errorf("cache directory after Open of format 1 = %v, %v, want empty", entries, err)
	}
}

// fileState is what snapshot records of one file or directory.
type fileState struct {
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	Sum     [sha256.Size]byte
}

// snapshot records every file and directory below dir.
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := fileState{Mode: fi.Mode(), ModTime: fi.ModTime()}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.Size, s.Sum = fi.Size(), sha256.Sum256(data)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
