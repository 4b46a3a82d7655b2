package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backstop/backstop/store"
)

func (c *cli) alerts(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "ack" || args[0] == "resolve") {
		return c.alertChange(ctx, args[0], args[1:])
	}
	fs := c.flags("alerts", "alerts [--all] [--json] | alerts ack ID [--comment TEXT] | alerts resolve ID [--comment TEXT]")
	all := fs.Bool("all", false, "also list resolved alerts (the newest 100)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	f := store.AlertFilter{Open: true}
	if *all {
		f = store.AlertFilter{Limit: 100}
	}
	as, err := svc.Alerts(ctx, actor, f)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]map[string]any, len(as))
		for i, a := range as {
			out[i] = alertJSON(a)
		}
		return c.printResult(out)
	}
	if len(as) == 0 {
		fmt.Fprintln(c.stdout, "No open alerts. (backstop serve evaluates the rules every 15 s.)")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tSTATE\tSINCE (UTC)\tALERT")
	for _, a := range as {
		state := string(a.State)
		if a.State == store.AlertAcknowledged {
			state += " by " + a.AckedBy
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", a.ID, strings.ToUpper(a.Severity), state, a.FirstAt.UTC().Format(time.DateTime), a.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range as {
		fmt.Fprintf(c.stdout, "\n%d  %s\n    %s\n", a.ID, a.Title, a.Explanation)
		if a.Action != "" {
			fmt.Fprintf(c.stdout, "    What to do: %s\n", a.Action)
		}
	}
	return nil
}

func (c *cli) alertChange(ctx context.Context, verb string, args []string) error {
	fs := c.flags("alerts "+verb, "alerts "+verb+" ID [--comment TEXT]")
	comment := fs.String("comment", "", "a note for the others on call and the audit log")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("usage: backstop alerts " + verb + " ID (see `backstop alerts`)")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("alert ID %q is not a number (see `backstop alerts`)", pos[0])
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	var a store.Alert
	if verb == "ack" {
		a, err = svc.AcknowledgeAlert(ctx, actor, id, *comment)
	} else {
		a, err = svc.ResolveAlert(ctx, actor, id, *comment)
	}
	if err != nil {
		return err
	}
	return c.printResult(alertJSON(a), fmt.Sprintf("Alert %d is %s by %s: %s", a.ID, a.State, actor.Name, a.Title))
}

func alertJSON(a store.Alert) map[string]any {
	return map[string]any{
		"id": a.ID, "rule": a.Rule, "source_id": a.SourceID, "severity": a.Severity, "state": a.State, "title": a.Title,
		"explanation": a.Explanation, "action": a.Action, "evidence": a.Evidence, "first_at": a.FirstAt, "last_seen_at": a.LastSeenAt,
		"acked_by": a.AckedBy, "acked_at": a.AckedAt, "ack_comment": a.AckComment,
		"resolved_at": a.ResolvedAt, "resolved_by": a.ResolvedBy, "resolve_comment": a.ResolveComment,
	}
}
