package wal

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rec returns a record made of a zeroed header and body.
func rec(body ...[]byte) []byte {
	return append(make([]byte, recordHeaderSize), bytes.Join(body, nil)...)
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// rel and blk are a RelFileNode and a BlockNumber.
var (
	rel = bytes.Repeat([]byte{7}, relFileNodeSize)
	blk = le32(42)
)

const pg15Compressed = 0x04 | 0x08 | 0x10

func TestMainData(t *testing.T) {
	t.Parallel()
	fill := func(n int) []byte { return bytes.Repeat([]byte{0xAA}, n) }
	tests := []struct {
		name       string
		rec        []byte
		compressed uint8
		want       []byte
		wantErr    bool
	}{
		{name: "short main data", rec: rec([]byte{255, 3}, []byte("abc")), want: []byte("abc")},
		{name: "long main data", rec: rec([]byte{254}, le32(300), fill(299), []byte("z")), want: append(fill(299), 'z')},
		{name: "no data", rec: rec(), want: []byte{}},
		{name: "origin and top-level xid", rec: rec([]byte{253, 1, 0, 252}, le32(9), []byte{255, 2, 'h', 'i'}), want: []byte("hi")},
		{
			name: "block data",
			rec:  rec([]byte{0, bkpBlockHasData}, le16(5), rel, blk, []byte{255, 2}, fill(5), []byte("md")),
			want: []byte("md"),
		},
		{
			name: "blocks of the same relation, no main data",
			rec: rec([]byte{0, bkpBlockHasData}, le16(1), rel, blk,
				[]byte{3, bkpBlockHasData | bkpBlockSameRel}, le16(2), blk, fill(3)),
			want: []byte{},
		},
		{
			name: "image with a hole, not compressed",
			rec: rec([]byte{0, bkpBlockHasImage}, le16(0), le16(100), le16(24), []byte{bkpImageHasHole | 0x02},
				rel, blk, []byte{255, 1}, fill(100), []byte("m")),
			compressed: pg15Compressed,
			want:       []byte("m"),
		},
		{
			name: "compressed image with a hole",
			rec: rec([]byte{0, bkpBlockHasImage | bkpBlockHasData}, le16(4), le16(100), le16(24), []byte{bkpImageHasHole | 0x08},
				le16(5000), rel, blk, []byte{255, 1}, fill(104), []byte("m")),
			compressed: pg15Compressed,
			want:       []byte("m"),
		},
		{
			name: "compressed image without a hole",
			rec: rec([]byte{0, bkpBlockHasImage}, le16(0), le16(100), le16(0), []byte{0x10},
				rel, blk, []byte{255, 1}, fill(100), []byte("m")),
			compressed: pg15Compressed,
			want:       []byte("m"),
		},
		{
			// Up to PostgreSQL 14, 0x02 meant compressed (and 0x04 apply).
			name: "PostgreSQL 14 compressed image with a hole",
			rec: rec([]byte{0, bkpBlockHasImage}, le16(0), le16(100), le16(24), []byte{bkpImageHasHole | 0x02},
				le16(5000), rel, blk, []byte{255, 1}, fill(100), []byte("m")),
			compressed: 0x02,
			want:       []byte("m"),
		},
		{
			name: "PostgreSQL 14 image read as 15",
			rec: rec([]byte{0, bkpBlockHasImage}, le16(0), le16(100), le16(24), []byte{bkpImageHasHole | 0x02},
				le16(5000), rel, blk, []byte{255, 1}, fill(100), []byte("m")),
			compressed: pg15Compressed,
			wantErr:    true,
		},
		{name: "same relation first", rec: rec([]byte{0, bkpBlockSameRel}, le16(0), blk), wantErr: true},
		{name: "blocks out of order", rec: rec([]byte{1, 0}, le16(0), rel, blk, []byte{0, 0}, le16(0), rel, blk), wantErr: true},
		{name: "repeated block", rec: rec([]byte{1, 0}, le16(0), rel, blk, []byte{1, 0}, le16(0), rel, blk), wantErr: true},
		{name: "data flag without length", rec: rec([]byte{0, bkpBlockHasData}, le16(0), rel, blk), wantErr: true},
		{name: "length without data flag", rec: rec([]byte{0, 0}, le16(1), rel, blk, fill(1)), wantErr: true},
		{name: "invalid block id", rec: rec([]byte{33, 0}, le16(0), rel, blk), wantErr: true},
		{name: "truncated block header", rec: rec([]byte{0, 0}, le16(0), rel), wantErr: true},
		{name: "main data longer than the record", rec: rec([]byte{255, 4}, []byte("abc")), wantErr: true},
		{name: "main data shorter than the record", rec: rec([]byte{255, 2}, []byte("abc")), wantErr: true},
		{name: "huge long main data", rec: rec([]byte{254}, le32(0xFFFFFFFF), []byte("abc")), wantErr: true},
		{name: "truncated long header", rec: rec([]byte{254, 1, 0}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mainData(tt.rec, tt.compressed)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("mainData() = %q, want an error", got)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("mainData() = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

// xactData returns the main data of a commit or abort record.
func xactData(us int64, xinfo uint32, parts ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(us))
	if xinfo != 0 {
		b = binary.LittleEndian.AppendUint32(b, xinfo)
	}
	return append(b, bytes.Join(parts, nil)...)
}

func TestParseXact(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 11, 25, 9, 45, 17, 979252000, time.UTC)
	us := when.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds()
	count := func(n uint32, size int) []byte { return append(le32(n), make([]byte, int(n)*size)...) }
	tests := []struct {
		name    string
		info    uint8
		data    []byte
		want    Commit
		ok      bool
		wantErr bool
	}{
		{name: "commit", info: 0x00, data: xactData(us, 0), want: Commit{XID: 700, Time: when, Kind: KindCommit}, ok: true},
		{name: "abort with xinfo", info: 0x20 | xactHasInfo, data: xactData(us, xinfoHasSubxacts, count(2, 4)),
			want: Commit{XID: 700, Time: when, Kind: KindAbort}, ok: true},
		{
			name: "commit prepared with everything before the xid",
			info: 0x30 | xactHasInfo,
			data: xactData(us, xinfoHasDBInfo|xinfoHasSubxacts|xinfoHasRelFileNodes|xinfoHasDroppedStats|xinfoHasInvals|xinfoHasTwoPhase|1<<7,
				make([]byte, 8), count(3, 4), count(2, 12), count(1, 12), count(4, 16), le32(812), []byte("gid\x00")),
			want: Commit{XID: 812, Time: when, Kind: KindCommitPrepared}, ok: true,
		},
		{
			name: "abort prepared",
			info: 0x40 | xactHasInfo,
			data: xactData(us, xinfoHasDBInfo|xinfoHasTwoPhase, make([]byte, 8), le32(813)),
			want: Commit{XID: 813, Time: when, Kind: KindAbortPrepared}, ok: true,
		},
		{name: "before 2000", info: 0x00, data: xactData(-1, 0), want: Commit{XID: 700, Time: time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), Kind: KindCommit}, ok: true},
		{name: "prepare", info: 0x10, data: nil},
		{name: "assignment", info: 0x50, data: nil},
		{name: "too short", info: 0x00, data: make([]byte, 7), wantErr: true},
		{name: "xinfo missing", info: 0x00 | xactHasInfo, data: xactData(us, 0), wantErr: true},
		{name: "prepared without xinfo", info: 0x30, data: xactData(us, 0), wantErr: true},
		{name: "prepared without two-phase data", info: 0x30 | xactHasInfo, data: xactData(us, xinfoHasDBInfo, make([]byte, 8)), wantErr: true},
		{name: "negative count", info: 0x30 | xactHasInfo, data: xactData(us, xinfoHasSubxacts|xinfoHasTwoPhase, le32(0xFFFFFFFF), le32(1)), wantErr: true},
		{name: "count past the end", info: 0x30 | xactHasInfo, data: xactData(us, xinfoHasSubxacts|xinfoHasTwoPhase, le32(5), le32(1)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := parseXact(Record{RMID: RMTransaction, Info: tt.info, XID: 700, MainData: tt.data})
			if (err != nil) != tt.wantErr || ok != tt.ok {
				t.Fatalf("parseXact() = %+v, %t, %v; want ok %t, error %t", got, ok, err, tt.ok, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseXact() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRestorePoint(t *testing.T) {
	t.Parallel()
	name := make([]byte, 64)
	copy(name, "before-x")
	got, err := parseRestorePoint(Record{MainData: append(binary.LittleEndian.AppendUint64(nil, 0), name...)})
	want := RestorePoint{Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), Name: "before-x"}
	if err != nil || got != want {
		t.Errorf("parseRestorePoint() = %+v, %v, want %+v", got, err, want)
	}
	full := append(make([]byte, 8), bytes.Repeat([]byte{'n'}, 64)...)
	if got, err := parseRestorePoint(Record{MainData: full}); err != nil || len(got.Name) != 64 {
		t.Errorf("parseRestorePoint(unterminated) = %+v, %v", got, err)
	}
	if _, err := parseRestorePoint(Record{MainData: name}); err == nil {
		t.Errorf("parseRestorePoint(short) = nil error")
	}
}

// FuzzMainData feeds the record decoders arbitrary bodies, which the fuzzer
// cannot reach through Scan because of the CRC.
func FuzzMainData(f *testing.F) {
	f.Add(rec([]byte{0, bkpBlockHasImage | bkpBlockHasData}, le16(4), le16(100), le16(24), []byte{bkpImageHasHole | 0x08},
		le16(5000), rel, blk, []byte{255, 1}, make([]byte, 104), []byte("m"))[recordHeaderSize:], uint8(0x30|xactHasInfo))
	f.Add(rec([]byte{253, 1, 0, 252}, le32(9), []byte{255, 12}, xactData(1, xinfoHasTwoPhase, le32(9)))[recordHeaderSize:], uint8(0x30|xactHasInfo))
	f.Add(rec([]byte{254}, le32(72), make([]byte, 72))[recordHeaderSize:], uint8(0x70))
	f.Fuzz(func(t *testing.T, body []byte, info uint8) {
		for _, compressed := range []uint8{0x02, pg15Compressed} {
			r := rec(body)
			main, err := mainData(r, compressed)
			if err != nil {
				continue
			}
			if len(main) > len(body) || !bytes.HasSuffix(body, main) {
				t.Fatalf("mainData() = %d bytes, not the end of the %d-byte body", len(main), len(body))
			}
			c, ok, err := parseXact(Record{RMID: RMTransaction, Info: info, MainData: main})
			if err == nil && ok && c.Kind != Kind(info&xactOpMask) {
				t.Fatalf("parseXact() kind %s, info %#x", c.Kind, info)
			}
			_, _ = parseRestorePoint(Record{RMID: RMXLOG, Info: xlogRestorePoint, MainData: main})
		}
	})
}
