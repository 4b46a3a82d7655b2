package pg

import (
	"context"
	"fmt"
	"os/exec"
)

// VerifyBackup runs pg_verifybackup on a plain-format data directory that holds the
// server's backup_manifest: every file is checked against the manifest's sizes and
// checksums, and the WAL in pg_wal is parsed from the backup's start to its end. Files
// named in ignore (relative to dir) are not reported as extra.
func VerifyBackup(ctx context.Context, bin Binaries, dir string, ignore ...string) error {
	args := []string{"--quiet"}
	for _, i := range ignore {
		args = append(args, "--ignore="+i)
	}
	if err := run(exec.CommandContext(ctx, bin.Path("pg_verifybackup"), append(args, dir)...)); err != nil {
		return fmt.Errorf("pg_verifybackup %s: %w", dir, err)
	}
	return nil
}
