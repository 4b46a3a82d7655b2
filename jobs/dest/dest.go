// Package dest decides where a restore may write, and proves that what it later removes is
// what it created. Every destination is checked by Check before anything is recorded or
// written; a restore claims its directory with Claim, which leaves a marker naming the
// restore; Remove deletes only a directory whose marker carries the same token, and from a
// directory that existed before, only the entries the restore recorded as its own.
//
// The CLI, the dashboard and the restore jobs all go through this package, so the rules
// live in one place.
package dest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MarkerName is the file Backstop writes at the top of every directory it claims for a
// restore. PostgreSQL ignores it; pg_verifybackup is told to.
const MarkerName = "backstop-restore.json"

// Error is a refused destination: Field is "dir" or "port", Message says why in words for
// the person who chose it.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

func refuse(field, format string, args ...any) error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Protected is a path no restore may write inside or above, with what it is.
type Protected struct {
	Path string
	What string // "the data directory of the running cluster on port 5432", "Backstop's repository", …
}

// systemDirs may never be a restore's directory, nor contain one directly below them in a
// way that writes into the system: a restore into /etc/foo is refused as "inside /etc".
var systemRoots = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
	"/sbin", "/sys", "/usr"}

// systemDirs may not be a restore's directory themselves (anything below them is fine:
// /srv/restore/orders, /var/lib/restores/x).
var systemDirs = []string{"/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var", "/var/lib",
	"/var/tmp", "/var/log", "/var/cache", "/var/spool", "/var/run", "/var/lib/postgresql"}

// CheckDir refuses a restore directory that is not absolute, exists as anything but an
// empty directory, is a system directory, or lies inside or above a protected path. It
// resolves symbolic links in the part of the path that exists, so a link cannot smuggle a
// restore into a protected place. It writes nothing.
func CheckDir(dir string, protected []Protected) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return refuse("dir", "enter an absolute path for the new data directory")
	}
	dir = filepath.Clean(dir)
	real, err := resolve(dir)
	if err != nil {
		return refuse("dir", "%s cannot be checked: %v", dir, err)
	}
	for _, d := range []string{dir, real} {
		if slices.Contains(systemDirs, d) || slices.Contains(systemRoots, d) {
			return refuse("dir", "%s is a system directory: choose a new directory below it, such as %s", d,
				filepath.Join(d, "backstop-restore"))
		}
		for _, root := range systemRoots {
			if within(d, root) {
				return refuse("dir", "%s is inside the system directory %s: choose a directory elsewhere, such as /srv/restore", d, root)
			}
		}
	}
	for _, p := range protected {
		pp := filepath.Clean(p.Path)
		preal, err := resolve(pp)
		if err != nil {
			preal = pp
		}
		for _, d := range []string{dir, real} {
			for _, q := range []string{pp, preal} {
				switch {
				case d == q:
					return refuse("dir", "%s is %s", dir, p.What)
				case within(d, q):
					return refuse("dir", "%s is inside %s (%s)", dir, p.What, q)
				case within(q, d):
					return refuse("dir", "%s contains %s (%s)", dir, p.What, q)
				}
			}
		}
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return refuse("dir", "%s cannot be checked: %v", dir, err)
	case !fi.IsDir():
		return refuse("dir", "%s exists and is not a directory: choose an empty or new directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return refuse("dir", "%s cannot be read: %v", dir, err)
	}
	if len(entries) > 0 {
		return refuse("dir", "%s is not empty: choose an empty or new directory", dir)
	}
	return nil
}

// within reports whether path lies strictly below dir.
func within(path, dir string) bool {
	if dir == "/" {
		return path != "/"
	}
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

// Resolve returns path with symbolic links resolved in its longest existing prefix: where
// a restore into path would really write.
func Resolve(path string) (string, error) { return resolve(path) }

// resolve returns path with symbolic links resolved in its longest existing prefix.
func resolve(path string) (string, error) {
	rest := ""
	p := path
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path, nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// marker is the content of MarkerName.
type marker struct {
	// Token is the restore's marker token, also recorded in the catalog.
	Token string `json:"token"`
	// Restore names the restore for a person who finds the file.
	Restore string `json:"restore"`
	// Created says Backstop created the directory itself, so it may remove it whole.
	Created bool `json:"created"`
	// Entries are the top-level names the restore wrote into a directory that existed
	// before; only these are removed from it.
	Entries []string `json:"entries,omitempty"`
}

// NewToken returns a fresh marker token.
func NewToken() string { return rand.Text() }

// Claim is a directory a restore has claimed.
type Claim struct {
	Dir string
	m   marker
}

// ClaimDir claims dir for a restore: it creates dir (and missing parents, 0755 so that the
// OS user running PostgreSQL can reach it) or takes an existing empty directory, and writes
// the marker with token. It refuses a directory that is not empty or appeared since it was
// checked, and then has written nothing. uid and gid own the directory when not -1.
func ClaimDir(dir, token, restore string, uid, gid int) (*Claim, error) {
	if token == "" {
		return nil, errors.New("claim: no marker token")
	}
	c := &Claim{Dir: dir, m: marker{Token: token, Restore: restore}}
	if err := makeParents(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	// Where the path leads now, links resolved: if a parent is swapped for a link while
	// the directory is made, the claim is refused rather than written elsewhere.
	want, err := resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	err = os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		c.m.Created = true
	case errors.Is(err, fs.ErrExist):
		fi, lerr := os.Lstat(dir)
		if lerr != nil || !fi.IsDir() {
			return nil, refuse("dir", "%s exists and is not a directory: choose an empty or new directory", dir)
		}
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			return nil, fmt.Errorf("claim %s: %w", dir, rerr)
		}
		if len(entries) > 0 {
			return nil, refuse("dir", "%s is not empty: choose an empty or new directory", dir)
		}
	default:
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	if got, err := filepath.EvalSymlinks(dir); err != nil || got != want {
		c.undoClaim()
		return nil, refuse("dir", "%s moved while it was claimed (it now leads to %s): nothing was written", dir, got)
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			c.undoClaim()
			return nil, fmt.Errorf("claim %s: %w", dir, err)
		}
	}
	// O_EXCL: if anything else wrote a marker here between the check and now, it is not ours.
	f, err := os.OpenFile(filepath.Join(dir, MarkerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		c.undoClaim()
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	f.Close()
	if err := c.write(); err != nil {
		os.Remove(filepath.Join(dir, MarkerName))
		c.undoClaim()
		return nil, fmt.Errorf("claim %s: %w", dir, err)
	}
	return c, nil
}

// makeParents creates the missing directories of path with mode 0755 whatever the umask,
// so that the OS user running PostgreSQL can reach a data directory below them. Existing
// directories are left as they are.
func makeParents(path string) error {
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return err
		}
	}
	return nil
}

// undoClaim removes the directory just made (empty), or nothing.
func (c *Claim) undoClaim() {
	if c.m.Created {
		os.Remove(c.Dir)
	}
}

// Created says whether the claim created the directory.
func (c *Claim) Created() bool { return c.m.Created }

// Record adds the top-level names a restore is about to write, so that a directory that
// existed before loses only those on cleanup. Call it before writing them.
func (c *Claim) Record(names ...string) error {
	for _, n := range names {
		n = strings.SplitN(filepath.ToSlash(filepath.Clean(n)), "/", 2)[0]
		if n == "" || n == "." || n == ".." || n == MarkerName || slices.Contains(c.m.Entries, n) {
			continue
		}
		c.m.Entries = append(c.m.Entries, n)
	}
	return c.write()
}

// write replaces the marker atomically and syncs it. The directory may belong to the
// server's OS user, who could plant the temporary name as a link to another file: it is
// removed first and created with O_EXCL, which follows no link, so that Backstop never
// writes through one.
func (c *Claim) write() error {
	b, err := json.MarshalIndent(c.m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, "."+MarkerName+".tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(c.Dir, MarkerName)); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(c.Dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrNotOurs is returned by Remove when the directory carries no marker with the restore's
// token: Backstop did not create what is there now, and leaves it alone.
var ErrNotOurs = errors.New("not created by this restore")

// Remove deletes what the restore with token created at dir: the whole directory when the
// restore created it, else only the entries it recorded and the marker. created is what
// Backstop itself recorded (the catalog, or the claim in hand): the marker lies in a
// directory the server's OS user can write, so its own "created" counts only together
// with it. Without a marker carrying token it removes nothing and returns an error
// wrapping ErrNotOurs. A directory that is already gone is not an error.
func Remove(dir, token string, created bool) error {
	if token == "" || dir == "" || !filepath.IsAbs(dir) {
		return fmt.Errorf("remove %q: %w", dir, ErrNotOurs)
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("remove %s: it is not a directory: %w", dir, ErrNotOurs)
	}
	b, err := readMarker(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: no %s marker in it: %w", dir, MarkerName, ErrNotOurs)
	}
	if errors.Is(err, errMarkerNotFile) {
		return fmt.Errorf("remove %s: %w: %w", dir, err, ErrNotOurs)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.Token != token {
		return fmt.Errorf("remove %s: its marker names another restore: %w", dir, ErrNotOurs)
	}
	// The marker sits in a directory the restored server's OS user can write: an entry
	// that is not one plain name inside dir is not something this restore wrote.
	for _, n := range m.Entries {
		if !plainName(n) {
			return fmt.Errorf("remove %s: its marker names %q, not an entry of the directory: %w", dir, n, ErrNotOurs)
		}
	}
	if created && m.Created {
		return os.RemoveAll(dir)
	}
	for _, n := range m.Entries {
		if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return os.Remove(filepath.Join(dir, MarkerName))
}

// plainName reports whether n names an entry directly inside a directory: one path
// element, not "." or "..", and not the marker itself.
func plainName(n string) bool {
	return n != "" && n != "." && n != ".." && n != MarkerName && !strings.ContainsAny(n, "/\x00")
}

// errMarkerNotFile is a marker name that holds a link or anything else than a regular file:
// Backstop writes a regular file, so whatever is there is not its marker.
var errMarkerNotFile = errors.New("its " + MarkerName + " is not a regular file")

// readMarker reads dir's marker, refusing one that is not a regular file (a link would
// let whoever owns dir point Backstop at a marker copied elsewhere).
func readMarker(dir string) ([]byte, error) {
	p := filepath.Join(dir, MarkerName)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errMarkerNotFile
	}
	return os.ReadFile(p)
}

// Owned reports whether dir carries the marker of the restore with token.
func Owned(dir, token string) bool {
	b, err := readMarker(dir)
	if err != nil || token == "" {
		return false
	}
	var m marker
	return json.Unmarshal(b, &m) == nil && m.Token == token
}
