package pg

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// EntryType is the kind of an entry of a base backup.
type EntryType int

// The kinds of entries a base backup may hold; anything else is refused.
const (
	// File is a regular file.
	File EntryType = iota + 1
	// Dir is a directory.
	Dir
	// Symlink is a symbolic link: only pg_tblspc/<oid> tablespace links.
	Symlink
)

// String returns the name of the entry type.
func (t EntryType) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	default:
		return "EntryType(" + strconv.Itoa(int(t)) + ")"
	}
}

// Entry is a file, directory or symbolic link of a base backup.
type Entry struct {
	// Path is slash-separated and relative to the data directory, with no
	// trailing slash; it has no "." or ".." elements.
	Path string
	// Type is the kind of entry.
	Type EntryType
	// Mode holds the permission bits.
	Mode fs.FileMode
	// Size is the length of a file's content; 0 for others.
	Size int64
	// ModTime is the modification time recorded by the server.
	ModTime time.Time
	// LinkTarget is a symbolic link's target: always an absolute path, as
	// only tablespace links (pg_tblspc/<oid>) are accepted.
	LinkTarget string
}

// ValidateEntry checks a tar header sent by the server and returns the
// entry it describes, with prefix (such as "pg_wal/" for a WAL archive, or
// "") put in front of its name. It refuses absolute names, ".." elements,
// NUL bytes, names over 1024 bytes, hard links, devices, FIFOs, negative
// sizes and any symbolic
// link except pg_tblspc/<oid> pointing to an absolute path, and sparse
// files (whose holes could inflate a small stream into a huge file).
func ValidateEntry(hdr *tar.Header, prefix string) (Entry, error) {
	prefix, err := cleanPrefix(prefix)
	if err != nil {
		return Entry{}, err
	}
	name := strings.TrimPrefix(hdr.Name, "./")
	if hdr.Typeflag == tar.TypeDir {
		name = strings.TrimSuffix(name, "/")
	}
	if err := checkRelPath(name); err != nil {
		return Entry{}, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	e := Entry{
		Path:    prefix + name,
		Mode:    fs.FileMode(hdr.Mode).Perm(),
		ModTime: hdr.ModTime,
	}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00': // '\x00': a regular file in pre-POSIX archives
		e.Type = File
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return Entry{}, fmt.Errorf("tar entry %q: sparse file refused", hdr.Name)
			}
		}
		if hdr.Size < 0 {
			return Entry{}, fmt.Errorf("tar entry %q: negative size %d", hdr.Name, hdr.Size)
		}
		e.Size = hdr.Size
	case tar.TypeDir:
		e.Type = Dir
		if hdr.Size != 0 {
			return Entry{}, fmt.Errorf("tar entry %q: directory with size %d", hdr.Name, hdr.Size)
		}
	case tar.TypeSymlink:
		e.Type = Symlink
		if hdr.Size != 0 {
			return Entry{}, fmt.Errorf("tar entry %q: symbolic link with size %d", hdr.Name, hdr.Size)
		}
		if _, ok := TablespaceOID(e.Path); !ok {
			return Entry{}, fmt.Errorf("tar entry %q: symbolic link outside pg_tblspc/<oid> refused", hdr.Name)
		}
		target := hdr.Linkname
		if len(target) > maxPathLen {
			return Entry{}, fmt.Errorf("tar entry %q: tablespace link target longer than %d bytes", hdr.Name, maxPathLen)
		}
		if !path.IsAbs(target) || path.Clean(target) != target || strings.IndexByte(target, 0) >= 0 || target == "/" {
			return Entry{}, fmt.Errorf("tar entry %q: tablespace link target %q is not a clean absolute path", hdr.Name, target)
		}
		e.LinkTarget = target
	case tar.TypeLink:
		return Entry{}, fmt.Errorf("tar entry %q: hard link refused", hdr.Name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return Entry{}, fmt.Errorf("tar entry %q: device or FIFO refused", hdr.Name)
	default:
		return Entry{}, fmt.Errorf("tar entry %q: unsupported type %q refused", hdr.Name, hdr.Typeflag)
	}
	return e, nil
}

// TablespaceOID returns the tablespace OID if p is a tablespace link's path
// (pg_tblspc/<oid>).
func TablespaceOID(p string) (uint32, bool) {
	rest, ok := strings.CutPrefix(p, "pg_tblspc/")
	if !ok || rest == "" || len(rest) > 10 {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	oid, err := strconv.ParseUint(rest, 10, 32)
	if err != nil || oid == 0 {
		return 0, false
	}
	return uint32(oid), true
}

// maxPathLen bounds the paths accepted from the server: PostgreSQL's own
// limit (MAXPGPATH) is 1024 bytes, and its tar headers hold 99.
const maxPathLen = 1024

// checkRelPath refuses anything but a clean, non-empty relative path.
func checkRelPath(p string) error {
	switch {
	case p == "" || p == ".":
		return errors.New("empty name")
	case len(p) > maxPathLen:
		return fmt.Errorf("name longer than %d bytes", maxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return errors.New("NUL byte in name")
	case strings.HasPrefix(p, "/"):
		return errors.New("absolute name")
	case p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../"):
		return errors.New("name escapes with \"..\"")
	case path.Clean(p) != p:
		return errors.New("name is not clean")
	}
	return nil
}

func cleanPrefix(prefix string) (string, error) {
	if prefix == "" {
		return "", nil
	}
	p := strings.TrimSuffix(prefix, "/")
	if err := checkRelPath(p); err != nil {
		return "", fmt.Errorf("tar prefix %q: %w", prefix, err)
	}
	return p + "/", nil
}

// ReadTar reads a tar stream from the server and calls fn for each entry,
// in order, with a reader of exactly Size bytes of content (empty for
// directories and links) that is valid until fn returns; content fn leaves
// unread is skipped. Besides what ValidateEntry refuses, it refuses an
// entry whose path was already seen or that lies below a symbolic link. A
// stream that ends without tar's end-of-archive blocks (as the server sends
// them) is complete; bytes after those blocks are left unread in r.
func ReadTar(r io.Reader, prefix string, fn func(Entry, io.Reader) error) error {
	tr := tar.NewReader(r)
	seen := make(map[string]EntryType)
	parents := make(map[string]struct{}) // directories implied by the paths seen
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		e, err := ValidateEntry(hdr, prefix)
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if _, dup := seen[e.Path]; dup {
			return fmt.Errorf("read tar: tar entry %q: duplicate path %s", hdr.Name, e.Path)
		}
		if _, isParent := parents[e.Path]; isParent && e.Type != Dir {
			return fmt.Errorf("read tar: tar entry %q: %s %s would replace a directory", hdr.Name, e.Type, e.Path)
		}
		for i := strings.LastIndexByte(e.Path, '/'); i > 0; i = strings.LastIndexByte(e.Path[:i], '/') {
			p := e.Path[:i]
			if t, ok := seen[p]; ok && t != Dir {
				return fmt.Errorf("read tar: tar entry %q: path below %s %s", hdr.Name, t, p)
			}
			parents[p] = struct{}{}
		}
		seen[e.Path] = e.Type
		body := &entryReader{r: tr}
		if e.Type != File {
			body.r = strings.NewReader("")
		}
		err = fn(e, body)
		body.done = true
		if err != nil {
			return err
		}
	}
}

// entryReader stops working once the entry's callback returns, so that a
// callback cannot keep reading into the next entry.
type entryReader struct {
	r    io.Reader
	done bool
}

func (er *entryReader) Read(p []byte) (int, error) {
	if er.done {
		return 0, errors.New("read tar: entry read after its callback returned")
	}
	return er.r.Read(p)
}
