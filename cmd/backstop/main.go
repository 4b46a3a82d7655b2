// Command backstop is the Backstop control plane for PostgreSQL backups: the dashboard
// (`serve`), a self-contained demonstration (`demo`), and the commands that do the same work
// from a shell (`source`, `backup`, `restore`, `user`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `Backstop: verified PostgreSQL backups, restorable from a browser.

Usage:
  backstop [--home DIR] COMMAND [flags]

Commands:
  demo                     start a sandbox PostgreSQL cluster, back it up, serve the dashboard
  serve                    serve the dashboard and run queued jobs
  init                     create the home directory, repository and key
                           (--repository s3://BUCKET/PREFIX --s3-endpoint URL: in object storage)
  source add NAME DSN      register a PostgreSQL database (checked before it is saved)
  source list              list sources
  source change NAME DSN   change a source's connection string (same cluster, checked first)
  source remove NAME       stop archiving and drop its slot; its backups are kept
  backup SOURCE            take a full backup now, with a progress bar
  backup list              list backups
  backup pin ID [--note T] | unpin ID
                           hold a backup (legal hold): no policy expires it
  policy set --source NAME [--schedule CRON] [--time-zone TZ] [--window 14d] [--keep-last N]
           [--daily N] [--weekly N] [--monthly N] [--yearly N] [--min-keep N] [--archive-years N]
                           set a source's backup schedule and retention policy
  policy show --source NAME
  expire --source NAME [--dry-run]
                           apply the policy now: delete what it no longer needs (--dry-run: show it)
  verify --source NAME [--deep]
                           check that every object the source's backups and WAL need reads back
                           (exit status 1 with the findings when not)
  alerts [--all]           open alerts, worst first, with what to do (--all: resolved ones too)
  alerts ack ID | resolve ID [--comment TEXT]
  channel add NAME --webhook URL | --slack URL | --email TO --smtp HOST:PORT --from ADDR
                           notify a channel of alerts (also: channel list, remove NAME, test NAME)
  drill --source NAME [--at TIME]
                           restore a random second (or TIME) of the window into a sandbox,
                           check it, record the RTO and tear it down; exits 1 if it fails
  report create --from DATE --to DATE [--source NAME]... --format pdf|csv|json --out FILE
                           a signed verification report for a period (last day included)
  report verify FILE [--key PUBLIC.pem]
                           check a report's signature and content offline; print its summary
                           (exit status 1 when it does not hold)
  report key               print the public key that signs reports (PEM; fingerprint on stderr)
  restore --source NAME --to TIME|latest --into DIR [--start --port N]
                           restore to a point in time (also --lsn LSN, --name POINT)
  restore --backup ID --into DIR
                           write a backup out as a startable data directory
  user add NAME            create a user (--role; password from --password-stdin, or generated)
  user list | set-role NAME ROLE | passwd NAME | disable NAME | enable NAME | remove NAME
  user set-sources NAME --restore all|none|SOURCE[,SOURCE...]
                           limit the sources a user may restore (admins are never limited)
  audit verify             check the audit log's hash chain and the head kept in the repository
  audit export [--format csv|json] [--from DATE] [--to DATE] [--actor X] [--action PREFIX]
               [--source NAME] [--out FILE]
                           write the audit log (filtered, oldest first) as CSV or JSON
  catalog rebuild          make a lost catalog.db again from the repository (sources, backups,
                           WAL); users, jobs, restores and the audit log are not recovered
  wal-fetch --socket SOCKET NAME DEST
                           fetch one WAL file during a restore (restore_command, run by PostgreSQL)
  wal-push --source NAME PATH
                           archive one WAL file (for archive_command)

Every command keeps its state in one home directory: --home, else $BACKSTOP_HOME, else
/var/lib/backstop for root or ~/.local/share/backstop. Commands that create something print
its ID on the last line; --json prints machine-readable output instead.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the collector works harder near it rather than let garbage grow the
		// process to twice what it holds (about 60 MiB in a backup: two 16 MiB packs, the
		// blocks in flight). GOMEMLIMIT overrides it.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "backstop:", err)
		}
		os.Exit(1)
	}
}

// defaultMemoryLimit is the soft memory limit of every command unless GOMEMLIMIT is set.
const defaultMemoryLimit = 80 << 20

// cli is what every command gets: where its state is, where it writes, how it logs.
type cli struct {
	home   string
	json   bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backstop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs.StringVar(&c.home, "home", defaultHome(), "home directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	args = fs.Args()
	if len(args) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return c.serve(ctx, rest)
	case "demo":
		return c.demo(ctx, rest)
	case "init":
		return c.init(ctx, rest)
	case "source":
		return c.source(ctx, rest)
	case "backup":
		return c.backup(ctx, rest)
	case "restore":
		return c.restore(ctx, rest)
	case "policy":
		return c.policy(ctx, rest)
	case "expire":
		return c.expire(ctx, rest)
	case "alerts":
		return c.alerts(ctx, rest)
	case "verify":
		return c.verify(ctx, rest)
	case "channel":
		return c.channel(ctx, rest)
	case "drill":
		return c.drill(ctx, rest)
	case "user":
		return c.user(ctx, rest)
	case "catalog":
		return c.catalog(ctx, rest)
	case "audit":
		return c.auditCmd(ctx, rest)
	case "report":
		return c.report(ctx, rest)
	case "wal-fetch": // PostgreSQL's restore_command reads the exit status itself
		os.Exit(c.walFetch(ctx, rest))
	case "wal-push":
		return c.walPush(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

// flags returns a flag set for a subcommand, with the shared --json flag.
func (c *cli) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.BoolVar(&c.json, "json", false, "print machine-readable JSON")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: backstop %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a subcommand's flags, accepting flags after positional arguments too.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// printResult prints v as JSON with --json, else the text lines, the last of which is the
// created thing's ID where there is one.
func (c *cli) printResult(v any, lines ...string) error {
	if c.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	for _, l := range lines {
		fmt.Fprintln(c.stdout, l)
	}
	return nil
}

func (c *cli) init(ctx context.Context, args []string) error {
	fs := c.flags("init", "init [--repository s3://BUCKET/PREFIX --s3-endpoint URL --s3-region R --s3-path-style]")
	url := fs.String("repository", "", "put the repository in S3-compatible object storage (s3://bucket/prefix) instead of the home; "+
		"credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the AWS shared credentials file")
	endpoint := fs.String("s3-endpoint", "", "URL of an S3-compatible server (empty: AWS)")
	region := fs.String("s3-region", "", "S3 region (default: the AWS configuration's, else us-east-1)")
	pathStyle := fs.Bool("s3-path-style", false, "address the bucket in the path (most S3-compatible servers need this)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var remote *repoConfig
	if *url != "" {
		remote = &repoConfig{URL: *url, Endpoint: *endpoint, Region: *region, PathStyle: *pathStyle}
	} else if *endpoint != "" || *region != "" || *pathStyle {
		return errors.New("--s3-endpoint, --s3-region and --s3-path-style go with --repository s3://BUCKET/PREFIX")
	}
	h, err := openHomeWith(ctx, c.home, true, remote)
	if err != nil {
		return err
	}
	defer h.Close()
	return c.printResult(map[string]string{"home": h.dir, "repository": h.repoLocation(), "key_file": h.keyPath()},
		"Backstop home: "+h.dir,
		"repository:    "+h.repoLocation(),
		"key file:      "+h.keyPath()+" (keep a copy somewhere safe: without it no backup can be read)")
}
