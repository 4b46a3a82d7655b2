package dest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheckDir(t *testing.T) {
	base := t.TempDir()
	nonEmpty := filepath.Join(base, "full")
	if err := os.MkdirAll(filepath.Join(nonEmpty, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(base, "pgdata")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(live, link); err != nil {
		t.Fatal(err)
	}
	protected := []Protected{{Path: live, What: "the data directory of a running PostgreSQL server"}}
	tests := []struct {
		name, dir string
		want      string // substring of the refusal; "" accepts
	}{
		{"absent", filepath.Join(base, "new", "deeper"), ""},
		{"empty", empty, ""},
		{"relative", "restore/here", "absolute path"},
		{"not empty", nonEmpty, "is not empty"},
		{"a file", file, "not a directory"},
		{"root", "/", "system directory"},
		{"etc", "/etc/backstop", "inside the system directory /etc"},
		{"var lib", "/var/lib", "system directory"},
		{"the live data directory", live, "is the data directory"},
		{"inside the live data directory", filepath.Join(live, "base", "x"), "is inside the data directory"},
		{"above the live data directory", base, "contains the data directory"},
		{"through a symbolic link", filepath.Join(link, "x"), "is inside the data directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDir(tt.dir, protected)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckDir(%s) = %v, want nil", tt.dir, err)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || de.Field != "dir" || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckDir(%s) = %v, want a dir refusal containing %q", tt.dir, err, tt.want)
			}
		})
	}
}

// TestClaimRefusedChangesNothing: a claim on a directory that holds something, or on a
// file, fails and leaves what was there byte for byte, and Remove without the marker
// removes nothing.
func TestClaimRefusedChangesNothing(t *testing.T) {
	base := t.TempDir()
	full := filepath.Join(base, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "precious"), []byte("data"), 0o600)
	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("also precious"), 0o600)
	for _, dir := range []string{full, file} {
		if _, err := ClaimDir(dir, NewToken(), "test", -1, -1); err == nil {
			t.Fatalf("ClaimDir(%s) = nil, want a refusal", dir)
		}
		if err := Remove(dir, "anything", true); !errors.Is(err, ErrNotOurs) {
			t.Errorf("Remove(%s) = %v, want ErrNotOurs", dir, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(full, "precious")); err != nil || string(b) != "data" {
		t.Errorf("precious = %q, %v after refused claims; want it untouched", b, err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "also precious" {
		t.Errorf("file = %q, %v after refused claims; want it untouched", b, err)
	}
}

func TestClaimAndRemove(t *testing.T) {
	t.Run("created directory goes whole, with nothing left of it", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b", "restore")
		token := NewToken()
		c, err := ClaimDir(dir, token, "restore 1", -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Created() {
			t.Error("Created() = false for a new directory")
		}
		fi, err := os.Stat(filepath.Dir(dir))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("parent mode = %v, %v; want 0755 so that the server's OS user can reach the directory", fi.Mode().Perm(), err)
		}
		os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600)
		if err := Remove(dir, "another token", true); !errors.Is(err, ErrNotOurs) {
			t.Errorf("Remove with another token = %v, want ErrNotOurs", err)
		}
		if err := Remove(dir, token, true); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat after Remove = %v, want not exist", err)
		}
	})
	t.Run("parents are reachable whatever the umask", func(t *testing.T) {
		old := syscall.Umask(0o077)
		defer syscall.Umask(old)
		dir := filepath.Join(t.TempDir(), "srv", "restore", "orders")
		if _, err := ClaimDir(dir, NewToken(), "restore 4", -1, -1); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s mode = %v, %v; want 0755 under umask 077", p, fi.Mode().Perm(), err)
			}
		}
	})
	t.Run("existing directory keeps what the restore did not write", func(t *testing.T) {
		dir := t.TempDir()
		token := NewToken()
		c, err := ClaimDir(dir, token, "restore 2", -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Record("base/1/1234", "PG_VERSION"); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "base", "1"), 0o700)
		os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600)
		// Someone else's file, placed after the claim.
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
		if err := Remove(dir, token, false); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || entries[0].Name() != "notes.txt" {
			t.Errorf("left %v, want only notes.txt", entries)
		}
	})
	t.Run("a directory placed at a deleted restore's path survives", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "restore")
		token := NewToken()
		if _, err := ClaimDir(dir, token, "restore 3", -1, -1); err != nil {
			t.Fatal(err)
		}
		if err := Remove(dir, token, true); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "new-owner"), []byte("x"), 0o600)
		if err := Remove(dir, token, true); !errors.Is(err, ErrNotOurs) {
			t.Errorf("second Remove = %v, want ErrNotOurs", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "new-owner")); err != nil {
			t.Errorf("the new directory's file is gone: %v", err)
		}
	})
}

func TestCheckPort(t *testing.T) {
	for _, tt := range []struct {
		port  int
		inUse map[int]string
		want  string
	}{
		{80, nil, "from 1024 to 65535"},
		{70000, nil, "from 1024 to 65535"},
		{5432, map[int]string{5432: "source orders"}, "taken by source orders"},
	} {
		err := CheckPort(tt.port, tt.inUse)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckPort(%d) = %v, want %q", tt.port, err, tt.want)
		}
	}
	p := SuggestPort(nil)
	if err := CheckPort(p, nil); err != nil {
		t.Errorf("CheckPort(SuggestPort() = %d) = %v, want nil", p, err)
	}
}

// TestRemoveTrustsTheCatalogForCreated: a marker rewritten to claim that the restore
// created a directory that existed before (the server's OS user can write the marker)
// does not make Remove delete that directory whole.
func TestRemoveTrustsTheCatalogForCreated(t *testing.T) {
	dir := t.TempDir()
	token := NewToken()
	c, err := ClaimDir(dir, token, "restore 5", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record("PG_VERSION"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "theirs"), []byte("x"), 0o600)
	c.m.Created = true // as a forged marker would say
	if err := c.write(); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, token, false); err != nil { // the catalog says it existed before
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "theirs")); err != nil {
		t.Errorf("a forged marker made Remove delete the directory whole: %v", err)
	}
}
