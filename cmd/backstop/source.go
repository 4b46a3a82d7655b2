package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

func (c *cli) source(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: backstop source add NAME DSN | backstop source list")
	}
	switch args[0] {
	case "add":
		return c.sourceAdd(ctx, args[1:])
	case "list":
		return c.sourceList(ctx, args[1:])
	}
	return fmt.Errorf("unknown source command %q (add, list)", args[0])
}

func (c *cli) sourceAdd(ctx context.Context, args []string) error {
	fs := c.flags("source add", "source add NAME DSN")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		fs.Usage()
		return errors.New("source add takes a NAME and a DSN")
	}
	h, err := openHome(ctx, c.home, true)
	if err != nil {
		return err
	}
	defer h.Close()
	src, err := jobs.RegisterSource(ctx, h.store, pos[0], pos[1])
	if err != nil {
		var ce *pg.CheckError
		if errors.As(err, &ce) && ce.Hint != "" {
			return hinted{ce}
		}
		return err
	}
	if err := h.store.Audit(ctx, store.AuditEntry{Actor: cliActor(), Action: "source.create", Target: src.Name}); err != nil {
		return err
	}
	return c.printResult(sourceJSON(src),
		fmt.Sprintf("Added source %s: PostgreSQL %d, system %s (%s)", src.Name, src.PGVersion, src.SystemIdentifier, pg.MaskDSN(src.DSN)),
		fmt.Sprint(src.ID))
}

func (c *cli) sourceList(ctx context.Context, args []string) error {
	fs := c.flags("source list", "source list")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	srcs, err := h.store.Sources(ctx)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]map[string]any, 0, len(srcs))
		for _, s := range srcs {
			out = append(out, sourceJSON(s))
		}
		return c.printResult(out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPOSTGRESQL\tSYSTEM\tDSN")
	for _, s := range srcs {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", s.ID, s.Name, s.PGVersion, s.SystemIdentifier, pg.MaskDSN(s.DSN))
	}
	return tw.Flush()
}

// hinted prints a check error's hint on a line of its own (CheckError.Error ends with it).
type hinted struct{ *pg.CheckError }

// Error returns the message, then the hint on its own line.
func (h hinted) Error() string { return h.Message + "\nhint: " + h.Hint }

// Unwrap returns the *pg.CheckError.
func (h hinted) Unwrap() error { return h.CheckError }

// sourceJSON is a source as the CLI prints it: never with its password.
func sourceJSON(s store.Source) map[string]any {
	return map[string]any{
		"id": s.ID, "name": s.Name, "dsn": pg.MaskDSN(s.DSN), "system_identifier": s.SystemIdentifier,
		"pg_version": s.PGVersion, "timeline": s.Timeline, "created_at": s.CreatedAt,
	}
}
