package web

import (
	"strings"
	"testing"
)

// TestSourcePageTablespaceNote: a tablespace created after the newest backup is named on
// the source page with its location and LSN, and what it means for restores.
func TestSourcePageTablespaceNote(t *testing.T) {
	t.Parallel()
	vm := SourceVM{ID: 1, Name: "orders-db", Now: sampleNow(),
		Tablespaces: []TablespaceNoteVM{{OID: 16390, Location: "/srv/ts", LSN: "0/3A000028"}}}
	d := parse(t, SourcePage(vm))
	note := d.one("tablespace-note")
	text := strings.Join(strings.Fields(text(note)), " ")
	for _, want := range []string{"Tablespace 16390 created at", "/srv/ts", "0/3A000028", "after the newest backup",
		"restores past that point are refused until a new base backup"} {
		if !strings.Contains(text, want) {
			t.Errorf("tablespace note %q lacks %q", text, want)
		}
	}
	if n := len(parse(t, SourcePage(SourceVM{ID: 1, Name: "orders-db", Now: sampleNow()})).all(hasAttr("data-testid", "tablespace-note"))); n != 0 {
		t.Errorf("source page without tablespace creations shows %d notes", n)
	}
}
