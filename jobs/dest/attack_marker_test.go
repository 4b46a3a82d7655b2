package dest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestAttackMarkerEntriesEscape: the marker lives in a directory the restored server's OS
// user can write (a superuser of the restored instance can read its token with
// pg_read_file and rewrite it with COPY … TO). Remove runs as Backstop (root), so a
// rewritten marker whose entries climb out of the directory must not make it remove
// anything outside.
func TestAttackMarkerEntriesEscape(t *testing.T) {
	base := t.TempDir()
	precious := filepath.Join(base, "precious")
	if err := os.MkdirAll(filepath.Join(precious, "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(base, "restore")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	token := NewToken()
	if _, err := ClaimDir(existing, token, "restore 1", -1, -1); err != nil {
		t.Fatal(err)
	}
	for _, entries := range [][]string{{"../precious"}, {"x/../../precious"}, {".."}, {"/../precious"}} {
		b, _ := json.Marshal(marker{Token: token, Restore: "restore 1", Entries: entries})
		if err := os.WriteFile(filepath.Join(existing, MarkerName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		err := Remove(existing, token, false)
		if _, serr := os.Stat(filepath.Join(precious, "base")); serr != nil {
			t.Fatalf("entries %q: Remove = %v removed %s outside the restore's directory", entries, err, precious)
		}
		if !errors.Is(err, ErrNotOurs) {
			t.Errorf("entries %q: Remove = %v, want ErrNotOurs", entries, err)
		}
	}
}
