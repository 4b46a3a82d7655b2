package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// expireWorker is the expire job's worker with pruning that deletes at once, as a test
// cannot wait for the grace period and the tombstones' delay.
func expireWorker(st *store.Store, repo *repository.Repo) jobs.Worker {
	return jobs.NewExpireWorker(st, repo).WithPruneOptions(repository.PruneOptions{Grace: -1, Delay: -1})
}

// runExpire runs an expire job of src and returns its result.
func (e *env) runExpire(t *testing.T, src store.Source) jobs.ExpireResult {
	t.Helper()
	job, err := e.runner.Run(context.Background(), jobs.Params{Kind: jobs.KindExpire, LockKey: jobs.PruneLockKey,
		Args: jobs.ExpireArgs{SourceIDs: []int64{src.ID}}, RequestedBy: "test"})
	if err != nil || job.State != store.JobSucceeded {
		t.Fatalf("Run(expire) = %s, %v", job.State, err)
	}
	var res jobs.ExpireResult
	if err := json.Unmarshal(job.Result, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestExpiryKeepsTheWindow: after expiry, a point-in-time restore to the oldest second of
// the restorable window brings back exactly the rows committed by then, one second
// earlier is refused with the window, and what expiry deleted is gone from the catalog
// and the repository, with an audit entry naming the rule.
func TestExpiryKeepsTheWindow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := cl.DSN("postgres")
	backstop, err := buildBackstop(t)
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, jobs.Options{},
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			return jobs.NewPITRWorker(st, repo, backstop)
		},
		expireWorker)
	src := e.register(t, "orders", dsn)
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	go a.Run(ctx, src)

	conn := connect(t, dsn)
	execSQL(t, dsn, `CREATE TABLE ticks (id bigint PRIMARY KEY)`)
	next := int64(1)
	commit := func(n int) {
		t.Helper()
		for range n {
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (id) VALUES ($1)`, next); err != nil {
				t.Fatal(err)
			}
			next++
			time.Sleep(20 * time.Millisecond)
		}
	}
	commit(20)
	_, b1 := e.backup(t, src)
	commit(20)
	execSQL(t, dsn, `SELECT pg_switch_wal()`) // b1's WAL and b2's start in different segments
	commit(5)
	_, b2 := e.backup(t, src)
	commit(20)
	time.Sleep(2 * time.Second) // the window below starts between b2 and b3
	_, b3 := e.backup(t, src)
	commit(20)
	last := queryValue(t, conn, `SELECT pg_xact_commit_timestamp(xmin) FROM ticks WHERE id = $1`, next-1)
	lastAt, err := time.Parse("2006-01-02 15:04:05.999999-07", last)
	if err != nil {
		t.Fatal(err)
	}
	var before jobs.Window
	waitFor(t, "the archive to hold the last commit", time.Minute, func() (bool, error) {
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		before = jobs.ComputeWindow(in)
		return err == nil && !before.Latest.Before(lastAt), err
	})
	var b2At time.Time
	for _, bp := range before.Backups {
		if bp.ID == b2.ID {
			b2At = bp.ConsistentAt
		}
	}
	if b2At.IsZero() {
		t.Fatalf("backup %d has no consistency time in %+v", b2.ID, before.Backups)
	}

	// A window that starts less than a second after b2 is consistent (and, by the time
	// expiry runs, still more than a second before b3): b2 is its base, b1 expires.
	window := time.Since(b2At).Truncate(time.Second)
	if _, err := e.store.SetPolicy(ctx, store.Policy{SourceID: src.ID, TimeZone: "UTC", Window: window, UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	walBefore, err := e.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	res := e.runExpire(t, src)
	if len(res.Sources) != 1 || res.Sources[0].Backups != 1 || res.Sources[0].WALFiles == 0 {
		t.Fatalf("expire result = %+v, want backup %d and its WAL expired", res, b1.ID)
	}
	t.Logf("expired: %+v; prune: %+v", res.Sources[0], res.Prune)

	if _, err := e.store.Backup(ctx, b1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Backup(%d) after expiry = %v, want ErrNotFound", b1.ID, err)
	}
	for _, b := range []store.Backup{b2, b3} {
		if _, err := e.store.Backup(ctx, b.ID); err != nil {
			t.Errorf("Backup(%d), inside the window, after expiry = %v", b.ID, err)
		}
	}
	manifests, err := e.repo.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(manifests, b1.RepoID) || !slices.Contains(manifests, b2.RepoID) || !slices.Contains(manifests, b3.RepoID) {
		t.Errorf("manifests after expiry = %v, want %s gone and %s, %s kept", manifests, b1.RepoID, b2.RepoID, b3.RepoID)
	}
	// Every WAL file below where the kept WAL begins is gone, from the catalog and the
	// repository; the segments after it stay. It begins at or before b2's start (earlier
	// when the last commit before b2 is in an earlier file: it dates b2's consistency).
	b2Start, _ := pglogrepl.ParseLSN(b2.StartLSN)
	keepFrom, err := pglogrepl.ParseLSN(res.Sources[0].KeepWALFrom)
	if err != nil || keepFrom > b2Start || keepFrom == 0 {
		t.Errorf("kept WAL begins at %s, want at or before b2's start %s", res.Sources[0].KeepWALFrom, b2.StartLSN)
	}
	walAfter, err := e.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	names, err := e.repo.WALNames(ctx, src.SystemIdentifier)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range walBefore {
		end, err := pglogrepl.ParseLSN(f.EndLSN)
		gone := f.Kind != store.WALHistory && err == nil && end <= keepFrom
		kept := slices.ContainsFunc(walAfter, func(g store.WALFile) bool { return g.Name == f.Name })
		// A partial piece kept may since have been replaced by a longer one.
		if gone == kept && (gone || f.Kind != store.WALPartial) {
			t.Errorf("WAL %s [%s, %s) in the catalog after expiry: %t, want %t (kept WAL begins at %s)", f.Name, f.StartLSN, f.EndLSN, kept, !gone, keepFrom)
		}
		if gone && slices.Contains(names, f.Name) {
			t.Errorf("expired WAL %s is still in the repository", f.Name)
		}
	}
	if samples, err := e.store.StorageSamples(ctx, time.Time{}); err != nil || len(samples) < 4 {
		t.Errorf("StorageSamples() = %d, %v; want one per backup and one after expiry", len(samples), err)
	}
	if pending, err := e.store.PendingExpirations(ctx); err != nil || len(pending) != 0 {
		t.Errorf("PendingExpirations() = %d, %v; want none once pruning deleted them", len(pending), err)
	}
	entries, err := e.store.AuditEntries(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(entries, func(a store.AuditEntry) bool {
		return a.Action == "backup.expire" && strings.Contains(string(a.Detail), b1.RepoID) && strings.Contains(string(a.Detail), "recovery window")
	}) || !slices.ContainsFunc(entries, func(a store.AuditEntry) bool { return a.Action == "wal.expire" }) {
		t.Errorf("audit entries = %+v, want backup.expire of %s with its rule, and wal.expire", entries, b1.RepoID)
	}

	// The window now starts at b2's consistency: restore exactly there, refuse a second earlier.
	in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
	if err != nil {
		t.Fatal(err)
	}
	after := jobs.ComputeWindow(in)
	if !after.Earliest.Equal(b2At) || after.Latest.Before(lastAt) {
		t.Fatalf("window after expiry = %s, want from %s (backup %d) to at least %s", after, b2At, b2.ID, lastAt)
	}
	earlier, err := jobs.ParseTarget(after.Earliest.Add(-time.Second).Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	var te *jobs.TargetError
	if _, err := jobs.PlanRestore(in, earlier, 0); !errors.As(err, &te) || !strings.Contains(err.Error(), after.String()) {
		t.Errorf("PlanRestore(a second before the window) = %v, want a TargetError giving the window %s", err, after)
	}
	target := after.Earliest
	var want []int64
	rows, err := conn.Query(ctx, `SELECT id FROM ticks WHERE pg_xact_commit_timestamp(xmin) <= $1 ORDER BY id`, target)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	into := filepath.Join(reachableDir(t), "restored")
	job, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
		Args: jobs.PITRArgs{SourceID: src.ID, Target: target.Format(time.RFC3339Nano), Into: into, Port: freePort(t), Owner: ownerName()}})
	if err != nil {
		t.Fatalf("restore to the oldest second of the window after expiry: %v", err)
	}
	var pres jobs.PITRResult
	if err := json.Unmarshal(job.Result, &pres); err != nil {
		t.Fatal(err)
	}
	got := restoredIDs(t, pres.DSN)
	stopRestored(t, cl.Binaries(), into)
	if !slices.Equal(got, want) {
		t.Errorf("restore to %s (the window's start) after expiry: rows %s, want %s", target, span(got), span(want))
	}
}

// TestExpiryDuringBackup applies a policy over and over while a backup runs and WAL
// streams: the backup completes and restores exactly.
func TestExpiryDuringBackup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t)
	dsn := cl.DSN("postgres")
	execSQL(t, dsn,
		`CREATE TABLE data (id int PRIMARY KEY, payload text NOT NULL)`,
		`INSERT INTO data SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 150000) g`,
		`CHECKPOINT`)
	conn := connect(t, dsn)
	want := tableHashes(t, conn)
	writes := createDatabase(t, cl, "writes")
	execSQL(t, writes, `CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())`)

	// Pruning and a backup at once are safe when a pack stays marked longer than a
	// writer's commit window (see repository/session.go): expireWorker deletes at once,
	// which a backup that began before the mark cannot survive, so both are shortened
	// here instead, keeping their order.
	e := setupWith(t, jobs.Options{Workers: 2}, repository.Options{CommitWindow: time.Second},
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewRestoreWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			return jobs.NewExpireWorker(st, repo).WithPruneOptions(repository.PruneOptions{Grace: -1, Delay: 3 * time.Second})
		})
	src := e.register(t, "busy", dsn)
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	go a.Run(ctx, src)
	writing := make(chan struct{})
	go func() { // WAL keeps coming, in another database
		defer close(writing)
		w := connect(t, writes)
		for ctx.Err() == nil {
			w.Exec(ctx, `INSERT INTO ticks DEFAULT VALUES`) //nolint:errcheck // stops with ctx
			time.Sleep(5 * time.Millisecond)
		}
	}()

	_, b1 := e.backup(t, src)
	_, b2 := e.backup(t, src)
	// Keep one second: b2 is the window's base; b1 and the WAL before b2 go.
	if _, err := e.store.SetPolicy(ctx, store.Policy{SourceID: src.ID, TimeZone: "UTC", Window: time.Second, UpdatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // b2 is then more than the window's second old
	job, err := e.runner.Enqueue(ctx, backupParams(src))
	if err != nil {
		t.Fatal(err)
	}
	var runs, expired atomic.Int64
	var third store.Job
	for {
		res := e.runExpire(t, src)
		runs.Add(1)
		for _, s := range res.Sources {
			expired.Add(int64(s.Backups + s.WALFiles))
		}
		if third, err = e.store.Job(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		if third.State.Final() {
			break
		}
	}
	cancel()
	<-writing
	if third.State != store.JobSucceeded {
		t.Fatalf("backup during expiry ended %s: %s", third.State, third.Error)
	}
	t.Logf("%d expire jobs ran during the backup; %d backups and WAL files expired", runs.Load(), expired.Load())
	if expired.Load() == 0 {
		t.Errorf("nothing expired while the backup ran: the test did not expire anything during it")
	}
	if _, err := e.store.Backup(context.Background(), b1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("backup %d (before the window's base %d) was not expired: %v", b1.ID, b2.ID, err)
	}

	var br jobs.BackupResult
	if err := json.Unmarshal(third.Result, &br); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(reachableDir(t), "data")
	rjob, err := e.runner.Run(context.Background(), restoreParams(br.BackupID, into))
	if err != nil || rjob.State != store.JobSucceeded {
		t.Fatalf("Run(restore of the backup taken during expiry) = %v, %v", rjob.State, err)
	}
	restored := startRestored(t, cl.Binaries(), into)
	if diff := cmp.Diff(want, tableHashes(t, connect(t, restored.DSN("postgres")))); diff != "" {
		t.Errorf("restored tables differ from the source (-want +got):\n%s", diff)
	}
}
