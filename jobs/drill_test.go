package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

func TestRandomTarget(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse("15:04:05.999999", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		ranges []jobs.Range
		whole  bool // every pick is a whole second
		// share is the fraction of picks expected in the first range, ±0.05.
		share float64
	}{
		{"one range", []jobs.Range{{From: at("10:00:00.5"), To: at("10:00:10.2")}}, true, 1},
		{"weighted by length", []jobs.Range{{From: at("10:00:00.5"), To: at("10:00:10.2")}, {From: at("11:00:00"), To: at("11:01:29")}}, true, 0.1},
		{"shorter than a second", []jobs.Range{{From: at("10:00:00.2"), To: at("10:00:00.7")}}, false, 1},
		{"a single instant", []jobs.Range{{From: at("10:00:00.25"), To: at("10:00:00.25")}}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := jobs.Window{Ranges: tc.ranges}
			r := rand.New(rand.NewPCG(1, 2))
			const n = 2000
			first := 0
			for range n {
				got := jobs.RandomTarget(w, r.Int64N)
				if !w.Contains(got) {
					t.Fatalf("RandomTarget(%s) = %s, outside the window", w, got)
				}
				if tc.whole && !got.Equal(got.Truncate(time.Second)) {
					t.Fatalf("RandomTarget(%s) = %s, want a whole second", w, got)
				}
				if !got.After(tc.ranges[0].To) {
					first++
				}
			}
			if share := float64(first) / n; share < tc.share-0.05 || share > tc.share+0.05 {
				t.Errorf("RandomTarget(%s): %.2f of picks in the first range, want %.2f", w, share, tc.share)
			}
		})
	}
}

// runStarter runs the use cases' jobs in the foreground on a runner, as the CLI does.
type runStarter struct{ r *jobs.Runner }

func (s *runStarter) Start(ctx context.Context, p jobs.Params) (store.Job, error) {
	return s.r.Run(ctx, p)
}
func (s *runStarter) Cancel(ctx context.Context, id int64) error { return s.r.Cancel(ctx, id) }

// TestDrill is the acceptance test of restore drills: on a healthy source a drill restores
// a random second of the window into a sandbox, checks it, records its RTO and the rows of
// every table (exactly those committed by the second it proved), and leaves nothing
// behind; once every pack of the backup is corrupt, the drill fails, says why, leaves
// nothing behind, and the evaluator raises a drill-failed alert.
func TestDrill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := cl.DSN("postgres")
	backstop, err := buildBackstop(t)
	if err != nil {
		t.Fatal(err)
	}
	restoreRoot := reachableDir(t)
	starter := &runStarter{}
	var svc *usecase.Service
	e := setup(t, jobs.Options{}, func(st *store.Store, repo *repository.Repo) jobs.Worker { return jobs.NewBackupWorker(st, repo) },
		func(st *store.Store, repo *repository.Repo) jobs.Worker {
			svc = usecase.New(st, repo, starter, usecase.Paths{RestoreRoot: restoreRoot}, testLogger(t))
			return jobs.NewDrillWorker(st, jobs.NewPITRWorker(st, repo, backstop), svc)
		})
	starter.r = e.runner
	src := e.register(t, "ledger", dsn)
	a := jobs.NewArchiver(e.store, e.repo, t.TempDir(), testLogger(t))
	a.PartialEvery = 100 * time.Millisecond
	go a.Run(ctx, src)

	// A second database, so that the drill counts rows in every one.
	otherDSN := createDatabase(t, cl, "other")
	execSQL(t, otherDSN, `CREATE TABLE items (id int PRIMARY KEY)`, `INSERT INTO items SELECT generate_series(1, 7)`)
	conn := connect(t, dsn)
	execSQL(t, dsn, `CREATE TABLE ticks (id bigint PRIMARY KEY)`)
	next := int64(1)
	commit := func(n int, every time.Duration) {
		t.Helper()
		for range n {
			if _, err := conn.Exec(ctx, `INSERT INTO ticks (id) VALUES ($1)`, next); err != nil {
				t.Fatal(err)
			}
			next++
			time.Sleep(every)
		}
	}
	commit(10, 15*time.Millisecond)
	_, b := e.backup(t, src)
	// Spread over about three seconds, so that the window holds whole seconds to pick.
	commit(60, 50*time.Millisecond)

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
	t.Logf("window %s", w)
	committedBy := func(at time.Time) int64 {
		var n int64
		for _, s := range stamps {
			if !s.at.After(at) {
				n++
			}
		}
		return n
	}
	// drill runs a drill to at (zero: a random second) as the on-call person would and
	// returns the job and its drill.
	drill := func(t *testing.T, at time.Time) (store.Job, store.Drill, error) {
		t.Helper()
		job, err := svc.StartDrillAt(ctx, usecase.Actor{Name: "olga", Role: store.RoleOnCall}, src.ID, at)
		if job.ID == 0 {
			t.Fatalf("StartDrill(%s) = %v, started no job", src.Name, err)
		}
		var res jobs.DrillResult
		if jerr := json.Unmarshal(job.Result, &res); jerr != nil || res.ID == 0 {
			t.Fatalf("drill job %d: result %s (%v), want the drill; job error %v", job.ID, job.Result, jerr, err)
		}
		d, derr := e.store.Drill(ctx, res.ID)
		if derr != nil {
			t.Fatal(derr)
		}
		if res.State != d.State || !res.Target.Equal(d.TargetAt) || res.RTOMillis != d.RTO.Milliseconds() {
			t.Errorf("drill job result = %+v, want the recorded drill %+v", res, d)
		}
		return job, d, err
	}
	// nothingLeft checks that the drill's sandbox is gone: no directory below the restore
	// root, the restored instance recorded deleted (or failed) and its port free.
	nothingLeft := func(t *testing.T, d store.Drill, want store.RestoreState) {
		t.Helper()
		if entries, err := os.ReadDir(restoreRoot); err != nil || len(entries) > 0 {
			t.Errorf("restore root after drill %d: %d entries (%v), want none", d.ID, len(entries), err)
		}
		xs, err := e.store.Restores(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range xs {
			if x.JobID != d.JobID {
				continue
			}
			found = true
			if x.State != want || !strings.HasPrefix(x.DataDir, restoreRoot+"/drill-ledger-") {
				t.Errorf("drill %d's restore = %s in %s, want %s below %s", d.ID, x.State, x.DataDir, want, restoreRoot)
			}
			if x.Port == 0 || x.Port == cl.Port() || !dest.PortFree(x.Port) {
				t.Errorf("drill %d's instance port %d: want a port of its own (not the source's %d), free again", d.ID, x.Port, cl.Port())
			}
		}
		if !found {
			t.Errorf("drill %d (job %d) recorded no restored instance", d.ID, d.JobID)
		}
	}

	// passed checks a drill that passed: what it recorded, against the ground truth.
	passed := func(t *testing.T, job store.Job, d store.Drill) {
		t.Helper()
		t.Logf("drill %d proved %s from backup %d: RTO %s, last commit %v", d.ID, d.TargetAt, d.BackupID, d.RTO, d.LastCommitAt)
		if evs, err := e.store.JobEvents(ctx, job.ID, 0); err == nil {
			for _, ev := range evs {
				t.Logf("  %s %-13s %s", ev.At.Format("15:04:05.000"), ev.Phase, ev.Message)
			}
		}
		if d.State != store.DrillPassed || d.Error != "" {
			t.Errorf("drill = %s (%q), want passed", d.State, d.Error)
		}
		if !w.Contains(d.TargetAt) {
			t.Errorf("drill target %s, want a second inside the window %s", d.TargetAt, w)
		}
		if d.RTO <= 0 || d.BackupID != b.ID {
			t.Errorf("drill RTO %s from backup %d, want > 0 from backup %d", d.RTO, d.BackupID, b.ID)
		}
		want := committedBy(d.TargetAt)
		if d.LastCommitAt != nil {
			if d.LastCommitAt.After(d.TargetAt) {
				t.Errorf("drill last commit %s, after its target %s", d.LastCommitAt, d.TargetAt)
			}
			if n := committedBy(*d.LastCommitAt); n != want {
				t.Errorf("rows committed by the drill's last commit %s = %d, by its target = %d: replay missed a commit", d.LastCommitAt, n, want)
			}
		} else if want > 10 {
			t.Errorf("drill recorded no last commit, but %d rows were committed after the backup by its target", want-10)
		}
		if got := d.Tables["postgres.public.ticks"]; got != want {
			t.Errorf("drill row count of postgres.public.ticks = %d, want %d (committed at or before %s)", got, want, d.TargetAt)
		}
		if got := d.Tables["other.public.items"]; got != 7 {
			t.Errorf("drill row count of other.public.items = %d, want 7; tables %v", got, d.Tables)
		}
		for _, words := range []string{"pg_amcheck", "left recovery", "transaction", "counted the rows", "RTO", "torn down"} {
			if !slices.ContainsFunc(d.Checks, func(c string) bool { return strings.Contains(c, words) }) {
				t.Errorf("drill checks %q, want one saying %q", d.Checks, words)
			}
		}
		nothingLeft(t, d, store.RestoreDeleted)
	}

	t.Run("healthy", func(t *testing.T) {
		// A drill whose process died: the next drill of the source settles it.
		orphan, err := e.store.StartDrill(ctx, src.ID, 0, w.Latest)
		if err != nil {
			t.Fatal(err)
		}
		job, d, err := drill(t, time.Time{})
		if err != nil || job.State != store.JobSucceeded {
			t.Fatalf("drill job = %s, %v; want succeeded", job.State, err)
		}
		passed(t, job, d)
		if !d.TargetAt.Equal(d.TargetAt.Truncate(time.Second)) {
			t.Errorf("random drill target %s, want a whole second", d.TargetAt)
		}
		if o, err := e.store.Drill(ctx, orphan.ID); err != nil || o.State != store.DrillFailed || !strings.Contains(o.Error, "did not finish") {
			t.Errorf("orphaned drill after the next drill = %s (%q), %v; want failed, saying it did not finish", o.State, o.Error, err)
		}
		if latest, err := e.store.LatestDrill(ctx, src.ID, false); err != nil || latest.ID != d.ID {
			t.Errorf("LatestDrill = %d, %v; want the drill that passed, %d", latest.ID, err, d.ID)
		}
		entries, err := e.store.AuditEntries(ctx, 10, 0)
		if err != nil || !slices.ContainsFunc(entries, func(a store.AuditEntry) bool {
			return a.Action == "drill.start" && a.Actor == "olga" && a.Target == src.Name
		}) {
			t.Errorf("audit entries %+v (%v), want drill.start by olga on %s", entries, err, src.Name)
		}
	})

	t.Run("chosen second", func(t *testing.T) {
		// A second with commits replayed before it, whichever second the random drill took.
		at := stamps[40].at.Truncate(time.Second).Add(time.Second)
		job, d, err := drill(t, at)
		if err != nil || job.State != store.JobSucceeded {
			t.Fatalf("drill job = %s, %v; want succeeded", job.State, err)
		}
		if !d.TargetAt.Equal(at) || d.LastCommitAt == nil {
			t.Errorf("drill to %s: target %s, last commit %v; want that target and a last commit", at, d.TargetAt, d.LastCommitAt)
		}
		passed(t, job, d)
	})

	t.Run("refused", func(t *testing.T) {
		_, err := svc.StartDrill(ctx, usecase.Actor{Name: "aud", Role: store.RoleAuditor}, src.ID)
		if !errors.Is(err, usecase.ErrNotPermitted) {
			t.Errorf("StartDrill by an auditor = %v, want not permitted", err)
		}
		_, err = svc.StartDrillAt(ctx, usecase.Actor{Name: "olga", Role: store.RoleOnCall}, src.ID, last.Add(time.Hour))
		var te *jobs.TargetError
		if !errors.As(err, &te) {
			t.Errorf("StartDrillAt(an hour after the latest) = %v, want a *jobs.TargetError", err)
		}
	})

	t.Run("corrupt backup", func(t *testing.T) {
		// Every pack the backup's files use: whatever second the drill picks, its restore
		// reads one of them.
		m, err := e.repo.Manifest(ctx, b.RepoID)
		if err != nil {
			t.Fatal(err)
		}
		packs := map[string]bool{}
		for _, f := range m.Files {
			for _, name := range f.Blocks {
				pack, _, _, err := e.repo.Locate(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if !packs[pack] {
					packs[pack] = true
					flipBlob(t, e.repo, name)
				}
			}
		}
		t.Logf("corrupted %d packs of backup %d", len(packs), b.ID)

		job, d, err := drill(t, time.Time{})
		if err == nil || job.State != store.JobFailed {
			t.Fatalf("drill of a corrupt backup: job %s, %v; want failed", job.State, err)
		}
		t.Logf("drill %d of %s failed: %s", d.ID, d.TargetAt, d.Error)
		if d.State != store.DrillFailed || !strings.Contains(d.Error, "corrupt") || !strings.Contains(d.Error, "backup "+strconv.FormatInt(b.ID, 10)) {
			t.Errorf("drill = %s (%q), want failed, saying backup %d is corrupt", d.State, d.Error, b.ID)
		}
		if d.RTO != 0 {
			t.Errorf("failed drill RTO = %s, want none", d.RTO)
		}
		nothingLeft(t, d, store.RestoreFailed)

		ev := jobs.NewEvaluator(e.store, jobs.NewWindowCache(e.store, e.repo), testLogger(t))
		if _, err := ev.Evaluate(ctx); err != nil {
			t.Fatal(err)
		}
		open, err := e.store.Alerts(ctx, store.AlertFilter{Open: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(open, func(a store.Alert) bool {
			return a.Rule == "drill-failed" && a.SourceID == src.ID && a.Severity == store.SeverityCritical && strings.Contains(a.Explanation, "corrupt")
		}) {
			t.Errorf("open alerts after a failed drill = %+v, want a critical drill-failed alert for %s", open, src.Name)
		}
	})
}
