package repository

import (
	"path/filepath"

	"github.com/backstop/backstop/store/repository/storage"
)

// localDir is the directory of a repository on local disk, for tests that tamper with
// its files.
func (r *Repo) localDir() string { return r.st.(*storage.Local).Dir() }

// objectPath is the file of the named object in a local repository.
func (r *Repo) objectPath(name string) string {
	return filepath.Join(r.localDir(), filepath.FromSlash(objectKey(name)))
}
