package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/jobs/usecase"
)

func (c *cli) channel(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: backstop channel add NAME (--webhook URL | --slack URL | --email TO --smtp HOST:PORT --from ADDR) | list | remove NAME | test NAME")
	}
	switch args[0] {
	case "add":
		return c.channelAdd(ctx, args[1:])
	case "list":
		return c.channelList(ctx, args[1:])
	case "remove", "test":
		return c.channelAct(ctx, args[0], args[1:])
	}
	return fmt.Errorf("unknown channel command %q (add, list, remove, test)", args[0])
}

func (c *cli) channelAdd(ctx context.Context, args []string) error {
	fs := c.flags("channel add", "channel add NAME (--webhook URL [--secret S] | --slack URL | --email TO,… --smtp HOST:PORT --from ADDR "+
		"[--smtp-user U --smtp-password-stdin] [--smtp-tls starttls|tls|none]) [--min-severity critical|warning|info]")
	webhook := fs.String("webhook", "", "a generic webhook: JSON POSTed with an HMAC-SHA256 signature header")
	secret := fs.String("secret", "", "the webhook's signing key (default: a new one, printed once)")
	slack := fs.String("slack", "", "a Slack-compatible incoming webhook URL")
	email := fs.String("email", "", "email recipients, comma-separated")
	smtpAddr := fs.String("smtp", "", "the SMTP server, HOST:PORT")
	from := fs.String("from", "", "the sender address of emails")
	user := fs.String("smtp-user", "", "the SMTP user name, if the server asks for one")
	passStdin := fs.Bool("smtp-password-stdin", false, "read the SMTP password from standard input")
	tlsMode := fs.String("smtp-tls", notify.TLSStartTLS, "starttls (when offered), tls (from the start) or none")
	minSev := fs.String("min-severity", "warning", "send alerts of this severity and worse")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("usage: backstop channel add NAME …")
	}
	in := usecase.ChannelInput{Name: pos[0], MinSeverity: *minSev}
	switch {
	case *webhook != "":
		in.Kind, in.Config = jobs.ChannelWebhook, jobs.ChannelConfig{URL: *webhook, Secret: *secret}
	case *slack != "":
		in.Kind, in.Config = jobs.ChannelSlack, jobs.ChannelConfig{URL: *slack}
	case *email != "":
		cfg := &notify.SMTPConfig{Addr: *smtpAddr, From: *from, To: strings.Split(*email, ","), Username: *user, TLS: *tlsMode}
		if *passStdin {
			line, err := bufio.NewReader(c.stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("read the SMTP password: %w", err)
			}
			cfg.Password = strings.TrimRight(line, "\r\n")
		}
		in.Kind, in.Config = jobs.ChannelEmail, jobs.ChannelConfig{SMTP: cfg}
	default:
		fs.Usage()
		return errors.New("give one of --webhook, --slack or --email")
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	ch, cfg, err := svc.AddChannel(ctx, actor, in)
	if err != nil {
		return fmt.Errorf("channel %s: %w", in.Name, err)
	}
	lines := []string{fmt.Sprintf("Added %s channel %s (alerts of severity %s and worse); `backstop channel test %s` sends a test", ch.Kind, ch.Name, ch.MinSeverity, ch.Name)}
	if in.Kind == jobs.ChannelWebhook && *secret == "" {
		lines = append(lines, "Signing key (shown once; the receiver checks X-Backstop-Signature with it): "+cfg.Secret)
	}
	lines = append(lines, fmt.Sprint(ch.ID))
	return c.printResult(map[string]any{"id": ch.ID, "name": ch.Name, "kind": ch.Kind, "min_severity": ch.MinSeverity, "secret": cfg.Secret}, lines...)
}

func (c *cli) channelList(ctx context.Context, args []string) error {
	fs := c.flags("channel list", "channel list [--json]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	cs, err := svc.Channels(ctx, actor)
	if err != nil {
		return err
	}
	if c.json {
		out := make([]map[string]any, len(cs))
		for i, ch := range cs {
			out[i] = map[string]any{"id": ch.ID, "name": ch.Name, "kind": ch.Kind, "min_severity": ch.MinSeverity, "enabled": ch.Enabled}
		}
		return c.printResult(out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tMIN SEVERITY\tENABLED")
	for _, ch := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\n", ch.Name, ch.Kind, ch.MinSeverity, ch.Enabled)
	}
	return tw.Flush()
}

func (c *cli) channelAct(ctx context.Context, verb string, args []string) error {
	fs := c.flags("channel "+verb, "channel "+verb+" NAME")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: backstop channel " + verb + " NAME (see `backstop channel list`)")
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	if verb == "remove" {
		if err := svc.RemoveChannel(ctx, actor, pos[0]); err != nil {
			return err
		}
		return c.printResult(map[string]any{"removed": pos[0]}, "Removed channel "+pos[0])
	}
	if err := svc.TestChannel(ctx, actor, pos[0]); err != nil {
		return fmt.Errorf("test of channel %s failed: %w", pos[0], err)
	}
	return c.printResult(map[string]any{"tested": pos[0], "ok": true}, "Sent a test notification to "+pos[0])
}
