package report_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// testKey is a fixed signing key, so that golden files stay the same.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// day0 is the first day of the fixture's period.
var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// catalog is a catalog whose clock the test sets before each write.
type catalog struct {
	*store.Store
	now time.Time
}

func (c *catalog) at(t time.Time) *catalog { c.now = t; return c }

func newCatalog(t testing.TB) *catalog {
	t.Helper()
	c := &catalog{now: day0}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"), store.WithClock(func() time.Time { return c.now }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.Store = st
	return c
}

const segSize = 16 << 20

// lsn is the LSN at offset off of segment segNo.
func lsn(segNo, off int64) string {
	pos := segNo*segSize + off
	return fmt.Sprintf("%X/%X", pos>>32, pos&0xFFFFFFFF)
}

// addSegment records WAL segment segNo of src, with commits from first to last, archived
// at last plus a minute.
func (c *catalog) addSegment(t testing.TB, src store.Source, segNo int64, first, last time.Time) {
	t.Helper()
	_, err := c.RecordWAL(context.Background(), store.WALFileParams{SourceID: src.ID, Name: pgwal.SegmentName(1, uint64(segNo), segSize),
		Kind: store.WALSegment, Timeline: 1, SegNo: segNo, StartLSN: lsn(segNo, 0), EndLSN: lsn(segNo+1, 0), Size: segSize,
		Commits: 10, FirstCommitAt: first, LastCommitAt: last, Via: store.WALViaStream, ArchivedAt: last.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
}

// addBackup records a complete backup of src started at start, taking took, consistent in
// segment segNo.
func (c *catalog) addBackup(t testing.TB, src store.Source, repoID string, start time.Time, took time.Duration, segNo int64) store.Backup {
	t.Helper()
	ctx := context.Background()
	b, err := c.at(start).CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: repoID, StartedAt: start,
		StartLSN: lsn(segNo, 0x28), Timeline: 1, PGVersion: 150000, SystemIdentifier: src.SystemIdentifier})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.at(start.Add(took)).CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: lsn(segNo, 0x100),
		Stats: store.BackupStats{SourceBytes: 30 << 20, StoredBytesNew: 12 << 20}}); err != nil {
		t.Fatal(err)
	}
	b, err = c.Backup(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fill records three days of one source's history, 2026-11-01 to 11-03:
//   - backup 1 at 11-01 01:00, consistent in segment 2; WAL segments 2 to 5 cover 01:00 to
//     11-02 01:00; segment 6 is missing; segments 7 to 10 go on from 11-02 02:00;
//   - a verification at 11-02 12:00 finds backup 1 whole; backup 2 at 11-02 18:00
//     (segment 9) is never verified;
//   - a drill passes at 11-01 06:00 (proving 05:30), one fails on 11-03;
//   - an alert on 11-01 10:00, acknowledged after 5 minutes, resolved after an hour;
//   - a restore on 11-02 09:00.
func fill(t testing.TB, c *catalog) store.Source {
	t.Helper()
	ctx := context.Background()
	src, err := c.CreateSource(ctx, store.SourceParams{Name: "app", DSN: "postgres://backstop@db/app", SystemIdentifier: "7312345678901234567",
		PGVersion: 150000, Timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := func(d, hour, minute int) time.Time {
		return day0.Add(time.Duration(d*24+hour)*time.Hour + time.Duration(minute)*time.Minute)
	}
	b1 := c.addBackup(t, src, "20261101T010000Z-aaaa0001", h(0, 1, 0), 7*time.Minute, 2)
	for i := int64(0); i < 4; i++ { // segments 2..5: 11-01 01:00 to 11-02 01:00, 6 h each
		c.addSegment(t, src, 2+i, h(0, 1+6*int(i), 0), h(0, 6+6*int(i), 59))
	}
	for i := int64(0); i < 4; i++ { // segments 7..10: from 11-02 02:00, 8 h each
		c.addSegment(t, src, 7+i, h(1, 2+8*int(i), 0), h(1, 9+8*int(i), 59))
	}
	run, err := c.at(h(1, 12, 0)).StartVerifyRun(ctx, src.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	run.PacksChecked, run.PacksTotal, run.BytesRead = 3, 3, 40<<20
	if _, err := c.at(h(1, 12, 4)).FinishVerifyRun(ctx, run, []store.VerifyFinding{{SourceID: src.ID, Kind: "wal-gap",
		Object: pgwal.SegmentName(1, 6, segSize), Path: pgwal.SegmentName(1, 6, segSize), FromLSN: lsn(6, 0), ToLSN: lsn(7, 0),
		Reason: "archived WAL is missing from 0/6000000 to 0/7000000"}}, []int64{b1.ID}, ""); err != nil {
		t.Fatal(err)
	}
	c.addBackup(t, src, "20261102T180000Z-aaaa0002", h(1, 18, 0), 9*time.Minute, 9)

	d, err := c.at(h(0, 5, 50)).StartDrill(ctx, src.ID, 0, h(0, 5, 30))
	if err != nil {
		t.Fatal(err)
	}
	d.RTO, d.BackupID = 83500*time.Millisecond, b1.ID
	if _, err := c.at(h(0, 6, 0)).FinishDrill(ctx, d); err != nil {
		t.Fatal(err)
	}
	d, err = c.at(h(2, 3, 0)).StartDrill(ctx, src.ID, 0, h(2, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	d.Error = "the restored instance did not start"
	if _, err := c.at(h(2, 3, 5)).FinishDrill(ctx, d); err != nil {
		t.Fatal(err)
	}

	cond := store.Condition{Rule: "archive-lag", SourceID: src.ID, DedupeKey: "archive-lag/app", Severity: "critical",
		Title: "Archiving of app lags 12 minutes", Explanation: "WAL is not reaching the repository", Action: "check the slot"}
	opened, err := c.at(h(0, 10, 0)).ObserveConditions(ctx, []string{"archive-lag"}, []store.Condition{cond})
	if err != nil || len(opened) != 1 {
		t.Fatalf("ObserveConditions = %v, %v", opened, err)
	}
	if _, err := c.at(h(0, 10, 5)).AcknowledgeAlert(ctx, opened[0].Alert.ID, "alice", "looking"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.at(h(0, 11, 0)).ResolveAlert(ctx, opened[0].Alert.ID, "alice", "slot fixed"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.at(h(1, 9, 0)).CreateRestore(ctx, store.RestoreParams{SourceID: src.ID, BackupID: b1.ID,
		Target: "time 2026-11-01 12:00:00+00", DataDir: "/srv/restores/app-1", PGMajor: 15}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPolicy(ctx, store.Policy{SourceID: src.ID, TimeZone: "UTC", Window: 2 * 24 * time.Hour, KeepLast: 2,
		DrillMaxAge: 36 * time.Hour, UpdatedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	return src
}

// build builds the fixture's report as of 11-04 06:00, from the catalog alone.
func build(t testing.TB, c *catalog, srcs ...store.Source) report.Report {
	t.Helper()
	facts := report.Facts{
		Window: func(ctx context.Context, src store.Source) (jobs.WindowInput, error) {
			return jobs.WindowInputs(ctx, c.Store, src.ID, nil)
		},
		ManifestSHA256: func(_ context.Context, id string) (string, error) {
			return fmt.Sprintf("%x", bytes.Repeat([]byte(id[len(id)-1:]), 32)), nil
		},
	}
	r, err := report.Build(context.Background(), c.Store, facts, report.Params{From: day0, To: day0.Add(72 * time.Hour),
		Sources: srcs, Now: day0.Add(78 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
