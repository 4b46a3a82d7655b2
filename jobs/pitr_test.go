package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// commitStamp is one row of the workload and the time its transaction committed.
type commitStamp struct {
	id int64
	at time.Time
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPointInTimeRestoreGroundTruth is the acceptance test of point-in-time restore: a
// workload commits rows while base backups are taken and WAL is streamed; for targets
// across the window, the restored instance holds exactly the rows whose transactions
// committed at or before the target, no more, no fewer.
func TestPointInTimeRestoreGroundTruth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := cl.DSN("postgres")
	backstop, err := buildBackstop(t)
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, jobs.Options{}, func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			return jobs.NewPITRWorker(st, repo, backstop)
		})
	src := e.register(t, "orders", dsn)
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	go a.Run(ctx, src)

	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `CREATE TABLE ticks (id bigint PRIMARY KEY, stamped timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	commit := func(n int) {
		t.Helper()
		for range n {
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (id) VALUES ($1)`, next); err != nil {
				t.Fatal(err)
			}
			next++
			time.Sleep(15 * time.Millisecond)
		}
	}
	commit(20)
	_, b1 := e.backup(t, src)
	commit(30)
	_, b2 := e.backup(t, src)
	commit(30)

	var stamps []commitStamp
	rows, err := conn.Query(ctx, `SELECT id, pg_xact_commit_timestamp(xmin) FROM ticks ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s commitStamp
		if err := rows.Scan(&s.id, &s.at); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	last := stamps[len(stamps)-1].at

	var w jobs.Window
	waitFor(t, "the archive to hold the last commit", time.Minute, func() (bool, error) {
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		if err != nil {
			return false, err
		}
		w = jobs.ComputeWindow(in)
		return !w.Latest.Before(last), nil
	})
	t.Logf("window %s; backups %d and %d", w, b1.ID, b2.ID)
	var afterB1 time.Time
	for _, bp := range w.Backups {
		if bp.ID == b1.ID {
			afterB1 = bp.ConsistentAt.Add(time.Microsecond)
		}
	}
	if afterB1.IsZero() {
		t.Fatalf("backup %d is not in the window's backups: %+v", b1.ID, w.Backups)
	}
	mid := stamps[34].at.Add(stamps[35].at.Sub(stamps[34].at) / 2)
	targets := []struct {
		name   string
		target string
		at     time.Time // rows committed at or before it are expected; zero: all
	}{
		{"just after backup 1's consistency point", afterB1.Format(time.RFC3339Nano), afterB1},
		{"exactly at a commit", stamps[29].at.Format(time.RFC3339Nano), stamps[29].at},
		{"between two commits", mid.Format(time.RFC3339Nano), mid},
		{"after backup 2", stamps[65].at.Format(time.RFC3339Nano), stamps[65].at},
		{"less than a second before the latest", last.Add(-20 * time.Millisecond).Format(time.RFC3339Nano), last.Add(-20 * time.Millisecond)},
		{"latest", "latest", time.Time{}},
	}
	for _, tt := range targets {
		t.Run(tt.name, func(t *testing.T) {
			var want []int64
			for _, s := range stamps {
				if tt.at.IsZero() || !s.at.After(tt.at) {
					want = append(want, s.id)
				}
			}
			into := filepath.Join(reachableDir(t), "restored")
			job, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
				Args: jobs.PITRArgs{SourceID: src.ID, Target: tt.target, Into: into, Port: freePort(t), Owner: ownerName()}})
			if err != nil {
				t.Fatalf("restore to %s: %v", tt.target, err)
			}
			var res jobs.PITRResult
			if err := json.Unmarshal(job.Result, &res); err != nil {
				t.Fatal(err)
			}
			got := restoredIDs(t, res.DSN)
			stopRestored(t, cl.Binaries(), into)
			if !slices.Equal(got, want) {
				t.Errorf("restore to %s (%s): rows %s, want %s (stop line %q)", tt.target, tt.name, span(got), span(want), res.StopLine)
			}
		})
	}

	t.Run("directory only, started by hand", func(t *testing.T) {
		target := stamps[44].at
		into := filepath.Join(reachableDir(t), "restored")
		job, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
			Args: jobs.PITRArgs{SourceID: src.ID, Target: target.Format(time.RFC3339Nano), Into: into, Owner: ownerName()}})
		if err != nil {
			t.Fatalf("restore into a directory: %v", err)
		}
		var res jobs.PITRResult
		if err := json.Unmarshal(job.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.DSN != "" {
			t.Errorf("a directory-only restore started an instance: %s", res.DSN)
		}
		// What an operator does: start it; it replays the WAL placed in pg_wal and promotes.
		sockets, err := os.MkdirTemp("", "bs-")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(sockets) // a Unix socket's path is short: StartDataDir makes this one
		defer os.RemoveAll(sockets)
		c, err := pg.StartDataDir(ctx, pg.ServerOptions{Bin: cl.Binaries(), DataDir: into, Port: freePort(t),
			LogFile: filepath.Join(into, "log", "by-hand.log"), SocketDir: sockets})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop(context.Background(), "immediate")
		if _, err := pg.WaitRecovery(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		got := restoredIDs(t, c.DSN("postgres"))
		if want := int64(45); len(got) != int(want) || got[len(got)-1] != want {
			t.Errorf("directory restore to row 45's commit, started by hand: rows %s, want 1..45", span(got))
		}
	})

	t.Run("outside the window", func(t *testing.T) {
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		if err != nil {
			t.Fatal(err)
		}
		target, err := jobs.ParseTarget(last.Add(time.Hour).Format(time.RFC3339Nano))
		if err != nil {
			t.Fatal(err)
		}
		_, err = jobs.PlanRestore(in, target, 0)
		var te *jobs.TargetError
		if !errors.As(err, &te) || te.Window.String() == "" {
			t.Fatalf("PlanRestore(an hour after the latest) = %v, want a TargetError giving the window", err)
		}
		t.Logf("refused: %v", err)
	})

	// Last, as it damages the archive: the segment that continues backup 1's WAL is lost.
	t.Run("missing WAL segment", func(t *testing.T) {
		b1End, err := pglogrepl.ParseLSN(b1.EndLSN)
		if err != nil {
			t.Fatal(err)
		}
		lost := pgwal.SegmentName(uint32(b1.Timeline), pgwal.SegmentOf(b1End, pgwal.DefaultSegmentSize), pgwal.DefaultSegmentSize)
		if err := e.repo.Storage().Delete(context.Background(), "wal/"+src.SystemIdentifier+"/"+lost+".wal"); err != nil {
			t.Fatalf("remove %s from the repository: %v", lost, err)
		}
		in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
		if err != nil {
			t.Fatal(err)
		}
		w := jobs.ComputeWindow(in)
		if !slices.ContainsFunc(w.Gaps, func(g jobs.Gap) bool { return g.Segment == lost }) {
			t.Errorf("window gaps = %+v, want one at %s", w.Gaps, lost)
		}
		target, err := jobs.ParseTarget(stamps[40].at.Format(time.RFC3339Nano))
		if err != nil {
			t.Fatal(err)
		}
		_, err = jobs.PlanRestore(in, target, 0)
		var te *jobs.TargetError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), lost) {
			t.Fatalf("PlanRestore(row 41, with %s missing) = %v, want a refusal naming the segment", lost, err)
		}
		t.Logf("refused: %v", err)
	})
}

// ownerName is the OS user restored data directories belong to: postgres when root.
func ownerName() string {
	if os.Geteuid() == 0 {
		return "postgres"
	}
	return ""
}

// stopRestored stops the instance a restore job started on dir.
func stopRestored(t *testing.T, bin pg.Binaries, dir string) {
	t.Helper()
	args := []string{bin.Path("pg_ctl"), "-D", dir, "stop", "-m", "immediate", "-w"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Errorf("stop the restored instance: %v\n%s", err, out)
	}
}

// restoredIDs returns the ids in the restored instance's table.
func restoredIDs(t *testing.T, dsn string) []int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to the restored instance: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT id FROM ticks ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// span describes a list of consecutive ids compactly.
func span(ids []int64) string {
	if len(ids) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d (%d rows)", ids[0], ids[len(ids)-1], len(ids))
}

// TestRestoreOfARestoredInstance: an instance restored to a point in time runs on
// timeline 2; registered as a source, backed up and archived, it can itself be restored
// to a point in time, exactly.
func TestRestoreOfARestoredInstance(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	backstop, err := buildBackstop(t)
	if err != nil {
		t.Fatal(err)
	}
	e := setup(t, jobs.Options{}, func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			return jobs.NewPITRWorker(st, repo, backstop)
		})
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond

	// insert commits rows from..to on dsn, one transaction each, and returns their commit times.
	insert := func(dsn string, from, to int) map[int]time.Time {
		t.Helper()
		conn := connect(t, dsn)
		at := make(map[int]time.Time)
		for id := from; id <= to; id++ {
			var ts time.Time
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (id) VALUES ($1)`, id); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRow(ctx, `SELECT pg_xact_commit_timestamp(xmin) FROM ticks WHERE id = $1`, id).Scan(&ts); err != nil {
				t.Fatal(err)
			}
			at[id] = ts
			time.Sleep(15 * time.Millisecond)
		}
		return at
	}
	// restore restores src to target and returns the started instance's DSN and directory.
	restore := func(src store.Source, target string, last time.Time) (string, string) {
		t.Helper()
		waitFor(t, "the archive to hold the last commit of "+src.Name, time.Minute, func() (bool, error) {
			in, err := jobs.LoadWindowInput(ctx, e.store, e.repo, src)
			return err == nil && !jobs.ComputeWindow(in).Latest.Before(last), err
		})
		into := filepath.Join(reachableDir(t), "restored")
		job, err := e.runner.Run(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID,
			Args: jobs.PITRArgs{SourceID: src.ID, Target: target, Into: into, Port: freePort(t), Owner: ownerName()}})
		if err != nil {
			t.Fatalf("restore %s to %s: %v", src.Name, target, err)
		}
		t.Cleanup(func() { stopRestored(t, cl.Binaries(), into) })
		var res jobs.PITRResult
		if err := json.Unmarshal(job.Result, &res); err != nil {
			t.Fatal(err)
		}
		return res.DSN, into
	}

	first := e.register(t, "first", cl.DSN("postgres"))
	go a.Run(ctx, first)
	execSQL(t, cl.DSN("postgres"), `CREATE TABLE ticks (id int PRIMARY KEY)`)
	e.backup(t, first)
	at := insert(cl.DSN("postgres"), 1, 20)
	restoredDSN, _ := restore(first, at[10].Format(time.RFC3339Nano), at[20])

	second := e.register(t, "second", restoredDSN)
	if second.Timeline != 2 {
		t.Fatalf("the restored instance runs on timeline %d, want 2", second.Timeline)
	}
	go a.Run(ctx, second)
	e.backup(t, second)
	at2 := insert(restoredDSN, 101, 120)
	againDSN, _ := restore(second, at2[110].Format(time.RFC3339Nano), at2[120])
	got := restoredIDs(t, againDSN)
	var want []int64
	for id := int64(1); id <= 10; id++ {
		want = append(want, id)
	}
	for id := int64(101); id <= 110; id++ {
		want = append(want, id)
	}
	if !slices.Equal(got, want) {
		t.Errorf("restore of the restored instance: rows %v, want 1..10 and 101..110", got)
	}
}
