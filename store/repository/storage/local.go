package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

const (
	dirMode  fs.FileMode = 0o750
	fileMode fs.FileMode = 0o440 // stored objects are immutable
)

// Local stores objects as files below a directory: key "a/b/c" is the file dir/a/b/c.
// Each Put goes through a temporary file that is fsynced and renamed (or hard-linked, for
// a conditional write) into place; Sync then fsyncs the directories that gained entries.
type Local struct {
	dir string

	mu       sync.Mutex
	dirty    map[string]struct{} // directories to fsync at the next Sync
	madeDirs map[string]struct{} // directories known to exist
}

// NewLocal returns the storage in dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, err
	}
	return &Local{dir: abs, dirty: map[string]struct{}{}, madeDirs: map[string]struct{}{}}, nil
}

// String implements Storage.
func (l *Local) String() string { return l.dir }

// Dir is the directory the objects are in.
func (l *Local) Dir() string { return l.dir }

// path maps a key to its file, refusing keys that would leave the directory.
func (l *Local) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

// CheckKey refuses keys that are empty, absolute, not clean, that step outside with ".."
// or name the top itself ("."), and keys whose last element starts with ".tmp-", the names
// of Local's temporary files, which its List skips.
func CheckKey(key string) error {
	if key == "" || key == "." || strings.HasPrefix(key, "/") || path.Clean(key) != key || key == ".." || strings.HasPrefix(key, "../") ||
		strings.ContainsAny(key, "\\\x00") || strings.HasPrefix(path.Base(key), ".tmp-") {
		return fmt.Errorf("invalid object key %q", key)
	}
	return nil
}

// Put implements Storage.
func (l *Local) Put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := l.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := l.ensureDir(dir); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := writeFileAtomic(dir, filepath.Base(p), data, ifAbsent); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("put %s: %w", key, ErrExists)
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	l.markDirty(dir)
	return nil
}

// ensureDir creates dir unless this Local already did; new directories and their parents
// are marked for the next Sync.
func (l *Local) ensureDir(dir string) error {
	l.mu.Lock()
	_, ok := l.madeDirs[dir]
	l.mu.Unlock()
	if ok {
		return nil
	}
	// Mark every directory from the new one up to the root of the storage: a directory
	// entry is durable only once its parent is synced.
	var chain []string
	for d := dir; d != l.dir && strings.HasPrefix(d, l.dir); d = filepath.Dir(d) {
		chain = append(chain, filepath.Dir(d))
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	l.mu.Lock()
	l.madeDirs[dir] = struct{}{}
	l.mu.Unlock()
	l.markDirty(chain...)
	return nil
}

func (l *Local) markDirty(dirs ...string) {
	l.mu.Lock()
	for _, d := range dirs {
		l.dirty[d] = struct{}{}
	}
	l.mu.Unlock()
}

// Get implements Storage.
func (l *Local) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// GetInto reads the object at key into buf[:0], growing it as needed.
func (l *Local) GetInto(ctx context.Context, key string, buf []byte) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return buf[:0], err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return buf[:0], fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return buf[:0], fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return buf[:0], fmt.Errorf("get %s: %w", key, err)
	}
	size := int(fi.Size())
	buf = slices.Grow(buf[:0], size)[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return buf[:0], fmt.Errorf("get %s: %w", key, err)
	}
	return buf, nil
}

// GetRange implements Storage.
func (l *Local) GetRange(ctx context.Context, key string, offset, length int64) ([]byte, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("get %s: invalid range [%d, %d)", key, offset, offset+length)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	b := make([]byte, length)
	n, err := f.ReadAt(b, offset)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == length) {
		return nil, fmt.Errorf("get %s [%d, %d): %w", key, offset, offset+length, err)
	}
	return b, nil
}

// Size implements Storage.
func (l *Local) Size(ctx context.Context, key string) (int64, error) {
	p, err := l.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("size of %s: %w", key, ErrNotExist)
	}
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", key, err)
	}
	// Another process may have written it without syncing its directory yet: whoever
	// relies on it now makes it durable at the next Sync too.
	l.markDirty(filepath.Dir(p))
	for d := filepath.Dir(p); d != l.dir && strings.HasPrefix(d, l.dir); d = filepath.Dir(d) {
		l.markDirty(filepath.Dir(d))
	}
	return fi.Size(), nil
}

// List implements Storage. Temporary files of writes in progress are not listed.
func (l *Local) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	return l.list(ctx, prefix, true, fn)
}

// ListKeys implements KeyLister: List without the stat of every file that sizes cost.
func (l *Local) ListKeys(ctx context.Context, prefix string, fn func(key string) error) error {
	return l.list(ctx, prefix, false, func(key string, _ int64) error { return fn(key) })
}

// list is List, with each file's size (a stat) only when sized.
func (l *Local) list(ctx context.Context, prefix string, sized bool, fn func(key string, size int64) error) error {
	// Walk from the deepest directory the prefix names.
	root := l.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		root = filepath.Join(l.dir, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		if !sized {
			return fn(key, 0)
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		return fn(key, fi.Size())
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return nil
}

// Delete implements Storage.
func (l *Local) Delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	err = os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing changed. Its directory may not exist either, and Sync must not try it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	l.markDirty(filepath.Dir(p))
	return nil
}

// Pending returns how many directories the next Sync will fsync.
func (l *Local) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.dirty)
}

// Sync implements Storage: it fsyncs every directory that gained or lost an entry since
// the last Sync, deepest first, so that a new directory's entries and then its own entry
// in its parent are durable.
func (l *Local) Sync(ctx context.Context) error {
	l.mu.Lock()
	dirs := make([]string, 0, len(l.dirty))
	for d := range l.dirty {
		dirs = append(dirs, d)
	}
	clear(l.dirty)
	l.mu.Unlock()
	depth := func(p string) int { return strings.Count(p, string(filepath.Separator)) }
	slices.SortFunc(dirs, func(a, b string) int { return depth(b) - depth(a) })
	for i, d := range dirs {
		err := ctx.Err()
		if err == nil {
			err = syncDir(d)
		}
		if err != nil {
			l.markDirty(dirs[i:]...) // retried at the next Sync
			return fmt.Errorf("sync %s: %w", l.dir, err)
		}
	}
	return nil
}

// writeFileAtomic writes data to dir/name through a uniquely named temporary file in dir
// that is fsynced, made read-only and renamed into place. With noReplace, an existing
// dir/name is left alone and the error wraps fs.ErrExist. The caller fsyncs dir.
func writeFileAtomic(dir, name string, data []byte, noReplace bool) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	final := filepath.Join(dir, name)
	if !noReplace {
		return os.Rename(tmp, final)
	}
	// A hard link fails atomically if final exists, unlike rename.
	err = os.Link(tmp, final)
	switch {
	case err == nil:
		return os.Remove(tmp)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s already exists: %w", name, fs.ErrExist)
	}
	// The file system has no hard links: check, then rename.
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%s already exists: %w", name, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, final)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
