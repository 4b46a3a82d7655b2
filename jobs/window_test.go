package jobs

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

const segSize = 16 << 20

// t0 is the start of every test's clock; at(d) is d after it.
var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	minute = time.Minute
	second = time.Second
	micro  = time.Microsecond
)

// lsn parses a test LSN.
func lsn(s string) pglogrepl.LSN {
	l, ok := parseLSN(s)
	if !ok {
		panic("bad test LSN " + s)
	}
	return l
}

// withCommits sets f's commit times (none when both are zero).
func withCommits(f store.WALFile, first, last time.Time) store.WALFile {
	if first.IsZero() {
		return f
	}
	f.Commits, f.FirstCommitAt, f.LastCommitAt = 2, &first, &last
	return f
}

// seg is complete segment segNo of timeline tli, with commits from first to last.
func seg(tli int64, segNo int64, first, last time.Time) store.WALFile {
	start := pgwal.SegmentStart(uint64(segNo), segSize)
	return withCommits(store.WALFile{
		Name: pgwal.SegmentName(uint32(tli), uint64(segNo), segSize), Kind: store.WALSegment, Timeline: tli, SegNo: segNo,
		StartLSN: start.String(), EndLSN: (start + segSize).String(), Size: segSize, Via: store.WALViaStream,
	}, first, last)
}

// piece is the first size bytes of segment segNo of timeline tli.
func piece(tli int64, segNo int64, size int64, first, last time.Time) store.WALFile {
	start := pgwal.SegmentStart(uint64(segNo), segSize)
	return withCommits(store.WALFile{
		Name: repository.PartialWALName(pgwal.SegmentName(uint32(tli), uint64(segNo), segSize), size),
		Kind: store.WALPartial, Timeline: tli, SegNo: segNo,
		StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(size)).String(), Size: size, Via: store.WALViaStream,
	}, first, last)
}

// backup is a complete backup.
func backup(id, tli int64, start, end string, finished time.Time, bytes int64) store.Backup {
	return store.Backup{ID: id, SourceID: 1, State: store.BackupComplete, StartLSN: start, EndLSN: end, Timeline: tli,
		StartedAt: finished.Add(-time.Minute), FinishedAt: &finished, Stats: store.BackupStats{SourceBytes: bytes}}
}

// need is what a plan lists for file f.
func need(f store.WALFile) WALNeed {
	name, _, _ := strings.Cut(f.Name, pgwal.PartialSuffix)
	return WALNeed{Name: f.Name, Segment: name, Timeline: uint32(f.Timeline), SegNo: uint64(f.SegNo),
		StartLSN: lsn(f.StartLSN), EndLSN: lsn(f.EndLSN), Size: f.Size, Partial: f.Kind == store.WALPartial}
}

func needs(files ...store.WALFile) []WALNeed {
	var n []WALNeed
	for _, f := range files {
		n = append(n, need(f))
	}
	return n
}

func sizes(files ...store.WALFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}

// recovery returns the settings every plan has on timeline tli, plus kv.
func recovery(tli string, kv ...string) map[string]string {
	m := map[string]string{"recovery_target_timeline": tli, "recovery_target_action": "promote"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// linear is one timeline: segments 2 to 6 and a piece of 7, with two backups (and a
// failed one): backup 1 at 0/2000200, in a segment with commits, backup 2 at 0/4000100,
// in a segment without.
type linear struct {
	s2, s3, s4, s5, s6, p7 store.WALFile
	b1, b2                 BackupPoint
	in                     WindowInput
}

func linearInput() linear {
	var l linear
	l.s2 = seg(1, 2, at(1*minute), at(2*minute))
	l.s3 = seg(1, 3, at(10*minute), at(20*minute))
	l.s4 = seg(1, 4, time.Time{}, time.Time{})
	l.s5 = seg(1, 5, at(30*minute), at(40*minute))
	l.s6 = seg(1, 6, at(50*minute), at(60*minute))
	l.p7 = piece(1, 7, 0x800, at(61*minute), at(62*minute))
	failed := backup(3, 1, "0/5000028", "0/5000100", at(45*minute), 3000)
	failed.State = store.BackupFailed
	l.in = WindowInput{
		Backups: []store.Backup{
			backup(2, 1, "0/4000028", "0/4000100", at(25*minute), 2000),
			backup(1, 1, "0/2000028", "0/2000200", at(5*minute), 1000),
			failed,
		},
		WAL: []store.WALFile{l.s2, l.s3, l.s4, l.s5, l.s6, l.p7},
		RestorePoints: []store.RestorePoint{
			{Timeline: 1, Name: "before-upgrade", LSN: "0/5000100", At: at(35 * minute)},
			{Timeline: 1, Name: "dup", LSN: "0/6000100", At: at(55 * minute)},
			{Timeline: 1, Name: "dup", LSN: "0/3000100", At: at(15 * minute)},
			{Timeline: 1, Name: "early", LSN: "0/2000100", At: at(90 * second)},
		},
	}
	l.b1 = BackupPoint{ID: 1, Timeline: 1, StartLSN: lsn("0/2000028"), EndLSN: lsn("0/2000200"),
		ConsistentAt: at(2 * minute), ConsistentFrom: ConsistencyWALBound, FinishedAt: at(5 * minute), Bytes: 1000}
	l.b2 = BackupPoint{ID: 2, Timeline: 1, StartLSN: lsn("0/4000028"), EndLSN: lsn("0/4000100"),
		ConsistentAt: at(20 * minute), ConsistentFrom: ConsistencyWAL, FinishedAt: at(25 * minute), Bytes: 2000}
	return l
}

// forked has timeline 2 branching from 1 at 0/5000100, inside segment 5: timeline 1's
// piece of segment 5 and its segment 6 (written by the old primary after the fork) are
// not timeline 2's history. Backup 1 is on timeline 1 before the fork, backup 2 on
// timeline 2, backup 3 on timeline 1 after the fork.
type forked struct {
	s1, s2, s3, s4, p5, s6old store.WALFile // timeline 1
	s5, s6, p7                store.WALFile // timeline 2
	b1, b2, b3                BackupPoint
	in                        WindowInput
}

func forkedInput() forked {
	var f forked
	f.s1 = seg(1, 1, at(30*second), at(40*second))
	f.s2 = seg(1, 2, at(1*minute), at(2*minute))
	f.s3 = seg(1, 3, at(3*minute), at(4*minute))
	f.s4 = seg(1, 4, at(5*minute), at(6*minute))
	f.p5 = piece(1, 5, 0x100, at(7*minute), at(7*minute))
	f.s6old = seg(1, 6, at(100*minute), at(101*minute))
	f.s5 = seg(2, 5, at(7*minute), at(8*minute))
	f.s6 = seg(2, 6, at(9*minute), at(10*minute))
	f.p7 = piece(2, 7, 0x400, at(11*minute), at(12*minute))
	hist := store.WALFile{Name: "00000002.history", Kind: store.WALHistory, Timeline: 2, Size: 42}
	f.in = WindowInput{
		Backups: []store.Backup{
			backup(1, 1, "0/2000028", "0/2000200", at(3*minute), 1000),
			backup(2, 2, "0/6000028", "0/6000100", at(9*minute+30*second), 2000),
			backup(3, 1, "0/6000028", "0/6000100", at(100*minute+30*second), 3000),
		},
		WAL:       []store.WALFile{f.s1, f.s2, f.s3, f.s4, f.p5, f.s6old, hist, f.s5, f.s6, f.p7},
		Histories: map[uint32][]pgwal.HistoryEntry{2: {{Parent: 1, SwitchLSN: lsn("0/5000100"), Reason: "no recovery target specified"}}},
	}
	f.b1 = BackupPoint{ID: 1, Timeline: 1, StartLSN: lsn("0/2000028"), EndLSN: lsn("0/2000200"),
		ConsistentAt: at(2 * minute), ConsistentFrom: ConsistencyWALBound, FinishedAt: at(3 * minute), Bytes: 1000}
	f.b2 = BackupPoint{ID: 2, Timeline: 2, StartLSN: lsn("0/6000028"), EndLSN: lsn("0/6000100"),
		ConsistentAt: at(9*minute + 30*second), ConsistentFrom: ConsistencyFinish, FinishedAt: at(9*minute + 30*second), Bytes: 2000}
	f.b3 = BackupPoint{ID: 3, Timeline: 1, StartLSN: lsn("0/6000028"), EndLSN: lsn("0/6000100"),
		ConsistentAt: at(100*minute + 30*second), ConsistentFrom: ConsistencyFinish, FinishedAt: at(100*minute + 30*second), Bytes: 3000}
	return f
}

// gapped has segment 4 missing between two backups.
type gapped struct {
	s2, s3, s5, s6 store.WALFile
	b1, b2         BackupPoint
	in             WindowInput
}

func gappedInput() gapped {
	var g gapped
	g.s2 = seg(1, 2, at(1*minute), at(2*minute))
	g.s3 = seg(1, 3, at(3*minute), at(4*minute))
	g.s5 = seg(1, 5, at(10*minute), at(11*minute))
	g.s6 = seg(1, 6, at(12*minute), at(13*minute))
	g.in = WindowInput{
		Backups: []store.Backup{
			backup(1, 1, "0/2000028", "0/2000200", at(2*minute+30*second), 1000),
			backup(2, 1, "0/5000028", "0/5000200", at(10*minute+30*second), 2000),
		},
		WAL: []store.WALFile{g.s2, g.s3, g.s5, g.s6},
	}
	g.b1 = BackupPoint{ID: 1, Timeline: 1, StartLSN: lsn("0/2000028"), EndLSN: lsn("0/2000200"),
		ConsistentAt: at(2 * minute), ConsistentFrom: ConsistencyWALBound, FinishedAt: at(2*minute + 30*second), Bytes: 1000}
	g.b2 = BackupPoint{ID: 2, Timeline: 1, StartLSN: lsn("0/5000028"), EndLSN: lsn("0/5000200"),
		ConsistentAt: at(10*minute + 30*second), ConsistentFrom: ConsistencyFinish, FinishedAt: at(10*minute + 30*second), Bytes: 2000}
	return g
}

func TestComputeWindow(t *testing.T) {
	t.Parallel()
	l, f, g := linearInput(), forkedInput(), gappedInput()
	onlyBackup := backup(7, 1, "0/2000028", "0/2000200", at(5*minute), 1000)
	trailing := gappedInput()
	trailing.in.Backups = trailing.in.Backups[:1]
	trailing.in.WAL = []store.WALFile{trailing.s2, trailing.s3, trailing.s5}
	tests := []struct {
		name string
		in   WindowInput
		want Window
	}{
		{name: "empty", in: WindowInput{}, want: Window{}},
		{
			name: "WAL and no backup",
			in:   WindowInput{WAL: []store.WALFile{l.s2, l.s3}},
			want: Window{Timeline: 1},
		},
		{
			name: "one backup and no archived WAL",
			in:   WindowInput{Backups: []store.Backup{onlyBackup}},
			want: Window{
				Timeline: 1,
				Ranges:   []Range{{From: at(5 * minute), To: at(5 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/2000200"), Timeline: 1, BackupID: 7}},
				Earliest: at(5 * minute), Latest: at(5 * minute),
				Backups: []BackupPoint{{ID: 7, Timeline: 1, StartLSN: lsn("0/2000028"), EndLSN: lsn("0/2000200"),
					ConsistentAt: at(5 * minute), ConsistentFrom: ConsistencyFinish, FinishedAt: at(5 * minute), Bytes: 1000}},
			},
		},
		{
			name: "two backups and a partial piece at the end",
			in:   l.in,
			want: Window{
				Timeline: 1,
				Ranges:   []Range{{From: at(2 * minute), To: at(62 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/7000800"), Timeline: 1, BackupID: 1}},
				Earliest: at(2 * minute), Latest: at(62 * minute),
				Backups: []BackupPoint{l.b1, l.b2},
				RestorePoints: []NamedPoint{
					{Name: "dup", LSN: lsn("0/3000100"), At: at(15 * minute), Timeline: 1},
					{Name: "before-upgrade", LSN: lsn("0/5000100"), At: at(35 * minute), Timeline: 1},
					{Name: "dup", LSN: lsn("0/6000100"), At: at(55 * minute), Timeline: 1},
				},
			},
		},
		{
			name: "a gap between two backups",
			in:   g.in,
			want: Window{
				Timeline: 1,
				Ranges: []Range{
					{From: at(2 * minute), To: at(4 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/4000000"), Timeline: 1, BackupID: 1},
					{From: at(10*minute + 30*second), To: at(13 * minute), FromLSN: lsn("0/5000200"), ToLSN: lsn("0/7000000"), Timeline: 1, BackupID: 2},
				},
				Gaps: []Gap{{Segment: "000000010000000000000004", Timeline: 1, FromLSN: lsn("0/4000000"), ToLSN: lsn("0/5000000"),
					RestorableUntil: at(4 * minute)}},
				Earliest: at(2 * minute), Latest: at(13 * minute),
				Backups: []BackupPoint{g.b1, g.b2},
			},
		},
		{
			name: "WAL after a gap that no backup can use",
			in:   trailing.in,
			want: Window{
				Timeline: 1,
				Ranges:   []Range{{From: at(2 * minute), To: at(4 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/4000000"), Timeline: 1, BackupID: 1}},
				Gaps: []Gap{{Segment: "000000010000000000000004", Timeline: 1, FromLSN: lsn("0/4000000"), ToLSN: lsn("0/5000000"),
					RestorableUntil: at(4 * minute)}},
				Earliest: at(2 * minute), Latest: at(4 * minute),
				Backups: []BackupPoint{g.b1},
			},
		},
		{
			// Timeline 2 reads timeline 1's segments 1 to 4 and its own from 5 on;
			// backup 3 (timeline 1 after the fork) is not in its history.
			name: "two timelines",
			in:   f.in,
			want: Window{
				Timeline: 2,
				Ranges:   []Range{{From: at(2 * minute), To: at(12 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/7000400"), Timeline: 2, BackupID: 1}},
				Earliest: at(2 * minute), Latest: at(12 * minute),
				Backups: []BackupPoint{f.b1, f.b2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ComputeWindow(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ComputeWindow() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestComputeWindowOldTimeline follows timeline 1 in the forked archive: its own
// segments past the fork, split from the rest by the missing end of segment 5.
func TestComputeWindowOldTimeline(t *testing.T) {
	t.Parallel()
	f := forkedInput()
	in := f.in
	got := newPath(&in, 1).window()
	want := Window{
		Timeline: 1,
		Ranges: []Range{
			{From: at(2 * minute), To: at(7 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/5000100"), Timeline: 1, BackupID: 1},
			{From: at(100*minute + 30*second), To: at(101 * minute), FromLSN: lsn("0/6000100"), ToLSN: lsn("0/7000000"), Timeline: 1, BackupID: 3},
		},
		Gaps: []Gap{{Segment: "000000010000000000000005", Timeline: 1, FromLSN: lsn("0/5000100"), ToLSN: lsn("0/6000000"),
			RestorableUntil: at(7 * minute)}},
		Earliest: at(2 * minute), Latest: at(101 * minute),
		Backups: []BackupPoint{f.b1, f.b3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("window of timeline 1 mismatch (-want +got):\n%s", diff)
	}
}

func TestWindowConsistency(t *testing.T) {
	t.Parallel()
	end := "0/3000100"
	tests := []struct {
		name     string
		wal      []store.WALFile
		finished time.Time
		want     time.Time
		from     ConsistencySource
	}{
		{
			name: "no commits where it ends, commits before",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), seg(1, 3, time.Time{}, time.Time{})},
			want: at(2 * minute), from: ConsistencyWAL, finished: at(9 * minute),
		},
		{
			name: "several segments without commits before it",
			wal: []store.WALFile{seg(1, 1, at(1*minute), at(2*minute)), seg(1, 2, time.Time{}, time.Time{}),
				seg(1, 3, time.Time{}, time.Time{})},
			want: at(2 * minute), from: ConsistencyWAL, finished: at(9 * minute),
		},
		{
			name: "commits where it ends, finished after them",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), seg(1, 3, at(3*minute), at(4*minute))},
			want: at(4 * minute), from: ConsistencyWALBound, finished: at(9 * minute),
		},
		{
			name: "commits where it ends, finished before the last of them",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), seg(1, 3, at(3*minute), at(4*minute))},
			want: at(3 * minute), from: ConsistencyFinish, finished: at(3 * minute),
		},
		{
			name: "finished before commits known to precede it: the clock is off",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), seg(1, 3, at(3*minute), at(4*minute))},
			want: at(4 * minute), from: ConsistencyWALBound, finished: at(1 * minute),
		},
		{
			name: "its segment is not archived",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute))},
			want: at(9 * minute), from: ConsistencyFinish, finished: at(9 * minute),
		},
		{
			name: "a piece of its segment ends before it",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), piece(1, 3, 0x80, time.Time{}, time.Time{})},
			want: at(9 * minute), from: ConsistencyFinish, finished: at(9 * minute),
		},
		{
			name: "a piece ends exactly at it",
			wal:  []store.WALFile{seg(1, 2, at(1*minute), at(2*minute)), piece(1, 3, 0x100, at(3*minute), at(3*minute))},
			want: at(3 * minute), from: ConsistencyWAL, finished: at(9 * minute),
		},
		{
			name: "no commit anywhere before it",
			wal:  []store.WALFile{seg(1, 3, time.Time{}, time.Time{})},
			want: at(9 * minute), from: ConsistencyFinish, finished: at(9 * minute),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := WindowInput{Backups: []store.Backup{backup(1, 1, "0/3000028", end, tt.finished, 1)}, WAL: tt.wal}
			w := ComputeWindow(in)
			if len(w.Backups) != 1 {
				t.Fatalf("ComputeWindow().Backups = %v, want one", w.Backups)
			}
			b := w.Backups[0]
			if !b.ConsistentAt.Equal(tt.want) || b.ConsistentFrom != tt.from {
				t.Errorf("consistency = %s (%s), want %s (%s)", b.ConsistentAt, b.ConsistentFrom, tt.want, tt.from)
			}
			if got := b.Approximate(); got != (tt.from == ConsistencyFinish) {
				t.Errorf("Approximate() = %t, want %t", got, !got)
			}
		})
	}
}

func TestPlanRestore(t *testing.T) {
	t.Parallel()
	l, f, g := linearInput(), forkedInput(), gappedInput()
	onlyBackup := WindowInput{Backups: []store.Backup{backup(7, 1, "0/2000028", "0/2000200", at(5*minute), 1000)}}
	only := BackupPoint{ID: 7, Timeline: 1, StartLSN: lsn("0/2000028"), EndLSN: lsn("0/2000200"),
		ConsistentAt: at(5 * minute), ConsistentFrom: ConsistencyFinish, FinishedAt: at(5 * minute), Bytes: 1000}
	timeTarget := func(d time.Duration) Target { return Target{Kind: TargetTime, Time: at(d), Inclusive: true} }
	tests := []struct {
		name   string
		in     WindowInput
		target Target
		want   Plan
	}{
		{
			// Backup 2's consistency time is 00:20: at 00:02 only backup 1 can do.
			name: "time at the earliest edge", in: l.in, target: timeTarget(2 * minute),
			want: Plan{Backup: l.b1, Timeline: 1, WAL: needs(l.s2, l.s3), WALFrom: lsn("0/2000028"), WALTo: lsn("0/4000000"),
				Target:   Target{Kind: TargetTime, Time: at(2 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:02:00+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "time a microsecond before a backup's consistency point", in: l.in, target: timeTarget(20*minute - micro),
			want: Plan{Backup: l.b1, Timeline: 1, WAL: needs(l.s2, l.s3), WALFrom: lsn("0/2000028"), WALTo: lsn("0/4000000"),
				Target:   Target{Kind: TargetTime, Time: at(20*minute - micro), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:19:59.999999+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "time at a backup's consistency point", in: l.in, target: timeTarget(20 * minute),
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5), WALFrom: lsn("0/4000028"), WALTo: lsn("0/6000000"),
				Target:   Target{Kind: TargetTime, Time: at(20 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:20:00+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "time just after a backup's consistency point", in: l.in, target: timeTarget(20*minute + micro),
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5), WALFrom: lsn("0/4000028"), WALTo: lsn("0/6000000"),
				Target:   Target{Kind: TargetTime, Time: at(20*minute + micro), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:20:00.000001+00", "recovery_target_inclusive", "on")},
		},
		{
			// Commits before 00:20:00 are those at or before 00:19:59.999999.
			name: "exclusive time", in: l.in, target: Target{Kind: TargetTime, Time: at(20 * minute)},
			want: Plan{Backup: l.b1, Timeline: 1, WAL: needs(l.s2, l.s3), WALFrom: lsn("0/2000028"), WALTo: lsn("0/4000000"),
				Target:   Target{Kind: TargetTime, Time: at(20*minute - micro), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:19:59.999999+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "time in the partial piece", in: l.in, target: timeTarget(61*minute + 30*second),
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6, l.p7), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000800"),
				Target:   Target{Kind: TargetTime, Time: at(61*minute + 30*second), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 03:01:30+00", "recovery_target_inclusive", "on")},
		},
		{
			// No commit after it: a time target would never be reached.
			name: "time at the latest edge", in: l.in, target: timeTarget(62 * minute),
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6, l.p7), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000800"),
				Target: Target{Kind: TargetTime, Time: at(62 * minute), Inclusive: true, Timeline: 1}, ReplayToEnd: true,
				Recovery: recovery("1")},
		},
		{
			name: "time within the latest microsecond", in: l.in, target: timeTarget(62*minute + 999*time.Nanosecond),
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6, l.p7), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000800"),
				Target: Target{Kind: TargetTime, Time: at(62 * minute), Inclusive: true, Timeline: 1}, ReplayToEnd: true,
				Recovery: recovery("1")},
		},
		{
			name: "latest", in: l.in, target: Target{Kind: TargetLatest},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6, l.p7), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000800"),
				Target: Target{Kind: TargetLatest, Time: at(62 * minute), LSN: lsn("0/7000800"), Inclusive: true, Timeline: 1}, ReplayToEnd: true,
				Recovery: recovery("1")},
		},
		{
			name: "immediate, newest backup", in: l.in, target: Target{Kind: TargetImmediate},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4), WALFrom: lsn("0/4000028"), WALTo: lsn("0/4000100"),
				Target:   Target{Kind: TargetImmediate, BackupID: 2, LSN: lsn("0/4000100"), Time: at(20 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target", "immediate")},
		},
		{
			name: "immediate, a given backup", in: l.in, target: Target{Kind: TargetImmediate, BackupID: 1},
			want: Plan{Backup: l.b1, Timeline: 1, WAL: needs(l.s2), WALFrom: lsn("0/2000028"), WALTo: lsn("0/2000200"),
				Target:   Target{Kind: TargetImmediate, BackupID: 1, LSN: lsn("0/2000200"), Time: at(2 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target", "immediate")},
		},
		{
			// The stopping record may run on into the next segment.
			name: "LSN", in: l.in, target: Target{Kind: TargetLSN, LSN: lsn("0/5000010"), Inclusive: true},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000000"),
				Target:   Target{Kind: TargetLSN, LSN: lsn("0/5000010"), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_lsn", "0/5000010", "recovery_target_inclusive", "on")},
		},
		{
			name: "LSN at a backup's consistency point, exclusive", in: l.in, target: Target{Kind: TargetLSN, LSN: lsn("0/4000100")},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5), WALFrom: lsn("0/4000028"), WALTo: lsn("0/6000000"),
				Target:   Target{Kind: TargetLSN, LSN: lsn("0/4000100"), Timeline: 1},
				Recovery: recovery("1", "recovery_target_lsn", "0/4000100", "recovery_target_inclusive", "off")},
		},
		{
			name: "LSN at the end of the WAL", in: l.in, target: Target{Kind: TargetLSN, LSN: lsn("0/7000800"), Inclusive: true},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5, l.s6, l.p7), WALFrom: lsn("0/4000028"), WALTo: lsn("0/7000800"),
				Target: Target{Kind: TargetLSN, LSN: lsn("0/7000800"), Inclusive: true, Timeline: 1}, ReplayToEnd: true,
				Recovery: recovery("1")},
		},
		{
			name: "restore point", in: l.in, target: Target{Kind: TargetName, Name: "before-upgrade"},
			want: Plan{Backup: l.b2, Timeline: 1, WAL: needs(l.s4, l.s5), WALFrom: lsn("0/4000028"), WALTo: lsn("0/6000000"),
				Target:   Target{Kind: TargetName, Name: "before-upgrade", LSN: lsn("0/5000100"), Time: at(35 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_name", "before-upgrade")},
		},
		{
			// Recovery stops at the first point of the name that it replays.
			name: "restore point named twice", in: l.in, target: Target{Kind: TargetName, Name: "dup"},
			want: Plan{Backup: l.b1, Timeline: 1, WAL: needs(l.s2, l.s3), WALFrom: lsn("0/2000028"), WALTo: lsn("0/4000000"),
				Target:   Target{Kind: TargetName, Name: "dup", LSN: lsn("0/3000100"), Time: at(15 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_name", "dup")},
		},
		{
			name: "only a backup: its consistency time", in: onlyBackup, target: timeTarget(5 * minute),
			want: Plan{Backup: only, Timeline: 1, WALFrom: lsn("0/2000028"), WALTo: lsn("0/2000200"),
				Target:   Target{Kind: TargetTime, Time: at(5 * minute), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target", "immediate")},
		},
		{
			name: "only a backup: latest", in: onlyBackup, target: Target{Kind: TargetLatest},
			want: Plan{Backup: only, Timeline: 1, WALFrom: lsn("0/2000028"), WALTo: lsn("0/2000200"),
				Target:   Target{Kind: TargetLatest, Time: at(5 * minute), LSN: lsn("0/2000200"), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target", "immediate")},
		},
		{
			name: "gap: the end of the range before it", in: g.in, target: timeTarget(4 * minute),
			want: Plan{Backup: g.b1, Timeline: 1, WAL: needs(g.s2, g.s3), WALFrom: lsn("0/2000028"), WALTo: lsn("0/4000000"),
				Target: Target{Kind: TargetTime, Time: at(4 * minute), Inclusive: true, Timeline: 1}, ReplayToEnd: true,
				Recovery: recovery("1")},
		},
		{
			name: "gap: the start of the range after it", in: g.in, target: timeTarget(10*minute + 30*second),
			want: Plan{Backup: g.b2, Timeline: 1, WAL: needs(g.s5), WALFrom: lsn("0/5000028"), WALTo: lsn("0/6000000"),
				Target:   Target{Kind: TargetTime, Time: at(10*minute + 30*second), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 02:10:30+00", "recovery_target_inclusive", "on")},
		},
		{
			// A backup on timeline 1 restored onto timeline 2: timeline 1's segments
			// below the fork's, timeline 2's from it on.
			name: "timeline 2 from a backup on timeline 1", in: f.in, target: timeTarget(8*minute + 30*second),
			want: Plan{Backup: f.b1, Timeline: 2, HistoryFile: "00000002.history", WAL: needs(f.s2, f.s3, f.s4, f.s5, f.s6),
				WALFrom: lsn("0/2000028"), WALTo: lsn("0/7000000"),
				Target:   Target{Kind: TargetTime, Time: at(8*minute + 30*second), Inclusive: true, Timeline: 2},
				Recovery: recovery("2", "recovery_target_time", "2026-11-25 02:08:30+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "timeline 2 from its own backup", in: f.in, target: timeTarget(9*minute + 30*second),
			want: Plan{Backup: f.b2, Timeline: 2, HistoryFile: "00000002.history", WAL: needs(f.s6),
				WALFrom: lsn("0/6000028"), WALTo: lsn("0/7000000"),
				Target:   Target{Kind: TargetTime, Time: at(9*minute + 30*second), Inclusive: true, Timeline: 2},
				Recovery: recovery("2", "recovery_target_time", "2026-11-25 02:09:30+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "timeline 2, latest", in: f.in, target: Target{Kind: TargetLatest},
			want: Plan{Backup: f.b2, Timeline: 2, HistoryFile: "00000002.history", WAL: needs(f.s6, f.p7),
				WALFrom: lsn("0/6000028"), WALTo: lsn("0/7000400"), ReplayToEnd: true,
				Target:   Target{Kind: TargetLatest, Time: at(12 * minute), LSN: lsn("0/7000400"), Inclusive: true, Timeline: 2},
				Recovery: recovery("2")},
		},
		{
			name: "timeline 1 past the fork", in: f.in, target: Target{Kind: TargetTime, Time: at(100*minute + 45*second), Inclusive: true, Timeline: 1},
			want: Plan{Backup: f.b3, Timeline: 1, WAL: needs(f.s6old), WALFrom: lsn("0/6000028"), WALTo: lsn("0/7000000"),
				Target:   Target{Kind: TargetTime, Time: at(100*minute + 45*second), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target_time", "2026-11-25 03:40:45+00", "recovery_target_inclusive", "on")},
		},
		{
			name: "immediate, a backup on an abandoned timeline", in: f.in, target: Target{Kind: TargetImmediate, BackupID: 3},
			want: Plan{Backup: f.b3, Timeline: 1, WAL: needs(f.s6old), WALFrom: lsn("0/6000028"), WALTo: lsn("0/6000100"),
				Target:   Target{Kind: TargetImmediate, BackupID: 3, LSN: lsn("0/6000100"), Time: at(100*minute + 30*second), Inclusive: true, Timeline: 1},
				Recovery: recovery("1", "recovery_target", "immediate")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.want.SegmentSize = segSize
			for _, n := range tt.want.WAL {
				tt.want.WALBytes += n.Size
			}
			tt.want.Bytes = tt.want.Backup.Bytes + tt.want.WALBytes
			got, err := PlanRestore(tt.in, tt.target, 0)
			if err != nil {
				t.Fatalf("PlanRestore(%s) = %v", tt.target, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PlanRestore(%s) mismatch (-want +got):\n%s", tt.target, diff)
			}
		})
	}
}

func TestPlanRestoreEstimate(t *testing.T) {
	t.Parallel()
	l := linearInput()
	p, err := PlanRestore(l.in, Target{Kind: TargetLatest}, float64(segSize))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2000) + sizes(l.s4, l.s5, l.s6, l.p7); p.Bytes != want {
		t.Errorf("Bytes = %d, want %d", p.Bytes, want)
	}
	if want := time.Duration(float64(p.Bytes) / segSize * float64(time.Second)); p.EstimatedDuration != want {
		t.Errorf("EstimatedDuration = %s, want %s", p.EstimatedDuration, want)
	}
	f := forkedInput()
	p, err = PlanRestore(f.in, Target{Kind: TargetLatest}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"00000002.history", f.s6.Name, f.p7.Name}
	if diff := cmp.Diff(want, p.ServeNames()); diff != "" {
		t.Errorf("ServeNames() mismatch (-want +got):\n%s", diff)
	}
}

func TestPlanRestoreTargetErrors(t *testing.T) {
	t.Parallel()
	l, f, g := linearInput(), forkedInput(), gappedInput()
	trailing := gappedInput()
	trailing.in.Backups = trailing.in.Backups[:1]
	trailing.in.WAL = []store.WALFile{trailing.s2, trailing.s3, trailing.s5}
	timeTarget := func(d time.Duration) Target { return Target{Kind: TargetTime, Time: at(d), Inclusive: true} }
	tests := []struct {
		name   string
		in     WindowInput
		target Target
		want   TargetError // Target and Window are filled in
		// msg, if set, is the whole message.
		msg string
	}{
		{
			name: "a microsecond after the window", in: l.in, target: timeTarget(62*minute + micro),
			want: TargetError{Reason: "is after the latest restorable time", NearestTime: at(62 * minute)},
			msg: "restore target 2026-11-25 03:02:00.000001 UTC is after the latest restorable time; " +
				"the restorable window is 2026-11-25 02:02:00 UTC to 03:02:00 UTC; nearest valid choice: 2026-11-25 03:02:00 UTC",
		},
		{
			name: "a microsecond before the window", in: l.in, target: timeTarget(2*minute - micro),
			want: TargetError{Reason: "is before the earliest restorable time", NearestTime: at(2 * minute)},
			msg: "restore target 2026-11-25 02:01:59.999999 UTC is before the earliest restorable time; " +
				"the restorable window is 2026-11-25 02:02:00 UTC to 03:02:00 UTC; nearest valid choice: 2026-11-25 02:02:00 UTC",
		},
		{
			name: "exclusive at the earliest edge", in: l.in, target: Target{Kind: TargetTime, Time: at(2 * minute)},
			want: TargetError{Reason: "is before the earliest restorable time", NearestTime: at(2 * minute)},
		},
		{
			name: "in a gap, nearer its start", in: g.in, target: timeTarget(6 * minute),
			want: TargetError{Missing: "000000010000000000000004", NearestTime: at(4 * minute),
				Reason: "falls in a gap in the WAL: segment 000000010000000000000004 is missing, so restores reach " +
					"2026-11-25 02:04:00 UTC at the latest before it, and work again from 2026-11-25 02:10:30 UTC"},
			msg: "restore target 2026-11-25 02:06:00 UTC falls in a gap in the WAL: segment 000000010000000000000004 is missing, " +
				"so restores reach 2026-11-25 02:04:00 UTC at the latest before it, and work again from 2026-11-25 02:10:30 UTC; " +
				"the restorable window is 2026-11-25 02:02:00 UTC to 02:04:00 UTC and 2026-11-25 02:10:30 UTC to 02:13:00 UTC; " +
				"nearest valid choice: 2026-11-25 02:04:00 UTC",
		},
		{
			name: "in a gap, nearer its end", in: g.in, target: timeTarget(10 * minute),
			want: TargetError{Missing: "000000010000000000000004", NearestTime: at(10*minute + 30*second),
				Reason: "falls in a gap in the WAL: segment 000000010000000000000004 is missing, so restores reach " +
					"2026-11-25 02:04:00 UTC at the latest before it, and work again from 2026-11-25 02:10:30 UTC"},
		},
		{
			name: "after the window, with WAL past a gap", in: trailing.in, target: timeTarget(11 * minute),
			want: TargetError{Missing: "000000010000000000000004", NearestTime: at(4 * minute),
				Reason: "is after the latest restorable time: WAL segment 000000010000000000000004 is missing, " +
					"and no later base backup can restore the WAL archived after it"},
		},
		{
			name: "LSN in a gap", in: g.in, target: Target{Kind: TargetLSN, LSN: lsn("0/4800000")},
			want: TargetError{Missing: "000000010000000000000004", NearestLSN: lsn("0/4000000"),
				Reason: "falls in a gap in the WAL: segment 000000010000000000000004 is missing, so restores reach " +
					"0/4000000 (2026-11-25 02:04:00 UTC) at the latest before it, and work again from 0/5000200"},
		},
		{
			name: "LSN past the WAL", in: l.in, target: Target{Kind: TargetLSN, LSN: lsn("0/7000801")},
			want: TargetError{Reason: "is after the end of the continuous WAL, 0/7000800", NearestLSN: lsn("0/7000800")},
		},
		{
			name: "LSN before the first consistency point", in: l.in, target: Target{Kind: TargetLSN, LSN: lsn("0/2000100")},
			want: TargetError{Reason: "is before the earliest restorable position, 0/2000200 (the consistency point of backup 1)",
				NearestLSN: lsn("0/2000200")},
		},
		{
			name: "restore point inside the first backup", in: l.in, target: Target{Kind: TargetName, Name: "early"},
			want: TargetError{NearestLSN: lsn("0/2000200"),
				Reason: "(at 0/2000100, 2026-11-25 02:01:30 UTC) is before the earliest restorable position, 0/2000200 (the consistency point of backup 1)"},
		},
		{
			name: "unknown restore point", in: l.in, target: Target{Kind: TargetName, Name: "nope"},
			want: TargetError{Reason: `does not exist in the history of timeline 1; restore points in the window: "dup", "before-upgrade"`},
			msg: `restore target restore point "nope" does not exist in the history of timeline 1; restore points in the window: "dup", "before-upgrade"; ` +
				"the restorable window is 2026-11-25 02:02:00 UTC to 03:02:00 UTC",
		},
		{
			name: "unknown backup", in: l.in, target: Target{Kind: TargetImmediate, BackupID: 99},
			want: TargetError{NearestTime: at(20 * minute), NearestLSN: lsn("0/4000100"),
				Reason: "cannot be restored: backup 99 is not a complete base backup in the history of timeline 1 (the newest is backup 2)"},
		},
		{
			name: "timeline 1 inside the piece that ended it", in: f.in, target: Target{Kind: TargetTime, Time: at(50 * minute), Inclusive: true, Timeline: 1},
			want: TargetError{Missing: "000000010000000000000005", NearestTime: at(7 * minute),
				Reason: "falls in a gap in the WAL: segment 000000010000000000000005 is missing, so restores reach " +
					"2026-11-25 02:07:00 UTC at the latest before it, and work again from 2026-11-25 03:40:30 UTC"},
		},
		{
			name: "no backup", in: WindowInput{WAL: []store.WALFile{l.s2}}, target: Target{Kind: TargetLatest},
			want: TargetError{Reason: "cannot be restored: no complete base backup is in the history of timeline 1"},
			msg:  "restore target latest cannot be restored: no complete base backup is in the history of timeline 1",
		},
		{
			name: "nothing at all", in: WindowInput{}, target: timeTarget(0),
			want: TargetError{Reason: "cannot be restored: the source has no complete base backup"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := PlanRestore(tt.in, tt.target, 0)
			var got *TargetError
			if !errors.As(err, &got) {
				t.Fatalf("PlanRestore(%s) = %v, want a *TargetError", tt.target, err)
			}
			want := tt.want
			want.Target = tt.target
			if tli := tt.target.Timeline; tli != 0 {
				in := tt.in
				want.Window = newPath(&in, tli).window()
			} else if len(tt.in.Backups)+len(tt.in.WAL) > 0 {
				want.Window = ComputeWindow(tt.in)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("PlanRestore(%s) error mismatch (-want +got):\n%s", tt.target, diff)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("PlanRestore(%s) = %q\nwant %q", tt.target, err, tt.msg)
			}
		})
	}
}

func TestPlanRestoreInvalid(t *testing.T) {
	t.Parallel()
	l := linearInput()
	for _, target := range []Target{{}, {Kind: "yesterday"}, {Kind: TargetName}} {
		if _, err := PlanRestore(l.in, target, 0); err == nil {
			t.Errorf("PlanRestore(%#v) = nil error, want one", target)
		} else if errors.As(err, new(*TargetError)) {
			t.Errorf("PlanRestore(%#v) = %v, a *TargetError; want a plain error", target, err)
		}
	}
}

// TestPlanRestoreWithinWindow plans every second of a window: each plan restores from a
// backup consistent at or before the target, and its WAL is continuous from the backup's
// consistency point to its end.
func TestPlanRestoreWithinWindow(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]WindowInput{"linear": linearInput().in, "forked": forkedInput().in, "gapped": gappedInput().in} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := ComputeWindow(in)
			for ts := w.Earliest; !ts.After(w.Latest); ts = ts.Add(7 * time.Second) {
				p, err := PlanRestore(in, Target{Kind: TargetTime, Time: ts, Inclusive: true}, 0)
				if w.Contains(ts) != (err == nil) {
					t.Fatalf("PlanRestore(%s) = %v, but Contains() = %t", fmtTime(ts), err, w.Contains(ts))
				}
				if err != nil {
					continue
				}
				if p.Backup.ConsistentAt.After(ts) {
					t.Errorf("PlanRestore(%s) uses backup %d, consistent at %s", fmtTime(ts), p.Backup.ID, fmtTime(p.Backup.ConsistentAt))
				}
				end := p.Backup.EndLSN
				for _, n := range p.WAL {
					if n.EndLSN <= p.Backup.EndLSN {
						continue
					}
					if n.StartLSN > end {
						t.Errorf("PlanRestore(%s): WAL jumps from %s to %s", fmtTime(ts), end, n.StartLSN)
					}
					end = n.EndLSN
				}
				if end != p.WALTo {
					t.Errorf("PlanRestore(%s): WAL ends at %s, WALTo is %s", fmtTime(ts), end, p.WALTo)
				}
			}
		})
	}
}

func TestLineage(t *testing.T) {
	t.Parallel()
	// Timeline 3: 1 until 0/5000100, 2 until 0/8000000 (a segment boundary), then 3.
	hist := map[uint32][]pgwal.HistoryEntry{3: {{Parent: 1, SwitchLSN: lsn("0/5000100")}, {Parent: 2, SwitchLSN: lsn("0/8000000")}}}
	l := lineageOf(3, hist)
	want := lineage{{1, 0, lsn("0/5000100")}, {2, lsn("0/5000100"), lsn("0/8000000")}, {3, lsn("0/8000000"), lsnMax}}
	if diff := cmp.Diff(want, l, cmp.AllowUnexported(span{})); diff != "" {
		t.Errorf("lineageOf(3) mismatch (-want +got):\n%s", diff)
	}
	for segNo, tli := range map[uint64]uint32{0: 1, 4: 1, 5: 2, 7: 2, 8: 3, 100: 3} {
		if got := l.owner(segNo, segSize); got != tli {
			t.Errorf("owner(%d) = %d, want %d", segNo, got, tli)
		}
	}
	for s, tli := range map[string]uint32{"0/0": 1, "0/50000FF": 1, "0/5000100": 2, "0/7FFFFFF": 2, "0/8000000": 3} {
		if got := l.at(lsn(s)); got != tli {
			t.Errorf("at(%s) = %d, want %d", s, got, tli)
		}
	}
	if got := lineageOf(2, nil); len(got) != 1 || got[0].tli != 2 {
		t.Errorf("lineageOf(2) without a history file = %v, want timeline 2 alone", got)
	}
}

func TestFormatTargetTime(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	for in, want := range map[time.Time]string{
		time.Date(2026, 11, 25, 9, 25, 9, 250455000, time.UTC): "2026-11-25 09:25:09.250455+00",
		time.Date(2026, 11, 25, 10, 25, 9, 250455999, paris):   "2026-11-25 09:25:09.250455+00",
		time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC):         "2026-11-25 09:30:00+00",
	} {
		if got := formatTargetTime(in); got != want {
			t.Errorf("formatTargetTime(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Target
	}{
		{"latest", Target{Kind: TargetLatest, Inclusive: true}},
		{"  LATEST\n", Target{Kind: TargetLatest, Inclusive: true}},
		{"immediate", Target{Kind: TargetImmediate, Inclusive: true}},
		{"immediate:42", Target{Kind: TargetImmediate, BackupID: 42, Inclusive: true}},
		{"lsn:0/3A000028", Target{Kind: TargetLSN, LSN: 0x3A000028, Inclusive: true}},
		{"LSN: 1/3a000028", Target{Kind: TargetLSN, LSN: 0x1_3A000028, Inclusive: true}},
		{"0/3A000028", Target{Kind: TargetLSN, LSN: 0x3A000028, Inclusive: true}},
		{"name:before-upgrade", Target{Kind: TargetName, Name: "before-upgrade", Inclusive: true}},
		{"name:Before Upgrade", Target{Kind: TargetName, Name: "Before Upgrade", Inclusive: true}},
		{"2026-11-25T09:30:00Z", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Inclusive: true}},
		{"2026-11-25T10:30:00+01:00", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Inclusive: true}},
		{"2026-11-25T09:30:00.123456789Z", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.UTC), Inclusive: true}},
		{"2026-11-25 09:25:09.250455+00", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 25, 9, 250455000, time.UTC), Inclusive: true}},
		{"2026-11-25 04:25:09-0500", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 25, 9, 0, time.UTC), Inclusive: true}},
		{"2026-11-25 09:30:00", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Inclusive: true}},
		{"2026-11-25 09:30:00.5", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 500000000, time.UTC), Inclusive: true}},
		{"2026-11-25 09:30:00 UTC", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Inclusive: true}},
		{"2026-11-25T09:30", Target{Kind: TargetTime, Time: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), Inclusive: true}},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if err != nil {
			t.Errorf("ParseTarget(%q) = %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseTarget(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, in := range []string{
		"", "   ", "yesterday", "immediate:", "immediate:0", "immediate:x", "lsn:", "lsn:0/0", "lsn:123456789/0",
		"lsn:0/3A00002G", "name:", "name:" + strings.Repeat("x", 64), "name:a\x00b", "2026-11-25 25:00:00",
		"2026-13-01 00:00:00", "2026-11-25", "25/11/2026 09:30", "2026-11-25T09:30:00+25:00",
	} {
		if got, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) = %#v, want an error", in, got)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"latest", "immediate", "immediate:7", "lsn:0/3A000028", "0/3A000028", "name:x", "name: x",
		"2026-11-25T09:30:00Z", "2026-11-25 09:25:09.250455+00", "2026-11-25 09:30:00 UTC", "2026-11-25T09:30",
		"2026-11-25T10:30:00.000000001+01:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTarget(s)
		if err != nil {
			return
		}
		switch got.Kind {
		case TargetTime, TargetLSN, TargetName, TargetLatest, TargetImmediate:
		default:
			t.Fatalf("ParseTarget(%q) = kind %q", s, got.Kind)
		}
		if !got.Inclusive || got.Timeline != 0 {
			t.Fatalf("ParseTarget(%q) = %#v, want inclusive and no timeline", s, got)
		}
		if got.Kind == TargetName && (got.Name == "" || len(got.Name) > maxRestorePointName) {
			t.Fatalf("ParseTarget(%q) = name %q", s, got.Name)
		}
		again, err := ParseTarget(got.Text())
		if err != nil {
			t.Fatalf("ParseTarget(%q) = %#v, whose Text %q does not parse: %v", s, got, got.Text(), err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("ParseTarget(%q).Text() = %q parses differently (-first +again):\n%s", s, got.Text(), diff)
		}
		_ = got.String()
	})
}

func TestWindowInputs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatalf("store.Open() = %v", err)
	}
	t.Cleanup(func() { st.Close() })
	src, err := st.CreateSource(ctx, store.SourceParams{Name: "orders-db", DSN: "host=localhost dbname=postgres",
		SystemIdentifier: "7310000000000000001", PGVersion: 150004, Timeline: 2})
	if err != nil {
		t.Fatalf("CreateSource() = %v", err)
	}
	history := []byte("1\t0/3000100\tno recovery target specified\n")
	record := func(f store.WALFile, points ...store.RestorePointParams) {
		t.Helper()
		p := store.WALFileParams{SourceID: src.ID, Name: f.Name, Kind: f.Kind, Timeline: f.Timeline, SegNo: f.SegNo,
			StartLSN: f.StartLSN, EndLSN: f.EndLSN, Size: f.Size, Via: store.WALViaStream, RestorePoints: points}
		if f.Commits > 0 {
			p.Commits, p.FirstCommitAt, p.LastCommitAt = f.Commits, *f.FirstCommitAt, *f.LastCommitAt
		}
		if _, err := st.RecordWAL(ctx, p); err != nil {
			t.Fatalf("RecordWAL(%s) = %v", f.Name, err)
		}
	}
	record(seg(1, 2, at(1*minute), at(2*minute)))
	record(store.WALFile{Name: "00000002.history", Kind: store.WALHistory, Timeline: 2, Size: int64(len(history))})
	record(seg(2, 3, at(3*minute), at(4*minute)), store.RestorePointParams{Name: "rp", LSN: "0/3000200", At: at(3 * minute)})
	b, err := st.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: "20261125T020000Z-00000001", StartLSN: "0/2000028", Timeline: 1})
	if err != nil {
		t.Fatalf("CreateBackup() = %v", err)
	}
	if err := st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: "0/2000200", Stats: store.BackupStats{SourceBytes: 1000}}); err != nil {
		t.Fatalf("CompleteBackup() = %v", err)
	}
	if _, err := st.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: "20261125T030000Z-00000002", StartLSN: "0/3000028", Timeline: 2}); err != nil {
		t.Fatalf("CreateBackup() = %v", err)
	}

	var asked []string
	in, err := WindowInputs(ctx, st, src.ID, func(name string) ([]byte, error) {
		asked = append(asked, name)
		return history, nil
	})
	if err != nil {
		t.Fatalf("WindowInputs() = %v", err)
	}
	if diff := cmp.Diff([]string{"00000002.history"}, asked); diff != "" {
		t.Errorf("history files read mismatch (-want +got):\n%s", diff)
	}
	wantHist := map[uint32][]pgwal.HistoryEntry{2: {{Parent: 1, SwitchLSN: lsn("0/3000100"), Reason: "no recovery target specified"}}}
	if diff := cmp.Diff(wantHist, in.Histories); diff != "" {
		t.Errorf("Histories mismatch (-want +got):\n%s", diff)
	}
	if len(in.Backups) != 1 || in.Backups[0].ID != b.ID || len(in.WAL) != 2 || len(in.RestorePoints) != 1 {
		t.Errorf("WindowInputs() = %d backups, %d WAL files, %d restore points; want the complete backup, 2 segments, 1 point",
			len(in.Backups), len(in.WAL), len(in.RestorePoints))
	}
	w := ComputeWindow(in)
	wantRanges := []Range{{From: at(2 * minute), To: at(4 * minute), FromLSN: lsn("0/2000200"), ToLSN: lsn("0/4000000"), Timeline: 2, BackupID: b.ID}}
	if diff := cmp.Diff(wantRanges, w.Ranges); diff != "" || w.Timeline != 2 || len(w.RestorePoints) != 1 {
		t.Errorf("ComputeWindow(WindowInputs()) = %+v; ranges mismatch (-want +got):\n%s", w, diff)
	}

	_, err = WindowInputs(ctx, st, src.ID, func(string) ([]byte, error) { return nil, errors.New("unreadable") })
	if err == nil || !strings.Contains(err.Error(), "00000002.history") {
		t.Errorf("WindowInputs() with an unreadable history file = %v, want an error naming it", err)
	}
	_, err = WindowInputs(ctx, st, src.ID, func(string) ([]byte, error) { return []byte("x\n"), nil })
	if !errors.Is(err, pgwal.ErrInvalidHistory) {
		t.Errorf("WindowInputs() with an invalid history file = %v, want pgwal.ErrInvalidHistory", err)
	}
	if _, err := WindowInputs(ctx, st, src.ID+1, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WindowInputs(unknown source) = %v, want store.ErrNotFound", err)
	}
}

// TestPlanRecoveryIsFresh checks that each plan's settings map is its own.
func TestPlanRecoveryIsFresh(t *testing.T) {
	t.Parallel()
	l := linearInput()
	p1, _ := PlanRestore(l.in, Target{Kind: TargetLatest}, 0)
	p2, _ := PlanRestore(l.in, Target{Kind: TargetLatest}, 0)
	p1.Recovery["x"] = "y"
	if maps.Equal(p1.Recovery, p2.Recovery) {
		t.Error("two plans share their Recovery map")
	}
}

// BenchmarkComputeWindow computes the window of one source of the catalog issue 8 measures
// pages at: 100,000 segments (a commit in every other one) with one missing in the middle,
// and 1,000 complete backups.
//
//	go test ./jobs/ -run '^$' -bench ComputeWindow
func BenchmarkComputeWindow(b *testing.B) {
	const segments, backups = 100_000, 1_000
	var in WindowInput
	for n := int64(1); n <= segments; n++ {
		if n == segments/2+7 {
			continue // a gap
		}
		var first, last time.Time
		if n%2 == 0 {
			first, last = at(time.Duration(n)*second), at(time.Duration(n)*second+500*time.Millisecond)
		}
		in.WAL = append(in.WAL, seg(1, n, first, last))
	}
	for i := int64(1); i <= backups; i++ {
		n := i * (segments / backups)
		start := pgwal.SegmentStart(uint64(n), segSize)
		in.Backups = append(in.Backups, backup(i, 1, (start+0x28).String(), (start+0x1000).String(), at(time.Duration(n)*second+time.Second), 1<<30))
	}
	for b.Loop() {
		if w := ComputeWindow(in); len(w.Ranges) != 2 || len(w.Gaps) != 1 {
			b.Fatalf("window = %d ranges, %d gaps, want 2 and 1", len(w.Ranges), len(w.Gaps))
		}
	}
}
