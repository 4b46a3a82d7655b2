package pgwal_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/store/pgwal"
)

func TestParseSegmentName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		segSize int64
		tli     uint32
		segNo   uint64
		wantErr bool
	}{
		{name: "000000010000000000000001", tli: 1, segNo: 1},
		{name: "000000010000000000000001.partial", tli: 1, segNo: 1},
		{name: "0000000200000003000000FF", tli: 2, segNo: 3*256 + 255},
		{name: "FFFFFFFFFFFFFFFF000000FF", tli: 0xFFFFFFFF, segNo: 1<<40 - 1},
		{name: "000000010000000000000100", wantErr: true}, // 256 segments of 16 MiB per 4 GiB
		{name: "000000010000000000000100", segSize: 1 << 20, tli: 1, segNo: 256},
		{name: "000000010000000100000FFF", segSize: 1 << 20, tli: 1, segNo: 4096 + 4095},
		{name: "000000010000000000001000", segSize: 1 << 20, wantErr: true},
		{name: "000000010000000500000003", segSize: 1 << 30, tli: 1, segNo: 5*4 + 3},
		{name: "000000010000000000000004", segSize: 1 << 30, wantErr: true},
		{name: "000000000000000000000001", wantErr: true}, // timeline 0
		{name: "00000001000000000000000a", wantErr: true}, // lower case
		{name: "00000001000000000000001", wantErr: true},
		{name: "0000000100000000000000010", wantErr: true},
		{name: "000000010000000000000001.backup", wantErr: true},
		{name: "000000010000000000000002.00000028.backup", wantErr: true},
		{name: "00000002.history", wantErr: true},
		{name: "000000010000000000000001.partial.partial", wantErr: true},
		{name: "", wantErr: true},
		{name: "000000010000000000000001", segSize: 3 << 20, wantErr: true},
		{name: "000000010000000000000001", segSize: 1 << 19, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tli, segNo, err := pgwal.ParseSegmentName(tt.name, tt.segSize)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSegmentName(%q, %d) = %d, %d, nil, want an error", tt.name, tt.segSize, tli, segNo)
				}
				return
			}
			if err != nil || tli != tt.tli || segNo != tt.segNo {
				t.Fatalf("ParseSegmentName(%q, %d) = %d, %d, %v, want %d, %d, nil", tt.name, tt.segSize, tli, segNo, err, tt.tli, tt.segNo)
			}
			base := strings.TrimSuffix(tt.name, pgwal.PartialSuffix)
			if got := pgwal.SegmentName(tli, segNo, tt.segSize); got != base {
				t.Errorf("SegmentName(%d, %d, %d) = %q, want %q", tli, segNo, tt.segSize, got, base)
			}
		})
	}
}

func TestParseSegmentNameError(t *testing.T) {
	t.Parallel()
	_, _, err := pgwal.ParseSegmentName("nope", 0)
	if !errors.Is(err, pgwal.ErrInvalidName) {
		t.Errorf("ParseSegmentName(nope) = %v, want ErrInvalidName", err)
	}
}

func TestLSNHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lsn     pglogrepl.LSN
		segSize int64
		segNo   uint64
		offset  int64
		name    string // on timeline 1
	}{
		{lsn: 0x0, segNo: 0, offset: 0, name: "000000010000000000000000"},
		{lsn: 0x1000028, segNo: 1, offset: 0x28, name: "000000010000000000000001"},
		{lsn: 0x3_FF00_0000, segNo: 0x3FF, offset: 0, name: "0000000100000003000000FF"},
		{lsn: 0x3_FFFF_FFFF, segNo: 0x3FF, offset: 0xFFFFFF, name: "0000000100000003000000FF"},
		{lsn: 0x4_0000_0000, segNo: 0x400, offset: 0, name: "000000010000000400000000"},
		{lsn: 0x4_0010_0001, segSize: 1 << 20, segNo: 0x4001, offset: 1, name: "000000010000000400000001"},
		{lsn: 0xFFFF_FFFF_FFFF_FFFF, segSize: 1 << 30, segNo: 1<<34 - 1, offset: 1<<30 - 1, name: "00000001FFFFFFFF00000003"},
	}
	for _, tt := range tests {
		if got := pgwal.SegmentOf(tt.lsn, tt.segSize); got != tt.segNo {
			t.Errorf("SegmentOf(%s, %d) = %d, want %d", tt.lsn, tt.segSize, got, tt.segNo)
		}
		if got := pgwal.SegmentOffset(tt.lsn, tt.segSize); got != tt.offset {
			t.Errorf("SegmentOffset(%s, %d) = %d, want %d", tt.lsn, tt.segSize, got, tt.offset)
		}
		if got, want := pgwal.SegmentStart(tt.segNo, tt.segSize), tt.lsn-pglogrepl.LSN(tt.offset); got != want {
			t.Errorf("SegmentStart(%d, %d) = %s, want %s", tt.segNo, tt.segSize, got, want)
		}
		if got := pgwal.SegmentName(1, tt.segNo, tt.segSize); got != tt.name {
			t.Errorf("SegmentName(1, %d, %d) = %q, want %q", tt.segNo, tt.segSize, got, tt.name)
		}
	}
}

func TestHistoryFileName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tli  uint32
		ok   bool
	}{
		{"00000002.history", 2, true},
		{"0000000A.history", 10, true},
		{"FFFFFFFF.history", 0xFFFFFFFF, true},
		{"00000000.history", 0, false},
		{"0000000a.history", 0, false},
		{"0000002.history", 0, false},
		{"00000002.History", 0, false},
		{"00000002", 0, false},
		{"000000010000000000000001", 0, false},
		{"00000002.history.partial", 0, false},
	}
	for _, tt := range tests {
		tli, err := pgwal.ParseHistoryFileName(tt.name)
		if (err == nil) != tt.ok || tli != tt.tli {
			t.Errorf("ParseHistoryFileName(%q) = %d, %v, want %d, ok %t", tt.name, tli, err, tt.tli, tt.ok)
		}
		if got := pgwal.IsHistoryFile(tt.name); got != tt.ok {
			t.Errorf("IsHistoryFile(%q) = %t, want %t", tt.name, got, tt.ok)
		}
		if tt.ok {
			if got := pgwal.HistoryFileName(tt.tli); got != tt.name {
				t.Errorf("HistoryFileName(%d) = %q, want %q", tt.tli, got, tt.name)
			}
		}
	}
}

func TestParseHistoryFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []pgwal.HistoryEntry
		wantErr bool
	}{
		{
			name: "promotion",
			in:   "1\t0/3000158\tno recovery target specified\n",
			want: []pgwal.HistoryEntry{{Parent: 1, SwitchLSN: 0x3000158, Reason: "no recovery target specified"}},
		},
		{
			name: "three timelines",
			in: "1\t0/3000158\tno recovery target specified\n" +
				"\n" +
				"2\t1/A0000000\tbefore 2026-11-25 09:30:00+00\n" +
				"# a comment\n" +
				"   \t  \n" +
				"3\t1/A00000D8\tat restore point \"before-x\"\n",
			want: []pgwal.HistoryEntry{
				{Parent: 1, SwitchLSN: 0x3000158, Reason: "no recovery target specified"},
				{Parent: 2, SwitchLSN: 0x1_A000_0000, Reason: "before 2026-11-25 09:30:00+00"},
				{Parent: 3, SwitchLSN: 0x1_A000_00D8, Reason: `at restore point "before-x"`},
			},
		},
		{name: "empty", in: "", want: nil},
		{name: "no reason, no newline", in: "4\t0/5000000", want: []pgwal.HistoryEntry{{Parent: 4, SwitchLSN: 0x5000000}}},
		{name: "leading spaces, CRLF", in: "  1 0/10\r\n", want: []pgwal.HistoryEntry{{Parent: 1, SwitchLSN: 0x10}}},
		{name: "lower-case hex", in: "1\t0/a0\n", want: []pgwal.HistoryEntry{{Parent: 1, SwitchLSN: 0xA0}}},
		{name: "no LSN", in: "1\n", wantErr: true},
		{name: "not a number", in: "x\t0/10\n", wantErr: true},
		{name: "timeline 0", in: "0\t0/10\n", wantErr: true},
		{name: "timeline overflow", in: "4294967296\t0/10\n", wantErr: true},
		{name: "bad LSN", in: "1\t0-10\n", wantErr: true},
		{name: "LSN too long", in: "1\t100000000/10\n", wantErr: true},
		{name: "no separator", in: "10/10\n", wantErr: true},
		{name: "decreasing", in: "2\t0/10\n1\t0/20\n", wantErr: true},
		{name: "repeated", in: "2\t0/10\n2\t0/20\n", wantErr: true},
		{name: "too large", in: strings.Repeat("#", 5<<20), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pgwal.ParseHistoryFile(strings.NewReader(tt.in))
			if tt.wantErr {
				if err == nil || !errors.Is(err, pgwal.ErrInvalidHistory) {
					t.Fatalf("ParseHistoryFile(%.40q) = %v, %v, want ErrInvalidHistory", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHistoryFile(%.40q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseHistoryFile(%.40q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func FuzzParseSegmentName(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000001", "0000000200000003000000FF.partial", "00000002.history",
		"000000010000000000000100", "FFFFFFFFFFFFFFFFFFFFFFFF", "",
	} {
		f.Add(s, int64(0))
		f.Add(s, int64(1<<20))
	}
	f.Fuzz(func(t *testing.T, name string, segSize int64) {
		tli, segNo, err := pgwal.ParseSegmentName(name, segSize)
		if err != nil {
			return
		}
		base := strings.TrimSuffix(name, pgwal.PartialSuffix)
		if got := pgwal.SegmentName(tli, segNo, segSize); got != base {
			t.Fatalf("SegmentName(ParseSegmentName(%q, %d)) = %q", name, segSize, got)
		}
		if tli == 0 {
			t.Fatalf("ParseSegmentName(%q) = timeline 0", name)
		}
		if _, err := pgwal.ParseHistoryFileName(name); err == nil {
			t.Fatalf("%q is both a segment and a history file name", name)
		}
		if start := pgwal.SegmentStart(segNo, segSize); pgwal.SegmentOf(start, segSize) != segNo {
			t.Fatalf("SegmentOf(SegmentStart(%d)) = %d", segNo, pgwal.SegmentOf(start, segSize))
		}
	})
}

func FuzzParseHistoryFile(f *testing.F) {
	f.Add("1\t0/3000158\tno recovery target specified\n")
	f.Add("1\t0/3000158\tno recovery target specified\n\n2\t1/A0000000\tbefore 2026-11-25 09:30:00+00\n# c\n")
	f.Add("  1 0/10\r\n")
	f.Add("2\t0/10\n1\t0/20\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := pgwal.ParseHistoryFile(strings.NewReader(in))
		if err != nil {
			return
		}
		for i, e := range entries {
			if e.Parent == 0 || i > 0 && e.Parent <= entries[i-1].Parent {
				t.Fatalf("ParseHistoryFile(%q) = %+v: timelines not increasing", in, entries)
			}
			if strings.ContainsAny(e.Reason, "\n") || strings.TrimSpace(e.Reason) != e.Reason {
				t.Fatalf("ParseHistoryFile(%q) reason %q not trimmed to one line", in, e.Reason)
			}
		}
	})
}
