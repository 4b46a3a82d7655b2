package repository

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
	"github.com/google/go-cmp/cmp"
)

// sampleManifest returns a valid manifest whose regular files are stored in r
// when r is not nil, and use made-up block names otherwise. Its last file is
// cut into chunks smaller than the block size and listed by a block map.
func sampleManifest(t testing.TB, r *Repo, id string) *Manifest {
	t.Helper()
	const bs = DefaultBlockSize
	const chunk = 4 * 8192
	block := func(seed uint64, n int) string {
		if r == nil {
			return fmt.Sprintf("%x", sha256.Sum256([]byte{byte(seed)}))
		}
		ref, _, err := r.Put(t.Context(), randomBytes(seed, n))
		if err != nil {
			t.Fatal(err)
		}
		return ref.Name
	}
	blockMap := func(blocks ...string) string {
		names := make([][32]byte, len(blocks))
		for i, b := range blocks {
			if _, err := hex.Decode(names[i][:], []byte(b)); err != nil {
				t.Fatal(err)
			}
		}
		if r == nil {
			return fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(blocks))))
		}
		ref, _, err := r.PutBlockMap(t.Context(), names)
		if err != nil {
			t.Fatal(err)
		}
		return ref.Name
	}
	crc := uint32(0x1c291ca3)
	mod := time.Date(2026, 11, 25, 2, 0, 14, 0, time.UTC)
	return &Manifest{
		Format:           ManifestFormat,
		BackupID:         id,
		Label:            "backstop nightly",
		SourceName:       "orders-db",
		SystemIdentifier: "7301234567890123456",
		PGVersion:        150004,
		Timeline:         1,
		StartLSN:         "0/3A000028",
		EndLSN:           "0/3A000100",
		StartedAt:        time.Date(2026, 11, 25, 2, 0, 0, 123456789, time.UTC),
		FinishedAt:       time.Date(2026, 11, 25, 2, 0, 41, 987654321, time.UTC),
		BlockSize:        bs,
		Files: []File{
			{Path: "PG_VERSION", Type: TypeFile, Mode: 0o600, Size: 3, ModTime: mod, Blocks: []string{block(1, 3)}},
			{Path: "base", Type: TypeDir, Mode: 0o700, ModTime: mod},
			{Path: "base/5", Type: TypeDir, Mode: 0o700, ModTime: mod},
			{Path: "base/5/1259", Type: TypeFile, Mode: 0o600, Size: 2*bs + 8192, ModTime: mod,
				Blocks: []string{block(2, bs), block(3, bs), block(4, 8192)}},
			{Path: "base/5/pg_filenode.map.tmp", Type: TypeFile, Mode: 0o600, Size: 0, ModTime: mod},
			{Path: "pg_tblspc/16384", Type: TypeSymlink, Mode: 0o777, ModTime: mod, LinkTarget: "/srv/tblspc/orders"},
			{Path: "pg_wal/000000010000000000000003", Type: TypeFile, Mode: 0o600, Size: bs, ModTime: mod, Blocks: []string{block(5, bs)}},
			{Path: "backup_manifest", Type: TypeFile, Mode: 0o600, Size: 1200, ModTime: mod, Blocks: []string{block(6, 1200)}},
			{Path: "base/5/16384", Type: TypeFile, Mode: 0o600, Size: 2*chunk + 8192, ModTime: mod, ChunkSize: chunk,
				Map: blockMap(block(7, chunk), block(8, chunk), block(9, 8192)), CRC32C: &crc},
		},
		Stats: Stats{SourceBytes: 3*bs + 9395 + 2*chunk + 8192, StoredBytesNew: 2_000_000, StoredBytesReferenced: 3_200_000, Blocks: 9, BlocksNew: 9},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	want := sampleManifest(t, r, "20261125T020000Z-orders-db")
	ref, err := r.PutManifest(ctx, want.BackupID, want)
	if err != nil {
		t.Fatalf("PutManifest(%s) = %v, want nil", want.BackupID, err)
	}
	if ref.Name != want.BackupID || ref.Size == 0 || ref.StoredSize == 0 {
		t.Errorf("PutManifest(%s) = %+v, want the id and sizes", want.BackupID, ref)
	}
	dirty := r.st.(*storage.Local).Pending()
	if dirty != 0 {
		t.Errorf("directories to sync after PutManifest = %d, want 0", dirty)
	}
	got, err := r.Manifest(ctx, want.BackupID)
	if err != nil {
		t.Fatalf("Manifest(%s) = %v, want nil", want.BackupID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Manifest(%s) mismatch (-want +got):\n%s", want.BackupID, diff)
	}
	for _, f := range got.Files {
		blocks, err := r.FileBlocks(ctx, &f, got.BlockSize)
		if err != nil || int64(len(blocks)) != f.BlockCount(got.BlockSize) || (f.Type != TypeFile && len(blocks) != 0) {
			t.Errorf("FileBlocks(%s) = %d blocks, %v, want %d", f.Path, len(blocks), err, f.BlockCount(got.BlockSize))
		}
		if f.Map == "" && !cmp.Equal(blocks, f.Blocks) {
			t.Errorf("FileBlocks(%s) = %q, want its Blocks %q", f.Path, blocks, f.Blocks)
		}
		var size int64
		for _, b := range blocks {
			data, err := r.Get(ctx, b, nil)
			if err != nil {
				t.Errorf("Get(%s) of %s = %v, want nil", b, f.Path, err)
			}
			size += int64(len(data))
		}
		if f.Type == TypeFile && size != f.Size {
			t.Errorf("blocks of %s hold %d bytes, want %d", f.Path, size, f.Size)
		}
	}
	mapped := got.Files[len(got.Files)-1]
	if mapped.Map == "" || len(mapped.Blocks) != 0 || mapped.ChunkSize == 0 || mapped.CRC32C == nil {
		t.Errorf("Manifest(%s) last file = %+v, want a block map, a chunk size and a CRC-32C", want.BackupID, mapped)
	}

	// Format 0 is stored as the current format; the caller's value is kept.
	m := sampleManifest(t, r, "format-zero")
	m.Format = 0
	if _, err := r.PutManifest(ctx, m.BackupID, m); err != nil {
		t.Fatalf("PutManifest(format 0) = %v, want nil", err)
	}
	got, err = r.Manifest(ctx, m.BackupID)
	if err != nil || got.Format != ManifestFormat || m.Format != 0 {
		t.Errorf("Manifest(format-zero) = format %v, %v (caller's %d), want %d, nil (0)", got, err, m.Format, ManifestFormat)
	}
}

func TestManifests(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	if ids, err := r.Manifests(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("Manifests() of a new repository = %q, %v, want none", ids, err)
	}
	for _, id := range []string{"b-2", "a.1", "a-1", "A_3"} {
		if _, err := r.PutManifest(ctx, id, sampleManifest(t, r, id)); err != nil {
			t.Fatal(err)
		}
	}
	backups := filepath.Join(r.localDir(), "backups")
	for _, name := range []string{"notes.txt", ".tmp-x.manifest-123", "bad..id.manifest"} {
		if err := os.WriteFile(filepath.Join(backups, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, filepath.Join(backups, "dir.manifest"))
	ids, err := r.Manifests(ctx)
	want := []string{"A_3", "a-1", "a.1", "b-2"}
	if err != nil || !cmp.Equal(ids, want) {
		t.Errorf("Manifests() = %q, %v, want %q", ids, err, want)
	}
}

func TestManifestTampered(t *testing.T) {
	t.Parallel()
	for _, at := range []func(n int) int{
		func(int) int { return 0 },
		func(int) int { return 10 },
		func(int) int { return 28 },
		func(n int) int { return n / 2 },
		func(n int) int { return n - 1 },
	} {
		r, _ := setup(t)
		m := sampleManifest(t, r, "tampered")
		ref, err := r.PutManifest(t.Context(), m.BackupID, m)
		if err != nil {
			t.Fatal(err)
		}
		i := at(int(ref.StoredSize))
		t.Run(fmt.Sprintf("byte %d", i), func(t *testing.T) {
			t.Parallel()
			rewrite(t, filepath.Join(r.localDir(), "backups", "tampered.manifest"), func(b []byte) []byte {
				b[i] ^= 0x80
				return b
			})
			got, err := r.Manifest(t.Context(), "tampered")
			wantCorrupt(t, fmt.Sprintf("Manifest(tampered) with byte %d flipped", i), err, "backups/tampered.manifest")
			if got != nil {
				t.Errorf("Manifest(tampered) with byte %d flipped = %+v, want nil", i, got)
			}
		})
	}

	t.Run("swapped", func(t *testing.T) {
		t.Parallel()
		r, _ := setup(t)
		for _, id := range []string{"one", "two"} {
			if _, err := r.PutManifest(t.Context(), id, sampleManifest(t, r, id)); err != nil {
				t.Fatal(err)
			}
		}
		one, err := os.ReadFile(filepath.Join(r.localDir(), "backups", "one.manifest"))
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, filepath.Join(r.localDir(), "backups", "two.manifest"), func([]byte) []byte { return one })
		_, err = r.Manifest(t.Context(), "two")
		wantCorrupt(t, "Manifest(two) holding manifest one", err, "backups/two.manifest")
	})

	t.Run("invalid content", func(t *testing.T) {
		t.Parallel()
		r, _ := setup(t)
		m := sampleManifest(t, nil, "evil")
		m.Files[0].Path = "../../etc/passwd"
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// Only a writer holding the key can produce this.
		sealed, err := r.seal(nil, manifestMagic, manifestAD("evil"), data)
		if err != nil {
			t.Fatal(err)
		}
		mkdir(t, filepath.Join(r.localDir(), "backups"))
		if err := os.WriteFile(filepath.Join(r.localDir(), "backups", "evil.manifest"), sealed, 0o440); err != nil {
			t.Fatal(err)
		}
		_, err = r.Manifest(t.Context(), "evil")
		wantCorrupt(t, "Manifest(evil)", err, "backups/evil.manifest")
		if !strings.Contains(err.Error(), `".." component`) {
			t.Errorf("Manifest(evil) = %v, want the path refused", err)
		}
	})
}

func TestManifestOverwrite(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	m := sampleManifest(t, r, "once")
	if _, err := r.PutManifest(ctx, "once", m); err != nil {
		t.Fatal(err)
	}
	m2 := sampleManifest(t, r, "once")
	m2.Label = "replacement"
	if _, err := r.PutManifest(ctx, "once", m2); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second PutManifest(once) = %v, want an error wrapping fs.ErrExist", err)
	}
	got, err := r.Manifest(ctx, "once")
	if err != nil || got.Label != m.Label {
		t.Errorf("Manifest(once) after refused overwrite = %+v, %v, want label %q", got, err, m.Label)
	}
	if files, temps := countFiles(t, filepath.Join(r.localDir(), "backups")); files != 1 || temps != 0 {
		t.Errorf("files in backups/ = %d (%d temporary), want 1 (0)", files, temps)
	}
}

func TestManifestMissing(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	if _, err := r.Manifest(t.Context(), "nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Manifest(nope) = %v, want ErrNotFound naming it", err)
	}
}

func TestManifestInvalidID(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	for _, id := range []string{
		"",
		".",
		"..",
		"a..b",
		".hidden",
		"a/b",
		`a\b`,
		"a b",
		"naïve",
		"x\x00y",
		strings.Repeat("a", 129),
	} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			t.Parallel()
			m := sampleManifest(t, r, "valid")
			m.BackupID = id
			if _, err := r.PutManifest(ctx, id, m); err == nil || !strings.Contains(err.Error(), "invalid backup id") {
				t.Errorf("PutManifest(%q) = %v, want an invalid id error", id, err)
			}
			if _, err := r.Manifest(ctx, id); err == nil || !strings.Contains(err.Error(), "invalid backup id") {
				t.Errorf("Manifest(%q) = %v, want an invalid id error", id, err)
			}
		})
	}
	for _, id := range []string{"a", "A.b_c-9", strings.Repeat("z", 128), "2026-11-25T02.00.00Z"} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v, want nil", id, err)
		}
	}
	m := sampleManifest(t, r, "other")
	if _, err := r.PutManifest(ctx, "this", m); err == nil || !strings.Contains(err.Error(), `manifest is for backup "other"`) {
		t.Errorf("PutManifest(this, manifest of other) = %v, want an error saying whose it is", err)
	}
	if _, err := r.PutManifest(ctx, "this", nil); err == nil {
		t.Errorf("PutManifest(this, nil) = nil, want an error")
	}
}

func TestValidatePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path    string
		wantErr string // "" for a valid path
	}{
		{"base/5/1259", ""},
		{"pg_wal/000000010000000000000003", ""},
		{"backup_manifest", ""},
		{"global/pg_control", ""},
		{".hidden/..dots../file..", ""},
		{"...", ""},
		{"", "empty"},
		{"/etc/passwd", "absolute"},
		{"/", "absolute"},
		{"..", `".." component`},
		{"../x", `".." component`},
		{"base/../../x", `".." component`},
		{"base/..", `".." component`},
		{".", `"." component`},
		{"./base", `"." component`},
		{"base/./5", `"." component`},
		{"base//5", "empty component"},
		{"base/", "empty component"},
		{`base\5`, "backslash"},
		{`..\..\x`, "backslash"},
		{"base\x005", "NUL"},
		{strings.Repeat("a/", 2048) + "a", "longer than"},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ValidatePath(%q) = %v, want nil", tt.path, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ValidatePath(%q) = %v, want an error containing %q", tt.path, err, tt.wantErr)
		}
	}
}

type manifestMutation struct {
	name    string
	edit    func(m *Manifest)
	wantErr string
}

// manifestMutations returns invalid variants of sampleManifest, shared by the
// table test and the fuzz corpus.
func manifestMutations() []manifestMutation {
	return []manifestMutation{
		{"format 1", func(m *Manifest) { m.Format = 1 }, "unsupported manifest format 1"},
		{"format 3", func(m *Manifest) { m.Format = 3 }, "unsupported manifest format 3"},
		{"format 0", func(m *Manifest) { m.Format = 0 }, "unsupported manifest format 0"},
		{"bad id", func(m *Manifest) { m.BackupID = "../x" }, "invalid backup id"},
		{"zero block size", func(m *Manifest) { m.BlockSize = 0 }, "invalid block size"},
		{"huge block size", func(m *Manifest) { m.BlockSize = 1 << 40 }, "invalid block size"},
		{"bad start lsn", func(m *Manifest) { m.StartLSN = "3A000028" }, "invalid start_lsn"},
		{"bad end lsn", func(m *Manifest) { m.EndLSN = "0/123456789" }, "invalid end_lsn"},
		{"negative stats", func(m *Manifest) { m.Stats.BlocksNew = -1 }, "negative stats"},
		{"absolute path", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }, "absolute"},
		{"dotdot path", func(m *Manifest) { m.Files[3].Path = "base/../../x" }, `".." component`},
		{"backslash path", func(m *Manifest) { m.Files[3].Path = `base\5` }, "backslash"},
		{"nul path", func(m *Manifest) { m.Files[3].Path = "base/5\x00" }, "NUL"},
		{"empty path", func(m *Manifest) { m.Files[3].Path = "" }, "empty"},
		{"duplicate path", func(m *Manifest) { m.Files[2].Path = "base" }, "duplicate path"},
		{"unknown type", func(m *Manifest) { m.Files[1].Type = "fifo" }, `unknown type "fifo"`},
		{"mode bits", func(m *Manifest) { m.Files[0].Mode = 0o100600 }, "beyond the permission bits"},
		{"negative size", func(m *Manifest) { m.Files[4].Size = -1 }, "negative size"},
		{"uppercase block", func(m *Manifest) { m.Files[0].Blocks[0] = strings.ToUpper(m.Files[0].Blocks[0]) }, "invalid object name"},
		{"short block", func(m *Manifest) { m.Files[0].Blocks[0] = "abc" }, "invalid object name"},
		{"path as block", func(m *Manifest) { m.Files[0].Blocks[0] = "../../../../etc/passwd" }, "invalid object name"},
		{"missing block", func(m *Manifest) { m.Files[3].Blocks = m.Files[3].Blocks[:2] }, "2 blocks for"},
		{"extra block", func(m *Manifest) { m.Files[4].Blocks = []string{strings.Repeat("0", 64)} }, "1 blocks for 0 bytes"},
		{"size beyond blocks", func(m *Manifest) { m.Files[6].Size++ }, "1 blocks for"},
		{"dir with blocks", func(m *Manifest) { m.Files[1].Blocks = []string{strings.Repeat("0", 64)} }, "dir with blocks"},
		{"dir with target", func(m *Manifest) { m.Files[1].LinkTarget = "/x" }, "directory with a link target"},
		{"file with target", func(m *Manifest) { m.Files[0].LinkTarget = "/x" }, "regular file with a link target"},
		{"symlink without target", func(m *Manifest) { m.Files[5].LinkTarget = "" }, "invalid link target"},
		{"symlink target nul", func(m *Manifest) { m.Files[5].LinkTarget = "/srv\x00" }, "invalid link target"},
		{"negative chunk size", func(m *Manifest) { m.Files[8].ChunkSize = -1 }, "invalid chunk size -1"},
		{"huge chunk size", func(m *Manifest) { m.Files[8].ChunkSize = maxBlockSize + 1 }, "invalid chunk size"},
		{"chunk size against blocks", func(m *Manifest) { m.Files[3].ChunkSize = 8192 }, "3 blocks for"},
		{"map and blocks", func(m *Manifest) { m.Files[8].Blocks = []string{strings.Repeat("0", 64)} }, "both a block map and blocks"},
		{"short map name", func(m *Manifest) { m.Files[8].Map = "abc" }, "invalid map name"},
		{"path as map", func(m *Manifest) { m.Files[8].Map = "../../../../etc/passwd" }, "invalid map name"},
		{"dir with map", func(m *Manifest) { m.Files[1].Map = strings.Repeat("0", 64) }, "dir with blocks"},
		{"symlink with map", func(m *Manifest) { m.Files[5].Map = strings.Repeat("0", 64) }, "symlink with blocks"},
	}
}

func TestReadManifestJSON(t *testing.T) {
	t.Parallel()
	valid, err := json.Marshal(sampleManifest(t, nil, "b1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifestJSON(valid)
	if err != nil {
		t.Fatalf("ReadManifestJSON(valid) = %v, want nil", err)
	}
	if diff := cmp.Diff(sampleManifest(t, nil, "b1"), got); diff != "" {
		t.Errorf("ReadManifestJSON(valid) mismatch (-want +got):\n%s", diff)
	}

	for _, tt := range manifestMutations() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := sampleManifest(t, nil, "b1")
			tt.edit(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadManifestJSON(data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadManifestJSON(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("ReadManifestJSON(%s) = %+v, want nil", tt.name, got)
			}
		})
	}

	future := `{"format":3,"files":{"layout":"new"}}`
	if _, err := ReadManifestJSON([]byte(future)); err == nil || !strings.Contains(err.Error(), "unsupported manifest format 3") {
		t.Errorf("ReadManifestJSON(%s) = %v, want an unsupported format error", future, err)
	}

	// A manifest of a format 1 repository: one it would have accepted.
	old := `{"format":1,"backup_id":"b","block_size":4,"files":[{"path":"a","type":"file","size":5,"blocks":["` +
		strings.Repeat("0", 64) + `","` + strings.Repeat("f", 64) + `"]}]}`
	if _, err := ReadManifestJSON([]byte(old)); err == nil || !strings.Contains(err.Error(), "unsupported manifest format 1") {
		t.Errorf("ReadManifestJSON(%s) = %v, want an unsupported format error", old, err)
	}
	if _, err := ReadManifestJSON([]byte(strings.Replace(old, `"format":1`, `"format":2`, 1))); err != nil {
		t.Errorf("ReadManifestJSON(%s as format 2) = %v, want nil", old, err)
	}

	for name, data := range map[string]string{
		"empty":            "",
		"null":             "null",
		"array":            "[]",
		"trailing garbage": string(valid) + "x",
		"wrong type":       `{"format":2,"backup_id":"b","block_size":1,"files":[{"path":"a","type":"file","size":"1"}]}`,
		"missing id":       `{"format":2,"block_size":1}`,
		"crc32c as text":   `{"format":2,"backup_id":"b","block_size":1,"files":[{"path":"a","type":"file","crc32c":"1"}]}`,
	} {
		if got, err := ReadManifestJSON([]byte(data)); err == nil {
			t.Errorf("ReadManifestJSON(%s) = %+v, want an error", name, got)
		}
	}
}

func FuzzReadManifestJSON(f *testing.F) {
	valid, err := json.Marshal(sampleManifest(f, nil, "b1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, tt := range manifestMutations() {
		m := sampleManifest(f, nil, "b1")
		tt.edit(m)
		data, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"format":2,"backup_id":"x","block_size":4,"files":[{"path":"a/b","type":"file","size":5,"blocks":["` +
		strings.Repeat("0", 64) + `","` + strings.Repeat("f", 64) + `"]},{"path":"l","type":"symlink","link_target":"../a"}]}`))
	f.Add([]byte(`{"format":2,"backup_id":"x","block_size":4,"files":[{"path":"a/c","type":"file","size":5,"chunk_size":2,"map":"` +
		strings.Repeat("0", 64) + `","crc32c":4294967295}]}`))
	f.Add([]byte(`{"format":2,"backup_id":"x","block_size":1,"files":[{"path":"a","type":"dir"},{"PATH":"..","type":"dir"}]}`))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(`{"format":1}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadManifestJSON(data)
		if err != nil {
			if m != nil {
				t.Fatalf("ReadManifestJSON(%q) = %+v, %v, want a nil manifest with the error", data, m, err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, file := range m.Files {
			if err := ValidatePath(file.Path); err != nil || seen[file.Path] {
				t.Fatalf("ReadManifestJSON(%q) accepted path %q (duplicate %v): %v", data, file.Path, seen[file.Path], err)
			}
			seen[file.Path] = true
			for _, c := range strings.Split(file.Path, "/") {
				if c == "" || c == "." || c == ".." || strings.ContainsAny(c, "\\\x00") {
					t.Fatalf("ReadManifestJSON(%q) accepted path %q", data, file.Path)
				}
			}
			for _, b := range file.Blocks {
				if len(b) != 64 || strings.Trim(b, "0123456789abcdef") != "" {
					t.Fatalf("ReadManifestJSON(%q) accepted block name %q", data, b)
				}
			}
			if file.Map != "" && (!validObjectName(file.Map) || file.Type != TypeFile || len(file.Blocks) != 0) {
				t.Fatalf("ReadManifestJSON(%q) accepted map %q of a %s with %d blocks", data, file.Map, file.Type, len(file.Blocks))
			}
			if file.ChunkSize < 0 || file.ChunkSize > maxBlockSize {
				t.Fatalf("ReadManifestJSON(%q) accepted chunk size %d", data, file.ChunkSize)
			}
			if file.Type == TypeFile && file.Map == "" && int64(len(file.Blocks)) != file.BlockCount(m.BlockSize) {
				t.Fatalf("ReadManifestJSON(%q) accepted %d blocks for %d bytes in chunks of %d", data, len(file.Blocks), file.Size, file.Chunk(m.BlockSize))
			}
		}
		// What was accepted survives a round trip.
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadManifestJSON(again); err != nil {
			t.Fatalf("ReadManifestJSON(Marshal(ReadManifestJSON(%q))) = %v, want nil", data, err)
		}
	})
}

// TestPutManifestUnstoredBlobs: a manifest is stored only when every blob it refers to
// is, and its block maps hold the lists their files need.
func TestPutManifestUnstoredBlobs(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()

	ghost := sampleManifest(t, nil, "ghost")
	if _, err := r.PutManifest(ctx, "ghost", ghost); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutManifest(ghost) with made-up blocks = %v, want an error wrapping ErrNotFound", err)
	}
	if _, err := r.Manifest(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Manifest(ghost) after a refused PutManifest = %v, want ErrNotFound", err)
	}

	short := sampleManifest(t, r, "short-map")
	f := &short.Files[len(short.Files)-1]
	names, err := r.FileBlocks(ctx, f, short.BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	var two [][32]byte
	for _, n := range names[:2] {
		var b [32]byte
		if _, err := hex.Decode(b[:], []byte(n)); err != nil {
			t.Fatal(err)
		}
		two = append(two, b)
	}
	ref, _, err := r.PutBlockMap(ctx, two)
	if err != nil {
		t.Fatal(err)
	}
	f.Map = ref.Name
	_, err = r.PutManifest(ctx, "short-map", short)
	wantCorrupt(t, "PutManifest(short-map) with a map of 2 of 3 blocks", err, ref.Name)
	if _, err := r.Manifest(ctx, "short-map"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Manifest(short-map) after a refused PutManifest = %v, want ErrNotFound", err)
	}
}

// TestManifestSHA256 checks that a manifest's digest is the SHA-256 of the file as stored
// (what `sha256sum repository/backups/ID.manifest` prints), and that a missing manifest is
// ErrNotFound.
func TestManifestSHA256(t *testing.T) {
	t.Parallel()
	r, _ := setup(t)
	ctx := t.Context()
	id := "20261125T094735Z-3fa2c1d0"
	if _, err := r.PutManifest(ctx, id, sampleManifest(t, r, id)); err != nil {
		t.Fatal(err)
	}
	got, err := r.ManifestSHA256(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(r.localDir(), manifestKey(id)))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(stored)); got != want {
		t.Errorf("ManifestSHA256(%s) = %s, want %s", id, got, want)
	}
	if _, err := r.ManifestSHA256(ctx, "20261125T094735Z-00000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ManifestSHA256(missing) = %v, want ErrNotFound", err)
	}
}
