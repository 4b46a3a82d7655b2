package repository

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/backstop/backstop/store/repository/storage"
)

// localDir is the directory of a repository on local disk, for tests that tamper with
// its files.
func (r *Repo) localDir() string { return r.st.(*storage.Local).Dir() }

// blobAt returns the pack file holding the copy of the named blob that Get reads first in
// a local repository, and where in it the blob's sealed bytes are. The repository is
// synced first, so the pack is on disk.
func (r *Repo) blobAt(t *testing.T, name string) (path string, offset, length int64) {
	t.Helper()
	ctx := context.Background()
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	pack, off, n, err := r.Locate(ctx, name)
	if err != nil {
		t.Fatalf("Locate(%s) = %v", name, err)
	}
	return filepath.Join(r.localDir(), filepath.FromSlash(packKey(pack))), off, n
}
