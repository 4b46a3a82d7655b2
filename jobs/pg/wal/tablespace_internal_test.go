package wal

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTablespaceCreation(t *testing.T) {
	t.Parallel()
	create := func(oid uint32, path string) []byte { return append(append(le32(oid), path...), 0) }
	tests := []struct {
		name    string
		info    uint8
		data    []byte
		want    TablespaceCreation
		ok      bool
		wantErr bool
	}{
		{"create", 0x00, create(16390, "/srv/ts"), TablespaceCreation{LSN: 0x3A000028, EndLSN: 0x3A000060, PrevLSN: 0x39FFFFF0, Timeline: 2, OID: 16390, Location: "/srv/ts"}, true, false},
		{"in-place", 0x00, create(16391, ""), TablespaceCreation{LSN: 0x3A000028, EndLSN: 0x3A000060, PrevLSN: 0x39FFFFF0, Timeline: 2, OID: 16391}, true, false},
		{"padding after the NUL", 0x00, append(create(7, "/a"), 0, 0), TablespaceCreation{LSN: 0x3A000028, EndLSN: 0x3A000060, PrevLSN: 0x39FFFFF0, Timeline: 2, OID: 7, Location: "/a"}, true, false},
		{"drop", 0x10, le32(16390), TablespaceCreation{}, false, false},
		{"short", 0x00, le32(16390), TablespaceCreation{}, false, true},
		{"no NUL", 0x00, append(le32(16390), "/srv/ts"...), TablespaceCreation{}, false, true},
		{"too long", 0x00, create(1, "/"+strings.Repeat("x", 1024)), TablespaceCreation{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Record{PrevLSN: 0x39FFFFF0, LSN: 0x3A000028, EndLSN: 0x3A000060, Timeline: 2, RMID: RMTablespace, Info: tt.info, MainData: tt.data}
			got, ok, err := parseTablespaceCreation(rec)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("parseTablespaceCreation(%s) error = %v, want error %t (ErrMalformed)", tt.name, err, tt.wantErr)
			}
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseTablespaceCreation(%s) = %+v, %t, want %+v, %t", tt.name, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseTablespaceCreation: any main data is refused or read without panic, and a
// location never holds its terminating NUL.
func FuzzParseTablespaceCreation(f *testing.F) {
	f.Add(append(append(le32(16390), "/srv/ts"...), 0))
	f.Add(le32(1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		tc, ok, err := parseTablespaceCreation(Record{RMID: RMTablespace, MainData: data})
		if err == nil && ok && (strings.IndexByte(tc.Location, 0) >= 0 || len(tc.Location) >= maxTablespacePath) {
			t.Errorf("parseTablespaceCreation(%q) location %q", data, tc.Location)
		}
	})
}
