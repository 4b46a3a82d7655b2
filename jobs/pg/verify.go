package pg

import (
	"context"
	"fmt"
	"os/exec"
)

// VerifyBackup runs pg_verifybackup on a plain-format data directory that holds the
// server's backup_manifest: every file is checked against the manifest's sizes and
// checksums, and the WAL in pg_wal is parsed from the backup's start to its end.
func VerifyBackup(ctx context.Context, bin Binaries, dir string) error {
	if err := run(exec.CommandContext(ctx, bin.Path("pg_verifybackup"), "--quiet", dir)); err != nil {
		return fmt.Errorf("pg_verifybackup %s: %w", dir, err)
	}
	return nil
}
