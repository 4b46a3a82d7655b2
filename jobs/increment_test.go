package jobs_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// TestBackupScatteredChange updates rows on about 1 % of a table's pages, chosen at
// random, between two full backups: the second must store under 5 % of what the first
// stored (apart from the WAL each backup carries), and restore exactly. With 1 MiB
// blocks, such a change rewrote 72 % of a full.
func TestBackupScatteredChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.Start(t)
	dsn := c.DSN("")
	// About 60 MB of table, like pgbench_accounts: full pages, a primary key, text that
	// compresses about as well as real data.
	execSQL(t, dsn,
		`CREATE TABLE accounts (id int PRIMARY KEY, branch int NOT NULL, balance int NOT NULL, filler text NOT NULL)`,
		`INSERT INTO accounts SELECT g, g % 100, 0, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 500000) g`,
		`VACUUM (FREEZE, ANALYZE)`,
		`CHECKPOINT`)
	conn := connect(t, dsn)
	pages, _ := strconv.Atoi(queryValue(t, conn, `SELECT pg_relation_size('accounts') / 8192`))

	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, full := e.backup(t, src)

	// One row on each of 1 % of the pages, at random.
	changed := pages / 100
	execSQL(t, dsn,
		`UPDATE accounts SET balance = balance + 1 WHERE id IN (
			SELECT min(id) FROM accounts GROUP BY (ctid::text::point)[0] ORDER BY random() LIMIT `+strconv.Itoa(changed)+`)`,
		`CHECKPOINT`)
	want := tableHashes(t, conn)
	_, incr := e.backup(t, src)

	fullData := full.Stats.StoredBytesReferenced - full.Stats.WALStoredBytesNew
	added := incr.Stats.StoredBytesNew - incr.Stats.WALStoredBytesNew
	t.Logf("table: %d pages, %d changed; full backup: %d bytes read, %d stored (%d apart from WAL); after the change: %d stored new apart from WAL (%.2f%% of the full), %d of %d blocks new",
		pages, changed, full.Stats.SourceBytes, full.Stats.StoredBytesReferenced, fullData, added,
		100*float64(added)/float64(fullData), incr.Stats.BlockCountNew, incr.Stats.BlockCount)
	if fullData < 10<<20 {
		t.Fatalf("the full backup stored %d bytes apart from WAL, want more than 10 MB: the test data is too small to tell", fullData)
	}
	if added*20 >= fullData {
		t.Errorf("the backup after a 1%% scattered change stored %d new bytes apart from WAL, want under 5%% of the full's %d", added, fullData)
	}

	into := filepath.Join(reachableDir(t), "data")
	rjob, err := e.runner.Run(ctx, restoreParams(incr.ID, into))
	if err != nil || rjob.State != store.JobSucceeded {
		t.Fatalf("Run(restore of backup %d) = %v, %v", incr.ID, rjob.State, err)
	}
	bin, err := pg.FindBinaries(ctx, 15)
	if err != nil {
		t.Fatal(err)
	}
	restored := startRestored(t, bin, into)
	if diff := cmp.Diff(want, tableHashes(t, connect(t, restored.DSN("")))); diff != "" {
		t.Errorf("restored tables differ from the source (-want +got):\n%s", diff)
	}
}

// TestBackupHealsBadBlock: a stored block that verification marked bad is not reused; the
// next backup that meets the same content stores a good copy, and an older backup that
// used the bad copy restores again.
func TestBackupHealsBadBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.Start(t)
	dsn := c.DSN("")
	execSQL(t, dsn,
		`CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)`,
		`INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g`,
		`VACUUM (FREEZE, ANALYZE)`,
		`CHECKPOINT`)
	conn := connect(t, dsn)
	want := tableHashes(t, conn)
	rel := queryValue(t, conn, `SELECT pg_relation_filepath('items')`)

	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, old := e.backup(t, src)

	m, err := e.repo.Manifest(ctx, old.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for i := range m.Files {
		if m.Files[i].Path == rel {
			blocks, err := e.repo.FileBlocks(ctx, &m.Files[i], m.BlockSize)
			if err != nil {
				t.Fatal(err)
			}
			victim = blocks[len(blocks)/2]
		}
	}
	if victim == "" {
		t.Fatalf("no blocks for %s in the backup", rel)
	}
	pack, _, _, err := e.repo.Locate(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	flipBlob(t, e.repo, victim)
	if err := e.repo.MarkBad(ctx, repository.BadObject{Name: victim, Pack: pack, Reason: "test: flipped a bit"}); err != nil {
		t.Fatal(err)
	}

	// The old backup cannot be restored now, and says which object is to blame.
	into := filepath.Join(reachableDir(t), "data")
	_, err = failedRestore(t, e, old.ID, into)
	if err == nil || !strings.Contains(err.Error(), victim) {
		t.Fatalf("restore of the damaged backup = %v, want an error naming %s", err, victim)
	}

	// The next backup of the unchanged table stores the block anew.
	_, healed := e.backup(t, src)
	if healed.Stats.BlockCountNew == 0 {
		t.Errorf("the backup after the damage stored no new block")
	}
	if p, _, _, err := e.repo.Locate(ctx, victim); err != nil || p == pack {
		t.Errorf("Locate(%s) = pack %s, %v, want a good copy outside pack %s", victim, p, err, pack)
	}

	// And the old backup restores exactly again.
	into = filepath.Join(reachableDir(t), "data")
	rjob, err := e.runner.Run(ctx, restoreParams(old.ID, into))
	if err != nil || rjob.State != store.JobSucceeded {
		t.Fatalf("Run(restore of the old backup after healing) = %v, %v", rjob.State, err)
	}
	bin, err := pg.FindBinaries(ctx, 15)
	if err != nil {
		t.Fatal(err)
	}
	restored := startRestored(t, bin, into)
	if diff := cmp.Diff(want, tableHashes(t, connect(t, restored.DSN("")))); diff != "" {
		t.Errorf("restored tables differ from the source (-want +got):\n%s", diff)
	}
}
