package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/jobs/usecase"
)

func (c *cli) report(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "create":
			return c.reportCreate(ctx, args[1:])
		case "verify":
			return c.reportVerify(args[1:])
		case "key":
			return c.reportKey(ctx)
		}
	}
	fmt.Fprintln(c.stderr, "Usage: backstop report create --from DATE --to DATE [--source NAME]... --format pdf|csv|json --out FILE\n       backstop report verify FILE [--key PUBLIC.pem]\n       backstop report key")
	return errors.New("report: say create, verify or key")
}

// names is a repeatable flag.
type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

// dateValue is a day (2006-01-02) or an instant (RFC 3339).
type dateValue struct{ t *time.Time }

func (v dateValue) String() string {
	if v.t == nil || v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339)
}

func (v dateValue) Set(s string) error {
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			*v.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("%q is not a date such as 2026-11-30 or a time such as 2026-11-30T12:00:00Z", s)
}

func (c *cli) reportCreate(ctx context.Context, args []string) error {
	fs := c.flags("report create", "report create --from DATE --to DATE [--source NAME]... --format pdf|csv|json --out FILE")
	var q usecase.ReportRequest
	fs.Var(dateValue{&q.From}, "from", "the period's first day (UTC), or an exact time")
	fs.Var(dateValue{&q.To}, "to", "the period's last day (UTC, included), or an exact time (excluded)")
	fs.Var((*names)(&q.Sources), "source", "a source to report on (repeat for more; default: every source)")
	format := fs.String("format", "pdf", "pdf, csv or json")
	out := fs.String("out", "", "the file to write")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || q.From.IsZero() || q.To.IsZero() {
		fs.Usage()
		return errors.New("report create needs --from, --to and --out")
	}
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	data, err := svc.DownloadReport(ctx, actor, q, *format)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	v, err := report.Verify(data, nil)
	if err != nil {
		return fmt.Errorf("report: the report just written does not verify: %w", err)
	}
	return c.printResult(map[string]any{"file": *out, "format": *format, "bytes": len(data), "fingerprint": v.Fingerprint, "summary": v.Summary},
		fmt.Sprintf("Wrote %s (%s, %d bytes), signed with key %s", *out, *format, len(data), v.Fingerprint))
}

// errReportInvalid makes report verify exit non-zero after saying why.
var errReportInvalid = errors.New("the report does not verify")

func (c *cli) reportVerify(args []string) error {
	fs := c.flags("report verify", "report verify FILE [--key PUBLIC.pem]")
	keyFile := fs.String("key", "", "the installation's public key (PEM, from the Reports page): the report must be signed with it")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("report verify takes one file")
	}
	var trusted ed25519.PublicKey
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return fmt.Errorf("report verify: %w", err)
		}
		if trusted, err = report.ParsePublicKey(b); err != nil {
			return fmt.Errorf("report verify: %s: %w", *keyFile, err)
		}
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("report verify: %w", err)
	}
	v, err := report.Verify(data, trusted)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", errReportInvalid, pos[0], err)
	}
	text := v.Text()
	if trusted == nil {
		text += "Compare the key's fingerprint with the one on the Reports page, or give it with --key.\n"
	}
	// key_checked tells a script that the signature is good but by a key nobody compared:
	// anyone can sign a report with a key of their own.
	return c.printResult(map[string]any{"file": pos[0], "format": v.Format, "fingerprint": v.Fingerprint, "key_checked": trusted != nil,
		"generated_at": v.GeneratedAt, "from": v.From, "to": v.To, "summary": v.Summary}, strings.TrimSuffix(text, "\n"))
}

// reportKey prints the public key that signs this installation's reports (PEM) on
// stdout, and its fingerprint on stderr.
func (c *cli) reportKey(ctx context.Context) error {
	h, err := openHome(ctx, c.home, false)
	if err != nil {
		return err
	}
	defer h.Close()
	svc, actor := c.cliService(h)
	pem, fp, err := svc.ReportPublicKey(ctx, actor)
	if err != nil {
		return fmt.Errorf("report key: %w", err)
	}
	fmt.Fprintf(c.stderr, "Reports are signed with the Ed25519 key %s\n", fp)
	_, err = c.stdout.Write(pem)
	return err
}
