package repository

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/backstop/backstop/store/repository/storage"
)

// Dir returns the repository's local directory, to check the free space of its disk;
// "" for a repository in object storage.
func (r *Repo) Dir() string {
	if l, ok := r.st.(*storage.Local); ok {
		return l.Dir()
	}
	return ""
}

// ProbeWrite proves that the repository can be written: it stores, syncs and deletes a
// small object. /healthz calls it.
func (r *Repo) ProbeWrite(ctx context.Context) error {
	key := "probe/" + rand.Text()
	err := r.st.Put(ctx, key, []byte("backstop health probe\n"), true)
	if err == nil {
		err = r.st.Sync(ctx)
	}
	if derr := r.st.Delete(ctx, key); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("write the repository: %w", err)
	}
	return nil
}
