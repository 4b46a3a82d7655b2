package jobs

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store/repository"
)

// tablespaceMap is the file, in base.tar since backups ask for TABLESPACE_MAP, that lists
// each tablespace's OID and its directory on the source.
const tablespaceMap = "tablespace_map"

// restoredEntry decides how a backup entry is materialized so that a restored copy shares
// no file with the live cluster: tablespace OID's files are written as a real directory,
// <dir>/pg_tblspc/OID/... (PostgreSQL 15 accepts a directory there, an "in-place"
// tablespace), and tablespace_map is not written, because recovery would replace that
// directory with a link to the source's own tablespace directory. Symbolic links are
// refused for the same reason. skip reports an entry that is left out. (A backup of a
// source without tablespaces holds an empty tablespace_map, which is harmless and kept.)
func restoredEntry(f repository.File) (skip bool, err error) {
	switch {
	case f.Path == tablespaceMap && f.Size > 0:
		return true, nil
	case f.Type == "symlink":
		what := "symbolic link"
		if oid, ok := pg.TablespaceOID(f.Path); ok {
			what = fmt.Sprintf("tablespace %d link", oid)
		}
		return false, fmt.Errorf("%s: %s to %s refused: a restore writes tablespaces inside its own directory and never links to another",
			f.Path, what, f.LinkTarget)
	}
	return false, nil
}

// inPlaceSetting lets the restored server accept directories in pg_tblspc: PostgreSQL 15
// otherwise stops recovery when it reaches consistency ("unexpected directory entry ...
// found in pg_tblspc/"). In the restored copy it also allows CREATE TABLESPACE with an
// empty location, which creates the tablespace inside the data directory: harmless.
const inPlaceSetting = `
# Added by Backstop's restore: the tablespaces of this copy are directories inside it
# (pg_tblspc/<oid>), not links to the source's tablespace directories.
allow_in_place_tablespaces = on
`

// hasTablespaces reports whether a backup holds tablespaces besides the main one.
func hasTablespaces(m *repository.Manifest) bool {
	for _, f := range m.Files {
		if _, ok := pg.TablespaceOID(f.Path); ok {
			return true
		}
	}
	return false
}

// allowInPlaceTablespaces appends inPlaceSetting to the restored postgresql.auto.conf when
// the backup holds tablespaces.
func allowInPlaceTablespaces(dir string, m *repository.Manifest, uid, gid int) error {
	if !hasTablespaces(m) {
		return nil
	}
	p := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("allow in-place tablespaces: %w", err)
	}
	_, err = f.WriteString(inPlaceSetting)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = chown(p, uid, gid)
	}
	if err != nil {
		return fmt.Errorf("allow in-place tablespaces: %w", err)
	}
	return nil
}

// verifyIgnores are the files pg_verifybackup must not check in a restore of m: those
// that the restore leaves out or changes on purpose, besides the claim's marker.
func verifyIgnores(m *repository.Manifest) []string {
	var ignore []string
	for _, f := range m.Files {
		if skip, _ := restoredEntry(f); skip {
			ignore = append(ignore, f.Path)
		}
	}
	if hasTablespaces(m) {
		ignore = append(ignore, "postgresql.auto.conf")
	}
	return ignore
}
