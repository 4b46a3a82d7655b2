package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/backstop/backstop/store"
)

func (c *cli) user(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: backstop user add NAME [--role admin|operator|auditor] [--password-stdin]")
	}
	fs := c.flags("user add", "user add NAME [--role admin|operator|auditor] [--password-stdin]")
	role := fs.String("role", "admin", "admin, operator or auditor")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("user add takes one NAME")
	}
	password := rand.Text()
	if *fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	h, err := openHome(ctx, c.home, true)
	if err != nil {
		return err
	}
	defer h.Close()
	u, err := h.store.CreateUser(ctx, pos[0], password, store.Role(*role))
	if err != nil {
		return err
	}
	if err := h.store.Audit(ctx, store.AuditEntry{Actor: cliActor(), Action: "user.create", Target: u.Name}); err != nil {
		return err
	}
	lines := []string{fmt.Sprintf("Created %s %s.", u.Role, u.Name)}
	if !*fromStdin {
		lines = append(lines, "Password (shown once): "+password)
	}
	out := map[string]any{"id": u.ID, "name": u.Name, "role": u.Role}
	if !*fromStdin {
		out["password"] = password
	}
	return c.printResult(out, append(lines, fmt.Sprint(u.ID))...)
}
