package health

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// ServiceChecks are what /healthz checks of Backstop itself: that the
// catalog and the repository can be written, and that the disks holding them
// have room.
type ServiceChecks struct {
	// WriteCatalog and WriteRepository write something small, durably.
	WriteCatalog, WriteRepository func(ctx context.Context) error
	// Paths are the catalog's file and the repository's directory: the disks
	// holding them must have MinFreeBytes and MinFreeFraction free.
	Paths []string
	// MinFreeBytes (default 1 GiB) and MinFreeFraction (default 5 %): a disk
	// with less free than either is nearly full.
	MinFreeBytes    int64
	MinFreeFraction float64
	// freeSpace is replaced in tests.
	freeSpace func(path string) (free, total int64, err error)
}

// CheckService runs the checks and returns the first problem, in words for
// the person reading /healthz, or nil.
func CheckService(ctx context.Context, c ServiceChecks) error {
	if c.WriteCatalog != nil {
		if err := c.WriteCatalog(ctx); err != nil {
			return fmt.Errorf("catalog cannot be written: %w", err)
		}
	}
	if c.WriteRepository != nil {
		if err := c.WriteRepository(ctx); err != nil {
			return fmt.Errorf("repository cannot be written: %w", err)
		}
	}
	minBytes, minFrac := c.MinFreeBytes, c.MinFreeFraction
	if minBytes <= 0 {
		minBytes = 1 << 30
	}
	if minFrac <= 0 {
		minFrac = 0.05
	}
	freeSpace := c.freeSpace
	if freeSpace == nil {
		freeSpace = statfs
	}
	for _, p := range c.Paths {
		free, total, err := freeSpace(p)
		if err != nil {
			return fmt.Errorf("free space of %s: %w", p, err)
		}
		if free < minBytes || (total > 0 && float64(free) < minFrac*float64(total)) {
			return fmt.Errorf("disk nearly full: %s free of %s on the disk holding %s", bytes(free), bytes(total), p)
		}
	}
	return nil
}

// statfs returns the space available to unprivileged users and the size of
// the file system holding path.
func statfs(path string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	if st.Bsize <= 0 {
		return 0, 0, errors.New("statfs: no block size")
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}
