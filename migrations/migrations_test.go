package migrations

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestFiles checks that the migrations are numbered from 1 without gaps,
// named like 0001_init.sql, and not empty.
func TestFiles(t *testing.T) {
	t.Parallel()
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no migrations embedded")
	}
	name := regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)
	for i, e := range entries { // ReadDir sorts by name
		m := name.FindStringSubmatch(e.Name())
		if m == nil {
			t.Errorf("%s: want a name like 0001_init.sql", e.Name())
			continue
		}
		if v, _ := strconv.Atoi(m[1]); v != i+1 {
			t.Errorf("%s: version %d, want %d", e.Name(), v, i+1)
		}
		b, err := fs.ReadFile(FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) == "" {
			t.Errorf("%s is empty", e.Name())
		}
	}
}
