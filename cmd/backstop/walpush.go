package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// walPush archives one WAL file, for sites that set archive_command instead of letting
// Backstop stream: archive_command = 'backstop --home H wal-push --source NAME %p'.
// PostgreSQL retries a non-zero exit, so every failure, including a different file already
// archived under the same name, exits non-zero with the reason on stderr.
func (c *cli) walPush(ctx context.Context, args []string) error {
	fs := c.flags("wal-push", "wal-push --source NAME PATH")
	source := fs.String("source", "", "the source the WAL belongs to (see `backstop source list`)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *source == "" {
		fs.Usage()
		return errors.New("wal-push takes --source NAME and the path of one WAL file (%p)")
	}
	path := pos[0]
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("wal-push: %w", err)
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	src, err := h.store.SourceByName(ctx, *source)
	if err != nil {
		return fmt.Errorf("wal-push: source %q: %w", *source, err)
	}
	// A complete segment's size is the cluster's segment size; other files name segments of
	// the default size (history files have no segment).
	segSize := int64(pgwal.DefaultSegmentSize)
	if pgwal.CheckSegmentSize(fi.Size()) == nil && filepath.Ext(path) == "" {
		segSize = fi.Size()
	}
	if err := jobs.StoreWALFile(ctx, h.store, h.repo, src, path, segSize, store.WALViaPush); err != nil {
		return fmt.Errorf("wal-push: %w", err)
	}
	return c.printResult(map[string]string{"source": src.Name, "file": filepath.Base(path)},
		fmt.Sprintf("Archived %s of %s.", filepath.Base(path), src.Name))
}
