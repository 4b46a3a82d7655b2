package pg

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/store/pgwal"
)

// testSegSize keeps spool test files small (they are sparse anyway).
const testSegSize = 1 << 20

// spoolFile is a file to create in a test spool: size bytes, or content.
type spoolFile struct {
	name    string
	size    int64
	content string
}

func makeSpool(t *testing.T, files ...spoolFile) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if strings.HasSuffix(f.name, "/") {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if f.content == "" {
			if err := os.Truncate(p, f.size); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// seg names segment segNo of timeline tli (1 MiB segments).
func seg(tli uint32, segNo uint64) string {
	return pgwal.SegmentName(tli, segNo, testSegSize)
}

const history2 = "1\t0/4080000\tno recovery target specified\n"

func TestScanSpool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		files        []spoolFile
		wantNewest   string // "" for none
		wantFinished []string
		wantTemps    []string
	}{
		{name: "empty"},
		{
			name: "segments and a partial one",
			files: []spoolFile{
				{name: seg(1, 3), size: testSegSize},
				{name: seg(1, 4), size: testSegSize},
				{name: seg(1, 5) + ".partial", size: 12345},
			},
			wantNewest:   seg(1, 5) + ".partial",
			wantFinished: []string{seg(1, 3), seg(1, 4)},
		},
		{
			name:         "empty partial",
			files:        []spoolFile{{name: seg(1, 5) + ".partial"}},
			wantNewest:   seg(1, 5) + ".partial",
			wantFinished: []string{},
		},
		{
			name:         "whole partial",
			files:        []spoolFile{{name: seg(1, 5) + ".partial", size: testSegSize}},
			wantNewest:   seg(1, 5) + ".partial",
			wantFinished: []string{},
		},
		{
			name:         "complete segments only",
			files:        []spoolFile{{name: seg(1, 3), size: testSegSize}, {name: seg(1, 4), size: testSegSize}},
			wantNewest:   seg(1, 4),
			wantFinished: []string{seg(1, 3), seg(1, 4)},
		},
		{
			// Timeline 1 ended inside segment 4, where timeline 2 begins.
			name: "after a timeline switch",
			files: []spoolFile{
				{name: seg(1, 3), size: testSegSize},
				{name: seg(1, 4) + ".partial", size: 0x80000},
				{name: "00000002.history", content: history2},
				{name: seg(2, 4), size: testSegSize},
				{name: seg(2, 5) + ".partial", size: 100},
			},
			wantNewest:   seg(2, 5) + ".partial",
			wantFinished: []string{"00000002.history", seg(1, 3), seg(1, 4) + ".partial", seg(2, 4)},
		},
		{
			// Crashed after storing the history file, before the new
			// timeline's first byte: resume on the old timeline, whose end
			// the server will report again.
			name: "history file before any WAL of its timeline",
			files: []spoolFile{
				{name: seg(1, 4) + ".partial", size: 0x80000},
				{name: "00000002.history", content: history2},
			},
			wantNewest:   seg(1, 4) + ".partial",
			wantFinished: []string{"00000002.history"},
		},
		{
			name: "the ended timeline's last segment ends past where the new one's first file starts",
			files: []spoolFile{
				{name: seg(1, 5) + ".partial", size: 10},
				{name: seg(2, 4) + ".partial", size: 100},
			},
			wantNewest:   seg(2, 4) + ".partial",
			wantFinished: []string{seg(1, 5) + ".partial"},
		},
		{
			name: "leftover history file being written",
			files: []spoolFile{
				{name: "00000002.history.tmp", content: "1\t0/40"},
				{name: seg(1, 3), size: testSegSize},
			},
			wantNewest:   seg(1, 3),
			wantFinished: []string{seg(1, 3)},
			wantTemps:    []string{"00000002.history.tmp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := makeSpool(t, tt.files...)
			st, err := scanSpool(dir, testSegSize)
			if err != nil {
				t.Fatalf("scanSpool() = %v", err)
			}
			newest := ""
			if s := st.newest(); s != nil {
				newest = s.name
			}
			if newest != tt.wantNewest {
				t.Errorf("scanSpool().newest() = %q, want %q", newest, tt.wantNewest)
			}
			resume := newest != "" && strings.HasSuffix(newest, pgwal.PartialSuffix)
			if diff := cmp.Diff(tt.wantFinished, st.finished(resume), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scanSpool().finished(%v) (-want +got):\n%s", resume, diff)
			}
			if diff := cmp.Diff(tt.wantTemps, st.temps, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("scanSpool().temps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScanSpoolRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files []spoolFile
		want  []string // substrings of the error
	}{
		{
			name:  "unknown file",
			files: []spoolFile{{name: "notes.txt", content: "hi"}},
			want:  []string{"unexpected file notes.txt"},
		},
		{
			name:  "lower-case segment name",
			files: []spoolFile{{name: "00000001000000000000000a", size: testSegSize}},
			want:  []string{"unexpected file 00000001000000000000000a"},
		},
		{
			name:  "compressed segment",
			files: []spoolFile{{name: seg(1, 3) + ".gz", size: 100}},
			want:  []string{"unexpected file " + seg(1, 3) + ".gz"},
		},
		{
			name:  "segment number out of range for the segment size",
			files: []spoolFile{{name: "000000010000000000001000", size: testSegSize}},
			want:  []string{"unexpected file 000000010000000000001000", "too large"},
		},
		{
			name:  "timeline 0",
			files: []spoolFile{{name: "000000000000000000000003", size: testSegSize}},
			want:  []string{"unexpected file 000000000000000000000003", "timeline 0"},
		},
		{
			name:  "partial larger than a segment",
			files: []spoolFile{{name: seg(1, 3) + ".partial", size: testSegSize + 1}},
			want:  []string{seg(1, 3) + ".partial has 1048577 bytes, more than a whole 1048576-byte segment"},
		},
		{
			name:  "short complete segment",
			files: []spoolFile{{name: seg(1, 3), size: 8192}},
			want:  []string{"complete segment " + seg(1, 3) + " has 8192 bytes, want 1048576"},
		},
		{
			name: "two partials on one timeline",
			files: []spoolFile{
				{name: seg(1, 3) + ".partial", size: 100},
				{name: seg(1, 4) + ".partial", size: 100},
			},
			want: []string{"two partial segments on timeline 1", seg(1, 3) + ".partial", seg(1, 4) + ".partial"},
		},
		{
			name: "partial before a complete segment",
			files: []spoolFile{
				{name: seg(1, 3) + ".partial", size: 100},
				{name: seg(1, 4), size: testSegSize},
			},
			want: []string{"partial segment " + seg(1, 3) + ".partial is older than complete segment " + seg(1, 4)},
		},
		{
			name: "partial and complete copies of a segment",
			files: []spoolFile{
				{name: seg(1, 3) + ".partial", size: 100},
				{name: seg(1, 3), size: testSegSize},
			},
			want: []string{"both " + seg(1, 3) + " and " + seg(1, 3) + ".partial exist"},
		},
		{
			name:  "directory",
			files: []spoolFile{{name: "old/"}},
			want:  []string{"old is a directory"},
		},
		{
			name:  "history file name not hexadecimal",
			files: []spoolFile{{name: "0000000G.history", content: history2}},
			want:  []string{"unexpected file 0000000G.history"},
		},
		{
			name:  "history file of timeline 0",
			files: []spoolFile{{name: "00000000.history", content: history2}},
			want:  []string{"unexpected file 00000000.history"},
		},
		{
			name:  "history file PostgreSQL could not read",
			files: []spoolFile{{name: "00000002.history", content: "one\t0/4080000\n"}},
			want:  []string{"00000002.history", "invalid timeline history file"},
		},
		{
			name:  "temporary file of something else",
			files: []spoolFile{{name: "junk.history.tmp", content: "x"}},
			want:  []string{"unexpected file junk.history.tmp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := makeSpool(t, tt.files...)
			_, err := scanSpool(dir, testSegSize)
			if err == nil {
				t.Fatalf("scanSpool() = nil, want an error with %q", tt.want)
			}
			for _, w := range append(tt.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("scanSpool() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestScanSpoolSymlink(t *testing.T) {
	t.Parallel()
	dir := makeSpool(t, spoolFile{name: seg(1, 3), size: testSegSize})
	if err := os.Symlink(seg(1, 3), filepath.Join(dir, seg(1, 4))); err != nil {
		t.Fatal(err)
	}
	_, err := scanSpool(dir, testSegSize)
	if err == nil || !strings.Contains(err.Error(), seg(1, 4)+" is a symbolic link") {
		t.Errorf("scanSpool() = %v, want a refusal of the symbolic link", err)
	}
}

func TestOpenSpool(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(makeSpool(t), "spool")
	sp, st, err := openSpool(dir, testSegSize)
	if err != nil {
		t.Fatalf("openSpool(new directory) = %v", err)
	}
	if st.newest() != nil {
		t.Errorf("openSpool(new directory) found %v", st.newest())
	}
	if _, _, err := openSpool(dir, testSegSize); err == nil || !strings.Contains(err.Error(), "in use by another WAL receiver") {
		t.Errorf("openSpool(locked) = %v, want an in-use error", err)
	}

	if err := sp.writeHistory("00000002.history", []byte(history2)); err != nil {
		t.Fatalf("writeHistory() = %v", err)
	}
	if err := sp.writeHistory("00000002.history", []byte(history2)); err != nil {
		t.Errorf("writeHistory(same content again) = %v", err)
	}
	if err := sp.writeHistory("00000002.history", []byte("1\t0/5000000\tother\n")); err == nil ||
		!strings.Contains(err.Error(), "differs from the server's history file") {
		t.Errorf("writeHistory(other content) = %v, want a refusal", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000003.history.tmp"), []byte("2\t0/5"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp.close()

	sp, st, err = openSpool(dir, testSegSize)
	if err != nil {
		t.Fatalf("openSpool(again) = %v", err)
	}
	defer sp.close()
	if diff := cmp.Diff([]string{"00000002.history"}, st.finished(false)); diff != "" {
		t.Errorf("openSpool(again).finished() (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000003.history.tmp")); !os.IsNotExist(err) {
		t.Errorf("openSpool() left the temporary file: %v", err)
	}
}

func TestChooseStart(t *testing.T) {
	t.Parallel()
	const segSize = 16 << 20
	partial := func(tli uint32, segNo uint64, size int64) spoolState {
		return spoolState{segments: []spoolSegment{{name: "p", tli: tli, segNo: segNo, partial: true, size: size}}}
	}
	complete := spoolState{segments: []spoolSegment{{name: "c", tli: 2, segNo: 5, size: segSize}}}
	lsn := func(s string) pglogrepl.LSN {
		l, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name string
		st   spoolState
		slot slotPosition
		want startPoint
	}{
		{"empty spool: the slot's segment", spoolState{}, slotPosition{lsn("0/3123456"), 1}, startPoint{1, lsn("0/3000000"), false}},
		{"empty spool: the slot's timeline", spoolState{}, slotPosition{lsn("0/3123456"), 2}, startPoint{2, lsn("0/3000000"), false}},
		{"empty spool, no WAL reserved: the server's segment", spoolState{}, slotPosition{}, startPoint{3, lsn("0/7000000"), false}},
		{"after a complete segment", complete, slotPosition{lsn("0/3123456"), 2}, startPoint{2, lsn("0/6000000"), false}},
		{"after a complete segment of an older timeline than the slot's", complete, slotPosition{lsn("0/9123456"), 3}, startPoint{3, lsn("0/9000000"), false}},
		{"partial: where the slot confirmed", partial(1, 4, 0x8000), slotPosition{lsn("0/4001000"), 1}, startPoint{1, lsn("0/4001000"), true}},
		{"partial: its end if the slot is past it", partial(1, 4, 0x8000), slotPosition{lsn("0/4100000"), 1}, startPoint{1, lsn("0/4008000"), true}},
		{"partial: whole, confirmed", partial(1, 4, segSize), slotPosition{lsn("0/5000000"), 1}, startPoint{1, lsn("0/5000000"), true}},
		{"partial: its start if the slot is before it", partial(1, 4, 0x8000), slotPosition{lsn("0/3FF0000"), 1}, startPoint{1, lsn("0/4000000"), true}},
		{"partial: its start if the slot is on an older timeline", partial(2, 4, 0x8000), slotPosition{lsn("0/4001000"), 1}, startPoint{2, lsn("0/4000000"), true}},
		{"partial: its start if the slot reserved no WAL", partial(1, 4, 0x8000), slotPosition{}, startPoint{1, lsn("0/4000000"), true}},
		{"partial of a timeline older than the slot's: finished", partial(1, 4, 0x8000), slotPosition{lsn("0/5001000"), 2}, startPoint{2, lsn("0/5000000"), false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := chooseStart(tt.st, tt.slot, 3, lsn("0/7654321"), segSize)
			if got != tt.want {
				t.Errorf("chooseStart() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// pageHeader builds the long page header of segment segNo.
func pageHeader(order binary.ByteOrder, segNo uint64, segSize int64, sysID uint64, info uint16) []byte {
	h := make([]byte, walPageHeaderSize)
	order.PutUint16(h[0:], 0xD110)
	order.PutUint16(h[2:], info)
	order.PutUint32(h[4:], 1)
	order.PutUint64(h[8:], uint64(pgwal.SegmentStart(segNo, segSize)))
	order.PutUint64(h[24:], sysID)
	order.PutUint32(h[32:], uint32(segSize))
	order.PutUint32(h[36:], 8192)
	return h
}

func TestCheckSegmentHeader(t *testing.T) {
	t.Parallel()
	const sysID = 7312345678901234567
	le, be := binary.LittleEndian, binary.BigEndian
	tests := []struct {
		name string
		hdr  []byte
		want string // "" for no error
	}{
		{"little-endian", pageHeader(le, 3, testSegSize, sysID, 0x0006), ""},
		{"big-endian", pageHeader(be, 3, testSegSize, sysID, 0x0002), ""},
		{"other cluster", pageHeader(le, 3, testSegSize, 42, 0x0002), "system identifier 42"},
		{"other segment", pageHeader(le, 4, testSegSize, sysID, 0x0002), "does not start with the WAL page of address 0/300000"},
		{"other segment size", pageHeader(le, 48, 16<<20, sysID, 0x0002)[:walPageHeaderSize], "does not start with the WAL page"},
		{"short header", pageHeader(le, 3, testSegSize, sysID, 0x0000), "long WAL page header"},
		{"truncated", pageHeader(le, 3, testSegSize, sysID, 0x0002)[:30], "too short"},
		{"zeros", make([]byte, walPageHeaderSize), "does not start with the WAL page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSegmentHeader(tt.hdr, 3, testSegSize, sysID)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkSegmentHeader() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkSegmentHeader() = %v, want an error with %q", err, tt.want)
			}
		})
	}
	// A header with the right address but another segment size.
	h := pageHeader(le, 3, testSegSize, sysID, 0x0002)
	le.PutUint32(h[32:], 16<<20)
	if err := checkSegmentHeader(h, 3, testSegSize, sysID); err == nil || !strings.Contains(err.Error(), "16777216-byte segments") {
		t.Errorf("checkSegmentHeader(16 MiB header) = %v, want a segment size error", err)
	}
}

func TestSpoolCheckHeader(t *testing.T) {
	t.Parallel()
	const sysID = 7312345678901234567
	own := pageHeader(binary.LittleEndian, 3, testSegSize, sysID, 0x0002)
	foreign := pageHeader(binary.LittleEndian, 3, testSegSize, 42, 0x0002)
	zeros := make([]byte, walPageHeaderSize)
	tests := []struct {
		name    string
		hdr     []byte
		trusted int64
		wantErr bool
	}{
		{"own header, trusted", own, 8192, false},
		{"zeros, trusted", zeros, 8192, true},
		{"zeros past the trusted part", zeros, 0, false},
		{"zeros, trusted up to within the header", zeros, 39, false},
		{"another cluster's header, trusted", foreign, 8192, true},
		{"another cluster's header past the trusted part", foreign, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := seg(1, 3) + ".partial"
			dir := makeSpool(t, spoolFile{name: name, content: string(tt.hdr) + strings.Repeat("x", 8192-walPageHeaderSize)})
			sp := &spool{dir: dir, segSize: testSegSize}
			err := sp.checkHeader(spoolSegment{name: name, tli: 1, segNo: 3, partial: true, size: 8192}, tt.trusted, sysID)
			if (err != nil) != tt.wantErr {
				t.Errorf("checkHeader() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Errorf("checkHeader() = %q, want it to name %s", err, name)
			}
		})
	}
}
