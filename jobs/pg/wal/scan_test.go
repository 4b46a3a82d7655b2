package wal_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/pg/wal"
	"github.com/backstop/backstop/store/pgwal"
)

// TestScanMatchesWaldump reads every completed segment and checks every
// record, commit and restore point against pg_waldump: once per segment on
// its own (a record that runs on into the next segment is left out by
// both), and over the whole range, where each segment is read with the
// next one so that its last record is finished.
func TestScanMatchesWaldump(t *testing.T) {
	f := setup(t)
	first, last := f.segments[0].name, f.segments[len(f.segments)-1].name
	all := f.waldump(t, first, last)
	wantCommits, wantPoints := oracle(t, all)

	var gotRecs []scanned
	var gotCommits []wal.Commit
	var gotPoints []wal.RestorePoint
	continuations := 0
	for i, s := range f.segments {
		t.Run(s.name, func(t *testing.T) {
			// On its own, against pg_waldump on the one segment.
			alone, res := scanAll(t, bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.start()})
			dump := f.waldump(t, s.name, s.name)
			compareRecords(t, dump, alone)
			if !res.Complete || res.Invalid != nil {
				t.Errorf("Scan(%s) = Complete %t, Invalid %v, want a complete segment", s.name, res.Complete, res.Invalid)
			}
			if res.Records != len(alone) || len(alone) > 0 && (res.FirstLSN != alone[0].LSN || res.EndOfValidWAL != alone[len(alone)-1].EndLSN) {
				t.Errorf("Scan(%s) = %+v, inconsistent with its %d records", s.name, res, len(alone))
			}
			if res.Timeline != 1 || res.SystemID != f.systemID || res.Major != f.cluster.Binaries().Major {
				t.Errorf("Scan(%s) = timeline %d, system %d, version %d", s.name, res.Timeline, res.SystemID, res.Major)
			}
			if res.ContinuationAtStart {
				continuations++
				if i == 0 || res.ContinuationLen == 0 {
					t.Errorf("Scan(%s) = continuation at start of %d bytes", s.name, res.ContinuationLen)
				}
			}

			// With the next segment after it, to finish its last record.
			r, opts := f.withNext(t, i)
			sum, err := wal.Summarize(r, opts)
			if err != nil {
				t.Fatalf("Summarize(%s + next) = %v", s.name, err)
			}
			r, opts = f.withNext(t, i)
			withNext, res2 := scanAll(t, r, opts)
			if res2.Unfinished != 0 || !res2.Complete || res2.Invalid != nil {
				t.Errorf("Scan(%s + next) = %+v, want complete", s.name, res2)
			}
			if res.Unfinished != 0 {
				if len(withNext) != len(alone)+1 || withNext[len(alone)].LSN != res.Unfinished {
					t.Errorf("Scan(%s) unfinished record at %s, but with the next segment %d records (alone %d)",
						s.name, res.Unfinished, len(withNext), len(alone))
				}
			} else if len(withNext) != len(alone) {
				t.Errorf("Scan(%s) = %d records, %d with the next segment", s.name, len(alone), len(withNext))
			}
			if !sameResult(sum.Result, res2) {
				t.Errorf("Summarize(%s).Result = %+v, Scan = %+v", s.name, sum.Result, res2)
			}
			t.Logf("%s: %d records alone (continuation %t, %d bytes; unfinished %s), %d with the next segment, %d commits, end %s",
				s.name, len(alone), res.ContinuationAtStart, res.ContinuationLen, res.Unfinished, len(withNext), len(sum.Commits), res2.EndOfValidWAL)
			gotRecs = append(gotRecs, withNext...)
			gotCommits = append(gotCommits, sum.Commits...)
			gotPoints = append(gotPoints, sum.RestorePoints...)
		})
	}
	if t.Failed() {
		return
	}
	compareRecords(t, all, gotRecs)

	// All segments in one stream, without EndLSN: across segment switches.
	var readers []io.Reader
	for _, s := range f.segments {
		readers = append(readers, bytes.NewReader(s.read(t)))
	}
	stream, res := scanAll(t, io.MultiReader(readers...), wal.ScanOptions{StartLSN: f.segments[0].start()})
	compareRecords(t, all, stream)
	if !res.Complete || res.Invalid != nil || res.EndOfValidWAL != f.segments[len(f.segments)-1].end() {
		t.Errorf("Scan(all segments) = %+v, want complete to the end", res)
	}
	images := 0
	for _, d := range all {
		if d.ImageLen > 0 {
			images++
		}
	}
	ignoreEnd := cmpopts.IgnoreFields(wal.Commit{}, "EndLSN")
	if diff := cmp.Diff(wantCommits, gotCommits, ignoreEnd); diff != "" {
		t.Errorf("commits differ from pg_waldump's (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPoints, gotPoints, cmpopts.IgnoreFields(wal.RestorePoint{}, "EndLSN", "Time")); diff != "" {
		t.Errorf("restore points differ from pg_waldump's (-want +got):\n%s", diff)
	}

	// The workload must have produced every case the scanner handles.
	kinds := map[wal.Kind]int{}
	var spanPages, spanSegments int
	for _, c := range gotCommits {
		kinds[c.Kind]++
		if c.LSN/wal.PageSize != (c.EndLSN-1)/wal.PageSize {
			spanPages++
		}
		if pgwal.SegmentOf(c.LSN, segSize) != pgwal.SegmentOf(c.EndLSN-1, segSize) {
			spanSegments++
		}
	}
	for _, k := range []wal.Kind{wal.KindCommit, wal.KindAbort, wal.KindCommitPrepared, wal.KindAbortPrepared} {
		if kinds[k] == 0 {
			t.Errorf("no %s record in the workload's WAL", k)
		}
	}
	if spanPages == 0 || spanSegments == 0 || continuations == 0 {
		t.Errorf("commits across pages %d, across segments %d, segments starting with a continuation %d: want each > 0",
			spanPages, spanSegments, continuations)
	}
	var found bool
	for _, p := range gotPoints {
		if p.Name == "before-x" {
			found = true
			if p.Time.Before(f.rpBefore.Truncate(1000)) || p.Time.After(f.rpAfter) {
				t.Errorf("restore point time %v, want between %v and %v", p.Time, f.rpBefore, f.rpAfter)
			}
		}
	}
	if !found {
		t.Errorf("restore points %+v, want before-x", gotPoints)
	}
	t.Logf("%d segments, %d records (%d with full-page images, %d continuations at segment starts), %d commits and aborts %v (%d across pages, %d across segments), %d restore points: all as pg_waldump",
		len(f.segments), len(gotRecs), images, continuations, len(gotCommits), kinds, spanPages, spanSegments, len(gotPoints))
}

// compareRecords checks the records Scan found against pg_waldump's,
// reporting the first difference.
func compareRecords(t *testing.T, want []dumped, got []scanned) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		if w.LSN != g.LSN || w.RMID != g.RMID || w.XID != g.XID || w.TotalLen != g.TotalLen {
			t.Fatalf("record %d: pg_waldump %+v, Scan %+v", i, w, g)
		}
	}
	if len(want) != len(got) {
		t.Fatalf("pg_waldump printed %d records, Scan found %d", len(want), len(got))
	}
}

// richest returns the index of a segment that holds a commit record
// longer than a page, the one with the most commits if several do, with its
// records and commits read on its own.
func richest(t *testing.T, f *fixture) (int, []scanned, []wal.Commit) {
	t.Helper()
	best, n := -1, -1
	var commits []wal.Commit
	for i, s := range f.segments {
		c, _, err := wal.Commits(bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.start()})
		if err != nil {
			t.Fatal(err)
		}
		long := false
		for _, c := range c {
			long = long || c.EndLSN-c.LSN > wal.PageSize && c.EndLSN <= s.end()
		}
		if long && len(c) > n {
			best, n, commits = i, len(c), c
		}
	}
	if best < 0 {
		t.Fatal("no segment holds a commit record longer than a page")
	}
	s := f.segments[best]
	recs, _ := scanAll(t, bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.start()})
	return best, recs, commits
}

// recordByte returns the LSN of byte i of the record at
// lsn, skipping the page headers of the pages it spans.
func recordByte(lsn pglogrepl.LSN, i uint32) pglogrepl.LSN {
	pos := lsn
	for {
		room := wal.PageSize - uint32(pos%wal.PageSize)
		if i < room {
			return pos + pglogrepl.LSN(i)
		}
		i -= room
		pos += pglogrepl.LSN(room)
		if pgwal.SegmentOffset(pos, segSize) == 0 {
			pos += 40
		} else {
			pos += 24
		}
	}
}

// recordIndex returns the index of the record at lsn.
func recordIndex(t *testing.T, recs []scanned, lsn pglogrepl.LSN) int {
	t.Helper()
	for i, r := range recs {
		if r.LSN == lsn {
			return i
		}
	}
	t.Fatalf("no record at %s", lsn)
	return -1
}

// commitsBefore returns the commits that start before lsn.
func commitsBefore(commits []wal.Commit, lsn pglogrepl.LSN) []wal.Commit {
	var out []wal.Commit
	for _, c := range commits {
		if c.LSN < lsn {
			out = append(out, c)
		}
	}
	return out
}

// TestScanCutShort reads segments cut in the middle of a record, as a
// partial segment may be: the commits before the cut are found, and the
// valid WAL ends with the last whole record.
func TestScanCutShort(t *testing.T) {
	f := setup(t)
	i, recs, commits := richest(t, f)
	s := f.segments[i]
	data := s.read(t)
	mid := commits[len(commits)/2]
	k := recordIndex(t, recs, mid.LSN)
	var long wal.Commit // a commit record longer than a page
	for _, c := range commits {
		if c.EndLSN-c.LSN > wal.PageSize && c.EndLSN <= s.end() {
			long = c
		}
	}
	if long.LSN == 0 {
		t.Fatalf("segment %s has no commit record longer than a page", s.name)
	}
	kl := recordIndex(t, recs, long.LSN)
	zeroed := func(cut pglogrepl.LSN) []byte {
		b := make([]byte, len(data))
		copy(b, data[:cut-s.start()])
		return b
	}

	tests := []struct {
		name        string
		data        []byte
		before      int // index of the first record not found
		unfinished  bool
		wantInvalid bool
	}{
		{name: "in a record header", data: data[:mid.LSN+10-s.start()], before: k, unfinished: true},
		{name: "before a record", data: data[:mid.LSN-s.start()], before: k},
		{name: "after a record", data: data[:recs[k].EndLSN-s.start()], before: k + 1},
		{name: "in a record spanning pages", data: data[:long.LSN/wal.PageSize*wal.PageSize+wal.PageSize+100-s.start()], before: kl, unfinished: true},
		{name: "in the page header after a record spanning pages", data: data[:long.LSN/wal.PageSize*wal.PageSize+wal.PageSize+10-s.start()], before: kl, unfinished: true},
		{name: "zeroed from a record", data: zeroed(mid.LSN), before: k},
		{name: "zeroed in a record header", data: zeroed(mid.LSN + 12), before: k, wantInvalid: true},
		{name: "zeroed in a record spanning pages", data: zeroed(long.LSN/wal.PageSize*wal.PageSize + wal.PageSize + 100), before: kl, wantInvalid: true},
		{name: "zeroed from a page spanned by a record", data: zeroed(long.LSN/wal.PageSize*wal.PageSize + wal.PageSize), before: kl, unfinished: true},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			sum, err := wal.Summarize(bytes.NewReader(tt.data), wal.ScanOptions{StartLSN: s.start()})
			if err != nil {
				t.Fatalf("Summarize() = %v", err)
			}
			res := sum.Result
			stop := recs[tt.before].LSN
			wantEnd := s.start()
			if tt.before > 0 {
				wantEnd = recs[tt.before-1].EndLSN
			}
			if res.Records != tt.before || res.EndOfValidWAL != wantEnd || res.Complete {
				t.Errorf("Summarize() = %d records, end of valid WAL %s, complete %t; want %d, %s, false",
					res.Records, res.EndOfValidWAL, res.Complete, tt.before, wantEnd)
			}
			if got := res.Unfinished != 0; got != tt.unfinished || got && res.Unfinished != stop {
				t.Errorf("Summarize().Unfinished = %s, want the record at %s: %t", res.Unfinished, stop, tt.unfinished)
			}
			if (res.Invalid != nil) != tt.wantInvalid {
				t.Errorf("Summarize().Invalid = %v, want invalid: %t", res.Invalid, tt.wantInvalid)
			}
			if diff := cmp.Diff(commitsBefore(commits, stop), sum.Commits); diff != "" {
				t.Errorf("Summarize() commits (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScanStopsAtCorruption flips one byte inside a record: the scan stops
// at that record, on its CRC, and finds every commit before it.
func TestScanStopsAtCorruption(t *testing.T) {
	f := setup(t)
	i, recs, commits := richest(t, f)
	s := f.segments[i]
	var onePage, long wal.Commit
	for _, c := range commits {
		if c.EndLSN-c.LSN > wal.PageSize && c.EndLSN <= s.end() {
			long = c
		} else if onePage.LSN == 0 && len(commits) > 4 && c.LSN >= commits[len(commits)/2].LSN &&
			c.LSN/wal.PageSize == (c.EndLSN-1)/wal.PageSize {
			onePage = c
		}
	}
	if onePage.LSN == 0 || long.LSN == 0 {
		t.Fatalf("segment %s lacks the commit records to corrupt", s.name)
	}
	longLen := recs[recordIndex(t, recs, long.LSN)].TotalLen
	tests := []struct {
		name string
		at   pglogrepl.LSN // byte to flip
		rec  pglogrepl.LSN // record that holds it
	}{
		{"main data", onePage.LSN + 30, onePage.LSN},
		{"header xid", onePage.LSN + 4, onePage.LSN},
		{"header crc", onePage.LSN + 22, onePage.LSN},
		{"second page of a long record", recordByte(long.LSN, wal.PageSize), long.LSN},
		{"last byte of a long record", recordByte(long.LSN, longLen-1), long.LSN},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			data := s.read(t)
			data[tt.at-s.start()] ^= 0x40
			sum, err := wal.Summarize(bytes.NewReader(data), wal.ScanOptions{StartLSN: s.start()})
			if err != nil {
				t.Fatalf("Summarize() = %v", err)
			}
			k := recordIndex(t, recs, tt.rec)
			res := sum.Result
			if res.Records != k || res.EndOfValidWAL != recs[k-1].EndLSN || res.Complete || res.Invalid == nil {
				t.Fatalf("Summarize() = %+v, want %d records up to %s, then invalid", res, k, recs[k-1].EndLSN)
			}
			if !strings.Contains(res.Invalid.Error(), tt.rec.String()) {
				t.Errorf("Summarize().Invalid = %v, want it to name the record at %s", res.Invalid, tt.rec)
			}
			if diff := cmp.Diff(commitsBefore(commits, tt.rec), sum.Commits); diff != "" {
				t.Errorf("Summarize() commits (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScanAfterSwitch reads a segment closed early by pg_switch_wal: the
// rest of it is unused, so the scan is complete even without it.
func TestScanAfterSwitch(t *testing.T) {
	f := setup(t)
	var s segment
	var sw scanned
	var next []byte
	for i, seg := range f.segments[:len(f.segments)-1] {
		recs, _ := scanAll(t, bytes.NewReader(seg.read(t)), wal.ScanOptions{StartLSN: seg.start()})
		if last := recs[len(recs)-1]; last.RMID == wal.RMXLOG && last.EndLSN == seg.end() && seg.end()-last.LSN > 4*wal.PageSize {
			s, sw, next = seg, last, f.segments[i+1].read(t)
			break
		}
	}
	if s.name == "" {
		t.Fatal("no segment closed early by a switch record")
	}
	data := s.read(t)
	cut := (sw.LSN/wal.PageSize + 2) * wal.PageSize
	tests := []struct {
		name     string
		r        io.Reader
		complete bool
		end      pglogrepl.LSN
	}{
		{"whole", bytes.NewReader(data), true, s.end()},
		{"cut after the switch", bytes.NewReader(data[:cut-s.start()]), true, s.end()},
		{"with the start of the next", io.MultiReader(bytes.NewReader(data), bytes.NewReader(next[:100])), false, s.end()},
		{"cut, then the next", io.MultiReader(bytes.NewReader(data[:cut-s.start()]), bytes.NewReader(next)), false, s.end()},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			_, res := scanAll(t, tt.r, wal.ScanOptions{StartLSN: s.start()})
			if res.Complete != tt.complete || res.EndOfValidWAL != tt.end {
				t.Errorf("Scan() = %+v, want complete %t, end of valid WAL %s", res, tt.complete, tt.end)
			}
		})
	}
}

// TestScanRecycledSegment reads a segment whose header says it holds
// other WAL, as a recycled segment does: it holds no valid WAL.
func TestScanRecycledSegment(t *testing.T) {
	f := setup(t)
	s := f.segments[1]
	res, err := wal.Scan(bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.end()}, func(wal.Record) error {
		t.Fatal("Scan() found a record")
		return nil
	})
	if err != nil || res.Records != 0 || res.Complete || res.Invalid == nil || res.EndOfValidWAL != s.end() {
		t.Errorf("Scan(recycled) = %+v, %v; want no records, invalid", res, err)
	}
}

func TestScanNotSegment(t *testing.T) {
	f := setup(t)
	s := f.segments[1]
	data := s.read(t)
	tests := []struct {
		name string
		data []byte
		opts wal.ScanOptions
	}{
		{"text", []byte(strings.Repeat("not WAL\n", 4096)), wal.ScanOptions{}},
		{"short", data[:30], wal.ScanOptions{}},
		{"wrong segment size", data, wal.ScanOptions{SegmentSize: 64 << 20}},
		{"second page", data[wal.PageSize:], wal.ScanOptions{}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			_, err := wal.Scan(bytes.NewReader(tt.data), tt.opts, func(wal.Record) error { return nil })
			if !errors.Is(err, wal.ErrNotSegment) {
				t.Errorf("Scan(%s) = %v, want ErrNotSegment", tt.name, err)
			}
		})
	}
	if _, err := wal.Scan(bytes.NewReader(data), wal.ScanOptions{StartLSN: 12345}, nil); err == nil {
		t.Errorf("Scan(StartLSN 12345) = nil error, want one")
	}
	// Empty and zeroed input is a segment with no WAL yet.
	for _, b := range [][]byte{nil, make([]byte, wal.PageSize*3)} {
		res, err := wal.Scan(bytes.NewReader(b), wal.ScanOptions{StartLSN: s.start()}, nil)
		if err != nil || res.Records != 0 || res.Complete || res.Invalid != nil || res.EndOfValidWAL != s.start() {
			t.Errorf("Scan(%d zero bytes) = %+v, %v, want no WAL", len(b), res, err)
		}
	}
}

// TestScanStartFromHeader leaves StartLSN to the first page header.
func TestScanStartFromHeader(t *testing.T) {
	f := setup(t)
	s := f.segments[2]
	want, wantRes := scanAll(t, bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.start()})
	got, res := scanAll(t, bytes.NewReader(s.read(t)), wal.ScanOptions{})
	if diff := cmp.Diff(want, got); diff != "" || res != wantRes {
		t.Errorf("Scan() without StartLSN = %+v, want %+v; records (-want +got):\n%s", res, wantRes, diff)
	}
}

// TestScanCallbackError stops the scan with the callback's error.
func TestScanCallbackError(t *testing.T) {
	f := setup(t)
	s := f.segments[0]
	stop := errors.New("enough")
	n := 0
	res, err := wal.Scan(bytes.NewReader(s.read(t)), wal.ScanOptions{StartLSN: s.start()}, func(wal.Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || res.Records != 3 {
		t.Errorf("Scan() = %d records, %v, want 3, %v", res.Records, err, stop)
	}
}

// TestScanReadError reports a failing reader as an error.
func TestScanReadError(t *testing.T) {
	f := setup(t)
	s := f.segments[0]
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(s.read(t)[:5*wal.PageSize+100]), errReader{boom})
	_, err := wal.Scan(r, wal.ScanOptions{StartLSN: s.start()}, func(wal.Record) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("Scan() = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func BenchmarkCommits(b *testing.B) {
	f := setup(b)
	// A full segment of ordinary records: the last but one.
	s := f.segments[len(f.segments)-2]
	data := s.read(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := wal.Commits(bytes.NewReader(data), wal.ScanOptions{StartLSN: s.start()}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScan feeds Scan and Summarize the beginnings of real segments,
// mutated, and checks what they report is consistent.
func FuzzScan(f *testing.F) {
	fx := setup(f)
	// Small seeds (the fuzzer minimizes every input that finds new code,
	// byte by byte): the first pages of segments, one of which begins with
	// the end of a record from the segment before.
	for _, i := range []int{0, 1, len(fx.segments) - 2} {
		s := fx.segments[i]
		data := s.read(f)
		f.Add(data[:2*wal.PageSize+100], uint32(0))
		f.Add(data[:wal.PageSize+500], uint32(wal.PageSize+200))
	}
	for _, s := range fx.segments {
		data := s.read(f)
		if bytes.Equal(data[2:4], []byte{0x03, 0x00}) { // long header, contrecord
			f.Add(data[:2*wal.PageSize+100], uint32(0))
			break
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, end uint32) {
		opts := wal.ScanOptions{}
		var start pglogrepl.LSN
		if len(data) >= 16 {
			start = pglogrepl.LSN(uint64(data[8]) | uint64(data[9])<<8 | uint64(data[10])<<16 | uint64(data[11])<<24 |
				uint64(data[12])<<32 | uint64(data[13])<<40 | uint64(data[14])<<48 | uint64(data[15])<<56)
		}
		if end != 0 {
			opts.EndLSN = start + pglogrepl.LSN(end)
		}
		var prev pglogrepl.LSN
		n := 0
		res, err := wal.Scan(bytes.NewReader(data), opts, func(r wal.Record) error {
			if r.LSN < prev || r.EndLSN <= r.LSN || r.TotalLen < 24 || len(r.MainData) >= int(r.TotalLen) {
				t.Fatalf("Scan() record %+v after %s", r, prev)
			}
			if opts.EndLSN != 0 && r.LSN >= opts.EndLSN {
				t.Fatalf("Scan() record at %s, past EndLSN %s", r.LSN, opts.EndLSN)
			}
			if n == 0 && r.LSN < start {
				t.Fatalf("Scan() record at %s, before the input's start %s", r.LSN, start)
			}
			prev = r.EndLSN
			n++
			return nil
		})
		if err != nil {
			return
		}
		if res.Records != n || n > 0 && res.EndOfValidWAL != prev || res.Unfinished != 0 && res.Unfinished < res.EndOfValidWAL {
			t.Fatalf("Scan() = %+v after %d records ending at %s", res, n, prev)
		}
		sum, err := wal.Summarize(bytes.NewReader(data), opts)
		if err == nil && !sameResult(sum.Result, res) {
			t.Fatalf("Summarize().Result = %+v, Scan() = %+v", sum.Result, res)
		}
	})
}

// sameResult compares scan results, their Invalid errors by message.
func sameResult(a, b wal.ScanResult) bool {
	if (a.Invalid == nil) != (b.Invalid == nil) || a.Invalid != nil && a.Invalid.Error() != b.Invalid.Error() {
		return false
	}
	a.Invalid, b.Invalid = nil, nil
	return a == b
}
