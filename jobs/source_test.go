package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// closedPort returns a port on 127.0.0.1 that nothing listens on (a moment ago).
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestRegisterSourceRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	minimal := pgtest.Start(t, pgtest.Setting("wal_level", "minimal"), pgtest.Setting("max_wal_senders", "0"))
	// A role that may log in but has neither REPLICATION nor superuser rights.
	execSQL(t, c.DSN(""),
		`DROP ROLE IF EXISTS bs_norepl`,
		`CREATE ROLE bs_norepl LOGIN NOSUPERUSER NOREPLICATION`)
	noRepl := fmt.Sprintf("postgres://bs_norepl@127.0.0.1:%d/postgres?sslmode=disable", c.Port())

	e := setup(t, jobs.Options{})
	existing := e.register(t, "existing", c.DSN(""))

	tests := []struct {
		name, source, dsn string
		// Exactly one of checkField (a *pg.CheckError) and validationField (a
		// *store.ValidationError) is set.
		checkField, validationField string
		// The message must mention every one of these, and none of hide.
		mention, hide []string
	}{
		{name: "dsn syntax", source: "a", dsn: "host=127.0.0.1 port=notaport",
			checkField: "dsn", mention: []string{"could not be parsed", "port"}},
		{name: "dsn syntax with password", source: "a", dsn: "postgres://u:s3cret-pw@127.0.0.1:notaport/db",
			checkField: "dsn", mention: []string{"could not be parsed"}, hide: []string{"s3cret-pw"}},
		{name: "dsn url escape", source: "a", dsn: "postgres://postgres@127.0.0.1:5432/%zz",
			checkField: "dsn", mention: []string{"could not be parsed"}},
		{name: "wal_level minimal", source: "a", dsn: minimal.DSN(""),
			checkField: "wal_level", mention: []string{`"minimal"`, "wal_level = replica"}},
		{name: "role without replication", source: "a", dsn: noRepl,
			checkField: "replication", mention: []string{`"bs_norepl"`, "REPLICATION", "ALTER ROLE"}},
		{name: "unreachable port", source: "a",
			dsn:        fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", closedPort(t)),
			checkField: "host", mention: []string{"connection refused", "127.0.0.1"}},
		{name: "duplicate name", source: existing.Name, dsn: c.DSN(""),
			validationField: "name", mention: []string{`"existing"`, "already exists"}},
		// The name is checked before anything connects: a bad DSN with a taken name
		// reports the name.
		{name: "duplicate name bad dsn", source: existing.Name, dsn: "host=127.0.0.1 port=notaport",
			validationField: "name", mention: []string{"already exists"}},
		{name: "invalid name", source: "Bad Name!", dsn: c.DSN(""),
			validationField: "name", mention: []string{"lowercase letters"}},
		{name: "empty name", source: "", dsn: c.DSN(""),
			validationField: "name", mention: []string{"required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := e.store.Sources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			src, err := jobs.RegisterSource(ctx, e.store, tc.source, tc.dsn)
			if err == nil {
				t.Fatalf("RegisterSource(%q, %s) = source %d, want an error", tc.source, pg.MaskDSN(tc.dsn), src.ID)
			}
			var ce *pg.CheckError
			var ve *store.ValidationError
			switch {
			case tc.checkField != "":
				if !errors.As(err, &ce) || ce.Field != tc.checkField {
					t.Errorf("RegisterSource(%q) = %v (%T), want a *pg.CheckError on field %q", tc.source, err, err, tc.checkField)
				} else if ce.Hint == "" {
					t.Errorf("RegisterSource(%q) = %v, want a hint", tc.source, err)
				}
			default:
				if !errors.As(err, &ve) || ve.Field != tc.validationField {
					t.Errorf("RegisterSource(%q) = %v (%T), want a *store.ValidationError on field %q", tc.source, err, err, tc.validationField)
				}
			}
			t.Logf("RegisterSource(%q) = %v", tc.source, err)
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("RegisterSource(%q) = %q, want it to mention %s", tc.source, err, m)
				}
			}
			for _, h := range tc.hide {
				if strings.Contains(err.Error(), h) {
					t.Errorf("RegisterSource(%q) = %q, want it not to show %s", tc.source, err, h)
				}
			}
			after, err := e.store.Sources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("sources changed by a refused registration (-before +after):\n%s", diff)
			}
		})
	}
	// The refusals wrote nothing else either: no jobs, no backups.
	jobsList, err := e.store.Jobs(ctx, store.JobFilter{})
	if err != nil || len(jobsList) != 0 {
		t.Errorf("Jobs() = %d jobs, %v, want none", len(jobsList), err)
	}
}

// snapshotTree records every entry below dir: type, mode, size, modification time and content.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %s", fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRestoreIntoNonEmptyDirectory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "not_empty")
	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, b := e.backup(t, src)

	into := filepath.Join(reachableDir(t), "data")
	if err := os.MkdirAll(filepath.Join(into, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"PG_VERSION": "precious\n", "sub/notes.txt": "keep me\n"} {
		if err := os.WriteFile(filepath.Join(into, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotTree(t, into)

	job, err := e.runner.Run(ctx, restoreParams(b.ID, into))
	var de *dest.Error
	if !errors.As(err, &de) || de.Field != "dir" {
		t.Errorf("Run(restore into non-empty %s) = %v, want a *dest.Error on the directory", into, err)
	}
	if err != nil && !strings.Contains(err.Error(), into) {
		t.Errorf("Run(restore into non-empty %s) = %q, want it to name the directory", into, err)
	}
	if job.State != store.JobFailed {
		t.Errorf("restore job state = %s, want %s", job.State, store.JobFailed)
	}
	if diff := cmp.Diff(before, snapshotTree(t, into)); diff != "" {
		t.Errorf("non-empty target changed by a refused restore (-before +after):\n%s", diff)
	}
}
