package usecase

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// StartDrill starts a restore drill of a source: a restore to a random second of its
// restorable window into a sandbox instance, checked, timed and torn down (jobs.DrillWorker).
// A source with nothing restorable is a *ConflictError; a drill of it already queued or
// running is a *store.LockedError naming that job.
func (s *Service) StartDrill(ctx context.Context, a Actor, sourceID int64) (store.Job, error) {
	return s.StartDrillAt(ctx, a, sourceID, time.Time{})
}

// StartDrillAt is StartDrill proving the second at rather than a random one (zero: random).
// A time outside the window is a *jobs.TargetError giving the window and the nearest valid
// choice. A refused drill has recorded and started nothing.
func (s *Service) StartDrillAt(ctx context.Context, a Actor, sourceID int64, at time.Time) (store.Job, error) {
	if err := Authorize(a, StartDrill); err != nil {
		return store.Job{}, err
	}
	src, err := s.store.Source(ctx, sourceID)
	if err != nil {
		return store.Job{}, err
	}
	w, in, err := s.windows.Current(ctx, src)
	if err != nil {
		return store.Job{}, err
	}
	if len(w.Ranges) == 0 {
		return store.Job{}, conflict("%s has no restorable window yet, so there is nothing to drill: "+
			"a drill needs a complete full backup of it and its WAL archived since", src.Name)
	}
	args := jobs.DrillArgs{SourceID: src.ID}
	if !at.IsZero() {
		target := jobs.Target{Kind: jobs.TargetTime, Time: at.UTC(), Inclusive: true}
		if _, err := jobs.PlanRestore(in, target, RestoreThroughput); err != nil {
			return store.Job{}, err
		}
		args.Target = target.Text()
	}
	// The sandbox is chosen again when the drill runs (a queued drill may wait); checking
	// now refuses a drill that could not have one.
	if _, _, err := s.Sandbox(ctx, src); err != nil {
		return store.Job{}, err
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindDrill, SourceID: src.ID, LockKey: jobs.DrillLockKey(src.ID),
		Args: args, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "drill.start", src.Name, map[string]any{"job_id": job.ID, "target": args.Target})
	}
	return job, err
}

// Sandbox chooses where a restore drill of src restores (jobs.Sandboxes): a new directory
// below the restore root and a free port on 127.0.0.1, never a source's or a restored
// instance's, both checked by CheckDestination as every restore is. It writes nothing.
func (s *Service) Sandbox(ctx context.Context, src store.Source) (string, int, error) {
	if s.paths.RestoreRoot == "" {
		return "", 0, errors.New("drill sandbox: this installation has no restore root")
	}
	dir := filepath.Join(s.paths.RestoreRoot, fmt.Sprintf("drill-%s-%s-%s", src.Name,
		s.now().UTC().Format("20060102T150405Z"), strings.ToLower(rand.Text()[:6])))
	var refused error
	for range 20 {
		port, err := randomFreePort()
		if err != nil {
			return "", 0, fmt.Errorf("drill sandbox: %w", err)
		}
		into, err := s.CheckDestination(ctx, dir, port)
		var ie *InputError
		if errors.As(err, &ie) && len(ie.Fields) == 1 && ie.Fields["port"] != "" {
			refused = err // taken since, or a source's: another
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("drill sandbox: %w", err)
		}
		return into, port, nil
	}
	return "", 0, fmt.Errorf("drill sandbox: no free port found: %w", refused)
}

// randomFreePort returns a port on 127.0.0.1 that nothing listened on a moment ago, as
// the system hands out: random, so that drills running at once do not pick the same.
func randomFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
