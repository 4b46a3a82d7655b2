package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// errAuditBroken makes audit verify exit non-zero, after printing the problem.
var errAuditBroken = errors.New("the audit log does not verify")

func (c *cli) auditCmd(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return c.auditVerify(ctx, args[1:])
		case "export":
			return c.auditExport(ctx, args[1:])
		}
	}
	return errors.New("usage: backstop audit verify | backstop audit export [--format csv|json] [--from DATE] [--to DATE] [--actor X] [--action PREFIX] [--source NAME] [--out FILE]")
}

// noRepoHead warns that the chain was checked on its own: without the repository's head, a
// catalog put back from an older copy, or whose newest entries were deleted along with the
// head, looks whole. Serve writes the head at start and then regularly, so on an
// installation that ran serve its absence means someone deleted it.
const noRepoHead = "NO REPOSITORY HEAD: the repository held no audit head before this check, so only the chain was checked: " +
	"newest entries deleted, or an older catalog put back, would not show. If serve has run with this repository, someone deleted audit/head from it"

func (c *cli) auditVerify(ctx context.Context, args []string) error {
	fs := c.flags("audit verify", "audit verify [--json]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	start := time.Now()
	v, err := svc.VerifyAudit(ctx, actor)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	head := v.Chain.Head
	if c.json {
		out := map[string]any{"ok": v.OK(), "entries": v.Chain.Entries, "head": head, "repository_head": v.RepoHead}
		if v.RepoHead.ID == 0 && v.Chain.Entries > 0 {
			out["warning"] = noRepoHead
		}
		if p := v.Chain.Problem; p != nil {
			out["problem"] = map[string]any{"id": p.ID, "reason": p.Reason}
		}
		if v.HeadProblem != "" {
			out["head_problem"] = v.HeadProblem
		}
		if err := c.printResult(out); err != nil {
			return err
		}
	} else {
		if p := v.Chain.Problem; p != nil {
			fmt.Fprintf(c.stdout, "BROKEN at entry %d: %s\n", p.ID, p.Reason)
		}
		if v.HeadProblem != "" {
			fmt.Fprintf(c.stdout, "HEAD MISMATCH: %s\n", v.HeadProblem)
		}
		if v.Chain.Problem != nil {
			fmt.Fprintf(c.stdout, "Checked %d entries in %s, up to the first problem\n", v.Chain.Entries, time.Since(start).Round(time.Millisecond))
		} else {
			fmt.Fprintf(c.stdout, "Checked %d entries in %s; newest entry %d, hash %s\n", v.Chain.Entries,
				time.Since(start).Round(time.Millisecond), head.ID, head.Hash)
		}
		if v.RepoHead.ID != 0 {
			fmt.Fprintf(c.stdout, "Repository head before this check: entry %d, hash %s, written %s\n", v.RepoHead.ID, v.RepoHead.Hash,
				v.RepoHead.WrittenAt.UTC().Format(time.RFC3339))
		} else if v.Chain.Entries > 0 {
			fmt.Fprintln(c.stdout, noRepoHead)
		}
		if v.OK() && v.Written.ID != 0 {
			fmt.Fprintf(c.stdout, "OK: the chain holds; the repository's head is now entry %d\n", v.Written.ID)
		}
	}
	if !v.OK() {
		return errAuditBroken
	}
	return nil
}

func (c *cli) auditExport(ctx context.Context, args []string) error {
	fs := c.flags("audit export", "audit export [--format csv|json] [--from DATE] [--to DATE] [--actor X] [--action PREFIX] [--source NAME] [--out FILE]")
	format := fs.String("format", "csv", "csv or json")
	from := fs.String("from", "", "first day (YYYY-MM-DD, UTC) or time (RFC 3339) to include")
	to := fs.String("to", "", "last day (YYYY-MM-DD, UTC, included) or time (RFC 3339, excluded)")
	var f store.AuditFilter
	fs.StringVar(&f.Actor, "actor", "", "only entries by this user (or cli:USER, system, schedule)")
	fs.StringVar(&f.ActionPrefix, "action", "", `only actions starting with this, such as "restore." or "user.login"`)
	fs.StringVar(&f.Target, "source", "", "only entries about this source (or other target)")
	out := fs.String("out", "", "write to this file instead of standard output")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if f.From, f.To, err = usecase.ParsePeriod(*from, *to); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	var w io.Writer = c.stdout
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		defer file.Close()
		w = file
		if err := svc.ExportAudit(ctx, actor, f, *format, w); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		return file.Close()
	}
	if err := svc.ExportAudit(ctx, actor, f, *format, w); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}
