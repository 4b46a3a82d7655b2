package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

// ManifestFormat is the version of the Manifest structure this package writes
// and reads.
const ManifestFormat = 2

// File types recorded in a manifest.
const (
	// TypeFile is a regular file, stored as blocks.
	TypeFile = "file"
	// TypeDir is a directory.
	TypeDir = "dir"
	// TypeSymlink is a symbolic link, such as a tablespace link in pg_tblspc.
	TypeSymlink = "symlink"
)

const (
	manifestMagic  = "BSM1"
	manifestSuffix = ".manifest"
	maxIDLen       = 128
	maxPathLen     = 4096
)

// Manifest describes one backup: where it came from and every file in it, with
// the objects that hold each file's content.
type Manifest struct {
	// Format is ManifestFormat; PutManifest fills it in when it is zero.
	Format           int    `json:"format"`
	BackupID         string `json:"backup_id"`
	Label            string `json:"label"`
	SourceName       string `json:"source_name"`
	SystemIdentifier string `json:"system_identifier"`
	// PGVersion is the source's server_version_num, such as 150004.
	PGVersion int    `json:"pg_version"`
	Timeline  uint32 `json:"timeline"`
	// StartLSN and EndLSN are in PostgreSQL's text form, such as "0/3000028".
	StartLSN   string    `json:"start_lsn"`
	EndLSN     string    `json:"end_lsn"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// BlockSize is the size of every block of a file but its last.
	BlockSize int    `json:"block_size"`
	Files     []File `json:"files"`
	Stats     Stats  `json:"stats"`
}

// File is one entry of a backup's data directory.
type File struct {
	// Path is slash-separated and relative to the data directory, such as
	// "base/5/1259"; see ValidatePath.
	Path string `json:"path"`
	// Type is TypeFile, TypeDir or TypeSymlink.
	Type string `json:"type"`
	// Mode holds the permission bits.
	Mode    uint32    `json:"mode"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
	// LinkTarget is the target of a symlink, as stored (it may be absolute,
	// as tablespace links are).
	LinkTarget string `json:"link_target,omitempty"`
	// ChunkSize is the size of every block of this file but the last; the
	// manifest's BlockSize when zero. Relation files are cut into a few pages
	// each, so that a backup after scattered changes stores little more than the
	// changed pages.
	ChunkSize int `json:"chunk_size,omitempty"`
	// Blocks names the blobs holding a regular file's content, in order. A file
	// of more than InlineBlocks blocks has a Map instead.
	Blocks []string `json:"blocks,omitempty"`
	// Map names the blob holding the file's block list: the blocks' names as
	// consecutive 32-byte binary hashes (see Repo.FileBlocks).
	Map string `json:"map,omitempty"`
	// CRC32C is the CRC-32C of the file's content, checked as a restore writes it.
	CRC32C *uint32 `json:"crc32c,omitempty"`
}

// InlineBlocks is the most blocks a manifest lists in a file's entry; a longer list
// is stored as a map blob, which the next backup shares when the file is unchanged.
const InlineBlocks = 64

// Chunk returns the size of the file's blocks in a manifest whose BlockSize is bs.
func (f *File) Chunk(bs int) int {
	if f.ChunkSize > 0 {
		return f.ChunkSize
	}
	return bs
}

// BlockCount returns how many blocks hold the file's content.
func (f *File) BlockCount(bs int) int64 {
	c := int64(f.Chunk(bs))
	return (f.Size + c - 1) / c
}

// Stats accounts for the size of a backup and what it added to the repository.
type Stats struct {
	SourceBytes           int64 `json:"source_bytes"`
	StoredBytesNew        int64 `json:"stored_bytes_new"`
	StoredBytesReferenced int64 `json:"stored_bytes_referenced"`
	Blocks                int64 `json:"blocks"`
	BlocksNew             int64 `json:"blocks_new"`
}

// PutManifest stores m as the manifest of backup id, which must equal
// m.BackupID. It first calls Sync, so a stored manifest never refers to an
// object that is not durable, then writes the manifest atomically and fsyncs
// its directory. An existing manifest is never replaced: storing one twice
// yields an error wrapping fs.ErrExist. The returned ref has the id as Name and
// the size of the manifest's JSON as Size.
func (r *Repo) PutManifest(ctx context.Context, id string, m *Manifest) (ObjectRef, error) {
	if err := checkManifest(id, m); err != nil {
		return ObjectRef{}, err
	}
	// Without a session, the packs the manifest refers to are found in the index.
	if err := r.Sync(ctx); err != nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	packs := map[string]struct{}{}
	names := func(fn func(string) error) error { return r.manifestBlobs(ctx, m, fn) }
	err := names(func(name string) error {
		if !validObjectName(name) {
			return fmt.Errorf("invalid object name %q", name)
		}
		pack, _, _, err := r.Locate(ctx, name)
		if err != nil {
			return err
		}
		packs[pack] = struct{}{}
		return nil
	})
	if err != nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	var ref ObjectRef
	wrote := false
	err = r.commit(ctx, packs, names, nil, func(ctx context.Context) error {
		wrote = true
		ref, err = r.putManifest(ctx, id, m)
		return err
	})
	if err != nil && !wrote {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	if err != nil {
		return ObjectRef{}, err
	}
	return ref, nil
}

// checkManifest refuses, before anything is stored, what ReadManifestJSON would refuse later.
func checkManifest(id string, m *Manifest) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("put manifest: %w", err)
	}
	if m == nil {
		return fmt.Errorf("put manifest %s: nil manifest", id)
	}
	if m.BackupID != id {
		return fmt.Errorf("put manifest %s: manifest is for backup %q", id, m.BackupID)
	}
	mc := *m
	if mc.Format == 0 {
		mc.Format = ManifestFormat
	}
	if err := mc.validate(); err != nil {
		return fmt.Errorf("put manifest %s: %w", id, err)
	}
	return nil
}

// putManifest stores a manifest whose blobs the caller has committed.
func (r *Repo) putManifest(ctx context.Context, id string, m *Manifest) (ObjectRef, error) {
	if err := checkManifest(id, m); err != nil {
		return ObjectRef{}, err
	}
	mc := *m
	if mc.Format == 0 {
		mc.Format = ManifestFormat
	}
	key := manifestKey(id)
	if _, err := r.st.Size(ctx, key); err == nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: manifest already exists: %w", id, fs.ErrExist)
	} else if !errors.Is(err, storage.ErrNotExist) {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	data, err := json.Marshal(&mc)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	sealed, err := r.seal(nil, manifestMagic, manifestAD(id), data)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	if err := r.st.Put(ctx, key, sealed, true); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return ObjectRef{}, fmt.Errorf("put manifest %s: manifest already exists: %w", id, fs.ErrExist)
		}
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	return ObjectRef{Name: id, StoredSize: int64(len(sealed)), Size: int64(len(data))}, nil
}

// Manifest reads and verifies the manifest of backup id. A missing manifest
// yields an error wrapping ErrNotFound; one that fails verification, including
// any check of ReadManifestJSON, yields a *CorruptError.
func (r *Repo) Manifest(ctx context.Context, id string) (*Manifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", id, err)
	}
	if err := validateID(id); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	rel := manifestKey(id)
	sealed, err := r.st.Get(ctx, rel)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("read manifest %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", id, err)
	}
	data, err := r.open(nil, sealed, manifestMagic, manifestAD(id), rel)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, &CorruptError{Object: rel, Reason: "invalid manifest: " + err.Error()}
	}
	if m.BackupID != id {
		return nil, &CorruptError{Object: rel, Reason: fmt.Sprintf("manifest is for backup %q", m.BackupID)}
	}
	return m, nil
}

// Manifests returns the ids of the stored manifests, sorted.
func (r *Repo) Manifests(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	ids := []string{}
	err := storage.Keys(ctx, r.st, "backups/", func(key string) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, "backups/"), manifestSuffix)
		if ok && validateID(id) == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// FileBlocks returns the names of the blobs holding a file's content, in order: its
// Blocks, or those its map lists (read and checked against the file's size).
func (r *Repo) FileBlocks(ctx context.Context, f *File, blockSize int) ([]string, error) {
	if f.Map == "" {
		return f.Blocks, nil
	}
	data, err := r.Get(ctx, f.Map, nil)
	if err != nil {
		return nil, fmt.Errorf("block map of %s: %w", f.Path, err)
	}
	want := f.BlockCount(blockSize)
	if int64(len(data)) != want*32 {
		return nil, &CorruptError{Object: f.Map, Reason: fmt.Sprintf("block map of %s holds %d bytes, want %d", f.Path, len(data), want*32)}
	}
	names := make([]string, want)
	for i := range names {
		names[i] = hex.EncodeToString(data[i*32 : i*32+32])
	}
	return names, nil
}

// manifestBlobs calls fn with the name of every blob m refers to: each file's block map
// and blocks.
func (r *Repo) manifestBlobs(ctx context.Context, m *Manifest, fn func(string) error) error {
	for i := range m.Files {
		f := &m.Files[i]
		if f.Map != "" {
			if err := fn(f.Map); err != nil {
				return err
			}
		}
		blocks, err := r.FileBlocks(ctx, f, m.BlockSize)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// PutBlockMap stores a file's block list as a map blob and returns its name.
func (r *Repo) PutBlockMap(ctx context.Context, names [][32]byte) (ObjectRef, bool, error) {
	return r.Put(ctx, blockMap(names))
}

// blockMap is the plaintext of a block map: the names as consecutive 32-byte hashes.
func blockMap(names [][32]byte) []byte {
	data := make([]byte, 0, len(names)*32)
	for _, n := range names {
		data = append(data, n[:]...)
	}
	return data
}

// manifestKey is where backup id's manifest is in the storage.
func manifestKey(id string) string { return "backups/" + id + manifestSuffix }

func manifestAD(id string) []byte {
	return []byte("manifest:" + id)
}

// ReadManifestJSON parses and validates the JSON form of a manifest. It
// refuses unknown formats, invalid backup ids and LSNs, invalid paths (see
// ValidatePath), duplicate paths, invalid object names, and block lists that
// do not match a file's size.
func ReadManifestJSON(data []byte) (*Manifest, error) {
	m, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return m, nil
}

func parseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		// Another format may not fit the struct: say so rather than why.
		var head struct {
			Format int `json:"format"`
		}
		if json.Unmarshal(data, &head) == nil && head.Format != ManifestFormat {
			return nil, fmt.Errorf("unsupported manifest format %d (this version reads format %d)", head.Format, ManifestFormat)
		}
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// validate checks everything a restore relies on.
func (m *Manifest) validate() error {
	if m.Format != ManifestFormat {
		return fmt.Errorf("unsupported manifest format %d (this version reads format %d)", m.Format, ManifestFormat)
	}
	if err := validateID(m.BackupID); err != nil {
		return err
	}
	if m.BlockSize <= 0 || m.BlockSize > maxBlockSize {
		return fmt.Errorf("invalid block size %d", m.BlockSize)
	}
	for _, lsn := range []struct{ name, v string }{{"start_lsn", m.StartLSN}, {"end_lsn", m.EndLSN}} {
		if lsn.v != "" && !validLSN(lsn.v) {
			return fmt.Errorf("invalid %s %q", lsn.name, lsn.v)
		}
	}
	s := m.Stats
	if s.SourceBytes < 0 || s.StoredBytesNew < 0 || s.StoredBytesReferenced < 0 || s.Blocks < 0 || s.BlocksNew < 0 {
		return errors.New("negative stats")
	}
	seen := make(map[string]struct{}, len(m.Files))
	bs := int64(m.BlockSize)
	for i, f := range m.Files {
		if err := ValidatePath(f.Path); err != nil {
			return fmt.Errorf("files[%d]: %w", i, err)
		}
		if _, dup := seen[f.Path]; dup {
			return fmt.Errorf("files[%d] %q: duplicate path", i, f.Path)
		}
		seen[f.Path] = struct{}{}
		if f.Mode&^0o7777 != 0 {
			return fmt.Errorf("files[%d] %q: mode %#o has bits beyond the permission bits", i, f.Path, f.Mode)
		}
		if f.Size < 0 {
			return fmt.Errorf("files[%d] %q: negative size %d", i, f.Path, f.Size)
		}
		switch f.Type {
		case TypeFile:
			if f.LinkTarget != "" {
				return fmt.Errorf("files[%d] %q: regular file with a link target", i, f.Path)
			}
			if f.ChunkSize < 0 || f.ChunkSize > maxBlockSize {
				return fmt.Errorf("files[%d] %q: invalid chunk size %d", i, f.Path, f.ChunkSize)
			}
			want := f.BlockCount(int(bs))
			switch {
			case f.Map != "":
				if len(f.Blocks) != 0 {
					return fmt.Errorf("files[%d] %q: both a block map and blocks", i, f.Path)
				}
				if !validObjectName(f.Map) {
					return fmt.Errorf("files[%d] %q: invalid map name %q", i, f.Path, f.Map)
				}
			case int64(len(f.Blocks)) != want:
				return fmt.Errorf("files[%d] %q: %d blocks for %d bytes, want %d", i, f.Path, len(f.Blocks), f.Size, want)
			}
			for j, b := range f.Blocks {
				if !validObjectName(b) {
					return fmt.Errorf("files[%d] %q: blocks[%d]: invalid object name %q", i, f.Path, j, b)
				}
			}
		case TypeDir, TypeSymlink:
			if len(f.Blocks) != 0 || f.Map != "" {
				return fmt.Errorf("files[%d] %q: %s with blocks", i, f.Path, f.Type)
			}
			if f.Type == TypeDir && f.LinkTarget != "" {
				return fmt.Errorf("files[%d] %q: directory with a link target", i, f.Path)
			}
			if f.Type == TypeSymlink && (f.LinkTarget == "" || strings.ContainsRune(f.LinkTarget, 0)) {
				return fmt.Errorf("files[%d] %q: invalid link target %q", i, f.Path, f.LinkTarget)
			}
		default:
			return fmt.Errorf("files[%d] %q: unknown type %q", i, f.Path, f.Type)
		}
	}
	return nil
}

// ValidatePath reports whether p is acceptable as the path of a File: a
// clean, relative, slash-separated path. It refuses empty paths, absolute
// paths, empty, "." and ".." components, backslashes, NUL bytes and paths
// longer than 4096 bytes.
func ValidatePath(p string) error {
	why := ""
	switch {
	case p == "":
		return errors.New("invalid path: empty")
	case len(p) > maxPathLen:
		why = fmt.Sprintf("longer than %d bytes", maxPathLen)
	case strings.ContainsRune(p, 0):
		why = "contains a NUL byte"
	case strings.ContainsRune(p, '\\'):
		why = "contains a backslash"
	case strings.HasPrefix(p, "/"):
		why = "absolute"
	default:
		for c := range strings.SplitSeq(p, "/") {
			switch c {
			case "":
				why = "has an empty component"
			case ".":
				why = `has a "." component`
			case "..":
				why = `has a ".." component`
			}
			if why != "" {
				break
			}
		}
	}
	if why != "" {
		return fmt.Errorf("invalid path %q: %s", p, why)
	}
	return nil
}

// validateID checks a backup id: 1 to 128 characters from [A-Za-z0-9._-], not
// starting with "." and without "..".
func validateID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("invalid backup id %q: must be 1 to %d characters", id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid backup id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	if id[0] == '.' || strings.Contains(id, "..") {
		return fmt.Errorf("invalid backup id %q: must not start with '.' or contain \"..\"", id)
	}
	return nil
}

// validLSN reports whether s has PostgreSQL's text form of an LSN: two groups
// of 1 to 8 hex digits separated by a slash.
func validLSN(s string) bool {
	hi, lo, ok := strings.Cut(s, "/")
	return ok && isHexN(hi) && isHexN(lo)
}

func isHexN(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// ManifestSHA256 returns the hex SHA-256 of backup id's manifest object exactly as
// stored (backups/ID.manifest), for reports that pin it; a missing manifest yields an
// error wrapping ErrNotFound.
func (r *Repo) ManifestSHA256(ctx context.Context, id string) (string, error) {
	if err := validateID(id); err != nil {
		return "", fmt.Errorf("manifest digest: %w", err)
	}
	sealed, err := r.st.Get(ctx, manifestKey(id))
	if errors.Is(err, storage.ErrNotExist) {
		return "", fmt.Errorf("manifest digest %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("manifest digest %s: %w", id, err)
	}
	sum := sha256.Sum256(sealed)
	return hex.EncodeToString(sum[:]), nil
}
