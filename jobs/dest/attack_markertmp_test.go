package dest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAttackMarkerTmpSymlink: a claimed directory belongs to the server's OS user (ClaimDir
// chowns it) while Backstop, often root, goes on rewriting the marker through a temporary
// file beside it. Whoever owns the directory can plant that temporary name as a link to
// any file; writing the marker must not follow it and overwrite that file.
func TestAttackMarkerTmpSymlink(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "pg_control")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "restore")
	token := NewToken()
	c, err := ClaimDir(dir, token, "restore 1", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "."+MarkerName+".tmp")); err != nil {
		t.Fatal(err)
	}
	c.Record("base", "global")
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious" {
		t.Errorf("writing the marker through a planted link changed %s: %q, %v", victim, b, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, MarkerName)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the marker is not a regular file after Record: %v, %v", fi, err)
	}
}
