package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

func (c *cli) source(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: backstop source add NAME DSN | list | change NAME DSN | remove NAME")
	}
	switch args[0] {
	case "add":
		return c.sourceAdd(ctx, args[1:])
	case "list":
		return c.sourceList(ctx, args[1:])
	case "change":
		return c.sourceChange(ctx, args[1:])
	case "remove":
		return c.sourceRemove(ctx, args[1:])
	}
	return fmt.Errorf("unknown source command %q (add, list, change, remove)", args[0])
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
	svc, actor := c.cliService(h)
	src, warnings, err := svc.AddSource(ctx, actor, pos[0], pos[1])
	if err != nil {
		return checkHint(err)
	}
	for _, w := range warnings {
		fmt.Fprintln(c.stderr, "warning:", w)
	}
	return c.printResult(sourceJSON(src),
		fmt.Sprintf("Added source %s: PostgreSQL %d, system %s (%s)", src.Name, src.PGVersion, src.SystemIdentifier, pg.MaskDSN(src.DSN)),
		fmt.Sprint(src.ID))
}

// checkHint prints a failed source check's hint on a line of its own.
func checkHint(err error) error {
	var ce *pg.CheckError
	if errors.As(err, &ce) && ce.Hint != "" {
		return hinted{ce}
	}
	return err
}

func (c *cli) sourceChange(ctx context.Context, args []string) error {
	h, src, pos, err := c.sourceCommand(ctx, "source change", "source change NAME DSN", args, 2)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	src, err = svc.ChangeSource(ctx, actor, src.ID, pos[1])
	if err != nil {
		return checkHint(err)
	}
	return c.printResult(sourceJSON(src), fmt.Sprintf("Source %s now connects with %s", src.Name, pg.MaskDSN(src.DSN)))
}

func (c *cli) sourceRemove(ctx context.Context, args []string) error {
	h, src, _, err := c.sourceCommand(ctx, "source remove", "source remove NAME", args, 1)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	res, err := svc.RemoveSource(ctx, actor, src.ID)
	if err != nil {
		return err
	}
	lines := []string{fmt.Sprintf("Removed source %s; its replication slot was dropped.", src.Name)}
	if !res.SlotDropped {
		lines = []string{fmt.Sprintf("Removed source %s, but %s.", src.Name, res.SlotNote)}
	}
	if !res.Deleted {
		lines = append(lines, "Its backups and archived WAL are kept and stay restorable.")
	}
	return c.printResult(map[string]any{"name": src.Name, "deleted": res.Deleted, "slot_dropped": res.SlotDropped, "slot_note": res.SlotNote}, lines...)
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

// sourceCommand parses a command whose first argument names a source and that takes n
// arguments in all, opens the home and loads the source. The caller closes the home.
func (c *cli) sourceCommand(ctx context.Context, name, synopsis string, args []string, n int) (*home, store.Source, []string, error) {
	fs := c.flags(name, synopsis)
	pos, err := parse(fs, args)
	if err != nil {
		return nil, store.Source{}, nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, store.Source{}, nil, fmt.Errorf("usage: backstop %s (see `backstop source list`)", synopsis)
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return nil, store.Source{}, nil, err
	}
	src, err := h.store.SourceByName(ctx, pos[0])
	if err != nil {
		h.Close()
		return nil, store.Source{}, nil, fmt.Errorf("%w (see `backstop source list`)", err)
	}
	return h, src, pos, nil
}
