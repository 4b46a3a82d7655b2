package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/backstop/backstop/store"
)

const userUsage = `usage: backstop user add NAME [--role admin|operator|oncall|auditor] [--password-stdin]
       backstop user list
       backstop user set-role NAME ROLE
       backstop user passwd NAME [--password-stdin]
       backstop user set-sources NAME --restore all|SOURCE[,SOURCE...]|none
       backstop user disable NAME | enable NAME | remove NAME`

func (c *cli) user(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	fs := c.flags("user "+args[0], userUsage[len("usage: backstop "):])
	role := fs.String("role", "admin", "admin, operator, oncall or auditor")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	restore := fs.String("restore", "", "set-sources: the sources NAME may restore: all, none, or names separated by commas")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "set-role": 2, "passwd": 1, "set-sources": 1, "disable": 1, "enable": 1, "remove": 1}
	n, ok := want[args[0]]
	if !ok {
		return fmt.Errorf("unknown user command %q\n%s", args[0], userUsage)
	}
	if len(pos) != n {
		return errors.New(userUsage)
	}
	h, err := openHome(ctx, c.home, args[0] == "add")
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	password := func() (string, bool, error) {
		if !*fromStdin {
			return rand.Text(), true, nil
		}
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && line == "" {
			return "", false, fmt.Errorf("read password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	}
	switch args[0] {
	case "add":
		pw, generated, err := password()
		if err != nil {
			return err
		}
		u, err := svc.AddUser(ctx, actor, pos[0], pw, store.Role(*role))
		if err != nil {
			return err
		}
		lines := []string{fmt.Sprintf("Created %s %s.", u.Role, u.Name)}
		out := map[string]any{"id": u.ID, "name": u.Name, "role": u.Role}
		if generated {
			lines = append(lines, "Password (shown once): "+pw)
			out["password"] = pw
		}
		return c.printResult(out, append(lines, fmt.Sprint(u.ID))...)
	case "list":
		us, err := svc.Users(ctx, actor)
		if err != nil {
			return err
		}
		out := make([]map[string]any, 0, len(us))
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tRESTORES")
		for _, u := range us {
			all, sources, err := svc.RestoreSources(ctx, actor, u.Name)
			if err != nil {
				return err
			}
			out = append(out, map[string]any{"id": u.ID, "name": u.Name, "role": u.Role, "disabled": u.DisabledAt != nil,
				"last_login_at": u.LastLoginAt, "restore_all": all, "restore_sources": sources})
			state := "active"
			if u.DisabledAt != nil {
				state = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, state, restoreWords(all, sources))
		}
		if c.json {
			return c.printResult(out)
		}
		return tw.Flush()
	case "set-role":
		u, err := svc.SetRole(ctx, actor, pos[0], store.Role(pos[1]))
		if err != nil {
			return err
		}
		return c.printResult(map[string]any{"name": u.Name, "role": u.Role}, fmt.Sprintf("%s is now %s.", u.Name, u.Role))
	case "passwd":
		pw, generated, err := password()
		if err != nil {
			return err
		}
		if err := svc.ResetPassword(ctx, actor, pos[0], pw); err != nil {
			return err
		}
		lines := []string{fmt.Sprintf("Password of %s changed; their sessions were ended.", pos[0])}
		out := map[string]any{"name": pos[0]}
		if generated {
			lines = append(lines, "Password (shown once): "+pw)
			out["password"] = pw
		}
		return c.printResult(out, lines...)
	case "set-sources":
		all, sources, err := parseRestoreSources(*restore)
		if err != nil {
			return err
		}
		if _, err := svc.SetRestoreSources(ctx, actor, pos[0], all, sources); err != nil {
			return err
		}
		return c.printResult(map[string]any{"name": pos[0], "all": all, "sources": sources},
			fmt.Sprintf("%s may now restore %s.", pos[0], restoreWords(all, sources)))
	case "disable", "enable":
		u, err := svc.SetDisabled(ctx, actor, pos[0], args[0] == "disable")
		if err != nil {
			return err
		}
		return c.printResult(map[string]any{"name": u.Name, "disabled": u.DisabledAt != nil}, fmt.Sprintf("%s is %sd.", u.Name, args[0]))
	default: // remove
		if err := svc.RemoveUser(ctx, actor, pos[0]); err != nil {
			return err
		}
		return c.printResult(map[string]any{"name": pos[0], "removed": true}, fmt.Sprintf("%s was removed.", pos[0]))
	}
}

// parseRestoreSources reads --restore: "all", "none", or source names separated by commas.
func parseRestoreSources(v string) (all bool, sources []string, err error) {
	switch v = strings.TrimSpace(v); v {
	case "":
		return false, nil, errors.New("set-sources needs --restore all, --restore none or --restore SOURCE[,SOURCE...]")
	case "all":
		return true, nil, nil
	case "none":
		return false, []string{}, nil
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sources = append(sources, s)
		}
	}
	return false, sources, nil
}

// restoreWords says which sources a user may restore.
func restoreWords(all bool, sources []string) string {
	switch {
	case all:
		return "every source"
	case len(sources) == 0:
		return "no source"
	}
	return strings.Join(sources, ", ")
}
