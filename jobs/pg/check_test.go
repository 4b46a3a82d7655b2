package pg_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
)

func checkSource(t *testing.T, dsn string) (pg.SourceInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pg.CheckSource(ctx, dsn)
}

func TestCheckSourceOK(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	info, err := checkSource(t, c.DSN(""))
	if err != nil {
		t.Fatalf("CheckSource(%s) = %v, want no error", pg.MaskDSN(c.DSN("")), err)
	}
	if info.VersionNum < 150000 || info.ServerVersion == "" {
		t.Errorf("CheckSource().VersionNum, ServerVersion = %d, %q, want >= 150000 and a version", info.VersionNum, info.ServerVersion)
	}
	if _, err := strconv.ParseUint(info.SystemID, 10, 64); err != nil {
		t.Errorf("CheckSource().SystemID = %q, want a decimal number", info.SystemID)
	}
	if info.Timeline != 1 || info.XLogPos == 0 {
		t.Errorf("CheckSource().Timeline, XLogPos = %d, %s, want 1 and a position", info.Timeline, info.XLogPos)
	}
	if info.WALLevel != "replica" || info.MaxWALSenders != 10 {
		t.Errorf("CheckSource().WALLevel, MaxWALSenders = %q, %d, want replica, 10", info.WALLevel, info.MaxWALSenders)
	}
	if !info.DataChecksums {
		t.Errorf("CheckSource().DataChecksums = false, want true")
	}
	if info.WALSegmentSize != 16<<20 {
		t.Errorf("CheckSource().WALSegmentSize = %d, want %d", info.WALSegmentSize, 16<<20)
	}
	if info.User != "postgres" || !info.Superuser {
		t.Errorf("CheckSource().User, Superuser = %q, %v, want postgres, true", info.User, info.Superuser)
	}
	if len(info.Tablespaces) != 0 {
		t.Errorf("CheckSource().Tablespaces = %v, want none", info.Tablespaces)
	}
}

// wantCheckError checks that err is a *CheckError for field whose text
// holds every one of wants.
func wantCheckError(t *testing.T, dsn string, err error, field string, wants ...string) {
	t.Helper()
	var ce *pg.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("CheckSource(%s) = %v, want a *CheckError", pg.MaskDSN(dsn), err)
	}
	if ce.Field != field {
		t.Errorf("CheckSource(%s).Field = %q, want %q (error: %v)", pg.MaskDSN(dsn), ce.Field, field, ce)
	}
	if ce.Message == "" || ce.Hint == "" {
		t.Errorf("CheckSource(%s) = %#v, want a message and a hint", pg.MaskDSN(dsn), ce)
	}
	for _, w := range wants {
		if !strings.Contains(ce.Error(), w) {
			t.Errorf("CheckSource(%s) = %q, want it to mention %q", pg.MaskDSN(dsn), ce.Error(), w)
		}
	}
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(ce.Error(), pw) {
			t.Errorf("CheckSource(%s) = %q, which reveals the password", pg.MaskDSN(dsn), ce.Error())
		}
	}
}

func TestCheckSourceWALLevelMinimal(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.Setting("wal_level", "minimal"), pgtest.Setting("max_wal_senders", "0"))
	_, err := checkSource(t, c.DSN(""))
	wantCheckError(t, c.DSN(""), err, "wal_level")
	want := `wal_level is "minimal"; backups need "replica" or "logical". Set wal_level = replica in postgresql.conf and restart the server.`
	if err == nil || err.Error() != want {
		t.Errorf("CheckSource() = %v, want %q", err, want)
	}
}

func TestCheckSourceRefusals(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	pgtest.Exec(t, c.DSN(""),
		`DROP ROLE IF EXISTS check_norepl`,
		`DROP ROLE IF EXISTS check_repl`,
		`CREATE ROLE check_norepl LOGIN PASSWORD 'norepl-pw'`,
		`CREATE ROLE check_repl LOGIN REPLICATION PASSWORD 'repl-pw'`)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	dsn := func(user, pw string, port int) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(user, pw), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path: "/postgres", RawQuery: "sslmode=disable"}
		return u.String()
	}
	tests := []struct {
		name  string
		dsn   string
		field string
		wants []string
	}{
		{"no-replication-role", dsn("check_norepl", "norepl-pw", c.Port()), "replication", []string{`role "check_norepl"`, "REPLICATION", `ALTER ROLE "check_norepl" WITH REPLICATION`}},
		{"wrong-password", dsn("postgres", "not-the-password", c.Port()), "auth", []string{`password authentication failed for user "postgres"`}},
		{"no-password", "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.Port()) + "/postgres?sslmode=disable", "auth", []string{"has none"}},
		{"unknown-role", dsn("nobody_here", "pw", c.Port()), "auth", []string{"nobody_here"}},
		{"unknown-database", "postgres://postgres:" + sharedPassword + "@127.0.0.1:" + strconv.Itoa(c.Port()) + "/nodb?sslmode=disable", "dsn", []string{`database "nodb" does not exist`}},
		{"closed-port", dsn("postgres", "pw", closedPort), "host", []string{"connection refused", "127.0.0.1:" + strconv.Itoa(closedPort)}},
		{"bad-url-port", "postgres://postgres:secret@127.0.0.1:notaport/postgres", "dsn", []string{"could not be parsed", "invalid port"}},
		{"bad-keyword-value", "host=127.0.0.1 password='secret", "dsn", []string{"could not be parsed", "unterminated quoted string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := checkSource(t, tt.dsn)
			wantCheckError(t, tt.dsn, err, tt.field, tt.wants...)
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("CheckSource(%s) = %q, which reveals the password", pg.MaskDSN(tt.dsn), err)
			}
		})
	}

	t.Run("replication-role", func(t *testing.T) {
		t.Parallel()
		d := dsn("check_repl", "repl-pw", c.Port())
		info, err := checkSource(t, d)
		if err != nil {
			t.Fatalf("CheckSource(%s) = %v, want no error", pg.MaskDSN(d), err)
		}
		if info.User != "check_repl" || info.Superuser || !info.Replication {
			t.Errorf("CheckSource(%s) User, Superuser, Replication = %q, %v, %v, want check_repl, false, true",
				pg.MaskDSN(d), info.User, info.Superuser, info.Replication)
		}
	})
}

func TestCheckSourceCanceled(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := pg.CheckSource(ctx, c.DSN(""))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CheckSource(canceled ctx) = %v, want context.Canceled", err)
	}
}
