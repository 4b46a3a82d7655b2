package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/retention"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

func (c *cli) policy(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "set":
			return c.policySet(ctx, args[1:])
		case "show":
			return c.policyShow(ctx, args[1:])
		}
	}
	return errors.New("usage: backstop policy set --source NAME [flags] | policy show --source NAME [--json]")
}

// sourceFlag opens the home and loads the source named by --source.
func (c *cli) sourceFlag(ctx context.Context, fs *flag.FlagSet, name *string, args []string) (*home, store.Source, error) {
	if _, err := parse(fs, args); err != nil {
		return nil, store.Source{}, err
	}
	if *name == "" {
		fs.Usage()
		return nil, store.Source{}, errors.New("--source is required (see `backstop source list`)")
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return nil, store.Source{}, err
	}
	src, err := h.store.SourceByName(ctx, *name)
	if err != nil {
		h.Close()
		return nil, store.Source{}, fmt.Errorf("%w (see `backstop source list`)", err)
	}
	return h, src, nil
}

// windowValue is a recovery window flag: a Go duration, or whole days such as "14d".
type windowValue struct{ d *time.Duration }

func (v windowValue) String() string {
	if v.d == nil {
		return ""
	}
	return retention.FormatDuration(*v.d)
}

func (v windowValue) Set(s string) error {
	d, err := parseWindow(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func parseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("window %q: want whole days such as 14d, or a duration such as 36h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("window %q: want whole days such as 14d, or a duration such as 36h", s)
	}
	return d, nil
}

func (c *cli) policySet(ctx context.Context, args []string) error {
	fs := c.flags("policy set", "policy set --source NAME [--schedule CRON|none] [--verify-schedule CRON|none] [--drill-schedule CRON|none] "+
		"[--time-zone TZ] [--window 14d] [--keep-last N] [--daily N] [--weekly N] [--monthly N] [--yearly N] [--min-keep N] [--archive-years N] "+
		"[--rpo 1m] [--drill-max-age 192h] [--verify-period 720h]")
	name := fs.String("source", "", "the source's name")
	in := usecase.DefaultPolicy
	sched := fs.String("schedule", "", `full backups: a cron expression such as "0 2 * * *" or @daily, read in --time-zone; "none" for no schedule`)
	fs.StringVar(&in.TimeZone, "time-zone", in.TimeZone, "IANA time zone of the schedule and of retention's days, weeks, months and years")
	fs.Var(windowValue{&in.Window}, "window", "recovery window: every second of it stays restorable (14d, 36h; 0 for none)")
	fs.IntVar(&in.KeepLast, "keep-last", in.KeepLast, "keep the newest N backups")
	fs.IntVar(&in.Daily, "daily", in.Daily, "keep the newest backup of each of the last N days that have one")
	fs.IntVar(&in.Weekly, "weekly", in.Weekly, "likewise for ISO weeks")
	fs.IntVar(&in.Monthly, "monthly", in.Monthly, "likewise for months")
	fs.IntVar(&in.Yearly, "yearly", in.Yearly, "likewise for years")
	fs.IntVar(&in.MinKeep, "min-keep", in.MinKeep, "never expire the newest N complete backups, however old")
	fs.IntVar(&in.ArchiveYears, "archive-years", in.ArchiveYears, "keep the first backup of every month for N years (without the WAL after it)")
	verifySched := fs.String("verify-schedule", "", `routine verification: a cron expression, "none" for none`)
	drillSched := fs.String("drill-schedule", "", `restore drills: a cron expression, "none" for none`)
	fs.DurationVar(&in.RPO, "rpo", 0, "alert when WAL archiving lags more than this (default 1m)")
	fs.DurationVar(&in.DrillMaxAge, "drill-max-age", 0, "alert when the newest passing drill is older than this, with drills scheduled (default 192h)")
	fs.DurationVar(&in.VerifyPeriod, "verify-period", 0, "routine verification re-reads every pack within this (default 720h)")
	h, src, err := c.sourceFlag(ctx, fs, name, args)
	if err != nil {
		return err
	}
	defer h.Close()
	// Flags not given keep the stored policy's values (or the defaults, for a first policy).
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if old, err := h.store.Policy(ctx, src.ID); err == nil {
		base := usecase.PolicyInputOf(old)
		keep := func(flagName string, dst *int, v int) {
			if !given[flagName] {
				*dst = v
			}
		}
		keep("keep-last", &in.KeepLast, base.KeepLast)
		keep("daily", &in.Daily, base.Daily)
		keep("weekly", &in.Weekly, base.Weekly)
		keep("monthly", &in.Monthly, base.Monthly)
		keep("yearly", &in.Yearly, base.Yearly)
		keep("min-keep", &in.MinKeep, base.MinKeep)
		keep("archive-years", &in.ArchiveYears, base.ArchiveYears)
		if !given["window"] {
			in.Window = base.Window
		}
		if !given["time-zone"] {
			in.TimeZone = base.TimeZone
		}
		in.BackupCron, in.VerifyCron, in.DrillCron = base.BackupCron, base.VerifyCron, base.DrillCron
		keepDuration := func(flagName string, dst *time.Duration, v time.Duration) {
			if !given[flagName] {
				*dst = v
			}
		}
		keepDuration("rpo", &in.RPO, base.RPO)
		keepDuration("drill-max-age", &in.DrillMaxAge, base.DrillMaxAge)
		keepDuration("verify-period", &in.VerifyPeriod, base.VerifyPeriod)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, x := range []struct {
		flag string
		dst  *string
	}{{*sched, &in.BackupCron}, {*verifySched, &in.VerifyCron}, {*drillSched, &in.DrillCron}} {
		switch {
		case x.flag == "none":
			*x.dst = ""
		case x.flag != "":
			*x.dst = x.flag
		}
	}
	svc, actor := c.cliService(h)
	p, err := svc.SetPolicy(ctx, actor, src.ID, in)
	if err != nil {
		return fmt.Errorf("policy of %s: %w", src.Name, err)
	}
	return c.showPolicy(ctx, h, src, p)
}

func (c *cli) policyShow(ctx context.Context, args []string) error {
	fs := c.flags("policy show", "policy show --source NAME [--json]")
	name := fs.String("source", "", "the source's name")
	h, src, err := c.sourceFlag(ctx, fs, name, args)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	p, err := svc.Policy(ctx, actor, src.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s has no policy: nothing is scheduled and nothing expires (set one with `backstop policy set --source %s`)", src.Name, src.Name)
	}
	if err != nil {
		return err
	}
	return c.showPolicy(ctx, h, src, p)
}

func (c *cli) showPolicy(ctx context.Context, h *home, src store.Source, p store.Policy) error {
	rp, err := jobs.PolicyOf(p)
	if err != nil {
		return err
	}
	next := "none"
	var nextAt *time.Time
	if p.BackupCron != "" {
		sched, err := jobs.ParseSchedule(p.BackupCron, p.TimeZone)
		if err != nil {
			return err
		}
		now := time.Now()
		t, _ := jobs.NextRun(sched, src.Name, jobs.ScheduleBackup, now)
		nextAt = &t
		next = t.UTC().Format(time.DateTime+" UTC") + " (" + t.In(rp.Location).Format("15:04 MST") + ")"
	}
	var last []store.ScheduleRun
	if last, err = h.store.ScheduleRuns(ctx, src.ID, 5); err != nil {
		return err
	}
	runs := make([]map[string]any, len(last))
	for i, r := range last {
		runs[i] = map[string]any{"due_at": r.DueAt, "queued_at": r.QueuedAt, "late": r.Late, "missed": r.Missed, "job_id": r.JobID, "note": r.Note}
	}
	schedule := p.BackupCron
	if schedule == "" {
		schedule = "none"
	}
	orNone := func(s string) string {
		if s == "" {
			return "none"
		}
		return s
	}
	lines := []string{
		fmt.Sprintf("Policy of %s (set by %s, %s)", src.Name, p.UpdatedBy, p.UpdatedAt.UTC().Format(time.DateTime+" UTC")),
		fmt.Sprintf("  full backups  %s in %s; next %s", schedule, p.TimeZone, next),
		fmt.Sprintf("  verification  %s; every pack re-read within %s", orNone(p.VerifyCron), retention.FormatDuration(p.VerifyPeriod)),
		fmt.Sprintf("  drills        %s; alert when the last passing drill is older than %s", orNone(p.DrillCron), retention.FormatDuration(p.DrillMaxAge)),
		fmt.Sprintf("  RPO objective %s", retention.FormatDuration(p.RPO)),
		fmt.Sprintf("  retention     %s", rp.Describe()),
	}
	for _, r := range last {
		l := fmt.Sprintf("  run due %s", r.DueAt.UTC().Format(time.DateTime+" UTC"))
		if r.Late {
			l += fmt.Sprintf(" LATE (queued %s", r.QueuedAt.UTC().Format(time.DateTime+" UTC"))
			if r.Missed > 0 {
				l += fmt.Sprintf("; %d earlier runs missed while Backstop was down", r.Missed)
			}
			l += ")"
		}
		if r.JobID != 0 {
			l += fmt.Sprintf(": job %d", r.JobID)
		}
		if r.Note != "" {
			l += ": " + r.Note
		}
		lines = append(lines, l)
	}
	return c.printResult(map[string]any{
		"source": src.Name, "schedule": p.BackupCron, "time_zone": p.TimeZone, "next_backup_at": nextAt,
		"window_seconds": int64(p.Window / time.Second), "keep_last": p.KeepLast, "daily": p.Daily, "weekly": p.Weekly,
		"monthly": p.Monthly, "yearly": p.Yearly, "min_keep": p.MinKeep, "archive_years": p.ArchiveYears,
		"retention": rp.Describe(), "updated_at": p.UpdatedAt, "updated_by": p.UpdatedBy, "runs": runs,
		"verify_schedule": p.VerifyCron, "drill_schedule": p.DrillCron, "rpo_seconds": int64(p.RPO / time.Second),
		"drill_max_age_seconds": int64(p.DrillMaxAge / time.Second), "verify_period_seconds": int64(p.VerifyPeriod / time.Second),
	}, lines...)
}

func (c *cli) expire(ctx context.Context, args []string) error {
	fs := c.flags("expire", "expire --source NAME [--dry-run] [--json]")
	name := fs.String("source", "", "the source's name")
	dry := fs.Bool("dry-run", false, "show what would be deleted and the window afterwards; delete nothing")
	h, src, err := c.sourceFlag(ctx, fs, name, args)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	if *dry {
		plan, err := svc.PreviewExpiry(ctx, actor, src.ID, nil)
		if err != nil {
			return fmt.Errorf("expire %s: %w", src.Name, err)
		}
		return c.printPlan(src, plan)
	}
	job, err := svc.Expire(ctx, actor, src.ID, nil)
	if err != nil {
		return fmt.Errorf("expire %s: %w", src.Name, err)
	}
	var res jobs.ExpireResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("expire %s: job %d: %w", src.Name, job.ID, err)
	}
	var lines []string
	for _, s := range res.Sources {
		if s.Postponed != "" {
			lines = append(lines, "Postponed: "+s.Postponed)
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %d backups and %d WAL files (%s) expired; restorable window now %s",
			s.Source, s.Backups, s.WALFiles, humanize.IBytes(uint64(s.WALBytes)), s.WindowAfter))
	}
	if p := res.Prune; p != nil {
		lines = append(lines, fmt.Sprintf("Repository: %d manifests and %d WAL files deleted; %d packs marked for deletion, %d repacked, %d deleted (%s freed)",
			p.BackupsDeleted, p.WALDeleted, p.PacksMarked, p.PacksRepacked, p.PacksDeleted, humanize.IBytes(uint64(p.BytesDeleted))))
	}
	lines = append(lines, fmt.Sprint(job.ID))
	return c.printResult(res, lines...)
}

func (c *cli) printPlan(src store.Source, plan jobs.ExpiryPlan) error {
	if c.json {
		return c.printResult(planJSON(src, plan))
	}
	fmt.Fprintf(c.stdout, "Policy: %s\n", plan.Policy.Describe())
	fmt.Fprintf(c.stdout, "Dry run: %s\n", plan.Summary())
	fmt.Fprintf(c.stdout, "Restorable now: %s\n", plan.Before.String())
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tCONSISTENT (UTC)\tSTORED NEW\tACTION\tWHY")
	for _, k := range plan.Kept {
		rules := make([]string, len(k.Rules))
		for i, r := range k.Rules {
			rules[i] = string(r)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\tkeep\t%s\n", k.Backup.ID, k.At.UTC().Format(time.DateTime),
			humanize.IBytes(uint64(k.Backup.Stats.StoredBytesNew)), strings.Join(rules, ", "))
	}
	for _, e := range plan.Expired {
		fmt.Fprintf(tw, "%d\t%s\t%s\texpire\t%s\n", e.Backup.ID, e.At.UTC().Format(time.DateTime),
			humanize.IBytes(uint64(e.Backup.Stats.StoredBytesNew)), e.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(plan.WAL) > 0 {
		fmt.Fprintf(c.stdout, "WAL: %d files (%s), %s to %s, below %s\n", len(plan.WAL), humanize.IBytes(uint64(plan.WALBytes)),
			plan.WAL[0].Name, plan.WAL[len(plan.WAL)-1].Name, plan.KeepWALFrom)
	}
	return nil
}

func planJSON(src store.Source, plan jobs.ExpiryPlan) map[string]any {
	kept := make([]map[string]any, 0, len(plan.Kept))
	for _, k := range plan.Kept {
		kept = append(kept, map[string]any{"backup": k.Backup.ID, "manifest": k.Backup.RepoID, "consistent_at": k.At, "rules": k.Rules})
	}
	expired := make([]map[string]any, 0, len(plan.Expired))
	for _, e := range plan.Expired {
		expired = append(expired, map[string]any{"backup": e.Backup.ID, "manifest": e.Backup.RepoID, "consistent_at": e.At,
			"stored_bytes_new": e.Backup.Stats.StoredBytesNew, "reason": e.Reason})
	}
	wal := map[string]any{"files": len(plan.WAL), "bytes": plan.WALBytes, "keep_from_lsn": plan.KeepWALFrom.String()}
	if len(plan.WAL) > 0 {
		wal["first"], wal["last"] = plan.WAL[0].Name, plan.WAL[len(plan.WAL)-1].Name
	}
	return map[string]any{
		"source": src.Name, "dry_run": true, "policy": plan.Policy.Describe(), "summary": plan.Summary(),
		"kept": kept, "expired": expired, "wal": wal,
		"window_before": windowJSON(plan.Before), "window_after": windowJSON(plan.After),
	}
}

func windowJSON(w jobs.Window) map[string]any {
	out := map[string]any{"text": w.String()}
	if !w.Earliest.IsZero() {
		out["earliest"], out["latest"] = w.Earliest, w.Latest
	}
	return out
}
