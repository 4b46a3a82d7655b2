package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindPITR is the kind of point-in-time restore jobs.
const KindPITR = "pitr"

// The phases of a point-in-time restore, in order.
const (
	PhasePlanning      = "planning"
	PhaseMaterializing = "materializing"
	PhaseConfiguring   = "configuring"
	PhaseStarting      = "starting"
	PhaseReplaying     = "replaying"
	PhaseChecking      = "checking"
)

// PITRArgs are a point-in-time restore job's arguments.
type PITRArgs struct {
	SourceID int64 `json:"source_id"`
	// Target is read by ParseTarget: "latest", "immediate", a time, "lsn:…", "name:…".
	Target string `json:"target"`
	// Exclusive stops just before a time or LSN target rather than just after it.
	Exclusive bool `json:"exclusive,omitempty"`
	// Into is the new data directory; it must be missing or empty.
	Into string `json:"into"`
	// Port starts the restored instance on 127.0.0.1:Port; 0 writes the directory only.
	Port int `json:"port"`
	// Owner is the OS user the files belong to and the server runs as ("" keeps the
	// current user; "postgres" when Backstop runs as root).
	Owner string `json:"owner,omitempty"`
	// Marker is the token written into the directory the job claims (dest.ClaimDir) and
	// recorded with the restore: Delete and cleanup remove only a directory carrying it.
	Marker string `json:"marker"`
}

// PITRResult is what a point-in-time restore job records as its result.
type PITRResult struct {
	RestoreID int64  `json:"restore_id"`
	Into      string `json:"into"`
	Port      int    `json:"port,omitempty"`
	DSN       string `json:"dsn,omitempty"`
	BackupID  int64  `json:"backup_id"`
	Target    string `json:"target"`
	// StopLine is where the server said replay stopped.
	StopLine string `json:"stop_line,omitempty"`
	// LastCommitAt is the commit time of the last transaction replayed.
	LastCommitAt time.Time `json:"last_commit_at,omitzero"`
	// Checked lists what was verified on the restored instance.
	Checked []string `json:"checked"`
}

// PITRWorker restores a source to a point in time: the base backup the plan chose is
// written out, recovery settings point restore_command at a WAL server that this job runs
// for the recovering instance, the instance replays to the target and is promoted, and
// the result is checked before it is reported.
type PITRWorker struct {
	store *store.Store
	repo  *repository.Repo
	// Backstop is the executable restore_command runs (`backstop wal-fetch`).
	Backstop string
	// SocketRoot holds the WAL servers' socket directories: short paths, as a Unix
	// socket's path is at most 107 bytes.
	SocketRoot string
	// Parallel is how many blocks are read and written at once.
	Parallel int
}

// NewPITRWorker returns a worker that restores from repo; backstop is the path of the
// backstop executable, which must be executable by the server's OS user.
func NewPITRWorker(st *store.Store, repo *repository.Repo, backstop string) *PITRWorker {
	return &PITRWorker{store: st, repo: repo, Backstop: backstop, SocketRoot: os.TempDir(), Parallel: 4}
}

// Kind implements Worker.
func (w *PITRWorker) Kind() string { return KindPITR }

// Work implements Worker.
func (w *PITRWorker) Work(ctx context.Context, job *Job) error {
	var args PITRArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	res, err := w.Restore(ctx, job, args)
	if err != nil {
		return err
	}
	return job.SetResult(res)
}

// Restore runs the point-in-time restore args describes as part of job, reporting its
// phases there: a restore drill restores with exactly the code of a person's restore. On
// failure it has removed what it created, and the result holds what was known by then
// (the backup chosen, the restore's ID).
func (w *PITRWorker) Restore(ctx context.Context, job *Job, args PITRArgs) (PITRResult, error) {
	res := PITRResult{Into: args.Into, Port: args.Port}
	err := w.restore(ctx, job, args, &res)
	return res, err
}

func (w *PITRWorker) restore(ctx context.Context, job *Job, args PITRArgs, res *PITRResult) (err error) {
	if args.Marker == "" {
		args.Marker = dest.NewToken()
	}
	var cluster *pg.Cluster
	var restoreID int64
	var claim *dest.Claim
	defer func() {
		if err == nil {
			return
		}
		// A failed restore leaves nothing that could be taken for a good one, and removes
		// only what it created: a directory carrying its marker.
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cluster != nil {
			cluster.Stop(endCtx, "immediate")
		}
		if claim != nil {
			if rerr := dest.Remove(args.Into, args.Marker, claim.Created()); rerr != nil {
				job.Logf(endCtx, LevelWarn, "", "left %s in place: %v", args.Into, rerr)
			}
		}
		if restoreID != 0 {
			w.store.UpdateRestore(endCtx, restoreID, store.RestoreUpdate{State: store.RestoreFailed, Error: err.Error()})
		}
	}()

	job.Phase(ctx, PhasePlanning, 0)
	src, err := w.store.Source(ctx, args.SourceID)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	target, err := ParseTarget(args.Target)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if args.Exclusive {
		target.Inclusive = false
	}
	in, err := LoadWindowInput(ctx, w.store, w.repo, src)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	plan, err := PlanRestore(in, target, 0)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	res.BackupID, res.Target = plan.Backup.ID, plan.Target.Text()
	job.Logf(ctx, LevelInfo, PhasePlanning, "base backup %d (consistent at %s), WAL %s to %s (%d files, %s), timeline %d",
		plan.Backup.ID, plan.Backup.EndLSN, plan.WALFrom, plan.WALTo, len(plan.WAL), humanize.IBytes(uint64(plan.WALBytes)), plan.Timeline)
	b, err := w.store.Backup(ctx, plan.Backup.ID)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	x, err := w.store.CreateRestore(ctx, store.RestoreParams{SourceID: src.ID, JobID: job.ID, BackupID: b.ID,
		Target: plan.Target.Text(), DataDir: args.Into, Port: args.Port, PGMajor: b.PGVersion / 10000, Marker: args.Marker})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	restoreID, res.RestoreID = x.ID, x.ID

	m, err := w.repo.Manifest(ctx, b.RepoID)
	if err != nil {
		return fmt.Errorf("restore: backup %d: %w", b.ID, err)
	}
	uid, gid, err := lookupOwner(args.Owner)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if claim, err = claimFor(args.Into, args.Marker, fmt.Sprintf("restore %d (job %d)", x.ID, job.ID), m, uid, gid); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if claim.Created() {
		if _, err := w.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{CreatedDir: true}); err != nil {
			return err
		}
	}
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	job.Phase(ctx, PhaseMaterializing, total)
	err = RestoreFiles(ctx, w.repo, m, args.Into, RestoreOptions{Parallel: w.Parallel, UID: uid, GID: gid,
		Progress: func(done int64) { job.Progress(ctx, done, total) }})
	if err != nil {
		return err
	}
	job.Logf(ctx, LevelInfo, PhaseMaterializing, "wrote backup %d: %d files, %s", b.ID, len(m.Files), humanize.IBytes(uint64(total)))

	job.Phase(ctx, PhaseConfiguring, 0)
	bin, err := pg.FindBinaries(ctx, m.PGVersion/10000)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	settings := map[string]string{}
	for k, v := range plan.Recovery {
		settings[k] = v
	}
	if args.Port == 0 {
		// A directory only: the planned WAL goes into pg_wal, where recovery finds it
		// once restore_command reports nothing archived.
		if err := stageWAL(ctx, w.repo, src.SystemIdentifier, plan, args.Into, uid, gid); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		settings["restore_command"] = "false"
		if err := pg.WriteRecoveryConfig(args.Into, 0, settings); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if err := handOver(args.Into, uid, gid); err != nil {
			return err
		}
		if _, err := w.store.UpdateRestore(ctx, restoreID, store.RestoreUpdate{State: store.RestoreReady}); err != nil {
			return err
		}
		res.Checked = []string{fmt.Sprintf("%d WAL files written into pg_wal; start the server to replay them to %s", len(plan.ServeNames()), plan.Target)}
		job.Logf(ctx, LevelInfo, PhaseConfiguring, "%s", res.Checked[0])
		return nil
	}
	socketDir, err := os.MkdirTemp(w.SocketRoot, "backstop-wal-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	os.Remove(socketDir) // the WAL server makes it anew, owned by the server's user
	socket := filepath.Join(socketDir, "wal.sock")
	settings["restore_command"] = RestoreCommand(w.Backstop, socket)
	if err := pg.WriteRecoveryConfig(args.Into, args.Port, settings); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for k, v := range settings {
		job.Logf(ctx, LevelInfo, PhaseConfiguring, "%s = %s", k, v)
	}

	job.Phase(ctx, PhaseStarting, 0)
	// Exactly the planned files, and nothing archived since: replay to the end must end there.
	srv := NewWALServer(w.repo, src.SystemIdentifier, WALSources(plan.ServeNames(), plan.SegmentSize))
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(srvCtx, socket, uid, gid) }()
	select {
	case <-srv.Ready():
	case err := <-served:
		return fmt.Errorf("restore: WAL server: %w", err)
	}
	logFile := filepath.Join(args.Into, "log", "backstop-restore.log")
	// The server's own Unix socket also needs a short path; it outlives this job.
	pgSockets, err := os.MkdirTemp(w.SocketRoot, "backstop-pg-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	os.Remove(pgSockets) // StartDataDir makes it, owned by the server's user
	cluster, err = pg.StartDataDir(ctx, pg.ServerOptions{Bin: bin, DataDir: args.Into, Port: args.Port, LogFile: logFile, SocketDir: pgSockets})
	if err != nil {
		if lerr := pg.RecoveryLogError(logFile); lerr != nil {
			return fmt.Errorf("restore: %w", lerr)
		}
		return fmt.Errorf("restore: %w; the server's log ends:\n%s", err, logTail(logFile, 8))
	}
	res.DSN = cluster.DSN("postgres")

	job.Phase(ctx, PhaseReplaying, int64(plan.WALTo-plan.WALFrom))
	last, err := pg.WaitRecovery(ctx, cluster, func(p pg.RecoveryProgress) {
		if p.ReplayLSN > plan.WALFrom {
			job.Progress(ctx, int64(p.ReplayLSN-plan.WALFrom), int64(plan.WALTo-plan.WALFrom))
		}
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if st := srv.Stats(); st.Failed > 0 {
		return fmt.Errorf("restore: the WAL server failed %d requests (last: %s)", st.Failed, st.LastError)
	}

	job.Phase(ctx, PhaseChecking, 0)
	res.StopLine, _ = pg.ReplayStopLine(logFile)
	res.LastCommitAt = last.ReplayedAt
	checked, err := checkRestored(plan, last)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	res.Checked = checked
	for _, c := range checked {
		job.Logf(ctx, LevelInfo, PhaseChecking, "%s", c)
	}
	if _, err := w.store.UpdateRestore(ctx, restoreID, store.RestoreUpdate{State: store.RestoreRunning,
		StopLine: res.StopLine, LastCommitAt: res.LastCommitAt}); err != nil {
		return err
	}
	return nil
}

// logTail returns the last n lines of a log file, or a note that it cannot be read.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stageWAL writes the plan's WAL files into dir/pg_wal under the names recovery asks for,
// each verified as it is read; a partial piece is padded with zeros to a whole segment.
func stageWAL(ctx context.Context, repo *repository.Repo, systemID string, plan Plan, dir string, uid, gid int) error {
	for name, src := range WALSources(plan.ServeNames(), plan.SegmentSize) {
		path := filepath.Join(dir, "pg_wal", name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		err = repo.ReadWAL(ctx, systemID, src.File, f)
		if err == nil && src.SegmentSize > 0 {
			err = f.Truncate(src.SegmentSize) // zeros after the piece
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = chown(path, uid, gid)
		}
		if err != nil {
			return fmt.Errorf("stage WAL %s: %w", name, err)
		}
	}
	return syncTree(filepath.Join(dir, "pg_wal"))
}

// checkRestored verifies a promoted instance against its plan: out of recovery, and the
// last transaction replayed is within the target.
func checkRestored(plan Plan, last pg.RecoveryProgress) ([]string, error) {
	checked := []string{"the instance left recovery and accepts connections"}
	switch plan.Target.Kind {
	case TargetTime:
		if !last.ReplayedAt.IsZero() && last.ReplayedAt.After(plan.Target.Time) {
			return nil, fmt.Errorf("the last transaction replayed committed at %s, after the target %s",
				last.ReplayedAt.UTC().Format(time.RFC3339Nano), plan.Target.Time.UTC().Format(time.RFC3339Nano))
		}
		if last.ReplayedAt.IsZero() {
			checked = append(checked, "no transaction was replayed: none committed between the base backup's start and the target")
			break
		}
		checked = append(checked, fmt.Sprintf("the last transaction replayed committed at %s, at or before the target",
			last.ReplayedAt.UTC().Format("2006-01-02 15:04:05.000000 UTC")))
	case TargetLSN:
		if last.ReplayLSN < plan.Target.LSN {
			return nil, fmt.Errorf("replay ended at %s, before the target %s", last.ReplayLSN, plan.Target.LSN)
		}
	}
	if last.ReplayLSN < plan.Backup.EndLSN {
		return nil, fmt.Errorf("replay ended at %s, before the base backup's consistency point %s", last.ReplayLSN, plan.Backup.EndLSN)
	}
	checked = append(checked, fmt.Sprintf("WAL replayed to %s, past the base backup's consistency point %s", last.ReplayLSN, plan.Backup.EndLSN))
	return checked, nil
}
