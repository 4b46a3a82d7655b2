package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClusterOptions describes a sandbox cluster: a PostgreSQL instance that
// Backstop creates and owns for tests, the demo, restores and drills.
type ClusterOptions struct {
	// Dir holds everything: the data directory (Dir/data), the server log
	// (Dir/log/postgresql.log) and the Unix socket (Dir/run).
	Dir string
	// Bin are the server programs to use.
	Bin Binaries
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Superuser is the name of the bootstrap superuser; "" means "postgres".
	Superuser string
	// Password, if set, turns on scram-sha-256 authentication for every
	// connection and becomes the superuser's password; otherwise
	// connections from 127.0.0.1 and the socket are trusted.
	Password string
	// Settings are extra postgresql.conf parameters; they override the
	// defaults for a backup source. The port is set with Port.
	Settings map[string]string
	// DataChecksums turns on data page checksums (initdb --data-checksums).
	DataChecksums bool
}

// Cluster is a PostgreSQL server on a data directory, run by Backstop
// through pg_ctl. It is safe for use by one goroutine at a time.
type Cluster struct {
	bin       Binaries
	user      osUser
	dataDir   string
	logFile   string
	socketDir string
	port      int
	// autoPort is set when the port was picked by Backstop, which may then
	// pick another one if it turns out to be taken.
	autoPort  bool
	superuser string
	password  string
	// extraOpts asks pg_ctl to pass the port and socket directory on the
	// server's command line (for data directories Backstop did not set up).
	extraOpts bool
}

// Settings given to every sandbox: what a backup source needs.
func sourceSettings(port int, socketDir string) map[string]string {
	return map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": socketDir,
		"wal_level":               "replica",
		"max_wal_senders":         "10",
		"max_replication_slots":   "10",
	}
}

const (
	sandboxComment = "Added by Backstop for a sandbox cluster (later lines win)"
	portComment    = "Port changed by Backstop"
)

// InitCluster creates a sandbox cluster in opts.Dir with initdb and
// configures it as a backup source. The server is not started.
func InitCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	c, err := newSandbox(opts)
	if err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil, fmt.Errorf("init cluster: %s already holds a cluster: open it instead", c.dataDir)
	}
	if _, ok := opts.Settings["port"]; ok {
		return nil, errors.New("init cluster: set the port with ClusterOptions.Port, not Settings")
	}
	dir := filepath.Dir(c.dataDir)
	if err := c.user.mkdirOwned(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	if err := c.user.checkReachable(dir); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	for _, d := range []string{filepath.Dir(c.logFile), c.socketDir} {
		if err := c.user.mkdirOwned(d, 0o700); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		c.autoPort = true
	}

	auth := "trust"
	args := []string{"-D", c.dataDir, "-U", c.superuser, "-E", "UTF8", "--locale=C"}
	if opts.DataChecksums {
		args = append(args, "--data-checksums")
	}
	if c.password != "" {
		auth = "scram-sha-256"
		pwFile := filepath.Join(dir, ".initdb-password")
		if err := os.WriteFile(pwFile, []byte(c.password+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		defer os.Remove(pwFile)
		if err := c.user.chown(pwFile); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		args = append(args, "--pwfile="+pwFile)
	}
	args = append(args, "--auth-local="+auth, "--auth-host="+auth)
	if err := run(c.user.command(ctx, c.bin.Path("initdb"), args...)); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}

	settings := sourceSettings(c.port, c.socketDir)
	for k, v := range opts.Settings {
		settings[k] = v
	}
	if err := appendSettings(filepath.Join(c.dataDir, "postgresql.conf"), sandboxComment, settings); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	hba := fmt.Sprintf(`# Written by Backstop for a sandbox cluster.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 %[1]s
host    all          all   127.0.0.1/32  %[1]s
local   replication  all                 %[1]s
host    replication  all   127.0.0.1/32  %[1]s
`, auth)
	if err := os.WriteFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	return c, nil
}

// OpenCluster returns the sandbox cluster that InitCluster created in
// opts.Dir, reading its port from its configuration. Only Dir, Bin,
// Superuser and Password are used; they must match the ones given to
// InitCluster.
func OpenCluster(opts ClusterOptions) (*Cluster, error) {
	c, err := newSandbox(opts)
	if err != nil {
		return nil, fmt.Errorf("open cluster: %w", err)
	}
	version, err := os.ReadFile(filepath.Join(c.dataDir, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("open cluster: no cluster in %s: %w", opts.Dir, err)
	}
	if major, ok := parseMajor(strings.TrimSpace(string(version))); !ok || major != c.bin.Major {
		return nil, fmt.Errorf("open cluster: %s is a PostgreSQL %s cluster, but the binaries in %s are version %d",
			c.dataDir, strings.TrimSpace(string(version)), c.bin.Dir, c.bin.Major)
	}
	port, found, err := readSetting("port",
		filepath.Join(c.dataDir, "postgresql.conf"), filepath.Join(c.dataDir, "postgresql.auto.conf"))
	if err != nil {
		return nil, fmt.Errorf("open cluster: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("open cluster: no port set in %s", filepath.Join(c.dataDir, "postgresql.conf"))
	}
	if c.port, err = strconv.Atoi(port); err != nil || c.port <= 0 || c.port > 65535 {
		return nil, fmt.Errorf("open cluster: invalid port %q in the configuration", port)
	}
	return c, nil
}

func newSandbox(opts ClusterOptions) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("no directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.Bin.Dir == "" {
		return nil, errors.New("no binaries given: use FindBinaries")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("invalid port %d", opts.Port)
	}
	if opts.Superuser == "" {
		opts.Superuser = "postgres"
	}
	if strings.ContainsAny(opts.Superuser, "\"'\\\x00\n") {
		return nil, fmt.Errorf("invalid superuser name %q", opts.Superuser)
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	return &Cluster{
		bin:       opts.Bin,
		user:      u,
		dataDir:   filepath.Join(dir, "data"),
		logFile:   filepath.Join(dir, "log", "postgresql.log"),
		socketDir: filepath.Join(dir, "run"),
		port:      opts.Port,
		superuser: opts.Superuser,
		password:  opts.Password,
	}, nil
}

// ServerOptions describes an existing data directory to start, such as a
// restored backup.
type ServerOptions struct {
	// Bin are the server programs; their major version must match the
	// data directory's.
	Bin Binaries
	// DataDir is the data directory.
	DataDir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// LogFile receives the server's log.
	LogFile string
	// SocketDir is the Unix socket directory; "" means LogFile's directory.
	SocketDir string
	// Superuser and Password are used by DSN.
	Superuser string
	Password  string
}

// StartDataDir starts a server on an existing data directory, listening on
// 127.0.0.1 only, and returns it. When running as root it first gives the
// data directory, the log's directory and the socket directory to the
// postgres OS user. The port, address and socket directory are passed on
// the server's command line, so the data directory's configuration files are
// left as they are.
func StartDataDir(ctx context.Context, opts ServerOptions) (*Cluster, error) {
	if opts.DataDir == "" || opts.LogFile == "" {
		return nil, errors.New("start data dir: DataDir and LogFile are required")
	}
	if opts.Bin.Dir == "" {
		return nil, errors.New("start data dir: no binaries given: use FindBinaries")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	logFile, err := filepath.Abs(opts.LogFile)
	if err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	socketDir := opts.SocketDir
	if socketDir == "" {
		socketDir = filepath.Dir(logFile)
	}
	if socketDir, err = filepath.Abs(socketDir); err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	version, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return nil, fmt.Errorf("start data dir: not a data directory: %w", err)
	}
	if major, ok := parseMajor(strings.TrimSpace(string(version))); !ok || major != opts.Bin.Major {
		return nil, fmt.Errorf("start data dir: %s is a PostgreSQL %s data directory, but the binaries in %s are version %d",
			dataDir, strings.TrimSpace(string(version)), opts.Bin.Dir, opts.Bin.Major)
	}
	if opts.Superuser == "" {
		opts.Superuser = "postgres"
	}
	u, err := serverUser()
	if err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	c := &Cluster{
		bin:       opts.Bin,
		user:      u,
		dataDir:   dataDir,
		logFile:   logFile,
		socketDir: socketDir,
		port:      opts.Port,
		superuser: opts.Superuser,
		password:  opts.Password,
		extraOpts: true,
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	if err := u.chownTree(dataDir); err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	for _, d := range []string{filepath.Dir(logFile), socketDir} {
		fi, err := os.Stat(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := u.mkdirOwned(d, 0o700); err != nil {
				return nil, fmt.Errorf("start data dir: %w", err)
			}
		case err != nil:
			return nil, fmt.Errorf("start data dir: %w", err)
		case !fi.IsDir():
			return nil, fmt.Errorf("start data dir: %s is not a directory", d)
		case !u.allowed(fi, 0o3):
			// An existing directory is not ours to give away.
			return nil, fmt.Errorf("start data dir: OS user %q, which runs the server, cannot write to %s", u.name, d)
		}
	}
	for _, p := range []string{dataDir, logFile, socketDir} {
		if err := u.checkReachable(p); err != nil {
			return nil, fmt.Errorf("start data dir: %w", err)
		}
	}
	if c.port == 0 {
		if c.port, err = freePort(); err != nil {
			return nil, fmt.Errorf("start data dir: %w", err)
		}
		c.autoPort = true
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("start data dir: %w", err)
	}
	return c, nil
}

// Port returns the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the server's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// LogFile returns the file that receives the server's log.
func (c *Cluster) LogFile() string { return c.logFile }

// Binaries returns the server programs the cluster runs with.
func (c *Cluster) Binaries() Binaries { return c.bin }

// DSN returns a URL to connect to database db ("" means "postgres") as the
// superuser over TCP.
func (c *Cluster) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(c.superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if c.password != "" {
		u.User = url.UserPassword(c.superuser, c.password)
	}
	return u.String()
}

// Start starts the server and waits until it accepts connections. On
// failure the error holds the end of the server log.
func (c *Cluster) Start(ctx context.Context) error {
	for _, p := range []string{c.dataDir, c.logFile, c.socketDir} {
		// pg_ctl builds a shell command line from these paths.
		if strings.ContainsAny(p, "\"\\$`\n\r\x00") {
			return fmt.Errorf("start server: path %q contains characters pg_ctl cannot quote", p)
		}
	}
	const attempts = 3
	for i := 0; ; i++ {
		offset := fileSize(c.logFile)
		args := []string{"start", "-w", "-t", strconv.Itoa(waitSeconds(ctx)), "-D", c.dataDir, "-l", c.logFile}
		if c.extraOpts {
			// data_directory and external_pid_file too: a configuration file copied from the
			// source may name the source's own, and a restored instance shares no file with
			// a live cluster.
			args = append(args, "-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c data_directory=%s -c external_pid_file=''",
				c.port, shellQuote(c.socketDir), shellQuote(c.dataDir)))
		}
		err := run(c.user.command(ctx, c.bin.Path("pg_ctl"), args...))
		if err == nil {
			return nil
		}
		tail := logTail(c.logFile, offset)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("start server: %w", ctxErr)
		}
		if c.autoPort && i+1 < attempts && strings.Contains(tail, "Address already in use") {
			if perr := c.movePort(); perr != nil {
				return fmt.Errorf("start server: %w", perr)
			}
			continue
		}
		if tail != "" {
			return fmt.Errorf("start server: %w\nserver log (%s):\n%s", err, c.logFile, tail)
		}
		return fmt.Errorf("start server: %w", err)
	}
}

// movePort picks another free port after a clash on an automatic one.
func (c *Cluster) movePort() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	if c.extraOpts {
		return nil
	}
	return appendSettings(filepath.Join(c.dataDir, "postgresql.conf"), portComment,
		map[string]string{"port": strconv.Itoa(port)})
}

// Stop stops the server with the given shutdown mode: "fast" (the default
// for "") rolls back open transactions and checkpoints; "immediate" aborts
// without a checkpoint (as a crash would); "smart" waits for clients to
// disconnect. Stopping a server that is not running is not an error.
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	switch mode {
	case "":
		mode = "fast"
	case "fast", "immediate", "smart":
	default:
		return fmt.Errorf("stop server: unknown shutdown mode %q (want fast, immediate or smart)", mode)
	}
	if !c.Running(ctx) {
		return nil
	}
	args := []string{"stop", "-w", "-t", strconv.Itoa(waitSeconds(ctx)), "-D", c.dataDir, "-m", mode}
	if err := run(c.user.command(ctx, c.bin.Path("pg_ctl"), args...)); err != nil {
		return fmt.Errorf("stop server: %w", err)
	}
	return nil
}

// Running reports whether a server is running on the data directory.
func (c *Cluster) Running(ctx context.Context) bool {
	cmd := c.user.command(ctx, c.bin.Path("pg_ctl"), "status", "-D", c.dataDir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd.Run() == nil
}

// waitSeconds is how long pg_ctl may wait: until ctx's deadline, else 5 min
// (crash recovery of a restored backup can take a while).
func waitSeconds(ctx context.Context) int {
	if d, ok := ctx.Deadline(); ok {
		if s := int(time.Until(d).Seconds()); s > 0 {
			return s
		}
		return 1
	}
	return 300
}

// shellQuote quotes s for /bin/sh, which pg_ctl uses to start the server.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	return port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the end of what was written to the log after offset.
func logTail(path string, offset int64) string {
	const maxTail = 4 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	skipped := false
	if size := fileSize(path); size-offset > maxTail {
		offset, skipped = size-maxTail, true
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxTail))
	if i := bytes.IndexByte(b, '\n'); skipped && i >= 0 {
		b = b[i+1:] // drop the partial first line
	}
	return strings.TrimSpace(string(b))
}
