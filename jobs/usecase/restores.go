package usecase

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/store"
)

// RestoreThroughput is the planning estimate of restore speed, bytes a second: measured
// restores on the development machine run at several hundred MB/s; this is conservative.
const RestoreThroughput = 200e6

// Window returns what a source can be restored to, with the input it was computed from
// (as the cache keeps it: while serve runs, the last window computed, or
// jobs.ErrWindowUnknown before the first; callers must not change it).
func (s *Service) Window(ctx context.Context, a Actor, src store.Source) (jobs.WindowInput, jobs.Window, error) {
	if err := Authorize(a, View); err != nil {
		return jobs.WindowInput{}, jobs.Window{}, err
	}
	w, in, err := s.windows.Window(ctx, src)
	if err != nil {
		return jobs.WindowInput{}, jobs.Window{}, err
	}
	return in, w, nil
}

// RestorableWindow is Window for pages whose reader was already authorized to view (the
// dashboard's read paths pass the same policy's View check first).
func (s *Service) RestorableWindow(ctx context.Context, src store.Source) (jobs.Window, error) {
	w, _, err := s.windows.Window(ctx, src)
	return w, err
}

// Plan returns the restore plan for a target, or a *jobs.TargetError saying why it cannot
// be reached and what can.
func (s *Service) Plan(ctx context.Context, a Actor, src store.Source, target jobs.Target) (jobs.Plan, error) {
	if err := Authorize(a, View); err != nil {
		return jobs.Plan{}, err
	}
	_, in, err := s.windows.Current(ctx, src)
	if err != nil {
		return jobs.Plan{}, err
	}
	// The restore job plans again from the repository itself before it writes anything.
	return jobs.PlanRestore(in, target, RestoreThroughput)
}

// RestoreRequest is a point-in-time restore as a person asks for it.
type RestoreRequest struct {
	SourceID int64
	// Target is read by jobs.ParseTarget: "latest", a time, "lsn:…", "name:…".
	Target string
	// Exclusive stops just before a time or LSN target rather than just after it.
	Exclusive bool
	// Confirm, when not nil, must be the source's name: the dashboard's typed confirmation.
	Confirm *string
	// Into is the new data directory; "" lets Backstop choose one below its restore root
	// (for a new instance).
	Into string
	// Port starts the restored instance on 127.0.0.1:Port; 0 writes the directory only.
	Port int
	// Owner is the OS user the files belong to and the server runs as.
	Owner string
}

// InputError collects what is wrong with a request, by form field ("confirm", "target",
// "dir", "port", "window", …), so that a form can show each next to its field.
type InputError struct {
	Fields map[string]string
}

func (e *InputError) Error() string {
	fields := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = e.Fields[f]
	}
	return strings.Join(parts, " ")
}

// StartRestore checks a point-in-time restore completely (the confirmation, the target and
// its plan, the directory, the port) and only then starts it. A refused restore has
// recorded and written nothing: the error is a *ForbiddenError, an *InputError or a
// *jobs.TargetError.
func (s *Service) StartRestore(ctx context.Context, a Actor, req RestoreRequest) (store.Job, jobs.Plan, error) {
	if err := Authorize(a, StartRestore); err != nil {
		return store.Job{}, jobs.Plan{}, err
	}
	src, err := s.store.Source(ctx, req.SourceID)
	if err != nil {
		return store.Job{}, jobs.Plan{}, err
	}
	if err := s.authorizeRestore(ctx, a, StartRestore, src); err != nil {
		return store.Job{}, jobs.Plan{}, err
	}
	fields := map[string]string{}
	if req.Confirm != nil && strings.TrimSpace(*req.Confirm) != src.Name {
		fields["confirm"] = fmt.Sprintf("Type %s to confirm.", src.Name)
	}
	var plan jobs.Plan
	target, err := jobs.ParseTarget(req.Target)
	if err != nil {
		fields["target"] = Sentence(err.Error())
	} else {
		if req.Exclusive {
			target.Inclusive = false
		}
		if plan, err = s.Plan(ctx, a, src, target); err != nil {
			return store.Job{}, jobs.Plan{}, err
		}
	}
	if req.Into == "" && req.Port != 0 {
		req.Into = filepath.Join(s.paths.RestoreRoot, fmt.Sprintf("%s-%s", src.Name, s.now().UTC().Format("20060102T150405Z")))
	}
	into, err := s.CheckDestination(ctx, req.Into, req.Port)
	var ie *InputError
	if errors.As(err, &ie) {
		maps.Copy(fields, ie.Fields)
	} else if err != nil {
		return store.Job{}, jobs.Plan{}, err
	}
	if len(fields) > 0 {
		return store.Job{}, plan, &InputError{Fields: fields}
	}
	args := jobs.PITRArgs{SourceID: src.ID, Target: target.Text(), Exclusive: !target.Inclusive, Into: into,
		Port: req.Port, Owner: req.Owner, Marker: dest.NewToken()}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindPITR, SourceID: src.ID, LockKey: jobs.RestoreLockKey(into),
		Args: args, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "restore.start", src.Name, map[string]any{"job_id": job.ID, "target": args.Target, "into": into,
			"port": req.Port, "backup_id": plan.Backup.ID})
	}
	return job, plan, err
}

// RestoreBackup writes one complete backup out as it is, into a new or empty directory,
// after the same destination checks as a point-in-time restore.
func (s *Service) RestoreBackup(ctx context.Context, a Actor, backupID int64, into, owner string, verify bool) (store.Job, error) {
	if err := Authorize(a, StartRestore); err != nil {
		return store.Job{}, err
	}
	b, err := s.store.Backup(ctx, backupID)
	if err != nil {
		return store.Job{}, err
	}
	src, err := s.store.Source(ctx, b.SourceID)
	if err != nil {
		return store.Job{}, err
	}
	if err := s.authorizeRestore(ctx, a, StartRestore, src); err != nil {
		return store.Job{}, err
	}
	if b.State != store.BackupComplete {
		return store.Job{}, conflict("backup %d is %s, not complete: only complete backups can be restored", b.ID, b.State)
	}
	dir, err := s.CheckDestination(ctx, into, 0)
	if err != nil {
		return store.Job{}, err
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindRestore, LockKey: jobs.RestoreLockKey(dir),
		Args: jobs.RestoreArgs{BackupID: b.ID, Into: dir, Owner: owner, Verify: verify, Marker: dest.NewToken()}, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "restore.start", fmt.Sprintf("backup %d", b.ID), map[string]any{"job_id": job.ID, "into": dir})
	}
	return job, err
}

// CheckDestination applies every rule on where a restore may write (dest.CheckDir against
// this installation's protected places and every live cluster on the host) and, for an
// instance, on its port. It returns the cleaned absolute directory, or an *InputError.
// It writes nothing.
func (s *Service) CheckDestination(ctx context.Context, into string, port int) (string, error) {
	fields := map[string]string{}
	into = strings.TrimSpace(into)
	var dir string
	if into == "" || !filepath.IsAbs(into) {
		fields["dir"] = "Enter an absolute path for the new data directory."
	} else {
		dir = filepath.Clean(into)
		protected, err := s.protected(ctx)
		if err != nil {
			return "", err
		}
		var de *dest.Error
		if err := dest.CheckDir(dir, protected); errors.As(err, &de) {
			fields["dir"] = Sentence(de.Message)
		} else if err != nil {
			return "", err
		} else if s.inHome(dir) {
			fields["dir"] = fmt.Sprintf("%s is inside Backstop's home %s: choose a directory elsewhere, or leave it to Backstop.", dir, s.paths.Home)
		}
	}
	if port != 0 {
		inUse, err := s.portsInUse(ctx)
		if err != nil {
			return "", err
		}
		var de *dest.Error
		if err := dest.CheckPort(port, inUse); errors.As(err, &de) {
			fields["port"] = Sentence(de.Message)
		} else if err != nil {
			return "", err
		}
	}
	if len(fields) > 0 {
		return "", &InputError{Fields: fields}
	}
	return dir, nil
}

// inHome reports whether dir, or where its links lead, is Backstop's home or inside it,
// other than below the restore root where new instances go.
func (s *Service) inHome(dir string) bool {
	if s.paths.Home == "" {
		return false
	}
	inside := func(d, home, root string) bool {
		return (d == home || strings.HasPrefix(d, home+"/")) && !strings.HasPrefix(d, root+"/")
	}
	home, root := s.paths.Home, s.paths.RestoreRoot
	realHome, err1 := dest.Resolve(home)
	realRoot, err2 := dest.Resolve(root)
	real, err3 := dest.Resolve(dir)
	if err1 != nil || err2 != nil || err3 != nil {
		return inside(dir, home, root)
	}
	return inside(dir, home, root) || inside(real, realHome, realRoot)
}

// SuggestPort offers a free port for a new instance.
func (s *Service) SuggestPort(ctx context.Context) int {
	inUse, _ := s.portsInUse(ctx)
	return dest.SuggestPort(inUse)
}

// protected lists the places no restore may write into or above: Backstop's own, the data
// directories of other restores, and every PostgreSQL server running on this host with
// its tablespaces.
func (s *Service) protected(ctx context.Context) ([]dest.Protected, error) {
	var out []dest.Protected
	add := func(path, what string) {
		if path != "" {
			out = append(out, dest.Protected{Path: path, What: what})
		}
	}
	add(s.paths.Repository, "Backstop's repository")
	add(s.paths.Spool, "Backstop's WAL spool")
	// The home is protected except for the restore root below it, where new instances go.
	if s.paths.Home != "" {
		out = append(out, dest.Protected{Path: filepath.Join(s.paths.Home, "catalog.db"), What: "Backstop's catalog"})
		add(filepath.Join(s.paths.Home, "repository.key"), "Backstop's repository key")
	}
	xs, err := s.store.Restores(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		if x.State == store.RestoreFailed || x.State == store.RestoreInterrupted {
			continue
		}
		add(x.DataDir, fmt.Sprintf("the data directory of restored instance %d", x.ID))
	}
	// A source on this host is protected even while it is stopped, where the server told
	// us its directories.
	srcs, err := s.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	for _, src := range srcs {
		if localPort(src.DSN) == 0 {
			continue
		}
		for _, d := range src.Dirs {
			add(d, fmt.Sprintf("where source %s keeps its files (its data directory or a tablespace)", src.Name))
		}
	}
	return append(out, dest.LiveClusters()...), nil
}

// portsInUse names the ports a new instance may not take: those of restored instances
// (running or stopped: a stopped one keeps its port) and of sources on this host.
func (s *Service) portsInUse(ctx context.Context) (map[int]string, error) {
	inUse := map[int]string{}
	xs, err := s.store.Restores(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		if x.Port != 0 && (x.State == store.RestoreRunning || x.State == store.RestoreStopped || x.State == store.RestoreRestoring) {
			inUse[x.Port] = fmt.Sprintf("restored instance %d", x.ID)
		}
	}
	srcs, err := s.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	for _, src := range srcs {
		if p := localPort(src.DSN); p != 0 {
			inUse[p] = "source " + src.Name
		}
	}
	return inUse, nil
}

// localPort is the port of a connection string that points at this host, else 0.
func localPort(dsn string) int {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return 0
	}
	h := cfg.Host
	if strings.HasPrefix(h, "/") || h == "localhost" || net.ParseIP(h).IsLoopback() {
		return int(cfg.Port)
	}
	return 0
}

// ChangeInstance stops, starts or deletes a restored instance, as a job. The instance's
// state is read from the server when the job runs; a restore still in progress is refused.
func (s *Service) ChangeInstance(ctx context.Context, a Actor, restoreID int64, action string) (store.Job, error) {
	if err := Authorize(a, ManageInstance); err != nil {
		return store.Job{}, err
	}
	x, err := s.store.Restore(ctx, restoreID)
	if err != nil {
		return store.Job{}, err
	}
	src, err := s.store.Source(ctx, x.SourceID)
	if err != nil {
		return store.Job{}, err
	}
	if err := s.authorizeRestore(ctx, a, ManageInstance, src); err != nil {
		return store.Job{}, err
	}
	switch action {
	case jobs.InstanceStop, jobs.InstanceStart, jobs.InstanceDelete:
	default:
		return store.Job{}, fmt.Errorf("unknown action %q on a restored instance", action)
	}
	switch {
	case x.State == store.RestoreRestoring:
		return store.Job{}, conflict("restored instance %d is still being restored: cancel its job %d first", x.ID, x.JobID)
	case x.State == store.RestoreDeleted:
		return store.Job{}, conflict("restored instance %d was deleted", x.ID)
	case action != jobs.InstanceDelete && x.Port == 0:
		return store.Job{}, conflict("restored instance %d is a directory only: start it by hand with pg_ctl", x.ID)
	case action == jobs.InstanceStart && (x.State == store.RestoreFailed || x.State == store.RestoreInterrupted):
		return store.Job{}, conflict("restored instance %d did not complete (%s): it cannot be started", x.ID, x.State)
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindInstance, SourceID: x.SourceID, LockKey: jobs.InstanceLockKey(x.ID),
		Args: jobs.InstanceArgs{RestoreID: x.ID, Action: action}, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "restore."+action, "restore "+strconv.FormatInt(x.ID, 10), map[string]any{"job_id": job.ID, "data_dir": x.DataDir})
	}
	return job, err
}

// InstanceState is a restored instance's state as its server tells it, not as it was
// recorded: an instance recorded running whose server has gone (crashed, stopped by hand,
// the host rebooted) is stopped, and one started by hand is running.
func (s *Service) InstanceState(ctx context.Context, x store.Restore) store.RestoreState {
	if x.Port == 0 || (x.State != store.RestoreRunning && x.State != store.RestoreStopped) {
		return x.State
	}
	if jobs.InstanceRunning(ctx, x) {
		return store.RestoreRunning
	}
	return store.RestoreStopped
}

// ConnString is how to connect to a restored instance.
func ConnString(x store.Restore) string {
	if x.Port == 0 {
		return ""
	}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(x.Port)), Path: "/postgres"}
	return u.String()
}

// Sentence capitalizes s and ends it with a full stop: messages of errors, as a person
// reads them.
func Sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
