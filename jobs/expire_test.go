package jobs

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"pgregory.net/rapid"

	"github.com/backstop/backstop/jobs/retention"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// daily is a timeline with a backup a day: day d (0 to n-1) has segment 2+2d with a
// backup in it and segment 3+2d after it, with commits through the day.
func dailyInput(n int) WindowInput {
	var in WindowInput
	for d := range n {
		day := time.Duration(d) * 24 * time.Hour
		s := int64(2 + 2*d)
		in.WAL = append(in.WAL,
			seg(1, s, at(day+1*minute), at(day+2*time.Hour)),
			seg(1, s+1, at(day+3*time.Hour), at(day+23*time.Hour)))
		start := pgwal.SegmentStart(uint64(s), segSize)
		in.Backups = append(in.Backups, backup(int64(d+1), 1, (start+0x100).String(), (start+0x200).String(), at(day+time.Hour), 1<<20))
	}
	return in
}

func TestPlanExpiry(t *testing.T) {
	t.Parallel()
	in := dailyInput(10)
	now := at(9*24*time.Hour + 23*time.Hour + 30*minute) // day 9, 23:30
	p := retention.Policy{Window: 3 * 24 * time.Hour, MinKeep: 1}
	plan, err := PlanExpiry(in, p, now)
	if err != nil {
		t.Fatalf("PlanExpiry() = %v", err)
	}
	// The window starts on day 6 at 23:30: its base is day 6's backup, then days 7 to 9.
	var kept, expired []int64
	for _, k := range plan.Kept {
		kept = append(kept, k.Backup.ID)
		if !slices.Contains(k.Rules, retention.RuleWindow) {
			t.Errorf("backup %d kept by %v, want the window", k.Backup.ID, k.Rules)
		}
	}
	for _, e := range plan.Expired {
		expired = append(expired, e.Backup.ID)
		if !strings.Contains(e.Reason, "older than backup 7") || !strings.Contains(e.Reason, "recovery window (3 days)") {
			t.Errorf("backup %d expires because %q, want it to name backup 7 and the 3-day window", e.Backup.ID, e.Reason)
		}
	}
	if want := []int64{10, 9, 8, 7}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if want := []int64{6, 5, 4, 3, 2, 1}; !slices.Equal(expired, want) {
		t.Errorf("expired %v, want %v", expired, want)
	}
	// Backup 7 starts in segment 14; segment 13 holds the last commit before it, which
	// dates its consistency: it stays, and segments 2 to 12 go.
	if len(plan.WAL) != 11 || plan.WAL[0].SegNo != 2 || plan.WAL[10].SegNo != 12 {
		t.Errorf("WAL to delete = %d files from %v, want segments 2 to 12", len(plan.WAL), plan.WAL)
	}
	if want := pgwal.SegmentStart(13, segSize); plan.KeepWALFrom != pglogrepl.LSN(want) {
		t.Errorf("KeepWALFrom = %s, want %s", plan.KeepWALFrom, pglogrepl.LSN(want))
	}
	base := plan.Kept[len(plan.Kept)-1]
	if !plan.After.Earliest.Equal(base.At) || base.At.After(now.Add(-p.Window)) || !plan.After.Latest.Equal(plan.Before.Latest) {
		t.Errorf("window after = %s, want from backup 7's consistency (%s, before the window's start) to %s",
			plan.After, fmtTime(base.At), fmtTime(plan.Before.Latest))
	}
	if s := plan.Summary(); !strings.Contains(s, "6 backups and 176 MiB of WAL (11 files) go") {
		t.Errorf("Summary() = %q", s)
	}

	t.Run("pinned", func(t *testing.T) {
		in := dailyInput(10)
		in.Backups[2].Pin = &store.Pin{By: "legal"}
		plan, err := PlanExpiry(in, p, now)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Kept[len(plan.Kept)-1].Backup.ID != 3 || !slices.Equal(plan.Kept[len(plan.Kept)-1].Rules, []retention.Rule{retention.RulePinned}) {
			t.Errorf("oldest kept = %+v, want backup 3, pinned", plan.Kept[len(plan.Kept)-1])
		}
		// A pinned backup carries its own WAL: the archived WAL after it still goes.
		if len(plan.WAL) != 11 {
			t.Errorf("WAL to delete with a pin = %d files, want 11", len(plan.WAL))
		}
	})

	t.Run("nothing", func(t *testing.T) {
		plan, err := PlanExpiry(dailyInput(10), retention.Policy{Window: 30 * 24 * time.Hour}, now)
		if err != nil || !plan.Empty() || !strings.HasPrefix(plan.Summary(), "Nothing to expire") {
			t.Errorf("PlanExpiry(30-day window) = %d backups, %d WAL, %v; want nothing", len(plan.Expired), len(plan.WAL), err)
		}
	})

	t.Run("no backups", func(t *testing.T) {
		in := dailyInput(3)
		in.Backups = nil
		plan, err := PlanExpiry(in, p, now)
		if err != nil || len(plan.WAL) != 0 {
			t.Errorf("PlanExpiry(no backups) deletes %d WAL files, %v; want none: nothing anchors it", len(plan.WAL), err)
		}
	})
}

// TestPlanExpiryProperty checks, over random histories (backups at random places in a WAL
// stream with holes, pins) and random policies, that applying the plan keeps every second
// of the policy window that is restorable now restorable (with a restore plan whose base
// backup and WAL all remain), and keeps the pins and the minimum count.
func TestPlanExpiryProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		var in WindowInput
		nSeg := rapid.IntRange(1, 40).Draw(t, "segments")
		clock := t0
		var segTimes [][2]time.Time
		for s := range nSeg {
			first := clock.Add(time.Duration(rapid.IntRange(1, 600).Draw(t, "gap")) * time.Minute)
			last := first.Add(time.Duration(rapid.IntRange(0, 20*60).Draw(t, "span")) * time.Minute)
			clock = last
			segTimes = append(segTimes, [2]time.Time{first, last})
			if rapid.IntRange(0, 14).Draw(t, "missing") == 0 {
				continue // a hole in the archive
			}
			if rapid.IntRange(0, 2).Draw(t, "no commits") == 0 {
				in.WAL = append(in.WAL, seg(1, int64(2+s), time.Time{}, time.Time{}))
				continue
			}
			in.WAL = append(in.WAL, seg(1, int64(2+s), first, last))
		}
		nBackups := rapid.IntRange(0, 12).Draw(t, "backups")
		for i := range nBackups {
			s := rapid.IntRange(0, nSeg-1).Draw(t, "backup segment")
			start := pgwal.SegmentStart(uint64(2+s), segSize) + pglogrepl.LSN(rapid.IntRange(0x28, 0x1000).Draw(t, "offset"))
			end := start + pglogrepl.LSN(rapid.IntRange(1, 0x1000).Draw(t, "length"))
			// It finishes during its segment's commits or after them.
			span := segTimes[s][1].Sub(segTimes[s][0])
			finished := segTimes[s][0].Add(time.Duration(rapid.Int64Range(0, int64(span+10*time.Minute)).Draw(t, "finished")))
			b := backup(int64(i+1), 1, start.String(), end.String(), finished, 1<<20)
			if rapid.IntRange(0, 9).Draw(t, "pin") == 0 {
				b.Pin = &store.Pin{By: "legal"}
			}
			in.Backups = append(in.Backups, b)
		}
		now := clock.Add(time.Duration(rapid.IntRange(0, 48*60).Draw(t, "now")) * time.Minute)
		p := retention.Policy{
			Window:   time.Duration(rapid.IntRange(0, 30*24).Draw(t, "window hours")) * time.Hour,
			KeepLast: rapid.IntRange(0, 3).Draw(t, "last"),
			Daily:    rapid.IntRange(0, 3).Draw(t, "daily"),
			Weekly:   rapid.IntRange(0, 2).Draw(t, "weekly"),
			MinKeep:  rapid.IntRange(0, 3).Draw(t, "min"),
		}
		if p.Validate() != nil {
			p.Window = time.Hour
		}

		plan, err := PlanExpiry(in, p, now)
		if err != nil {
			t.Fatalf("PlanExpiry() = %v", err)
		}
		after := in
		after.Backups = nil
		for _, k := range plan.Kept {
			after.Backups = append(after.Backups, k.Backup)
		}
		after.WAL = slices.DeleteFunc(slices.Clone(in.WAL), func(f store.WALFile) bool {
			return slices.ContainsFunc(plan.WAL, func(g store.WALFile) bool { return g.Name == f.Name })
		})
		kept := map[int64]bool{}
		for _, k := range plan.Kept {
			kept[k.Backup.ID] = true
		}
		if len(plan.Kept)+len(plan.Expired) != len(in.Backups) {
			t.Fatalf("%d kept + %d expired, want %d backups", len(plan.Kept), len(plan.Expired), len(in.Backups))
		}
		for _, b := range in.Backups {
			if b.Pin != nil && !kept[b.ID] {
				t.Fatalf("pinned backup %d expires", b.ID)
			}
		}
		for i, k := range plan.Kept { // newest first: the MinKeep newest are all kept
			_ = k
			if i < p.MinKeep && len(plan.Expired) > 0 && plan.Expired[0].At.After(plan.Kept[i].At) {
				t.Fatalf("backup %d expires although newer than kept backup %d and MinKeep is %d", plan.Expired[0].Backup.ID, k.Backup.ID, p.MinKeep)
			}
		}
		if len(plan.Expired) > 0 && len(plan.Kept) < min(p.MinKeep, len(in.Backups)) {
			t.Fatalf("%d kept, want at least MinKeep %d", len(plan.Kept), p.MinKeep)
		}

		// Every second of the window restorable now stays restorable, with a plan whose
		// base backup and WAL remain.
		if p.Window == 0 {
			return
		}
		from := now.Add(-p.Window)
		var probes []time.Time
		for _, r := range plan.Before.Ranges {
			probes = append(probes, r.From, r.To, r.From.Add(r.To.Sub(r.From)/2))
		}
		for range 20 {
			probes = append(probes, from.Add(time.Duration(rapid.Int64Range(0, int64(p.Window)).Draw(t, "probe"))))
		}
		have := map[string]bool{}
		for _, f := range after.WAL {
			have[f.Name] = true
		}
		for _, ts := range probes {
			ts = ts.Truncate(time.Microsecond)
			if ts.Before(from) || ts.After(now) || !plan.Before.Contains(ts) {
				continue
			}
			rp, err := PlanRestore(after, Target{Kind: TargetTime, Time: ts, Inclusive: true}, 0)
			if err != nil {
				t.Fatalf("restore to %s, restorable before expiry (%s), is refused after it (%s): %v", fmtTime(ts), plan.Before, plan.After, err)
			}
			if !kept[rp.Backup.ID] {
				t.Fatalf("restore to %s plans from expired backup %d", fmtTime(ts), rp.Backup.ID)
			}
			for _, n := range rp.WAL {
				if !have[n.Name] {
					t.Fatalf("restore to %s needs %s, which expiry deletes", fmtTime(ts), n.Name)
				}
			}
		}
	})
}
