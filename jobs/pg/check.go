package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// connectTimeout bounds each connection attempt to a source.
const connectTimeout = 10 * time.Second

// minVersionNum is the oldest server_version_num Backstop supports.
const minVersionNum = 150000

// CheckError is a reason why a server cannot be backed up, worded for the
// person who registers it: the UI shows Message and Hint next to Field.
type CheckError struct {
	// Field names what is wrong: "dsn", "host", "auth", "version",
	// "wal_level", "max_wal_senders", "max_replication_slots" or
	// "replication". (Tablespaces are backed up: they are no longer refused.)
	Field string
	// Message says what is wrong.
	Message string
	// Hint says how to fix it.
	Hint string
	// Err is the underlying error, if any.
	Err error
}

// Error returns the message and the hint.
func (e *CheckError) Error() string {
	if e.Hint == "" {
		return e.Message
	}
	return e.Message + " " + e.Hint
}

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

// SourceInfo describes a server that can be backed up.
type SourceInfo struct {
	// ServerVersion is the server's version string, such as "15.8".
	ServerVersion string
	// VersionNum is server_version_num, such as 150008.
	VersionNum int
	// SystemID is the cluster's system identifier, in decimal.
	SystemID string
	// Timeline is the server's current timeline.
	Timeline int32
	// XLogPos is the server's current WAL flush position.
	XLogPos pglogrepl.LSN
	// WALLevel is "replica" or "logical".
	WALLevel string
	// MaxWALSenders is the max_wal_senders setting.
	MaxWALSenders int
	// WALSegmentSize is the size of a WAL segment in bytes.
	WALSegmentSize int64
	// DataChecksums reports whether data page checksums are on.
	DataChecksums bool
	// User is the role Backstop connects as.
	User string
	// Superuser and Replication are the role's attributes.
	Superuser   bool
	Replication bool
	// Tablespaces lists the tablespaces besides pg_default and pg_global.
	Tablespaces []Tablespace
	// DataDirectory is the server's data directory; "" when the role may not see it
	// (it needs superuser or pg_read_all_settings).
	DataDirectory string
}

// Dirs are where the server keeps its files: the data directory, when the role may see
// it, and the tablespaces' locations.
func (info SourceInfo) Dirs() []string {
	var dirs []string
	if info.DataDirectory != "" {
		dirs = append(dirs, info.DataDirectory)
	}
	for _, t := range info.Tablespaces {
		if t.Location != "" {
			dirs = append(dirs, t.Location)
		}
	}
	return dirs
}

// CheckSource connects to the server at dsn and checks that Backstop can
// back it up: a supported version, wal_level and max_wal_senders, a role
// with REPLICATION (or a superuser), and a working replication connection.
// A problem is reported as a *CheckError; if ctx ends, its error is
// returned instead.
func CheckSource(ctx context.Context, dsn string) (SourceInfo, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return SourceInfo{}, parseError(err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return SourceInfo{}, fmt.Errorf("check source: %w", ctxErr)
		}
		return SourceInfo{}, connectError(err, cfg, false)
	}
	info, err := checkSettings(ctx, conn, cfg.User)
	closeConn(conn)
	if err != nil {
		return SourceInfo{}, err
	}

	replCfg := cfg.Copy()
	replCfg.RuntimeParams["replication"] = "true"
	repl, err := pgconn.ConnectConfig(ctx, replCfg)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return SourceInfo{}, fmt.Errorf("check source: %w", ctxErr)
		}
		return SourceInfo{}, connectError(err, cfg, true)
	}
	defer closeConn(repl)
	sys, err := pglogrepl.IdentifySystem(ctx, repl)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return SourceInfo{}, fmt.Errorf("check source: %w", ctxErr)
		}
		return SourceInfo{}, &CheckError{
			Field:   "replication",
			Message: fmt.Sprintf("the replication connection opened, but IDENTIFY_SYSTEM failed: %v.", err),
			Hint:    "Check the server log for the cause.",
			Err:     err,
		}
	}
	info.SystemID, info.Timeline, info.XLogPos = sys.SystemID, sys.Timeline, sys.XLogPos
	return info, nil
}

func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// checkSettings reads and checks the server's settings over a normal
// connection.
func checkSettings(ctx context.Context, conn *pgconn.PgConn, user string) (SourceInfo, error) {
	const settingsSQL = `SELECT current_setting('server_version'), current_setting('server_version_num'),
       current_setting('wal_level'), current_setting('max_wal_senders'),
       current_setting('wal_segment_size'), current_setting('data_checksums'),
       current_user, r.rolsuper, r.rolreplication, current_setting('max_replication_slots')
FROM pg_roles r WHERE r.rolname = current_user`
	rows, err := query(ctx, conn, settingsSQL, 10)
	if err == nil && len(rows) != 1 {
		err = fmt.Errorf("read settings: %d rows, want 1", len(rows))
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return SourceInfo{}, fmt.Errorf("check source: %w", ctxErr)
		}
		return SourceInfo{}, &CheckError{Field: "host", Message: fmt.Sprintf("could not read the server's settings: %v.", err),
			Hint: "Check that this is a PostgreSQL server and that the role may read pg_roles.", Err: err}
	}
	r := rows[0]
	info := SourceInfo{
		ServerVersion: r[0],
		WALLevel:      r[2],
		DataChecksums: r[5] == "on",
		User:          r[6],
		Superuser:     r[7] == "t",
		Replication:   r[8] == "t",
	}
	info.VersionNum, _ = strconv.Atoi(r[1])
	info.MaxWALSenders, _ = strconv.Atoi(r[3])
	info.WALSegmentSize, _ = parseSize(r[4])
	maxSlots, _ := strconv.Atoi(r[9])

	if info.VersionNum < minVersionNum {
		return SourceInfo{}, &CheckError{
			Field:   "version",
			Message: fmt.Sprintf("the server runs PostgreSQL %s; Backstop needs PostgreSQL 15 or newer.", info.ServerVersion),
			Hint:    "Upgrade the server, or register a PostgreSQL 15+ server.",
		}
	}
	if info.WALLevel != "replica" && info.WALLevel != "logical" {
		return SourceInfo{}, &CheckError{
			Field:   "wal_level",
			Message: fmt.Sprintf("wal_level is %q; backups need \"replica\" or \"logical\".", info.WALLevel),
			Hint:    "Set wal_level = replica in postgresql.conf and restart the server.",
		}
	}
	if info.MaxWALSenders <= 0 {
		return SourceInfo{}, &CheckError{
			Field:   "max_wal_senders",
			Message: fmt.Sprintf("max_wal_senders is %d; backups need WAL sender slots: one for each base backup and one for WAL streaming.", info.MaxWALSenders),
			Hint:    "Set max_wal_senders = 10 in postgresql.conf and restart the server.",
		}
	}
	if maxSlots <= 0 {
		return SourceInfo{}, &CheckError{
			Field:   "max_replication_slots",
			Message: "max_replication_slots is 0; each backup holds a temporary replication slot so that the server keeps the WAL it needs.",
			Hint:    "Set max_replication_slots = 10 in postgresql.conf and restart the server.",
		}
	}
	if !info.Superuser && !info.Replication {
		return SourceInfo{}, &CheckError{
			Field:   "replication",
			Message: fmt.Sprintf("role %q has neither the REPLICATION attribute nor superuser rights; base backups and WAL streaming need REPLICATION.", info.User),
			Hint:    fmt.Sprintf("As a superuser, run: ALTER ROLE %s WITH REPLICATION;", quoteIdent(info.User)),
		}
	}

	const tablespacesSQL = `SELECT oid, spcname, pg_tablespace_location(oid) FROM pg_tablespace
WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname`
	rows, err = query(ctx, conn, tablespacesSQL, 3)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return SourceInfo{}, fmt.Errorf("check source: %w", ctxErr)
		}
		return SourceInfo{}, &CheckError{Field: "host", Message: fmt.Sprintf("could not list the tablespaces: %v.", err),
			Hint: "Check that the role may read pg_tablespace.", Err: err}
	}
	for _, r := range rows {
		oid, _ := strconv.ParseUint(r[0], 10, 32)
		info.Tablespaces = append(info.Tablespaces, Tablespace{OID: uint32(oid), Name: r[1], Location: r[2], Size: -1})
	}
	// pg_settings leaves out data_directory for a role that may not read it: no row, no error.
	rows, err = query(ctx, conn, `SELECT setting FROM pg_settings WHERE name = 'data_directory'`, 1)
	if err == nil && len(rows) == 1 {
		info.DataDirectory = rows[0][0]
	}
	return info, nil
}

// query runs sql with the simple protocol and returns its rows as text
// (NULL as "").
func query(ctx context.Context, conn *pgconn.PgConn, sql string, columns int) ([][]string, error) {
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("%d results, want 1", len(results))
	}
	var rows [][]string
	for _, row := range results[0].Rows {
		if len(row) != columns {
			return nil, fmt.Errorf("%d columns, want %d", len(row), columns)
		}
		r := make([]string, len(row))
		for i, v := range row {
			r[i] = string(v)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// parseCause returns why pgx could not parse a connection string, without
// the connection string, which pgx quotes with only best-effort masking.
func parseCause(err error) string {
	cause := err.Error()
	if i := strings.LastIndex(cause, "`: "); i >= 0 {
		cause = cause[i+3:]
	}
	return cause
}

// parseError explains a connection string that pgx cannot parse.
func parseError(err error) *CheckError {
	cause := parseCause(err)
	return &CheckError{
		Field:   "dsn",
		Message: fmt.Sprintf("the connection string could not be parsed: %s.", cause),
		Hint:    "Use a URL such as postgres://backstop:password@db.example.com:5432/postgres, or key=value pairs such as host=db.example.com port=5432 user=backstop dbname=postgres.",
		Err:     errors.New("parse connection string: " + cause),
	}
}

// connectError explains why a connection failed; replication is set for
// the replication connection, opened after a normal one worked.
func connectError(err error, cfg *pgconn.Config, replication bool) *CheckError {
	where := describeHost(cfg)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return serverRefusal(pgErr, cfg, where, replication)
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &CheckError{Field: "host", Err: err,
			Message: fmt.Sprintf("connection refused by %s: no server is listening there.", where),
			Hint:    "Check the host and port, that the server is running, and that its listen_addresses includes an address reachable from Backstop."}
	case errors.Is(err, syscall.ENOENT) && strings.HasPrefix(cfg.Host, "/"):
		return &CheckError{Field: "host", Err: err,
			Message: fmt.Sprintf("no server socket at %s.", where),
			Hint:    "Check the socket directory and port, and that the server is running."}
	case errors.As(err, &dnsErr):
		return &CheckError{Field: "host", Err: err,
			Message: fmt.Sprintf("host %q could not be resolved.", dnsErr.Name),
			Hint:    "Check the host name in the connection string."}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &CheckError{Field: "host", Err: err,
			Message: fmt.Sprintf("no answer from %s within %s.", where, connectTimeout),
			Hint:    "Check the host and port, and that no firewall drops connections from Backstop."}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return &CheckError{Field: "host", Err: err,
			Message: fmt.Sprintf("%s cannot be reached from Backstop's network.", where),
			Hint:    "Check the host name and the network route."}
	case strings.Contains(err.Error(), "tls") || strings.Contains(err.Error(), "TLS") || strings.Contains(err.Error(), "x509"):
		return &CheckError{Field: "dsn", Err: err,
			Message: fmt.Sprintf("the TLS handshake with %s failed: %v.", where, errors.Unwrap(err)),
			Hint:    "Check sslmode (and sslrootcert) in the connection string against the server's TLS setup."}
	}
	return &CheckError{Field: "host", Err: err,
		Message: fmt.Sprintf("could not connect to %s: %v.", where, errors.Unwrap(err)),
		Hint:    "Check the host and port in the connection string."}
}

// serverRefusal explains an error response received while connecting.
func serverRefusal(pgErr *pgconn.PgError, cfg *pgconn.Config, where string, replication bool) *CheckError {
	switch {
	case pgErr.Code == "28P01" && cfg.Password == "":
		return &CheckError{Field: "auth", Err: pgErr,
			Message: fmt.Sprintf("the server asks for a password for user %q, but the connection string has none.", cfg.User),
			Hint:    "Add the password to the connection string."}
	case pgErr.Code == "28P01":
		return &CheckError{Field: "auth", Err: pgErr,
			Message: fmt.Sprintf("password authentication failed for user %q.", cfg.User),
			Hint:    "Check the user name and password in the connection string."}
	case pgErr.Code == "28000" && replication && strings.Contains(pgErr.Message, "pg_hba.conf"):
		return &CheckError{Field: "replication", Err: pgErr,
			Message: fmt.Sprintf("the server's pg_hba.conf does not allow replication connections from Backstop for user %q: %s.", cfg.User, pgErr.Message),
			Hint:    fmt.Sprintf("Add a line such as \"host replication %s <backstop-address>/32 scram-sha-256\" to pg_hba.conf and reload the server (SELECT pg_reload_conf()).", cfg.User)}
	case pgErr.Code == "28000" && strings.Contains(pgErr.Message, "pg_hba.conf"):
		return &CheckError{Field: "auth", Err: pgErr,
			Message: fmt.Sprintf("the server's pg_hba.conf does not allow this connection: %s.", pgErr.Message),
			Hint:    "Add a host line for this user, database and Backstop's address to pg_hba.conf and reload the server."}
	case pgErr.Code == "28000":
		return &CheckError{Field: "auth", Err: pgErr,
			Message: fmt.Sprintf("the server refused user %q: %s.", cfg.User, pgErr.Message),
			Hint:    "Check the user name in the connection string."}
	case pgErr.Code == "3D000":
		return &CheckError{Field: "dsn", Err: pgErr,
			Message: fmt.Sprintf("database %q does not exist on %s.", cfg.Database, where),
			Hint:    "Check the database name in the connection string (the postgres database exists on most servers)."}
	case pgErr.Code == "42501" && replication:
		return &CheckError{Field: "replication", Err: pgErr,
			Message: fmt.Sprintf("the server refused a replication connection for user %q: %s.", cfg.User, pgErr.Message),
			Hint:    fmt.Sprintf("As a superuser, run: ALTER ROLE %s WITH REPLICATION;", quoteIdent(cfg.User))}
	case pgErr.Code == "53300" && strings.Contains(pgErr.Message, "max_wal_senders"):
		return &CheckError{Field: "max_wal_senders", Err: pgErr,
			Message: fmt.Sprintf("every WAL sender slot is in use: %s.", pgErr.Message),
			Hint:    "Raise max_wal_senders in postgresql.conf and restart the server, or stop an unused replication client."}
	case pgErr.Code == "53300":
		return &CheckError{Field: "host", Err: pgErr,
			Message: fmt.Sprintf("%s has no free connection slots: %s.", where, pgErr.Message),
			Hint:    "Raise max_connections on the server, or close idle connections."}
	case pgErr.Code == "57P03":
		return &CheckError{Field: "host", Err: pgErr,
			Message: fmt.Sprintf("the server at %s is not accepting connections yet: %s.", where, pgErr.Message),
			Hint:    "Try again once the server has started."}
	}
	field := "host"
	if replication {
		field = "replication"
	}
	return &CheckError{Field: field, Err: pgErr,
		Message: fmt.Sprintf("the server at %s refused the connection: %s (SQLSTATE %s).", where, pgErr.Message, pgErr.Code),
		Hint:    "Check the server log for details."}
}

// describeHost names the server a connection went to.
func describeHost(cfg *pgconn.Config) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return fmt.Sprintf("the Unix socket %s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}
