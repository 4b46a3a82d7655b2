package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// Exit statuses of wal-fetch, as PostgreSQL's restore_command reads them: any
// non-zero status means "not available", and recovery ends there as if the archive
// ended; statuses above 125 abort recovery. A file that exists but cannot be served
// (a corrupt object, an unreachable WAL server) must abort recovery: ending it there
// would promote an instance missing committed transactions, silently.
const (
	walFetchOK       = 0
	walFetchNotFound = 1
	walFetchFailed   = 255
)

// walFetch is PostgreSQL's restore_command during a point-in-time restore:
// `backstop wal-fetch --socket SOCKET %f %p`, run as the server's OS user.
// It asks the restore's WAL server (jobs.WALServer) for one file and writes
// it atomically to DEST. It opens neither the home directory, the catalog
// nor the repository, and needs no key. It returns the process's exit status:
// 0 once DEST holds the file, 1 quietly when the file is not archived (the
// server asks for files that do not exist and logs the status itself), 255 with
// a message on stderr for anything else, which aborts recovery.
func (c *cli) walFetch(ctx context.Context, args []string) int {
	// An interrupted fetch must die by its signal, not exit non-zero: PostgreSQL
	// takes a non-zero status for the end of the archive and would end
	// recovery there, but aborts recovery on a child killed by SIGINT.
	signal.Reset(os.Interrupt, syscall.SIGTERM)

	fs := flag.NewFlagSet("wal-fetch", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	socket := fs.String("socket", "", "Unix socket of the restore's WAL server")
	fs.Usage = func() {
		io.WriteString(c.stderr, "Usage: backstop wal-fetch --socket SOCKET NAME DEST   (restore_command: ... %f %p)\n")
		fs.PrintDefaults()
	}
	pos, err := parse(fs, args)
	if err != nil {
		return walFetchFailed
	}
	if len(pos) != 2 || *socket == "" {
		fs.Usage()
		return walFetchFailed
	}
	name, dest := pos[0], pos[1]
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		fmt.Fprintf(c.stderr, "backstop wal-fetch: invalid WAL file name %q\n", name)
		return walFetchFailed
	}
	err = fetchWAL(ctx, *socket, name, dest)
	if errors.Is(err, errNotArchived) {
		return walFetchNotFound
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "backstop wal-fetch %s: %v\n", name, err)
		return walFetchFailed
	}
	return walFetchOK
}

var errNotArchived = errors.New("not archived")

// fetchWAL gets name from the WAL server on socket and writes it to dest
// through dest.tmp, fsynced, then renamed: dest never holds part of a file.
func fetchWAL(ctx context.Context, socket, name, dest string) (err error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://backstop/wal/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Backstop's WAL server: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errNotArchived
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("WAL server: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if resp.ContentLength < 0 {
		return errors.New("WAL server sent no Content-Length: cannot tell a whole file from part of one")
	}

	tmp := dest + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// The client fails the read if the body ends before Content-Length.
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if n != resp.ContentLength {
		return fmt.Errorf("received %d bytes, want %d", n, resp.ContentLength)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(dest))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
