package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// drillWorker runs restore drills with the same point-in-time restore as `restore`, into
// sandboxes the use cases choose and check (below the home's restore root).
func (h *home) drillWorker(exe string) jobs.Worker {
	// The service only chooses sandboxes here: it starts no job and writes no audit entry.
	return jobs.NewDrillWorker(h.store, jobs.NewPITRWorker(h.store, h.repo, exe), h.service(nil, slog.Default()))
}

// drillShownTables is how many tables' row counts a drill prints (all of them with --json).
const drillShownTables = 20

func (c *cli) drill(ctx context.Context, args []string) error {
	fs := c.flags("drill", "drill --source NAME [--at TIME] [--json]")
	name := fs.String("source", "", "the source to drill")
	atFlag := fs.String("at", "", `the second to prove ("2026-11-25 09:30:00" is UTC; RFC 3339 with an offset); default: a random second of the window`)
	h, src, err := c.sourceFlag(ctx, fs, name, args)
	if err != nil {
		return err
	}
	defer h.Close()
	var at time.Time
	if *atFlag != "" {
		t, err := jobs.ParseTarget(*atFlag)
		if err != nil {
			return err
		}
		if t.Kind != jobs.TargetTime {
			return fmt.Errorf("--at %q: a drill restores to a time, such as 2026-11-25 09:30:00 (UTC)", *atFlag)
		}
		at = t.Time
	}
	svc, actor := c.cliService(h)
	job, err := svc.StartDrillAt(ctx, actor, src.ID, at)
	var res jobs.DrillResult
	if len(job.Result) > 0 {
		if jerr := json.Unmarshal(job.Result, &res); jerr != nil {
			return errors.Join(err, fmt.Errorf("drill: job %d recorded no drill: %w", job.ID, jerr))
		}
	}
	if res.ID == 0 {
		if err == nil {
			err = fmt.Errorf("job %d recorded no drill", job.ID)
		}
		return fmt.Errorf("drill of %s: %w", src.Name, err)
	}
	if c.json {
		if res.Checks == nil {
			res.Checks = []string{}
		}
		if perr := c.printResult(res); perr != nil {
			return perr
		}
	} else {
		c.printDrill(src, res)
	}
	if res.State != store.DrillPassed {
		return fmt.Errorf("drill %d of %s failed: %s", res.ID, src.Name, res.Error)
	}
	return err
}

// printDrill prints a finished drill: the second proved, the backup used, the RTO, the
// checks and the row counts; the drill's ID last.
func (c *cli) printDrill(src store.Source, res jobs.DrillResult) {
	target := res.Target.UTC().Format("2006-01-02 15:04:05.999999") + " UTC"
	if res.State == store.DrillPassed {
		fmt.Fprintf(c.stdout, "Drill %d of %s passed: %s is restorable from backup %d; RTO %s.\n", res.ID, src.Name, target,
			res.BackupID, (time.Duration(res.RTOMillis) * time.Millisecond).String())
	} else {
		from := ""
		if res.BackupID != 0 {
			from = fmt.Sprintf(" from backup %d", res.BackupID)
		}
		fmt.Fprintf(c.stdout, "Drill %d of %s FAILED restoring to %s%s.\n", res.ID, src.Name, target, from)
	}
	if res.LastCommitAt != nil {
		fmt.Fprintf(c.stdout, "Last commit restored: %s\n", res.LastCommitAt.UTC().Format("2006-01-02 15:04:05.999999 UTC"))
	}
	if len(res.Checks) > 0 {
		fmt.Fprintln(c.stdout, "Checked:")
		for _, ch := range res.Checks {
			fmt.Fprintf(c.stdout, "  - %s\n", ch)
		}
	}
	if len(res.Tables) > 0 {
		names := make([]string, 0, len(res.Tables))
		for n := range res.Tables {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintln(c.stdout, "Rows by table:")
		for i, n := range names {
			if i == drillShownTables {
				fmt.Fprintf(c.stdout, "  … %d more (--json lists them all)\n", len(names)-i)
				break
			}
			fmt.Fprintf(c.stdout, "  %-40s %d\n", n, res.Tables[n])
		}
	}
	if res.Error != "" {
		fmt.Fprintf(c.stdout, "Failed: %s\n", res.Error)
	}
	fmt.Fprintln(c.stdout, res.ID)
}
