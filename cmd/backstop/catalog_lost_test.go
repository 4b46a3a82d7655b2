package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/store"
)

// copyFile copies src to dst, if src exists.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLostCatalogIsRefused(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	// A fresh home with an empty repository works: the catalog is created, not lost.
	mustBackstop(t, home, "backup", "list")
	dsn := fmt.Sprintf("postgres://postgres:lost-pw-7@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
	mustBackstop(t, home, "source", "add", "main", dsn)
	backupID := lastID(t, "backup main", mustBackstop(t, home, "backup", "main"))

	catalog := filepath.Join(home, "catalog.db")
	raw, err := os.ReadFile(catalog)
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(catalog + "-wal")
	if strings.Contains(string(raw)+string(wal), "lost-pw-7") {
		t.Errorf("catalog.db holds the source's password in plaintext")
	}
	saved := filepath.Join(t.TempDir(), "catalog.db")
	for _, sfx := range []string{"", "-wal"} {
		copyFile(t, catalog+sfx, saved+sfx)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(catalog + sfx)
	}

	for _, args := range [][]string{{"backup", "list"}, {"source", "list"}, {"serve", "--listen", "127.0.0.1:0"}} {
		stdout, stderr, code := runBinary(t, home, args...)
		if code == 0 || !strings.Contains(stderr, "catalog") || !strings.Contains(stderr, "is missing") ||
			!strings.Contains(stderr, "1 backup manifest") || !strings.Contains(stderr, "Restore catalog.db") ||
			!strings.Contains(stderr, "backstop catalog rebuild") {
			t.Errorf("backstop %s without catalog.db = exit %d, stdout %q, stderr %q; want a refusal saying what happened and how to recover",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
	if _, err := os.Stat(catalog); !os.IsNotExist(err) {
		t.Errorf("a refused command left a catalog.db behind: %v", err)
	}

	// An empty catalog created in its place (by an older Backstop, or by hand) is refused too.
	st, err := store.Open(t.Context(), catalog)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, stderr, code := runBinary(t, home, "backup", "list"); code == 0 || !strings.Contains(stderr, "holds no source") {
		t.Errorf("backup list on an empty catalog = exit %d, stderr %q; want a refusal", code, stderr)
	}
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(catalog + sfx)
	}

	// The copy put back: everything is there again.
	for _, sfx := range []string{"", "-wal"} {
		copyFile(t, saved+sfx, catalog+sfx)
	}
	if out := mustBackstop(t, home, "backup", "list"); !strings.Contains(out, fmt.Sprint(backupID)) {
		t.Errorf("backup list after restoring catalog.db = %q, want backup %d", out, backupID)
	}
}
