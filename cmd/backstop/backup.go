package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

func (c *cli) backup(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return c.backupList(ctx, args[1:])
		case "pin", "unpin":
			return c.backupPin(ctx, args[0], args[1:])
		}
	}
	h, src, _, err := c.sourceCommand(ctx, "backup", "backup SOURCE", args, 1)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	job, err := svc.StartBackup(ctx, actor, src.ID)
	if err != nil {
		return fmt.Errorf("backup of %s: %w", src.Name, err)
	}
	var res jobs.BackupResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		return fmt.Errorf("backup of %s: job %d recorded no backup: %w", src.Name, job.ID, err)
	}
	b, err := h.store.Backup(ctx, res.BackupID)
	if err != nil {
		return err
	}
	return c.printResult(backupJSON(b),
		fmt.Sprintf("Backup %d of %s complete: %s of data, %s newly stored, in %s (LSN %s to %s)",
			b.ID, src.Name, humanize.IBytes(uint64(b.Stats.SourceBytes)), humanize.IBytes(uint64(b.Stats.StoredBytesNew)),
			backupDuration(b).Round(100*time.Millisecond), b.StartLSN, b.EndLSN),
		fmt.Sprint(b.ID))
}

func (c *cli) backupList(ctx context.Context, args []string) error {
	fs := c.flags("backup list", "backup list")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	bs, err := h.store.Backups(ctx, store.BackupFilter{Limit: 1000})
	if err != nil {
		return err
	}
	if c.json {
		out := make([]map[string]any, 0, len(bs))
		for _, b := range bs {
			out = append(out, backupJSON(b))
		}
		return c.printResult(out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSTARTED (UTC)\tSTATE\tDATA\tSTORED NEW\tDURATION")
	for _, b := range bs {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.SourceID, b.StartedAt.UTC().Format("2006-01-02 15:04:05"), b.State,
			humanize.IBytes(uint64(b.Stats.SourceBytes)), humanize.IBytes(uint64(b.Stats.StoredBytesNew)), backupDuration(b).Round(time.Second))
	}
	return tw.Flush()
}

func (c *cli) backupPin(ctx context.Context, verb string, args []string) error {
	synopsis := "backup pin ID [--note TEXT]"
	if verb == "unpin" {
		synopsis = "backup unpin ID"
	}
	fs := c.flags("backup "+verb, synopsis)
	note := fs.String("note", "", "why the backup is held (legal hold, case number)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(strings.Join(pos, ""), 10, 64)
	if len(pos) != 1 || err != nil {
		fs.Usage()
		return fmt.Errorf("usage: backstop %s (see `backstop backup list`)", synopsis)
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	var b store.Backup
	if verb == "pin" {
		b, err = svc.PinBackup(ctx, actor, id, *note)
	} else {
		b, err = svc.UnpinBackup(ctx, actor, id)
	}
	if err != nil {
		return err
	}
	line := fmt.Sprintf("Backup %d is pinned: no retention policy expires it until it is unpinned", b.ID)
	if b.Pin == nil {
		line = fmt.Sprintf("Backup %d is no longer pinned: its source's policy may expire it", b.ID)
	}
	return c.printResult(backupJSON(b), line)
}

func backupDuration(b store.Backup) time.Duration {
	if b.FinishedAt == nil {
		return 0
	}
	return b.FinishedAt.Sub(b.StartedAt)
}

func backupJSON(b store.Backup) map[string]any {
	return map[string]any{
		"id": b.ID, "source_id": b.SourceID, "job_id": b.JobID, "repo_id": b.RepoID, "state": b.State,
		"started_at": b.StartedAt, "finished_at": b.FinishedAt, "start_lsn": b.StartLSN, "end_lsn": b.EndLSN,
		"timeline": b.Timeline, "source_bytes": b.Stats.SourceBytes, "stored_bytes_new": b.Stats.StoredBytesNew,
		"stored_bytes_referenced": b.Stats.StoredBytesReferenced, "wal_bytes": b.Stats.WALBytes,
		"wal_stored_bytes_new": b.Stats.WALStoredBytesNew, "files": b.Stats.FileCount, "blocks": b.Stats.BlockCount,
		"blocks_new": b.Stats.BlockCountNew, "error": b.Error, "pin": b.Pin,
	}
}
