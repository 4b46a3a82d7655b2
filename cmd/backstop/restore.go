package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

func (c *cli) restore(ctx context.Context, args []string) error {
	fs := c.flags("restore", "restore --backup ID --into DIR [--owner USER] [--no-verify]")
	backupID := fs.Int64("backup", 0, "ID of the complete backup to restore (see `backstop backup list`)")
	into := fs.String("into", "", "directory to write the data directory into; must be missing or empty")
	owner := fs.String("owner", defaultOwner(), "OS user that will own the files (the user that runs PostgreSQL)")
	noVerify := fs.Bool("no-verify", false, "skip pg_verifybackup on the result")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *backupID == 0 || *into == "" {
		fs.Usage()
		return errors.New("restore needs --backup ID and --into DIR (point-in-time restore comes with WAL archiving)")
	}
	dir, err := filepath.Abs(*into)
	if err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	actor := cliActor()
	if err := h.store.Audit(ctx, store.AuditEntry{Actor: actor, Action: "restore.start", Target: fmt.Sprintf("backup %d", *backupID), Detail: mustJSON(map[string]string{"into": dir})}); err != nil {
		return err
	}
	job, err := c.runJob(ctx, h, jobs.Params{
		Kind: jobs.KindRestore, LockKey: jobs.RestoreLockKey(dir), Args: jobs.RestoreArgs{BackupID: *backupID, Into: dir, Owner: *owner, Verify: !*noVerify},
		RequestedBy: actor,
	})
	if err != nil {
		return err
	}
	var res jobs.RestoreResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("restore: job %d recorded no result: %w", job.ID, err)
	}
	verified := "not verified (pg_verifybackup not found)"
	if res.Verified {
		verified = "verified by pg_verifybackup"
	}
	return c.printResult(res,
		fmt.Sprintf("Restored backup %d into %s: %d files, %s.", *backupID, res.Into, res.Files, verified),
		fmt.Sprintf("Start it with: pg_ctl -D %s -o '-p 5433' start   (as %s)", res.Into, ownerOrMe(*owner)),
		fmt.Sprint(job.ID))
}

// defaultOwner is postgres when running as root (PostgreSQL refuses to run as root), else
// the current user.
func defaultOwner() string {
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err == nil {
			return "postgres"
		}
	}
	return ""
}

func ownerOrMe(owner string) string {
	if owner != "" {
		return owner
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "you"
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
