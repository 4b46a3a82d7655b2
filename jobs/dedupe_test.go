package jobs_test

import (
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// TestBackupDedupe takes two full backups of an unchanged cluster into one repository: the
// second must store next to nothing but its WAL. The cluster is its own: writes by other
// tests to the shared one would change the second backup.
func TestBackupDedupe(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN("")
	// About 8 MB of table. VACUUM FREEZE sets every hint bit and the visibility map now,
	// so that nothing rewrites these pages between the backups.
	execSQL(t, dsn,
		`CREATE TABLE items (id int PRIMARY KEY, a text NOT NULL, b text NOT NULL)`,
		`INSERT INTO items SELECT g, md5(g::text), md5((-g)::text) FROM generate_series(1, 80000) g`,
		`VACUUM (FREEZE, ANALYZE)`,
		`CHECKPOINT`)
	conn := connect(t, dsn)
	size := queryValue(t, conn, `SELECT pg_total_relation_size('items')`)

	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, first := e.backup(t, src)
	execSQL(t, dsn, `CHECKPOINT`)
	_, second := e.backup(t, src)

	firstData := first.Stats.StoredBytesNew - first.Stats.WALStoredBytesNew
	secondData := second.Stats.StoredBytesNew - second.Stats.WALStoredBytesNew
	t.Logf("table: %s bytes; first backup: %d bytes read, %d stored new (%d of them WAL); second: %d bytes read, %d stored new (%d WAL)",
		size, first.Stats.SourceBytes, first.Stats.StoredBytesNew, first.Stats.WALStoredBytesNew,
		second.Stats.SourceBytes, second.Stats.StoredBytesNew, second.Stats.WALStoredBytesNew)
	t.Logf("stored new apart from WAL: first %d bytes, second %d bytes (%.2f%%)",
		firstData, secondData, 100*float64(secondData)/float64(firstData))
	if firstData < 4<<20 {
		t.Fatalf("first backup stored %d new bytes apart from WAL, want more than 4 MB: the test data is too small to tell", firstData)
	}
	if secondData*50 >= firstData {
		t.Errorf("second backup stored %d new bytes apart from WAL, want less than 2%% of the first's %d", secondData, firstData)
	}
	// The second backup references as much as the first: it is a full backup, deduplicated.
	if ratio := float64(second.Stats.StoredBytesReferenced) / float64(first.Stats.StoredBytesReferenced); ratio < 0.98 || ratio > 1.02 {
		t.Errorf("second backup references %d stored bytes, first %d: want about the same",
			second.Stats.StoredBytesReferenced, first.Stats.StoredBytesReferenced)
	}
	if second.Stats.BlockCountNew*10 > second.Stats.BlockCount {
		t.Errorf("second backup: %d of %d blocks new, want under 10%%", second.Stats.BlockCountNew, second.Stats.BlockCount)
	}
}
