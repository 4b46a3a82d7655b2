package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindDrill is the kind of restore drill jobs.
const KindDrill = "drill"

// PhaseTearingDown is a drill's last phase: its sandbox instance is stopped and removed.
// Before it, a drill goes through a point-in-time restore's phases, checking included.
const PhaseTearingDown = "tearing down"

// DrillLockKey keeps two drills of one source from running at once.
func DrillLockKey(sourceID int64) string { return fmt.Sprintf("drill:source:%d", sourceID) }

// DrillArgs are a restore drill job's arguments.
type DrillArgs struct {
	SourceID int64 `json:"source_id"`
	// Target is the time to prove, read by ParseTarget; "" picks a random second of the
	// restorable window when the drill runs.
	Target string `json:"target,omitempty"`
}

// DrillResult is what a drill job records as its result: the drill as the catalog holds it.
type DrillResult struct {
	ID       int64  `json:"id"`
	SourceID int64  `json:"source_id"`
	State    string `json:"state"`
	// Target is the second the drill restored to, and proved when it passed.
	Target   time.Time `json:"target"`
	BackupID int64     `json:"backup_id,omitempty"`
	// RTOMillis is the time from the drill's start to a restored instance that passed
	// its checks, in milliseconds; 0 when it failed.
	RTOMillis    int64            `json:"rto_ms,omitempty"`
	LastCommitAt *time.Time       `json:"last_commit_at,omitempty"`
	Tables       map[string]int64 `json:"tables,omitempty"`
	Checks       []string         `json:"checks"`
	Error        string           `json:"error,omitempty"`
	StartedAt    time.Time        `json:"started_at"`
	FinishedAt   *time.Time       `json:"finished_at,omitempty"`
}

// DrillResultOf returns what a drill job records of drill d.
func DrillResultOf(d store.Drill) DrillResult {
	return DrillResult{ID: d.ID, SourceID: d.SourceID, State: d.State, Target: d.TargetAt, BackupID: d.BackupID,
		RTOMillis: d.RTO.Milliseconds(), LastCommitAt: d.LastCommitAt, Tables: d.Tables, Checks: d.Checks, Error: d.Error,
		StartedAt: d.StartedAt, FinishedAt: d.FinishedAt}
}

// Sandboxes chooses where a drill restores: a new directory and a free port on 127.0.0.1
// (never a source's), checked by the same rules as a person's restore. The use cases
// implement it.
type Sandboxes interface {
	Sandbox(ctx context.Context, src store.Source) (dir string, port int, err error)
}

// DrillWorker runs restore drills: a restore of a source to a random second of its window,
// by the same planner and restore code as a person's restore (PITRWorker.Restore), into a
// sandbox instance that is checked (consistency and promotion, pg_amcheck on every
// database, the last commit within the target, row counts of every table), timed (the
// RTO) and torn down, whatever the outcome. Every drill is recorded in the catalog; a
// failed one says which check failed, and the alert evaluator raises it.
type DrillWorker struct {
	store     *store.Store
	pitr      *PITRWorker
	sandboxes Sandboxes
	// Owner is the OS user the sandbox's files belong to and its server runs as: postgres
	// when Backstop runs as root, else "" (the current user).
	Owner string
}

// NewDrillWorker returns a worker that restores with pitr into sandboxes chosen by sandboxes.
func NewDrillWorker(st *store.Store, pitr *PITRWorker, sandboxes Sandboxes) *DrillWorker {
	owner := ""
	if os.Geteuid() == 0 {
		owner = "postgres"
	}
	return &DrillWorker{store: st, pitr: pitr, sandboxes: sandboxes, Owner: owner}
}

// Kind implements Worker.
func (w *DrillWorker) Kind() string { return KindDrill }

// Work implements Worker. A drill that cannot start (no source, nothing restorable, a
// target outside the window) records nothing; once started, the drill is recorded passed
// or failed, and the job fails with the drill.
func (w *DrillWorker) Work(ctx context.Context, job *Job) error {
	var args DrillArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	job.Phase(ctx, PhasePlanning, 0)
	src, err := w.store.Source(ctx, args.SourceID)
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	target, win, err := w.target(ctx, src, args.Target)
	if err != nil {
		return fmt.Errorf("drill of %s: %w", src.Name, err)
	}
	w.settleInterrupted(ctx, job, src.ID)
	started := time.Now()
	d, err := w.store.StartDrill(ctx, src.ID, job.ID, target)
	if err != nil {
		return fmt.Errorf("drill of %s: %w", src.Name, err)
	}
	how := "a random second of the restorable window"
	if args.Target != "" {
		how = "the second asked for"
	}
	job.Logf(ctx, LevelInfo, PhasePlanning, "drill %d of %s: restoring to %s, %s (%s)", d.ID, src.Name, fmtTime(target), how, win)

	w.run(ctx, job, src, &d, started)

	// The drill is recorded however the job ends, cancelled or not.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	d, err = w.store.FinishDrill(endCtx, d)
	if err != nil {
		return fmt.Errorf("drill of %s: %w", src.Name, err)
	}
	if err := job.SetResult(DrillResultOf(d)); err != nil {
		return err
	}
	if d.State != store.DrillPassed {
		return fmt.Errorf("drill %d of %s to %s failed: %s", d.ID, src.Name, fmtTime(d.TargetAt), d.Error)
	}
	job.Logf(endCtx, LevelInfo, PhaseTearingDown, "drill %d passed: %s of %s is restorable, in %s", d.ID, fmtTime(d.TargetAt),
		src.Name, d.RTO.Round(time.Millisecond))
	return nil
}

// settleInterrupted records as failed the drills of a source left running by a job that
// has ended (its process died mid-drill): the sweep of interrupted restores removed their
// sandboxes, and nothing else would finish them.
func (w *DrillWorker) settleInterrupted(ctx context.Context, job *Job, sourceID int64) {
	ds, err := w.store.Drills(ctx, sourceID, 50)
	if err != nil {
		job.Logf(ctx, LevelWarn, PhasePlanning, "earlier drills not read: %v", err)
		return
	}
	for _, d := range ds {
		if d.State != store.DrillRunning || d.JobID == job.ID {
			continue
		}
		j, err := w.store.Job(ctx, d.JobID)
		if err == nil && !j.State.Final() {
			continue // another process runs it still
		}
		why := "its job is gone"
		if err == nil {
			why = fmt.Sprintf("job %d ended %s", d.JobID, j.State)
		}
		d.Error = fmt.Sprintf("the drill did not finish: the process running it stopped (%s)", why)
		if _, err := w.store.FinishDrill(ctx, d); err != nil {
			job.Logf(ctx, LevelWarn, PhasePlanning, "drill %d left running: %v", d.ID, err)
			continue
		}
		job.Logf(ctx, LevelWarn, PhasePlanning, "drill %d was left running (%s): recorded as failed", d.ID, why)
	}
}

// target returns the time a drill of src restores to: text, read by ParseTarget, or a
// random second of the window; it must be inside the window, with a plan that reaches it.
func (w *DrillWorker) target(ctx context.Context, src store.Source, text string) (time.Time, Window, error) {
	in, err := LoadWindowInput(ctx, w.store, w.pitr.repo, src)
	if err != nil {
		return time.Time{}, Window{}, err
	}
	win := ComputeWindow(in)
	if len(win.Ranges) == 0 {
		return time.Time{}, win, fmt.Errorf("%s has no restorable window yet: nothing to drill until a full backup completes and its WAL is archived", src.Name)
	}
	var at time.Time
	if text == "" {
		at = RandomTarget(win, rand.Int64N)
	} else {
		t, err := ParseTarget(text)
		if err != nil {
			return time.Time{}, win, err
		}
		if t.Kind != TargetTime {
			return time.Time{}, win, fmt.Errorf("a drill restores to a time, not to %s", t)
		}
		at = t.Time
	}
	if _, err := PlanRestore(in, Target{Kind: TargetTime, Time: at, Inclusive: true}, 0); err != nil {
		return time.Time{}, win, err
	}
	return at.UTC(), win, nil
}

// RandomTarget picks a uniformly random whole second inside w's ranges (so each range
// weighs by its length), with intn returning a uniform number in [0, n) (rand.Int64N). A
// window too short to hold a whole second gives a random microsecond of it instead. w must
// have a range.
func RandomTarget(w Window, intn func(n int64) int64) time.Time {
	var total int64
	seconds := make([]int64, len(w.Ranges))
	for i, r := range w.Ranges {
		first, last := ceilSecond(r.From), r.To.Truncate(time.Second)
		if !last.Before(first) {
			seconds[i] = int64(last.Sub(first)/time.Second) + 1
			total += seconds[i]
		}
	}
	if total > 0 {
		k := intn(total)
		for i, r := range w.Ranges {
			if k < seconds[i] {
				return ceilSecond(r.From).Add(time.Duration(k) * time.Second).UTC()
			}
			k -= seconds[i]
		}
	}
	micros := make([]int64, len(w.Ranges))
	for i, r := range w.Ranges {
		micros[i] = int64(r.To.Truncate(time.Microsecond).Sub(ceilMicro(r.From))/time.Microsecond) + 1
		total += max(micros[i], 0)
	}
	k := intn(max(total, 1))
	for i, r := range w.Ranges {
		if k < micros[i] {
			return ceilMicro(r.From).Add(time.Duration(k) * time.Microsecond).UTC()
		}
		k -= max(micros[i], 0)
	}
	return w.Ranges[len(w.Ranges)-1].To.UTC()
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); s.Before(t) {
		return s.Add(time.Second)
	}
	return t
}

// ceilMicro rounds t up to a whole microsecond.
func ceilMicro(t time.Time) time.Time {
	if s := t.Truncate(time.Microsecond); s.Before(t) {
		return s.Add(time.Microsecond)
	}
	return t
}

// run restores, checks and tears down, recording in d what was checked and what failed.
func (w *DrillWorker) run(ctx context.Context, job *Job, src store.Source, d *store.Drill, started time.Time) {
	dir, port, err := w.sandboxes.Sandbox(ctx, src)
	if err != nil {
		d.Error = "no sandbox to restore into: " + err.Error()
		return
	}
	args := PITRArgs{SourceID: src.ID, Target: d.TargetAt.UTC().Format(time.RFC3339Nano), Into: dir, Port: port,
		Owner: w.Owner, Marker: dest.NewToken()}
	res, err := w.pitr.Restore(ctx, job, args)
	d.BackupID = res.BackupID
	var sockets string
	switch {
	case err != nil:
		d.Error = w.restoreFailure(ctx, d, res, err)
	default:
		sockets = socketDirOf(dir)
		w.check(ctx, job, d, res, started)
	}

	// Whatever happened, the sandbox goes: only what this drill created, by its marker.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	job.Phase(endCtx, PhaseTearingDown, 0)
	if err := w.tearDown(endCtx, res.RestoreID, dir, port, sockets); err != nil {
		job.Logf(endCtx, LevelError, PhaseTearingDown, "%v", err)
		msg := "tearing down the sandbox failed: " + err.Error()
		if d.Error == "" {
			msg = "the restore passed its checks, but " + msg
		}
		d.Error = joinProblems(d.Error, msg)
		return
	}
	what := fmt.Sprintf("the sandbox was torn down: %s removed, port %d free again", dir, port)
	d.Checks = append(d.Checks, what)
	job.Logf(endCtx, LevelInfo, PhaseTearingDown, "%s", what)
}

// restoreFailure says in words why the drill's restore failed.
func (w *DrillWorker) restoreFailure(ctx context.Context, d *store.Drill, res PITRResult, err error) string {
	if ctx.Err() != nil {
		return fmt.Sprintf("the drill was stopped before it finished (%v): nothing was proven", context.Cause(ctx))
	}
	what := "the restore"
	if res.BackupID != 0 {
		what = fmt.Sprintf("the restore from backup %d", res.BackupID)
	}
	var ce *repository.CorruptError
	if errors.As(err, &ce) {
		return fmt.Sprintf("%s to %s failed: the backup's stored data is corrupt: %v", what, fmtTime(d.TargetAt), err)
	}
	if errors.Is(err, repository.ErrNotFound) {
		return fmt.Sprintf("%s to %s failed: data the backup needs is missing from the repository: %v", what, fmtTime(d.TargetAt), err)
	}
	return fmt.Sprintf("%s to %s failed: %v", what, fmtTime(d.TargetAt), err)
}

// check checks a restored, promoted sandbox instance, recording each check in d, and
// the RTO when all of them passed.
func (w *DrillWorker) check(ctx context.Context, job *Job, d *store.Drill, res PITRResult, started time.Time) {
	job.Phase(ctx, PhaseChecking, 0)
	note := func(format string, args ...any) {
		c := fmt.Sprintf(format, args...)
		d.Checks = append(d.Checks, c)
		job.Logf(ctx, LevelInfo, PhaseChecking, "%s", c)
	}
	var problems []string
	fail := func(format string, args ...any) {
		p := fmt.Sprintf(format, args...)
		problems = append(problems, p)
		job.Logf(ctx, LevelError, PhaseChecking, "%s", p)
	}
	note("restored backup %d to %s into a sandbox instance on 127.0.0.1:%d", res.BackupID, fmtTime(d.TargetAt), res.Port)
	d.Checks = append(d.Checks, res.Checked...)

	// PITR's checks said so already, in words; the drill records the time itself.
	if !res.LastCommitAt.IsZero() {
		last := res.LastCommitAt.UTC()
		d.LastCommitAt = &last
		if last.After(d.TargetAt) {
			fail("the last transaction replayed committed at %s, after the target %s", fmtTime(last), fmtTime(d.TargetAt))
		}
	}

	dbs, err := databases(ctx, res.DSN)
	if err != nil {
		fail("the restored instance could not be queried: %v", err)
		d.Error = joinProblems(problems...)
		return
	}
	if err := w.amcheck(ctx, res); err != nil {
		fail("%v", err)
	} else {
		note("pg_amcheck --all found no corruption in the tables and B-tree indexes of %s (%s)", plural(len(dbs), "database"), strings.Join(dbs, ", "))
	}

	tables, err := countRows(ctx, res.DSN, dbs)
	d.Tables = tables
	if err != nil {
		fail("counting rows failed: %v", err)
	} else {
		var rows int64
		for _, n := range tables {
			rows += n
		}
		note("counted the rows of every table: %s in %s, %d rows", plural(len(tables), "table"), plural(len(dbs), "database"), rows)
	}

	if len(problems) > 0 {
		d.Error = joinProblems(problems...)
		return
	}
	d.RTO = time.Since(started)
	note("restored and checked in %s from the drill's start (RTO)", d.RTO.Round(time.Millisecond))
}

// joinProblems joins what failed into one message.
func joinProblems(ps ...string) string {
	var out []string
	for _, p := range ps {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// amcheck runs pg_amcheck --all on the restored instance, with the binaries of its
// PostgreSQL major version, as the server's OS user. It installs the amcheck extension
// where missing: the sandbox is thrown away.
func (w *DrillWorker) amcheck(ctx context.Context, res PITRResult) error {
	b, err := w.store.Backup(ctx, res.BackupID)
	if err != nil {
		return fmt.Errorf("pg_amcheck: %w", err)
	}
	bin, err := pg.FindBinaries(ctx, b.PGVersion/10000)
	if err != nil {
		return fmt.Errorf("pg_amcheck: %w", err)
	}
	path := bin.Path("pg_amcheck")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("pg_amcheck is not installed in %s: %w", bin.Dir, err)
	}
	cmd, err := serverCommand(ctx, path, "--all", "--install-missing", "--no-password",
		"--host", "127.0.0.1", "--port", strconv.Itoa(res.Port), "--username", "postgres")
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) > 10 {
			lines = append(lines[:10], fmt.Sprintf("… and %d more lines", len(lines)-10))
		}
		return fmt.Errorf("pg_amcheck --all reported problems (%v): %s", err, strings.Join(lines, " / "))
	}
	return nil
}

// serverCommand runs a PostgreSQL client program as the OS user that runs the server:
// postgres when Backstop runs as root.
func serverCommand(ctx context.Context, bin string, args ...string) (*exec.Cmd, error) {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root needs runuser to run %s as postgres: %w", filepath.Base(bin), err)
		}
		cmd = exec.CommandContext(ctx, runuser, append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "PGCONNECT_TIMEOUT=30")
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// databases lists the databases of the instance at dsn that accept connections.
func databases(ctx context.Context, dsn string) ([]string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// countRows counts the rows of every user table of every database in dbs, by
// "database.schema.table".
func countRows(ctx context.Context, dsn string, dbs []string) (map[string]int64, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, db := range dbs {
		if err := countDatabase(ctx, cfg.Copy(), db, out); err != nil {
			return out, fmt.Errorf("database %s: %w", db, err)
		}
	}
	return out, nil
}

func countDatabase(ctx context.Context, cfg *pgx.ConnConfig, db string, out map[string]int64) error {
	cfg.Database = db
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' ORDER BY 1, 2`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		err := r.Scan(&t[0], &t[1])
		return t, err
	})
	if err != nil {
		return err
	}
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t[0], t[1]}.Sanitize()).Scan(&n); err != nil {
			return fmt.Errorf("count %s.%s: %w", t[0], t[1], err)
		}
		out[db+"."+t[0]+"."+t[1]] = n
	}
	return nil
}

// socketDirOf reads the Unix socket directory of the server running on dataDir from its
// postmaster.pid (the fifth line), or "".
func socketDirOf(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return ""
	}
	return strings.TrimSpace(lines[4])
}

// tearDown stops the drill's instance and removes its directory, through the restored
// instances' own code: only a directory carrying the drill's marker. It then makes sure
// the directory is gone and the port free.
func (w *DrillWorker) tearDown(ctx context.Context, restoreID int64, dir string, port int, sockets string) error {
	if restoreID != 0 {
		x, err := w.store.Restore(ctx, restoreID)
		if err != nil {
			return err
		}
		note, err := deleteInstance(ctx, x)
		if err != nil {
			return err
		}
		if note != "" {
			return errors.New(note)
		}
		if x.State != store.RestoreFailed {
			if _, err := w.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreDeleted}); err != nil {
				return err
			}
		}
	}
	// The server's socket directory, made for this instance below the socket root: only
	// when empty (os.Remove removes nothing else).
	if sockets != "" && filepath.Dir(sockets) == filepath.Clean(w.pitr.SocketRoot) && strings.HasPrefix(filepath.Base(sockets), "backstop-pg-") {
		os.Remove(sockets)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is still there after the teardown (%v)", dir, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !dest.PortFree(port); {
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d is still in use after the teardown", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
