package jobs

import (
	"errors"
	"strings"
	"testing"

	"github.com/backstop/backstop/store"
)

// TestPlanRestoreTablespaces: a plan is refused exactly when the WAL it replays applies a
// CREATE TABLESPACE with a location, with the last valid choice before it.
func TestPlanRestoreTablespaces(t *testing.T) {
	t.Parallel()
	prevCommit := at(12 * minute)
	created := store.TablespaceCreation{Timeline: 1, LSN: "0/3000100", EndLSN: "0/3000140", PrevLSN: "0/30000C8",
		OID: 16390, Location: "/srv/ts", PrevCommitAt: &prevCommit}
	inPlace := created
	inPlace.Location = ""
	noPrevCommit := created
	noPrevCommit.PrevCommitAt = nil // the commits before it are in segment 2 (up to 2 min)
	afterFork := created
	afterFork.LSN, afterFork.EndLSN, afterFork.PrevLSN = "0/6000200", "0/6000240", "0/6000180"
	afterForkTL2 := afterFork
	afterForkTL2.Timeline = 2

	tests := []struct {
		name    string
		forked  bool
		tc      store.TablespaceCreation
		target  Target
		refused bool
		nearest Target // the nearest valid choice, when refused
	}{
		{"time after it, from the backup before it", false, created, Target{Kind: TargetTime, Time: at(15 * minute), Inclusive: true}, true,
			Target{Kind: TargetTime, Time: prevCommit.Add(-micro)}},
		{"time at the last commit before it", false, created, Target{Kind: TargetTime, Time: prevCommit, Inclusive: true}, true,
			Target{Kind: TargetTime, Time: prevCommit.Add(-micro)}},
		{"time before the last commit before it", false, created, Target{Kind: TargetTime, Time: prevCommit.Add(-micro), Inclusive: true}, false, Target{}},
		{"time from the backup after it", false, created, Target{Kind: TargetTime, Time: at(25 * minute), Inclusive: true}, false, Target{}},
		{"latest, from the backup after it", false, created, Target{Kind: TargetLatest}, false, Target{}},
		{"immediate, backup 1", false, created, Target{Kind: TargetImmediate, BackupID: 1}, false, Target{}},
		{"no commit before it in its file", false, noPrevCommit, Target{Kind: TargetTime, Time: at(15 * minute), Inclusive: true}, true,
			Target{Kind: TargetLSN, LSN: lsn("0/30000C8")}}, // 2 min - 1 µs is before the window
		{"LSN of it, inclusive", false, created, Target{Kind: TargetLSN, LSN: lsn("0/3000100"), Inclusive: true}, true,
			Target{Kind: TargetLSN, LSN: lsn("0/30000C8")}},
		{"LSN inside the record before it, inclusive", false, created, Target{Kind: TargetLSN, LSN: lsn("0/30000D0"), Inclusive: true}, true,
			Target{Kind: TargetLSN, LSN: lsn("0/30000C8")}},
		{"LSN of it, exclusive", false, created, Target{Kind: TargetLSN, LSN: lsn("0/3000100")}, false, Target{}},
		{"LSN of the record before it, inclusive", false, created, Target{Kind: TargetLSN, LSN: lsn("0/30000C8"), Inclusive: true}, false, Target{}},
		{"in-place tablespace", false, inPlace, Target{Kind: TargetTime, Time: at(15 * minute), Inclusive: true}, false, Target{}},
		{"old timeline after the fork", true, afterFork, Target{Kind: TargetLatest}, false, Target{}},
		{"new timeline after the fork", true, afterForkTL2, Target{Kind: TargetLatest}, true,
			Target{Kind: TargetTime, Time: prevCommit.Add(-micro)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := linearInput().in
			if tt.forked {
				in = forkedInput().in
			}
			in.Tablespaces = []store.TablespaceCreation{tt.tc}
			_, err := PlanRestore(in, tt.target, 0)
			if !tt.refused {
				if err != nil {
					t.Fatalf("PlanRestore(%s) = %v, want a plan", tt.target, err)
				}
				return
			}
			var te *TargetError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), "tablespace 16390 at /srv/ts (record at "+tt.tc.LSN) {
				t.Fatalf("PlanRestore(%s) = %v, want a TargetError naming tablespace 16390 at /srv/ts and %s", tt.target, err, tt.tc.LSN)
			}
			if !te.NearestTime.Equal(tt.nearest.Time) || te.NearestLSN != tt.nearest.LSN {
				t.Errorf("PlanRestore(%s) nearest = %s / %s, want %s / %s", tt.target, te.NearestTime, te.NearestLSN, tt.nearest.Time, tt.nearest.LSN)
			}
			if tt.nearest.Kind != "" {
				near := Target{Kind: tt.nearest.Kind, Time: tt.nearest.Time, LSN: tt.nearest.LSN, Inclusive: true}
				if _, err := PlanRestore(in, near, 0); err != nil {
					t.Errorf("PlanRestore(the nearest choice %s) = %v, want a plan", near, err)
				}
			}
		})
	}
}

func TestBlockingTablespaces(t *testing.T) {
	t.Parallel()
	failed := backup(3, 1, "0/5000028", "0/5000100", at(45*minute), 3000)
	failed.State = store.BackupFailed
	backups := []store.Backup{backup(1, 1, "0/2000028", "0/2000200", at(5*minute), 1000),
		backup(2, 1, "0/4000028", "0/4000100", at(25*minute), 2000), failed}
	tcs := []store.TablespaceCreation{
		{OID: 4, LSN: "0/5000300", Location: "/srv/d"},
		{OID: 1, LSN: "0/3000100", Location: "/srv/a"}, // before backup 2: it holds it
		{OID: 2, LSN: "0/4000200", Location: "/srv/b"},
		{OID: 3, LSN: "0/4000300", Location: ""}, // in place: harmless
	}
	var got []uint32
	for _, tc := range BlockingTablespaces(backups, tcs) {
		got = append(got, tc.OID)
	}
	if len(got) != 2 || got[0] != 2 || got[1] != 4 {
		t.Errorf("BlockingTablespaces() = OIDs %v, want [2 4]", got)
	}
	if n := len(BlockingTablespaces([]store.Backup{failed}, tcs)); n != 0 {
		t.Errorf("BlockingTablespaces(no complete backup) = %d, want none", n)
	}
}
