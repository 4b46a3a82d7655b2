package repository

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Dir returns the repository's directory, to check the free space of its disk.
func (r *Repo) Dir() string { return r.dir }

// ProbeWrite proves that the repository can be written: it writes, fsyncs and
// removes a small file at its top. /healthz calls it.
func (r *Repo) ProbeWrite(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(r.dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("write the repository: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write([]byte("backstop health probe\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the repository: %s: %w", filepath.Base(name), err)
	}
	return nil
}
