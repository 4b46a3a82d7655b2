package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// TestPolicyCLI sets a policy from the command line (bad input refused, field by field),
// previews expiry with --dry-run, holds a backup with a pin, expires, and shows a schedule
// missed while serve was down run once on start-up, marked late.
func TestPolicyCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	home := t.TempDir()
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "retained", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port()))

	if _, _, err := backstop(t, home, "policy", "show", "--source", "retained"); err == nil || !strings.Contains(err.Error(), "has no policy") {
		t.Errorf("policy show without a policy = %v, want an error saying there is none", err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--schedule", "0 2 * *"}, "five fields"},
		{[]string{"--time-zone", "Mars/Olympus"}, "Unknown time zone"},
		{[]string{"--window", "0", "--min-keep", "0"}, "keeps nothing"},
		{[]string{"--window", "fortnight"}, "whole days such as 14d"},
		{[]string{"--daily", "-1"}, "daily is -1"},
	} {
		_, _, err := backstop(t, home, append([]string{"policy", "set", "--source", "retained"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("policy set %v = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	st := openCatalog(t, home)
	src, err := st.SourceByName(ctx, "retained")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Policy(ctx, src.ID); err == nil {
		t.Fatalf("a refused policy set stored a policy")
	}

	out := mustBackstop(t, home, "policy", "set", "--source", "retained", "--window", "1s", "--min-keep", "1",
		"--schedule", "* * * * *", "--time-zone", "Europe/Berlin")
	for _, want := range []string{"* * * * * in Europe/Berlin", "window 1 second;", "at least 1 kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy set printed %q, want it to contain %q", out, want)
		}
	}
	// Flags not given keep their stored values.
	out = mustBackstop(t, home, "policy", "set", "--source", "retained", "--daily", "0", "--json")
	var shown map[string]any
	decodeJSON(t, "policy set --json", out, &shown)
	if shown["time_zone"] != "Europe/Berlin" || shown["schedule"] != "* * * * *" || fmt.Sprint(shown["window_seconds"]) != "1" {
		t.Errorf("policy after changing --daily only = %v, want the zone, schedule and window kept", shown)
	}
	// No schedule while backups are taken by hand below.
	mustBackstop(t, home, "policy", "set", "--source", "retained", "--schedule", "none")

	first := lastID(t, "backup", mustBackstop(t, home, "backup", "retained"))
	second := lastID(t, "backup", mustBackstop(t, home, "backup", "retained"))
	time.Sleep(1100 * time.Millisecond) // the 1-second window now starts after the second

	var plan struct {
		Summary string
		Expired []struct {
			Backup int64
			Reason string
		}
		Kept []struct {
			Backup int64
			Rules  []string
		}
	}
	decodeJSON(t, "expire --dry-run --json", mustBackstop(t, home, "expire", "--source", "retained", "--dry-run", "--json"), &plan)
	if len(plan.Expired) != 1 || plan.Expired[0].Backup != first || len(plan.Kept) != 1 || plan.Kept[0].Backup != second {
		t.Fatalf("expire --dry-run = %+v, want backup %d to go and %d kept", plan, first, second)
	}
	if !strings.Contains(plan.Expired[0].Reason, "the base of the recovery window (1 second)") {
		t.Errorf("expiry reason = %q, want it to name the window", plan.Expired[0].Reason)
	}
	if _, err := st.Backup(ctx, first); err != nil {
		t.Fatalf("a dry run deleted backup %d: %v", first, err)
	}

	// Pinned, it stays.
	mustBackstop(t, home, "backup", "pin", fmt.Sprint(first), "--note", "case 4711")
	decodeJSON(t, "expire --dry-run --json", mustBackstop(t, home, "expire", "--source", "retained", "--dry-run", "--json"), &plan)
	if len(plan.Expired) != 0 {
		t.Errorf("expire --dry-run with backup %d pinned = %+v, want nothing to go", first, plan.Expired)
	}
	mustBackstop(t, home, "backup", "unpin", fmt.Sprint(first))

	out = mustBackstop(t, home, "expire", "--source", "retained")
	if !strings.Contains(out, "1 backups and") {
		t.Errorf("expire printed %q, want one backup expired", out)
	}
	if _, err := st.Backup(ctx, first); err == nil {
		t.Errorf("backup %d is still in the catalog after expiry", first)
	}
	if _, err := st.Backup(ctx, second); err != nil {
		t.Errorf("backup %d (the window's base) after expiry: %v", second, err)
	}

	// Serve was down for five minutes of an every-minute schedule: on start-up it runs
	// once, late, with the runs it missed counted; then it stops.
	mustBackstop(t, home, "policy", "set", "--source", "retained", "--schedule", "* * * * *")
	lastRun := time.Now().Add(-5 * time.Minute).Truncate(time.Minute)
	// As if the schedule had been set before the outage (only a clock could do it otherwise).
	db, err := sql.Open("sqlite", filepath.Join(home, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `UPDATE policies SET schedule_since = ?`, lastRun.Add(-time.Hour).UTC().Format(time.RFC3339Nano)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordScheduleRun(ctx, store.ScheduleRun{SourceID: src.ID, Kind: jobs.ScheduleBackup, DueAt: lastRun,
		QueuedAt: lastRun}); err != nil {
		t.Fatal(err)
	}
	serve := startServe(t, home)
	var late store.ScheduleRun
	deadline := time.Now().Add(2 * time.Minute)
	for {
		runs, err := st.ScheduleRuns(ctx, src.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 1 && runs[len(runs)-2].JobID != 0 {
			late = runs[len(runs)-2] // the run after the last one before the outage
			if j, err := st.Job(ctx, late.JobID); err == nil && j.State.Final() {
				if j.State != store.JobSucceeded {
					t.Fatalf("the late scheduled backup ended %s: %s", j.State, j.Error)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled backup ran within 2 minutes of start-up; runs %+v", runs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	if !late.Late || late.Missed < 3 || !late.DueAt.After(lastRun.Add(3*time.Minute)) {
		t.Errorf("the run on start-up = %+v, want late, folding in the runs missed since %s", late, lastRun)
	}
	out = mustBackstop(t, home, "policy", "show", "--source", "retained")
	if !strings.Contains(out, "LATE") || !strings.Contains(out, "earlier runs missed while Backstop was down") {
		t.Errorf("policy show = %q, want the late run shown as late", out)
	}

	// A removed source keeps its backups, under its policy: expiry still applies it.
	mustBackstop(t, home, "source", "remove", "retained")
	decodeJSON(t, "expire --dry-run --json", mustBackstop(t, home, "expire", "--source", "retained", "--dry-run", "--json"), &plan)
	if len(plan.Kept) == 0 {
		t.Errorf("expire --dry-run of a removed source = %+v, want its policy applied to its backups", plan)
	}
	mustBackstop(t, home, "expire", "--source", "retained")
	if bs, err := st.Backups(ctx, store.BackupFilter{SourceID: src.ID, States: []store.BackupState{store.BackupComplete}}); err != nil || len(bs) == 0 {
		t.Errorf("backups of the removed source after expiry = %d, %v; want the ones its policy keeps", len(bs), err)
	}
}
