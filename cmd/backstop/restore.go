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
	"github.com/backstop/backstop/jobs/usecase"
)

const restoreSynopsis = `restore --source NAME (--to TIME|latest | --lsn LSN | --name POINT) --into DIR [--start --port N]
       backstop restore --backup ID --into DIR [--verify]`

func (c *cli) restore(ctx context.Context, args []string) error {
	fs := c.flags("restore", restoreSynopsis)
	source := fs.String("source", "", "source to restore to a point in time")
	to := fs.String("to", "", `target time ("2026-11-25 09:30:00" is UTC; RFC 3339 with an offset) or "latest"`)
	lsn := fs.String("lsn", "", "target WAL position, e.g. 0/3A000028")
	name := fs.String("name", "", "target named restore point (pg_create_restore_point)")
	exclusive := fs.Bool("exclusive", false, "stop just before the target time or LSN rather than just after it")
	start := fs.Bool("start", false, "start the restored instance on 127.0.0.1 (with --port), replay and promote it")
	port := fs.Int("port", 0, "port of the started instance")
	backupID := fs.Int64("backup", 0, "ID of a complete backup to write out as it is (see `backstop backup list`)")
	into := fs.String("into", "", "directory to write the data directory into; must be missing or empty")
	owner := fs.String("owner", defaultOwner(), "OS user that will own the files (the user that runs PostgreSQL)")
	verify := fs.Bool("verify", false, "also run pg_verifybackup on the result, a deep check that reads every file back (--backup; "+
		"every file's CRC-32C is checked as it is written either way)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *into == "" || (*source == "") == (*backupID == 0) {
		fs.Usage()
		return errors.New("restore needs --into DIR and either --source NAME with a target, or --backup ID")
	}
	dir, err := filepath.Abs(*into)
	if err != nil {
		return err
	}
	if *source != "" {
		target, err := pitrTarget(*to, *lsn, *name)
		if err != nil {
			return err
		}
		if *start != (*port != 0) {
			return errors.New("--start and --port N go together: the instance starts on 127.0.0.1:N")
		}
		return c.restorePITR(ctx, *source, jobs.PITRArgs{Target: target, Exclusive: *exclusive, Into: dir, Port: *port, Owner: *owner})
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	job, err := svc.RestoreBackup(ctx, actor, *backupID, dir, *owner, *verify)
	if err != nil {
		return err
	}
	var res jobs.RestoreResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("restore: job %d recorded no result: %w", job.ID, err)
	}
	verified := "every file checked against its CRC-32C as it was written"
	switch {
	case res.Verified:
		verified += ", and verified by pg_verifybackup"
	case *verify:
		verified += "; not verified by pg_verifybackup (not found)"
	}
	return c.printResult(res,
		fmt.Sprintf("Restored backup %d into %s: %d files, %s.", *backupID, res.Into, res.Files, verified),
		fmt.Sprintf("Start it with: pg_ctl -D %s -o '-p 5433' start   (as %s)", res.Into, ownerOrMe(*owner)),
		fmt.Sprint(job.ID))
}

// pitrTarget turns the target flags into the text jobs.ParseTarget reads.
func pitrTarget(to, lsn, name string) (string, error) {
	set := 0
	for _, v := range []string{to, lsn, name} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return "", errors.New("give exactly one target: --to TIME|latest, --lsn LSN or --name POINT")
	}
	switch {
	case lsn != "":
		return "lsn:" + lsn, nil
	case name != "":
		return "name:" + name, nil
	}
	return to, nil
}

// restorePITR restores a source to a point in time, with a progress bar; it refuses a
// target the window cannot reach before anything is written.
func (c *cli) restorePITR(ctx context.Context, source string, args jobs.PITRArgs) error {
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	src, err := h.store.SourceByName(ctx, source)
	if err != nil {
		return fmt.Errorf("source %q: %w (see `backstop source list`)", source, err)
	}
	svc, actor := c.cliService(h)
	job, _, err := svc.StartRestore(ctx, actor, usecase.RestoreRequest{SourceID: src.ID, Target: args.Target, Exclusive: args.Exclusive,
		Into: args.Into, Port: args.Port, Owner: args.Owner})
	if err != nil {
		return err
	}
	var res jobs.PITRResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("restore: job %d recorded no result: %w", job.ID, err)
	}
	lines := []string{fmt.Sprintf("Restored %s to %s from backup %d into %s.", src.Name, res.Target, res.BackupID, res.Into)}
	lines = append(lines, res.Checked...)
	if res.DSN != "" {
		lines = append(lines, "Connect with: psql '"+res.DSN+"'")
	} else {
		lines = append(lines, fmt.Sprintf("Start it with: pg_ctl -D %s start   (as %s); it replays to the target and promotes.", res.Into, ownerOrMe(args.Owner)))
	}
	return c.printResult(res, append(lines, fmt.Sprint(res.RestoreID))...)
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
