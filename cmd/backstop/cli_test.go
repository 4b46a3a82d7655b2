package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// reachableDir returns a new directory that the server's OS user can enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openCatalog opens a home's catalog, as another process would.
func openCatalog(t *testing.T, home string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(home, "catalog.db"))
	if err != nil {
		t.Fatalf("store.Open() = %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// decodeJSON parses a command's --json output into v.
func decodeJSON(t *testing.T, what, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: stdout is not JSON: %v\n%s", what, err, stdout)
	}
	if dec.More() {
		t.Fatalf("%s: stdout holds more than one JSON value:\n%s", what, stdout)
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

func TestCLI(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	home := filepath.Join(t.TempDir(), "home")

	var initOut map[string]string
	decodeJSON(t, "init --json", mustBackstop(t, home, "init", "--json"), &initOut)
	wantInit := map[string]string{"home": home, "repository": filepath.Join(home, "repository"), "key_file": filepath.Join(home, "repository.key")}
	if s3srv != nil {
		wantInit["repository"] = homeStorage(t, home).String()
	}
	if diff := cmp.Diff(wantInit, initOut); diff != "" {
		t.Errorf("init --json mismatch (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(wantInit["key_file"]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	// The trusted cluster ignores the password, which is there to be masked.
	dsn := fmt.Sprintf("postgres://postgres:s3cret-pw@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
	out := mustBackstop(t, home, "source", "add", "main", dsn)
	sourceID := lastID(t, "source add", out)
	if !strings.Contains(out, "Added source main") || strings.Contains(out, "s3cret-pw") {
		t.Errorf("source add printed %q, want it to confirm the source without its password", out)
	}
	out = mustBackstop(t, home, "backup", "main")
	backupID := lastID(t, "backup main", out)
	st := openCatalog(t, home)
	b, err := st.Backup(context.Background(), backupID)
	if err != nil || b.State != store.BackupComplete || b.SourceID != sourceID {
		t.Fatalf("Backup(%d) printed by `backup main` = source %d, %s, %v; want source %d, complete", backupID, b.SourceID, b.State, err, sourceID)
	}
	if want := fmt.Sprintf("Backup %d of main complete", backupID); !strings.Contains(out, want) {
		t.Errorf("backup main printed %q, want %q", out, want)
	}

	t.Run("source add bad dsn", func(t *testing.T) {
		stdout, stderr, code := runBinary(t, home, "source", "add", "broken", "host=127.0.0.1 port=notaport")
		t.Logf("stderr: %s", stderr)
		if code == 0 {
			t.Errorf("backstop source add (bad DSN) exited 0, want non-zero; stdout %q", stdout)
		}
		for _, want := range []string{"backstop: ", "connection string could not be parsed", "invalid port", "hint: "} {
			if !strings.Contains(stderr, want) {
				t.Errorf("backstop source add (bad DSN) stderr = %q, want it to contain %q", stderr, want)
			}
		}
		if strings.Count(stderr, "Use a URL such as") > 1 {
			t.Errorf("backstop source add (bad DSN) stderr repeats its hint:\n%s", stderr)
		}
		var list []map[string]any
		decodeJSON(t, "source list --json", mustBackstop(t, home, "source", "list", "--json"), &list)
		if len(list) != 1 || list[0]["name"] != "main" {
			t.Errorf("source list after a refused add = %v, want only main", list)
		}
	})

	t.Run("backup unknown source", func(t *testing.T) {
		before, err := st.Jobs(context.Background(), store.JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = backstop(t, home, "backup", "nosuch")
		t.Logf("backstop backup nosuch = %v", err)
		if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "not found") {
			t.Errorf("backstop backup nosuch = %v, want an error naming the source and saying it is not found", err)
		}
		if err != nil && strings.Count(err.Error(), "nosuch") != 1 {
			t.Errorf("backstop backup nosuch = %q, want the source named once", err)
		}
		after, err := st.Jobs(context.Background(), store.JobFilter{})
		if err != nil || len(after) != len(before) {
			t.Errorf("Jobs() after backup of an unknown source = %d jobs, %v, want %d", len(after), err, len(before))
		}
	})

	t.Run("json", func(t *testing.T) {
		var srcs []map[string]any
		decodeJSON(t, "source list --json", mustBackstop(t, home, "source", "list", "--json"), &srcs)
		if len(srcs) != 1 {
			t.Fatalf("source list --json = %v, want one source", srcs)
		}
		src := srcs[0]
		if src["id"] != json.Number(fmt.Sprint(sourceID)) || src["name"] != "main" || strings.Contains(fmt.Sprint(src["dsn"]), "s3cret-pw") {
			t.Errorf("source list --json = %v, want source %d named main with its password masked", src, sourceID)
		}
		if text := mustBackstop(t, home, "source", "list"); strings.Contains(text, "s3cret-pw") {
			t.Errorf("source list shows the password:\n%s", text)
		}

		var list []map[string]any
		decodeJSON(t, "backup list --json", mustBackstop(t, home, "backup", "list", "--json"), &list)
		found := false
		for _, e := range list {
			if e["id"] == json.Number(fmt.Sprint(backupID)) {
				found = true
				if e["state"] != "complete" || e["repo_id"] != b.RepoID || e["end_lsn"] != b.EndLSN {
					t.Errorf("backup list --json entry = %v, want complete, %s, end %s", e, b.RepoID, b.EndLSN)
				}
			}
		}
		if !found {
			t.Errorf("backup list --json = %v, want backup %d listed", list, backupID)
		}

		var nb map[string]any
		decodeJSON(t, "backup main --json", mustBackstop(t, home, "backup", "main", "--json"), &nb)
		if nb["state"] != "complete" || nb["source_id"] != json.Number(fmt.Sprint(sourceID)) {
			t.Errorf("backup main --json = %v, want a complete backup of source %d", nb, sourceID)
		}
		id, _ := nb["id"].(json.Number).Int64()
		if got, err := st.Backup(context.Background(), id); err != nil || got.State != store.BackupComplete {
			t.Errorf("Backup(%d) from backup --json = %s, %v, want complete", id, got.State, err)
		}
	})

	t.Run("restore into non-empty dir", func(t *testing.T) {
		into := filepath.Join(reachableDir(t), "data")
		if err := os.MkdirAll(into, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(into, "keep.txt"), []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshotTree(t, into)
		_, _, err := backstop(t, home, "restore", "--backup", fmt.Sprint(backupID), "--into", into)
		if err == nil || !strings.Contains(err.Error(), into) || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("backstop restore --into %s (non-empty) = %v, want an error naming the directory and saying it is not empty", into, err)
		}
		if diff := cmp.Diff(before, snapshotTree(t, into)); diff != "" {
			t.Errorf("non-empty target changed by a refused restore (-before +after):\n%s", diff)
		}
	})

	t.Run("restore", func(t *testing.T) {
		into := filepath.Join(reachableDir(t), "data")
		var res struct {
			Into     string `json:"into"`
			Files    int64  `json:"files"`
			Bytes    int64  `json:"bytes"`
			Verified bool   `json:"verified"`
		}
		decodeJSON(t, "restore --json", mustBackstop(t, home, "restore", "--backup", fmt.Sprint(backupID), "--into", into, "--verify", "--json"), &res)
		if res.Into != into || res.Files != b.Stats.FileCount || res.Bytes != b.Stats.SourceBytes || !res.Verified {
			t.Errorf("restore --json = %+v, want into %s, %d files, %d bytes, verified", res, into, b.Stats.FileCount, b.Stats.SourceBytes)
		}
		if _, err := os.Stat(filepath.Join(into, "PG_VERSION")); err != nil {
			t.Errorf("restored directory: %v", err)
		}
		// In text mode, the last line is the restore job's ID.
		into2 := filepath.Join(reachableDir(t), "data")
		out := mustBackstop(t, home, "restore", "--backup", fmt.Sprint(backupID), "--into", into2)
		jobID := lastID(t, "restore", out)
		job, err := st.Job(context.Background(), jobID)
		if err != nil || job.Kind != "restore" || job.State != store.JobSucceeded {
			t.Errorf("Job(%d) printed by restore = %s %s, %v; want a succeeded restore", jobID, job.Kind, job.State, err)
		}
		if !strings.Contains(out, "checked against its CRC-32C") || strings.Contains(out, "pg_verifybackup") {
			t.Errorf("restore printed %q, want it to say every file was checked as written, and no pg_verifybackup without --verify", out)
		}
	})
}
