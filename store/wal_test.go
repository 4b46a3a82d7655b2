package store

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/backstop/backstop/migrations"
)

const testSegSize = 16 << 20

// segName returns the name of segment segNo of timeline tli with 16 MiB
// segments.
func segName(tli, segNo int64) string {
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/256, segNo%256)
}

// segParams returns the parameters of 16 MiB segment segNo of timeline tli.
func segParams(sourceID, tli, segNo int64) WALFileParams {
	start := uint64(segNo) * testSegSize
	return WALFileParams{
		SourceID: sourceID, Name: segName(tli, segNo), Kind: WALSegment, Timeline: tli, SegNo: segNo,
		StartLSN: formatLSN(start), EndLSN: formatLSN(start + testSegSize), Size: testSegSize,
		StoredBytes: 4 << 20, Via: WALViaStream,
	}
}

// partialParams returns the parameters of the piece of 16 MiB segment segNo
// of timeline tli that holds its first end bytes.
func partialParams(sourceID, tli, segNo, end int64) WALFileParams {
	start := uint64(segNo) * testSegSize
	return WALFileParams{
		SourceID: sourceID, Name: fmt.Sprintf("%s.partial.%08X", segName(tli, segNo), end), Kind: WALPartial,
		Timeline: tli, SegNo: segNo, StartLSN: formatLSN(start), EndLSN: formatLSN(start + uint64(end)), Size: end,
		StoredBytes: 1 << 20, Via: WALViaStream,
	}
}

// historyParams returns the parameters of the history file of timeline tli.
func historyParams(sourceID, tli int64) WALFileParams {
	return WALFileParams{
		SourceID: sourceID, Name: fmt.Sprintf("%08X.history", tli), Kind: WALHistory, Timeline: tli,
		Size: 42, StoredBytes: 100, Via: WALViaPush,
	}
}

// recordWAL records p or fails the test.
func recordWAL(t *testing.T, s *Store, p WALFileParams) WALFile {
	t.Helper()
	f, err := s.RecordWAL(t.Context(), p)
	if err != nil {
		t.Fatalf("RecordWAL(%s) = %v", p.Name, err)
	}
	return f
}

// walNames returns the names of the WAL files of source sourceID, in order.
func walNames(t *testing.T, s *Store, sourceID int64) []string {
	t.Helper()
	files, err := s.WALFiles(t.Context(), WALFilter{SourceID: sourceID})
	if err != nil {
		t.Fatalf("WALFiles(source %d) = %v", sourceID, err)
	}
	names := []string{}
	for _, f := range files {
		names = append(names, f.Name)
	}
	return names
}

func ptr[T any](v T) *T { return &v }

func TestRecordWAL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")

	first := time.Date(2026, 11, 25, 9, 40, 0, 123456000, time.UTC)
	last := first.Add(90 * time.Second)
	p := segParams(src.ID, 1, 0x3A)
	p.StartLSN, p.EndLSN = "0/3a000000", "0/3b000000" // stored upper-case
	p.Commits, p.FirstCommitAt, p.LastCommitAt = 1234, first, last
	p.RestorePoints = []RestorePointParams{{Name: "before-migration", LSN: "0/3a0001c8", At: first.Add(time.Second)}}
	got := recordWAL(t, s, p)
	want := WALFile{
		ID: got.ID, SourceID: src.ID, Name: "00000001000000000000003A", Kind: WALSegment, Timeline: 1, SegNo: 0x3A,
		StartLSN: "0/3A000000", EndLSN: "0/3B000000", Size: testSegSize, StoredBytes: 4 << 20,
		Commits: 1234, FirstCommitAt: &first, LastCommitAt: &last, RestorePoints: 1, Via: WALViaStream, ArchivedAt: now,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RecordWAL(segment) mismatch (-want +got):\n%s", diff)
	}

	h := historyParams(src.ID, 2)
	h.ArchivedAt = now.Add(time.Minute)
	gotH := recordWAL(t, s, h)
	wantH := WALFile{
		ID: gotH.ID, SourceID: src.ID, Name: "00000002.history", Kind: WALHistory, Timeline: 2, Size: 42, StoredBytes: 100,
		Via: WALViaPush, ArchivedAt: now.Add(time.Minute),
	}
	if diff := cmp.Diff(wantH, gotH); diff != "" {
		t.Errorf("RecordWAL(history) mismatch (-want +got):\n%s", diff)
	}

	files, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]WALFile{want, wantH}, files); diff != "" {
		t.Errorf("WALFiles() mismatch (-want +got):\n%s", diff)
	}

	// Recording a file again changes nothing, whatever its statistics say.
	clock.Advance(time.Hour)
	again := p
	again.StoredBytes, again.Commits, again.FirstCommitAt, again.LastCommitAt, again.RestorePoints = 0, 0, time.Time{}, time.Time{}, nil
	again.Via = WALViaPush
	if got, err := s.RecordWAL(ctx, again); err != nil || !cmp.Equal(got, want) {
		t.Errorf("RecordWAL(segment again) = %+v, %v, want the recorded row %+v", got, err, want)
	}
	if got, err := s.RecordWAL(ctx, historyParams(src.ID, 2)); err != nil || !cmp.Equal(got, wantH) {
		t.Errorf("RecordWAL(history again) = %+v, %v, want the recorded row %+v", got, err, wantH)
	}

	// The same name with other values, or another segment at the same place,
	// is a conflict.
	other := historyParams(src.ID, 2)
	other.Size = 43
	_, err = s.RecordWAL(ctx, other)
	wantErr(t, "RecordWAL(history, other size)", err, ErrConflict)
	other = segParams(src.ID, 1, 0x3A)
	other.Name += ".copy"
	_, err = s.RecordWAL(ctx, other)
	wantErr(t, "RecordWAL(second segment at 1/0x3A)", err, ErrConflict)
	other = segParams(src.ID, 1, 0x3A)
	other.Kind, other.Name = WALPartial, segName(1, 0x3A)
	_, err = s.RecordWAL(ctx, other)
	wantErr(t, "RecordWAL(segment name recorded as a partial)", err, ErrConflict)

	if diff := cmp.Diff([]string{want.Name, wantH.Name}, walNames(t, s, src.ID)); diff != "" {
		t.Errorf("WAL files after refused records (-want +got):\n%s", diff)
	}

	// Another source has its own WAL, under the same names.
	src2 := createSource(t, s, "billing-db")
	f2 := recordWAL(t, s, segParams(src2.ID, 1, 0x3A))
	if f2.ID == want.ID || f2.SourceID != src2.ID {
		t.Errorf("RecordWAL(segment of another source) = %+v, want a new row", f2)
	}

	// Neither source can go while it has WAL.
	wantErr(t, "DeleteSource(with WAL)", s.DeleteSource(ctx, src.ID), ErrConflict)
}

func TestRecordWALPartial(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	src := createSource(t, s, "orders-db")
	const mib = 1 << 20
	seg := func(n int64) string { return segName(1, n) }
	piece := func(n, end int64) string { return fmt.Sprintf("%s.partial.%08X", seg(n), end) }
	start3 := uint64(3 * testSegSize)
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

	// The first piece carries a restore point; later ones find it again or
	// not (the caller may not have scanned them): it follows the file.
	p3 := partialParams(src.ID, 1, 3, 3*mib)
	p3.RestorePoints = []RestorePointParams{{Name: "rp", LSN: formatLSN(start3 + 100), At: at}}
	steps := []struct {
		desc      string
		p         WALFileParams
		wantName  string // of the returned row
		wantFiles []string
	}{
		{"first piece", p3, piece(3, 3*mib), []string{piece(3, 3*mib)}},
		{"longer piece replaces it", partialParams(src.ID, 1, 3, 5*mib), piece(3, 5*mib), []string{piece(3, 5*mib)}},
		{"shorter piece is ignored", partialParams(src.ID, 1, 3, 4*mib), piece(3, 5*mib), []string{piece(3, 5*mib)}},
		{"first piece again is ignored", partialParams(src.ID, 1, 3, 3*mib), piece(3, 5*mib), []string{piece(3, 5*mib)}},
		{"equal piece again", partialParams(src.ID, 1, 3, 5*mib), piece(3, 5*mib), []string{piece(3, 5*mib)}},
		{"piece of the next segment", partialParams(src.ID, 1, 4, 1), piece(4, 1), []string{piece(3, 5*mib), piece(4, 1)}},
		{"piece of another timeline", partialParams(src.ID, 2, 3, mib), segName(2, 3) + ".partial.00100000",
			[]string{piece(3, 5*mib), piece(4, 1), segName(2, 3) + ".partial.00100000"}},
		{"segment deletes its piece", segParams(src.ID, 1, 3), seg(3), []string{seg(3), piece(4, 1), segName(2, 3) + ".partial.00100000"}},
		{"piece after its segment is ignored", partialParams(src.ID, 1, 3, 6*mib), seg(3), []string{seg(3), piece(4, 1), segName(2, 3) + ".partial.00100000"}},
		{"piece up to the segment's end", partialParams(src.ID, 1, 4, testSegSize), piece(4, testSegSize), []string{seg(3), piece(4, testSegSize), segName(2, 3) + ".partial.00100000"}},
	}
	var prevID int64
	for _, st := range steps {
		clock.Advance(time.Second)
		got, err := s.RecordWAL(ctx, st.p)
		if err != nil {
			t.Fatalf("%s: RecordWAL(%s) = %v", st.desc, st.p.Name, err)
		}
		if got.Name != st.wantName {
			t.Errorf("%s: RecordWAL(%s) = row %s, want %s", st.desc, st.p.Name, got.Name, st.wantName)
		}
		if st.desc == "longer piece replaces it" && got.ID == prevID {
			t.Errorf("%s: the longer piece kept id %d, want a new row", st.desc, got.ID)
		}
		prevID = got.ID
		if diff := cmp.Diff(st.wantFiles, walNames(t, s, src.ID)); diff != "" {
			t.Errorf("%s: WAL files mismatch (-want +got):\n%s", st.desc, diff)
		}
	}

	// The restore point moved with the rows that replaced its piece.
	latest, err := s.LatestWAL(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID, Timeline: 1, Kinds: []WALKind{WALSegment}})
	if err != nil || len(files) != 1 {
		t.Fatalf("WALFiles(timeline 1 segments) = %v, %v, want one", files, err)
	}
	rp, err := s.RestorePointByName(ctx, src.ID, "rp")
	if err != nil {
		t.Fatal(err)
	}
	if rp.WALFileID != files[0].ID || files[0].RestorePoints != 1 {
		t.Errorf("restore point rp is in file %d (segment %d counts %d), want in the segment, counted once", rp.WALFileID, files[0].ID, files[0].RestorePoints)
	}
	if latest.Timeline != 2 {
		t.Errorf("LatestWAL() = %s, want the piece on timeline 2", latest.Name)
	}
}

func TestRecordWALValidation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	seg := func(edit func(p *WALFileParams)) WALFileParams {
		p := segParams(src.ID, 1, 3)
		edit(&p)
		return p
	}
	part := func(edit func(p *WALFileParams)) WALFileParams {
		p := partialParams(src.ID, 1, 3, 5<<20)
		edit(&p)
		return p
	}
	hist := func(edit func(p *WALFileParams)) WALFileParams {
		p := historyParams(src.ID, 2)
		edit(&p)
		return p
	}
	tests := []struct {
		desc      string
		p         WALFileParams
		field     string
		wantInMsg string
	}{
		{"no name", seg(func(p *WALFileParams) { p.Name = "" }), "name", "is required"},
		{"path name", seg(func(p *WALFileParams) { p.Name = "../x" }), "name", "must be a WAL file name, such as 000000010000000000000003"},
		{"kind", seg(func(p *WALFileParams) { p.Kind = "tar" }), "kind", `must be segment, partial or history, not "tar"`},
		{"via", seg(func(p *WALFileParams) { p.Via = "" }), "via", `must be stream or push, not ""`},
		{"timeline", seg(func(p *WALFileParams) { p.Timeline = 0 }), "timeline", "must be positive"},
		{"size", seg(func(p *WALFileParams) { p.Size = 0 }), "size", "must be positive"},
		{"stored bytes", seg(func(p *WALFileParams) { p.StoredBytes = -1 }), "stored_bytes", "must not be negative"},
		{"commits", seg(func(p *WALFileParams) { p.Commits = -1 }), "commits", "must not be negative"},
		{"commits without times", seg(func(p *WALFileParams) { p.Commits = 1 }), "first_commit_at", "commit times must be given exactly when there are commits"},
		{"times without commits", seg(func(p *WALFileParams) { p.FirstCommitAt, p.LastCommitAt = at, at }), "first_commit_at", "commit times must be given exactly when there are commits"},
		{"one time", seg(func(p *WALFileParams) { p.Commits, p.FirstCommitAt = 1, at }), "first_commit_at", "commit times must be given exactly when there are commits"},
		{"times reversed", seg(func(p *WALFileParams) { p.Commits, p.FirstCommitAt, p.LastCommitAt = 2, at, at.Add(-1) }), "last_commit_at", "is before first_commit_at"},
		{"negative segno", seg(func(p *WALFileParams) { p.SegNo = -1 }), "segno", "must not be negative"},
		{"bad start", seg(func(p *WALFileParams) { p.StartLSN = "3000000" }), "start_lsn", `must be an LSN such as 0/3A000000, not "3000000"`},
		{"start too long", seg(func(p *WALFileParams) { p.StartLSN = "0/003000000" }), "start_lsn", `must be an LSN such as 0/3A000000, not "0/003000000"`},
		{"signed start", seg(func(p *WALFileParams) { p.StartLSN = "0/+3000000" }), "start_lsn", `must be an LSN such as 0/3A000000, not "0/+3000000"`},
		{"no end", seg(func(p *WALFileParams) { p.EndLSN = "" }), "end_lsn", `must be an LSN such as 0/3B000000, not ""`},
		{"end before start", seg(func(p *WALFileParams) { p.EndLSN = "0/2000000" }), "end_lsn", "must be after start_lsn 0/3000000"},
		{"size off range", seg(func(p *WALFileParams) { p.Size-- }), "size", "is 16777215 bytes, but 0/3000000 to 0/4000000 spans 16777216"},
		{"segment size", seg(func(p *WALFileParams) { p.EndLSN, p.Size = "0/3300000", 3<<20 }), "size", "a segment's size must be a power of two from 1 MiB to 1 GiB, not 3145728"},
		{"segment elsewhere", seg(func(p *WALFileParams) { p.SegNo = 4 }), "start_lsn", "0/3000000 is not the start of segment 4 of 16777216-byte segments"},
		{"piece elsewhere", part(func(p *WALFileParams) { p.StartLSN, p.EndLSN = "0/3100000", "0/3600000" }), "start_lsn", "0/3100000 is not the start of a segment numbered 3 holding 5242880 bytes, whatever the segment size"},
		{"piece longer than its segment", part(func(p *WALFileParams) { p.SegNo, p.StartLSN, p.EndLSN, p.Size = 48, "0/3000000", "0/3200000", 2<<20 }), "start_lsn", "0/3000000 is not the start of a segment numbered 48 holding 2097152 bytes, whatever the segment size"},
		{"history with segno", hist(func(p *WALFileParams) { p.SegNo = 1 }), "segno", "must be 0 for a history file"},
		{"history with LSNs", hist(func(p *WALFileParams) { p.StartLSN = "0/1" }), "start_lsn", "must be empty for a history file"},
		{"history with commits", hist(func(p *WALFileParams) { p.Commits, p.FirstCommitAt, p.LastCommitAt = 1, at, at }), "commits", "must be 0 for a history file"},
		{"history with restore points", hist(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{Name: "x", LSN: "0/1", At: at}}
		}), "restore_points", "a history file holds no restore points"},
		{"restore point without name", seg(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{LSN: "0/3000000", At: at}}
		}), "restore_points[0]", "name must be 1 to 63 bytes"},
		{"restore point name too long", seg(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{Name: "ok", LSN: "0/3000000", At: at}, {Name: fmt.Sprintf("%064d", 0), LSN: "0/3000000", At: at}}
		}), "restore_points[1]", "name must be 1 to 63 bytes"},
		{"restore point LSN", seg(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{Name: "x", LSN: "x", At: at}}
		}), "restore_points[0]", `"x" is not an LSN`},
		{"restore point outside", seg(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{Name: "x", LSN: "0/4000000", At: at}}
		}), "restore_points[0]", "LSN 0/4000000 is outside the file (0/3000000 to 0/4000000)"},
		{"restore point time", seg(func(p *WALFileParams) {
			p.RestorePoints = []RestorePointParams{{Name: "x", LSN: "0/3FFFFFF"}}
		}), "restore_points[0]", "time is required"},
	}
	t.Run("invalid", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.desc, func(t *testing.T) {
				t.Parallel()
				_, err := s.RecordWAL(ctx, tt.p)
				wantValidation(t, "RecordWAL("+tt.desc+")", err, tt.field, tt.wantInMsg)
			})
		}
	})
	if names := walNames(t, s, src.ID); len(names) != 0 {
		t.Errorf("invalid RecordWAL calls recorded %q", names)
	}

	// Valid edge cases: segment 0, 1 GiB segments, a piece of a 1 MiB
	// segment, restore points at the file's first and last byte.
	src = createSource(t, s, "edge-cases")
	for _, p := range []WALFileParams{
		{SourceID: src.ID, Name: "a", Kind: WALSegment, Timeline: 1, SegNo: 0, StartLSN: "0/0", EndLSN: "0/100000", Size: 1 << 20, Via: WALViaPush},
		{SourceID: src.ID, Name: "b", Kind: WALSegment, Timeline: 1, SegNo: 5, StartLSN: "1/40000000", EndLSN: "1/80000000", Size: 1 << 30, Via: WALViaPush},
		{SourceID: src.ID, Name: "c", Kind: WALPartial, Timeline: 1, SegNo: 4097, StartLSN: "1/100000", EndLSN: "1/100001", Size: 1, Via: WALViaPush,
			RestorePoints: []RestorePointParams{{Name: "first", LSN: "1/100000", At: at}}},
		{SourceID: src.ID, Name: "d", Kind: WALSegment, Timeline: 3, SegNo: 7, StartLSN: "0/7000000", EndLSN: "0/8000000", Size: 16 << 20, Via: WALViaPush,
			RestorePoints: []RestorePointParams{{Name: fmt.Sprintf("%063d", 7), LSN: "0/7ffffff", At: at}}},
	} {
		if _, err := s.RecordWAL(ctx, p); err != nil {
			t.Errorf("RecordWAL(%+v) = %v, want nil", p, err)
		}
	}
}

func TestWALNotFound(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")

	_, err := s.RecordWAL(ctx, segParams(src.ID+1, 1, 3))
	wantErr(t, "RecordWAL(unknown source)", err, ErrNotFound)
	_, err = s.WALFiles(ctx, WALFilter{SourceID: src.ID + 1})
	wantErr(t, "WALFiles(unknown source)", err, ErrNotFound)
	_, err = s.WALSummary(ctx, src.ID+1)
	wantErr(t, "WALSummary(unknown source)", err, ErrNotFound)
	_, err = s.RestorePoints(ctx, src.ID+1)
	wantErr(t, "RestorePoints(unknown source)", err, ErrNotFound)
	_, err = s.LatestWAL(ctx, src.ID)
	wantErr(t, "LatestWAL(no WAL)", err, ErrNotFound)
	_, err = s.RestorePointByName(ctx, src.ID, "nope")
	wantErr(t, "RestorePointByName(nope)", err, ErrNotFound)
	err = s.RecordRestorePoints(ctx, 12345, []RestorePointParams{{Name: "x", LSN: "0/1", At: time.Now()}})
	wantErr(t, "RecordRestorePoints(unknown file)", err, ErrNotFound)

	// A known source without WAL has empty lists, not ErrNotFound.
	if files, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID}); err != nil || len(files) != 0 {
		t.Errorf("WALFiles(no WAL) = %v, %v, want none", files, err)
	}
	if points, err := s.RestorePoints(ctx, src.ID); err != nil || len(points) != 0 {
		t.Errorf("RestorePoints(no WAL) = %v, %v, want none", points, err)
	}
	if sum, err := s.WALSummary(ctx, src.ID); err != nil || !cmp.Equal(sum, WALSummary{}) {
		t.Errorf("WALSummary(no WAL) = %+v, %v, want zero", sum, err)
	}
}

func TestWALFiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")
	other := createSource(t, s, "billing-db")
	// Recorded out of order, as concurrent uploads may.
	for _, p := range []WALFileParams{
		segParams(src.ID, 2, 0x105),
		partialParams(src.ID, 2, 0x106, 8192),
		segParams(src.ID, 1, 0xFF),
		historyParams(src.ID, 2),
		segParams(src.ID, 1, 0x100),
		segParams(src.ID, 2, 0x104),
		segParams(src.ID, 1, 0x104),
		segParams(other.ID, 1, 0x200),
	} {
		recordWAL(t, s, p)
	}
	all := []string{
		segName(1, 0xFF), segName(1, 0x100), segName(1, 0x104),
		"00000002.history", segName(2, 0x104), segName(2, 0x105), segName(2, 0x106) + ".partial.00002000",
	}
	for _, tt := range []struct {
		desc string
		f    WALFilter
		want []string
	}{
		{"all", WALFilter{}, all},
		{"timeline 1", WALFilter{Timeline: 1}, all[:3]},
		{"timeline 2", WALFilter{Timeline: 2}, all[3:]},
		{"timeline 3", WALFilter{Timeline: 3}, []string{}},
		{"from segment 0x104", WALFilter{FromSegNo: 0x104}, []string{all[2], all[3], all[4], all[5], all[6]}},
		{"timeline 2 from 0x105", WALFilter{Timeline: 2, FromSegNo: 0x105}, []string{all[3], all[5], all[6]}},
		{"segments", WALFilter{Kinds: []WALKind{WALSegment}}, []string{all[0], all[1], all[2], all[4], all[5]}},
		{"partials and history", WALFilter{Kinds: []WALKind{WALPartial, WALHistory}}, []string{all[3], all[6]}},
		{"limit", WALFilter{Limit: 2}, all[:2]},
		{"limit from", WALFilter{FromSegNo: 0x105, Limit: 2}, []string{all[3], all[5]}},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			tt.f.SourceID = src.ID
			files, err := s.WALFiles(ctx, tt.f)
			if err != nil {
				t.Fatalf("WALFiles(%+v) = %v", tt.f, err)
			}
			got := []string{}
			for _, f := range files {
				got = append(got, f.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("WALFiles(%+v) mismatch (-want +got):\n%s", tt.f, diff)
			}
		})
	}

	latest, err := s.LatestWAL(ctx, src.ID)
	if err != nil || latest.Name != all[6] {
		t.Errorf("LatestWAL() = %s, %v, want %s", latest.Name, err, all[6])
	}
	recordWAL(t, s, segParams(src.ID, 2, 0x106))
	recordWAL(t, s, segParams(src.ID, 1, 0x107)) // late upload of the old timeline
	latest, err = s.LatestWAL(ctx, src.ID)
	if err != nil || latest.Name != segName(2, 0x106) {
		t.Errorf("LatestWAL() = %s, %v, want %s", latest.Name, err, segName(2, 0x106))
	}
	if latest, err := s.LatestWAL(ctx, other.ID); err != nil || latest.Name != segName(1, 0x200) {
		t.Errorf("LatestWAL(other) = %s, %v, want %s", latest.Name, err, segName(1, 0x200))
	}
}

func TestRestorePoints(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")
	at := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

	f3 := recordWAL(t, s, segParams(src.ID, 1, 3))
	f4 := recordWAL(t, s, segParams(src.ID, 1, 4))
	// Timeline 2 starts inside segment 4: its first segment holds a copy of
	// timeline 1's WAL before the switch, restore point included.
	f4b := recordWAL(t, s, segParams(src.ID, 2, 4))
	points := []struct {
		file WALFile
		rp   RestorePointParams
	}{
		{f4, RestorePointParams{Name: "deploy", LSN: "0/4000100", At: at.Add(2 * time.Minute)}},
		{f3, RestorePointParams{Name: "deploy", LSN: "0/3fff000", At: at.Add(time.Minute)}},
		{f4b, RestorePointParams{Name: "deploy", LSN: "0/4000100", At: at.Add(2 * time.Minute)}},
		{f4b, RestorePointParams{Name: "after-switch", LSN: "0/4800000", At: at.Add(3 * time.Minute)}},
	}
	for _, p := range points {
		if err := s.RecordRestorePoints(ctx, p.file.ID, []RestorePointParams{p.rp}); err != nil {
			t.Fatalf("RecordRestorePoints(%s, %+v) = %v", p.file.Name, p.rp, err)
		}
	}
	// Recording a point again is harmless.
	if err := s.RecordRestorePoints(ctx, f3.ID, []RestorePointParams{points[1].rp, points[1].rp}); err != nil {
		t.Errorf("RecordRestorePoints(again) = %v", err)
	}

	got, err := s.RestorePointByName(ctx, src.ID, "deploy")
	want := RestorePoint{ID: got.ID, SourceID: src.ID, Timeline: 1, Name: "deploy", LSN: "0/3FFF000", At: at.Add(time.Minute), WALFileID: f3.ID}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("RestorePointByName(deploy) = %v, mismatch (-want +got):\n%s", err, diff)
	}
	all, err := s.RestorePoints(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	var gotOrder []string
	for _, rp := range all {
		gotOrder = append(gotOrder, fmt.Sprintf("%d %s %s", rp.Timeline, rp.LSN, rp.Name))
	}
	wantOrder := []string{"1 0/3FFF000 deploy", "1 0/4000100 deploy", "2 0/4000100 deploy", "2 0/4800000 after-switch"}
	if diff := cmp.Diff(wantOrder, gotOrder); diff != "" {
		t.Errorf("RestorePoints() mismatch (-want +got):\n%s", diff)
	}
	for _, f := range []WALFile{f3, f4, f4b} {
		files, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID, Timeline: f.Timeline, FromSegNo: f.SegNo, Limit: 1})
		if err != nil || len(files) != 1 {
			t.Fatal(files, err)
		}
		wantCount := map[int64]int64{f3.ID: 1, f4.ID: 1, f4b.ID: 2}[f.ID]
		if files[0].RestorePoints != wantCount {
			t.Errorf("%s of timeline %d has %d restore points, want %d", f.Name, f.Timeline, files[0].RestorePoints, wantCount)
		}
	}

	// Another name or time at a recorded LSN is a conflict.
	err = s.RecordRestorePoints(ctx, f3.ID, []RestorePointParams{{Name: "renamed", LSN: "0/3FFF000", At: at.Add(time.Minute)}})
	wantErr(t, "RecordRestorePoints(other name at a recorded LSN)", err, ErrConflict)
	err = s.RecordRestorePoints(ctx, f3.ID, []RestorePointParams{{Name: "deploy", LSN: "0/3FFF000", At: at}})
	wantErr(t, "RecordRestorePoints(other time at a recorded LSN)", err, ErrConflict)
	// Points must lie in their file; history files hold none.
	err = s.RecordRestorePoints(ctx, f3.ID, []RestorePointParams{{Name: "x", LSN: "0/4000000", At: at}})
	wantValidation(t, "RecordRestorePoints(outside)", err, "restore_points[0]", "LSN 0/4000000 is outside the file (0/3000000 to 0/4000000)")
	h := recordWAL(t, s, historyParams(src.ID, 2))
	err = s.RecordRestorePoints(ctx, h.ID, []RestorePointParams{{Name: "x", LSN: "0/1", At: at}})
	wantValidation(t, "RecordRestorePoints(history)", err, "restore_points", "a history file holds no restore points")

	if all2, err := s.RestorePoints(ctx, src.ID); err != nil || !cmp.Equal(all, all2) {
		t.Errorf("RestorePoints() after refused records = %v, %v, want unchanged", all2, err)
	}
}

func TestWALSummary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, clock := setup(t)
	now := clock.Now().UTC().Truncate(time.Microsecond)
	src := createSource(t, s, "orders-db")
	other := createSource(t, s, "billing-db")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

	a := segParams(src.ID, 1, 3)
	a.Commits, a.FirstCommitAt, a.LastCommitAt = 10, t0, t0.Add(time.Minute)
	a.RestorePoints = []RestorePointParams{{Name: "a", LSN: "0/3000100", At: t0}}
	b := segParams(src.ID, 1, 4)
	b.Commits, b.FirstCommitAt, b.LastCommitAt = 5, t0.Add(2*time.Minute), t0.Add(3*time.Minute)
	b.ArchivedAt = now.Add(-time.Hour) // rebuilt from the repository: older than a
	c := partialParams(src.ID, 1, 5, 1<<20)
	c.Commits, c.FirstCommitAt, c.LastCommitAt = 1, t0.Add(4*time.Minute), t0.Add(4*time.Minute)
	c.RestorePoints = []RestorePointParams{{Name: "c", LSN: "0/5000200", At: t0.Add(4 * time.Minute)}}
	for _, p := range []WALFileParams{a, b, historyParams(src.ID, 2), c, segParams(other.ID, 1, 9)} {
		recordWAL(t, s, p)
	}
	clock.Advance(time.Minute)
	later := now.Add(time.Minute)
	recordWAL(t, s, partialParams(src.ID, 1, 5, 2<<20)) // replaces c, without commit details

	got, err := s.WALSummary(ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := WALSummary{
		Segments: 2, Partials: 1, HistoryFiles: 1,
		Bytes: 2*testSegSize + 2<<20 + 42, StoredBytes: 2*(4<<20) + 1<<20 + 100,
		Commits: 15, FirstCommitAt: ptr(t0), LastCommitAt: ptr(t0.Add(3 * time.Minute)),
		RestorePoints: 2, LastArchivedAt: &later,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WALSummary() mismatch (-want +got):\n%s", diff)
	}
}

// TestWALSchema checks the constraints that hold whatever the Go code does.
func TestWALSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "orders-db")
	recordWAL(t, s, partialParams(src.ID, 1, 3, 1<<20))
	recordWAL(t, s, historyParams(src.ID, 2))
	insert := `INSERT INTO wal_files (source_id, name, kind, timeline, segno, start_lsn, end_lsn, size, commits, first_commit_at, last_commit_at, via, archived_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-11-25T09:00:00.000000Z')`
	for _, tt := range []struct {
		desc string
		args []any
	}{
		{"second row for a segment", []any{src.ID, "x", "segment", 1, 3, "0/3000000", "0/4000000", 16 << 20, 0, nil, nil, "stream"}},
		{"second history file", []any{src.ID, "00000002.history", "history", 2, nil, nil, nil, 1, 0, nil, nil, "stream"}},
		{"history with segno", []any{src.ID, "h", "history", 3, 1, nil, nil, 1, 0, nil, nil, "stream"}},
		{"segment without LSNs", []any{src.ID, "s", "segment", 1, 9, nil, nil, 1, 0, nil, nil, "stream"}},
		{"commits without times", []any{src.ID, "s", "segment", 1, 9, "0/1", "0/2", 1, 1, nil, nil, "stream"}},
		{"times reversed", []any{src.ID, "s", "segment", 1, 9, "0/1", "0/2", 1, 1, "2026-11-25T09:00:01.000000Z", "2026-11-25T09:00:00.000000Z", "stream"}},
		{"unknown kind", []any{src.ID, "s", "tar", 1, 9, "0/1", "0/2", 1, 0, nil, nil, "stream"}},
		{"unknown via", []any{src.ID, "s", "segment", 1, 9, "0/1", "0/2", 1, 0, nil, nil, "carrier pigeon"}},
		{"unknown source", []any{src.ID + 1, "s", "segment", 1, 9, "0/1", "0/2", 1, 0, nil, nil, "stream"}},
		{"text segno", []any{src.ID, "s", "segment", 1, "nine", "0/1", "0/2", 1, 0, nil, nil, "stream"}},
	} {
		if _, err := s.wdb.ExecContext(ctx, insert, tt.args...); err == nil {
			t.Errorf("insert %s succeeded, want a constraint error", tt.desc)
		}
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO wal_restore_points (source_id, timeline, name, lsn, at) VALUES (?, 1, ?, '0/1', 'x')`,
		src.ID, fmt.Sprintf("%064d", 0)); err == nil {
		t.Errorf("insert of a 64-byte restore point name succeeded, want a constraint error")
	}
}

// TestWALMigration opens, with every migration, a catalog that only 0001
// created and that holds data, as an upgrade does.
func TestWALMigration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")

	initSQL, err := fs.ReadFile(migrations.FS, "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	old, err := open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.migrate(ctx, fstest.MapFS{"0001_init.sql": {Data: initSQL}}); err != nil {
		t.Fatalf("migrate(0001 only) = %v", err)
	}
	if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
		t.Fatalf("SchemaVersion() after 0001 = %d, %v, want 1", v, err)
	}
	// A source as the first schema stores it (today's CreateSource writes later columns).
	var srcID int64
	err = old.wdb.QueryRowContext(ctx, `INSERT INTO sources (name, dsn, system_identifier, pg_version, created_at, updated_at)
		VALUES ('orders-db', 'postgres://x@db1/postgres', '7300000000000000001', 150004, ?, ?) RETURNING id`,
		formatTime(time.Now()), formatTime(time.Now())).Scan(&srcID)
	if err != nil {
		t.Fatal(err)
	}
	src := Source{ID: srcID}
	// A backup as the first schema stores it (today's columns include later ones).
	started := time.Date(2026, 11, 25, 9, 47, 35, 0, time.UTC)
	b := Backup{SourceID: src.ID, RepoID: "r1", State: BackupRunning, StartedAt: started, StartLSN: "0/3000028", Timeline: 1}
	err = old.wdb.QueryRowContext(ctx, `INSERT INTO backups (source_id, repo_id, state, started_at, start_lsn, timeline)
		VALUES (?, 'r1', 'running', ?, '0/3000028', 1) RETURNING id`, src.ID, formatTime(started)).Scan(&b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.RecordWAL(ctx, segParams(src.ID, 1, 3)); err == nil {
		t.Errorf("RecordWAL() before 0002 succeeded, want an error (no table)")
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openAt(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != latestVersion(t) || v < 2 {
		t.Errorf("SchemaVersion() after reopening = %d, %v, want %d (at least 2)", v, err, latestVersion(t))
	}
	if got, err := s.Source(ctx, src.ID); err != nil || got.Name != "orders-db" {
		t.Errorf("Source(%d) after migrating = %+v, %v, want orders-db", src.ID, got, err)
	}
	if got, err := s.Backup(ctx, b.ID); err != nil || !cmp.Equal(got, b) {
		t.Errorf("Backup(%d) after migrating = %+v, %v, want %+v", b.ID, got, err, b)
	}
	f := recordWAL(t, s, segParams(src.ID, 1, 3))
	if files, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID}); err != nil || len(files) != 1 || files[0].ID != f.ID {
		t.Errorf("WALFiles() after migrating = %+v, %v, want [%s]", files, err, f.Name)
	}
	var fk int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Errorf("foreign key check after migrating = %d violations, %v, want 0", fk, err)
	}
}

func TestWindowVersion(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "versioned")
	other := createSource(t, s, "other")
	version := func() string {
		t.Helper()
		v, err := s.WindowVersion(ctx, src.ID)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	seen := map[string]bool{version(): true}
	changed := func(what string) {
		t.Helper()
		v := version()
		if seen[v] {
			t.Errorf("WindowVersion() after %s = %s, seen before: want a new value", what, v)
		}
		seen[v] = true
	}
	recordWAL(t, s, segParams(src.ID, 1, 3))
	changed("recording a segment")
	b, err := s.CreateBackup(ctx, BackupParams{SourceID: src.ID, RepoID: "r1", StartLSN: "0/3000028", Timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	changed("starting a backup")
	if err := s.CompleteBackup(ctx, b.ID, BackupCompletion{EndLSN: "0/3000100"}); err != nil {
		t.Fatal(err)
	}
	changed("completing it")
	before := version()
	recordWAL(t, s, segParams(other.ID, 1, 3))
	if version() != before {
		t.Errorf("WindowVersion() changed with another source's WAL")
	}
	if _, err := s.PinBackup(ctx, b.ID, "test", ""); err != nil {
		t.Fatal(err)
	}
	changed("pinning the backup")
}

// TestWALSince keeps a source's WAL rows up to date with WALSince alone, through every way
// they change, and checks them against all rows read afresh after each change; and that a
// reader behind the bounded change log reads everything again.
func TestWALSince(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "kept")
	other := createSource(t, s, "other")
	var rows []WALFile
	var cursor WALCursor
	// sync applies what changed since cursor and checks the result; it returns the
	// delta.
	sync := func(what string) WALDelta {
		t.Helper()
		d, err := s.WALSince(ctx, src.ID, cursor)
		if err != nil {
			t.Fatalf("WALSince() after %s = %v", what, err)
		}
		rows, cursor = d.Apply(rows), d.Cursor
		want, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, rows, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("rows kept with WALSince after %s differ from WALFiles (-want +got):\n%s", what, diff)
		}
		return d
	}
	// incremental checks that d read only the n rows that changed.
	incremental := func(what string, d WALDelta, n int) {
		t.Helper()
		if d.Full || len(d.Files) != n {
			t.Errorf("WALSince() after %s read %d rows (full: %v), want only the %d changed", what, len(d.Files), d.Full, n)
		}
	}

	if d := sync("nothing"); !d.Full {
		t.Errorf("WALSince(zero cursor) is not Full")
	}
	recordWAL(t, s, segParams(src.ID, 1, 3))
	recordWAL(t, s, segParams(src.ID, 1, 4))
	incremental("two segments", sync("two segments"), 2)
	recordWAL(t, s, segParams(other.ID, 1, 5))
	incremental("another source's segment", sync("another source's segment"), 0)
	piece := recordWAL(t, s, partialParams(src.ID, 1, 5, 1<<20))
	incremental("a partial piece", sync("a partial piece"), 1)
	recordWAL(t, s, partialParams(src.ID, 1, 5, 2<<20))
	incremental("a longer piece replacing it", sync("a longer piece replacing it"), 1)
	recordWAL(t, s, historyParams(src.ID, 2))
	incremental("a history file (sorted first)", sync("a history file"), 1)
	recordWAL(t, s, segParams(src.ID, 1, 2))
	incremental("an older segment (sorted before)", sync("an older segment"), 1)
	seg5 := recordWAL(t, s, segParams(src.ID, 1, 5))
	incremental("the segment replacing its piece", sync("the segment replacing its piece"), 1)
	if err := s.RecordRestorePoints(ctx, seg5.ID, []RestorePointParams{{Name: "before-migration",
		LSN: formatLSN(5*testSegSize + 100), At: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}}); err != nil {
		t.Fatal(err)
	}
	incremental("a restore point (its file's count changes)", sync("a restore point"), 1)
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM wal_files WHERE source_id = ? AND segno = 2`, src.ID); err != nil {
		t.Fatal(err)
	}
	incremental("a deleted segment", sync("a deleted segment"), 0)
	if len(rows) == 0 || slices.ContainsFunc(rows, func(f WALFile) bool { return f.ID == piece.ID }) {
		t.Errorf("rows after the changes = %v, want some, without the replaced piece %d", rows, piece.ID)
	}

	// More changes than the log keeps, of a segment of the other source.
	before := cursor
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 10_001 {
		if _, err := tx.ExecContext(ctx, `UPDATE wal_files SET stored_bytes = stored_bytes + 1 WHERE source_id = ?`, other.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, `UPDATE wal_files SET stored_bytes = 1 WHERE source_id = ? AND segno = 3`, src.ID); err != nil {
		t.Fatal(err)
	}
	cursor = before
	if d := sync("more changes than the log keeps"); !d.Full {
		t.Errorf("WALSince() behind the change log is not Full")
	}
	if d := sync("nothing more"); d.Full || len(d.Files) != 0 {
		t.Errorf("WALSince() with nothing changed = %d rows (full: %v), want none", len(d.Files), d.Full)
	}
}

// TestWALSinceNewRowsAreNotGone: the rows recorded since a cursor are only added, even
// though recording a row also updates it (its restore point count), so that keeping a
// source's rows costs an append, not a sort of every row, after each new segment.
func TestWALSinceNewRowsAreNotGone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := setup(t)
	src := createSource(t, s, "kept")
	recordWAL(t, s, segParams(src.ID, 1, 3))
	d, err := s.WALSince(ctx, src.ID, WALCursor{})
	if err != nil {
		t.Fatal(err)
	}
	rows, cursor := d.Apply(nil), d.Cursor
	seg4 := recordWAL(t, s, segParams(src.ID, 1, 4))
	piece := recordWAL(t, s, partialParams(src.ID, 1, 5, 1<<20))
	recordWAL(t, s, partialParams(src.ID, 1, 5, 2<<20)) // replaces the piece recorded since
	if d, err = s.WALSince(ctx, src.ID, cursor); err != nil {
		t.Fatal(err)
	}
	if len(d.Gone) != 0 {
		t.Errorf("WALSince() after new rows %d and %d (and a piece replacing %d) has Gone = %v, want none: the reader had none of them",
			seg4.ID, piece.ID+1, piece.ID, d.Gone)
	}
	want, err := s.WALFiles(ctx, WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, d.Apply(rows), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("rows kept after new rows differ from WALFiles (-want +got):\n%s", diff)
	}
}
