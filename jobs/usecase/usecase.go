// Package usecase is Backstop's front door: every operation a person can start, from the
// CLI or the dashboard, is a method of Service. Each one authorizes the actor first, checks
// everything before it records or writes anything, starts long work as a job, and writes
// the audit entry, once, so that the CLI and the handlers stay thin and cannot drift apart.
package usecase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// Starter starts jobs: the server enqueues them for its runner; the CLI runs them in the
// foreground with a progress bar and returns the finished job.
type Starter interface {
	Start(ctx context.Context, p jobs.Params) (store.Job, error)
	Cancel(ctx context.Context, id int64) error
}

// Paths are the places of this installation that no restore may write into.
type Paths struct {
	Home        string
	Repository  string
	Spool       string
	RestoreRoot string // where new instances' data directories go
}

// Service runs the operations. It holds no state of its own beyond its dependencies.
type Service struct {
	store *store.Store
	repo  *repository.Repo
	jobs  Starter
	paths Paths
	log   *slog.Logger
	now   func() time.Time
	// notifier is told about alert transitions people make; nil for none.
	notifier Notifier
	// windows caches the sources' restorable windows for pages.
	windows *jobs.WindowCache
}

// New returns the use cases over a catalog and repository, starting jobs with starter.
func New(st *store.Store, repo *repository.Repo, starter Starter, paths Paths, log *slog.Logger) *Service {
	return &Service{store: st, repo: repo, jobs: starter, paths: paths, log: log, now: time.Now, windows: jobs.NewWindowCache(st, repo)}
}

// UseWindows makes s read windows from c, a cache shared with the process's other users
// (the alert evaluator, the verify job), and returns s.
func (s *Service) UseWindows(c *jobs.WindowCache) *Service {
	s.windows = c
	return s
}

// ConflictError is an operation refused because of the state of what it acts on (a job
// already running, an instance that is not stopped): the message says what to do instead.
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string { return e.Message }

func conflict(format string, args ...any) error {
	return &ConflictError{Message: fmt.Sprintf(format, args...)}
}

// audit records what an actor did; a failure to record is logged, not returned: the
// action has happened.
func (s *Service) audit(ctx context.Context, a Actor, action, target string, detail any) {
	e := store.AuditEntry{Actor: a.Name, Action: action, Target: target, IP: a.IP}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err == nil {
			e.Detail = b
		}
	}
	if err := s.store.Audit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit", "action", action, "target", target, "err", err)
	}
}

// MaskDSN hides the password of a connection string, for showing it.
func MaskDSN(dsn string) string { return pg.MaskDSN(dsn) }

// activeSource loads a source that has not been removed.
func (s *Service) activeSource(ctx context.Context, id int64) (store.Source, error) {
	src, err := s.store.Source(ctx, id)
	if err != nil {
		return store.Source{}, err
	}
	removed, err := s.store.SourceRemovedAt(ctx, id)
	if err != nil {
		return store.Source{}, err
	}
	if removed != nil {
		return store.Source{}, conflict("source %s was removed on %s: it takes no new backups", src.Name,
			removed.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return src, nil
}

// StartBackup takes a full backup of a source now. A backup already queued or running for
// it is a *store.LockedError naming that job.
func (s *Service) StartBackup(ctx context.Context, a Actor, sourceID int64) (store.Job, error) {
	if err := Authorize(a, StartBackup); err != nil {
		return store.Job{}, err
	}
	src, err := s.activeSource(ctx, sourceID)
	if err != nil {
		return store.Job{}, err
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindBackup, SourceID: src.ID, LockKey: jobs.BackupLockKey(src.ID),
		Args: jobs.BackupArgs{SourceID: src.ID}, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "backup.start", src.Name, map[string]any{"job_id": job.ID})
	}
	return job, err
}

// CancelJob asks a job to stop. A job that has already ended is store.ErrConflict.
// Cancelling a restore, or an action on a restored instance, is managing that restore:
// only for those who may restore its source.
func (s *Service) CancelJob(ctx context.Context, a Actor, jobID int64) error {
	if err := Authorize(a, CancelJob); err != nil {
		return err
	}
	job, err := s.store.Job(ctx, jobID)
	if err != nil {
		return err
	}
	if src, ok, err := s.restoredSource(ctx, job); err != nil {
		return err
	} else if ok {
		if err := s.authorizeRestore(ctx, a, ManageInstance, src); err != nil {
			return err
		}
	}
	if err := s.jobs.Cancel(ctx, jobID); err != nil {
		return err
	}
	s.audit(ctx, a, "job.cancel", fmt.Sprintf("job %d", jobID), nil)
	return nil
}

// restoredSource returns the source a restore job (or a job on a restored instance)
// restores; ok is false for other jobs. A restore of a backup names its source only
// through the backup.
func (s *Service) restoredSource(ctx context.Context, job store.Job) (src store.Source, ok bool, err error) {
	id := job.SourceID
	switch job.Kind {
	case jobs.KindPITR, jobs.KindInstance:
	case jobs.KindRestore:
		var args jobs.RestoreArgs
		if err := json.Unmarshal(job.Args, &args); err != nil {
			return store.Source{}, false, fmt.Errorf("job %d: %w", job.ID, err)
		}
		b, err := s.store.Backup(ctx, args.BackupID)
		if errors.Is(err, store.ErrNotFound) {
			return store.Source{}, false, nil // nothing left to restore: the job cannot but fail
		}
		if err != nil {
			return store.Source{}, false, err
		}
		id = b.SourceID
	default:
		return store.Source{}, false, nil
	}
	src, err = s.store.Source(ctx, id)
	return src, err == nil, err
}

// ErrNotPermitted wraps refusals that are about the actor, for callers that only need to
// know the class.
var ErrNotPermitted = errors.New("not permitted")

// Is lets errors.Is(err, ErrNotPermitted) match a *ForbiddenError.
func (e *ForbiddenError) Is(target error) bool { return target == ErrNotPermitted }

// Enqueuer starts jobs on a runner: they are queued and run in the background, as the
// server does.
func Enqueuer(r *jobs.Runner) Starter { return enqueuer{r} }

type enqueuer struct{ r *jobs.Runner }

func (e enqueuer) Start(ctx context.Context, p jobs.Params) (store.Job, error) {
	return e.r.Enqueue(ctx, p)
}
func (e enqueuer) Cancel(ctx context.Context, id int64) error { return e.r.Cancel(ctx, id) }

// Windows returns the cache of restorable windows s reads, for the pages' health.
func (s *Service) Windows() *jobs.WindowCache { return s.windows }
