package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
)

// KindInstance is the kind of jobs that stop, start or delete a restored instance.
const KindInstance = "instance"

// Instance actions.
const (
	InstanceStop   = "stop"
	InstanceStart  = "start"
	InstanceDelete = "delete"
)

// InstanceArgs are an instance job's arguments.
type InstanceArgs struct {
	RestoreID int64  `json:"restore_id"`
	Action    string `json:"action"`
}

// InstanceLockKey keeps two actions on one restored instance from running at once.
func InstanceLockKey(restoreID int64) string { return fmt.Sprintf("restore:%d", restoreID) }

// InstanceWorker stops, starts and deletes restored instances. It acts only on a data
// directory that carries the restore's marker: what Backstop did not create, it neither
// stops nor removes.
type InstanceWorker struct {
	store *store.Store
	// SocketRoot holds the servers' socket directories (short paths).
	SocketRoot string
}

// NewInstanceWorker returns an instance worker over st.
func NewInstanceWorker(st *store.Store) *InstanceWorker {
	return &InstanceWorker{store: st, SocketRoot: os.TempDir()}
}

// Kind implements Worker.
func (w *InstanceWorker) Kind() string { return KindInstance }

// Work implements Worker.
func (w *InstanceWorker) Work(ctx context.Context, job *Job) error {
	var args InstanceArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	x, err := w.store.Restore(ctx, args.RestoreID)
	if err != nil {
		return err
	}
	job.Phase(ctx, args.Action, 0)
	switch args.Action {
	case InstanceStop:
		if err := stopInstance(ctx, x); err != nil {
			return err
		}
		_, err = w.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreStopped})
	case InstanceStart:
		if err := w.startInstance(ctx, x); err != nil {
			return err
		}
		_, err = w.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreRunning})
	case InstanceDelete:
		note, derr := deleteInstance(ctx, x)
		if derr != nil {
			return derr
		}
		if note != "" {
			job.Logf(ctx, LevelWarn, args.Action, "%s", note)
		}
		_, err = w.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreDeleted, Error: note})
	default:
		return fmt.Errorf("instance: unknown action %q", args.Action)
	}
	if err == nil {
		job.Logf(ctx, LevelInfo, args.Action, "restored instance %d (%s): %s done", x.ID, x.DataDir, args.Action)
	}
	return err
}

// InstanceRunning reads from the server itself whether a restored instance runs now.
func InstanceRunning(ctx context.Context, x store.Restore) bool {
	if x.Port == 0 || !dest.Owned(x.DataDir, x.Marker) {
		return false
	}
	bin, err := pg.FindBinaries(ctx, x.PGMajor)
	if err != nil {
		return false
	}
	c, err := pg.DataDirServer(bin, x.DataDir, x.Port)
	return err == nil && c.Running(ctx)
}

// stopInstance stops the server of a restored instance, if it runs: only one in a data
// directory carrying the restore's marker.
func stopInstance(ctx context.Context, x store.Restore) error {
	if !dest.Owned(x.DataDir, x.Marker) {
		return fmt.Errorf("%s does not carry restore %d's marker: Backstop leaves whatever runs there alone", x.DataDir, x.ID)
	}
	bin, err := pg.FindBinaries(ctx, x.PGMajor)
	if err != nil {
		return err
	}
	c, err := pg.DataDirServer(bin, x.DataDir, x.Port)
	if err != nil {
		return err
	}
	if !c.Running(ctx) {
		return nil
	}
	return c.Stop(ctx, "fast")
}

func (w *InstanceWorker) startInstance(ctx context.Context, x store.Restore) error {
	if x.Port == 0 {
		return fmt.Errorf("restored instance %d is a directory only: start it by hand", x.ID)
	}
	if !dest.Owned(x.DataDir, x.Marker) {
		return fmt.Errorf("%s does not carry restore %d's marker: Backstop starts only what it restored", x.DataDir, x.ID)
	}
	if InstanceRunning(ctx, x) {
		return nil
	}
	if !dest.PortFree(x.Port) {
		return fmt.Errorf("port %d is in use: stop what listens there first", x.Port)
	}
	bin, err := pg.FindBinaries(ctx, x.PGMajor)
	if err != nil {
		return err
	}
	sockets, err := os.MkdirTemp(w.SocketRoot, "backstop-pg-")
	if err != nil {
		return err
	}
	os.Remove(sockets) // StartDataDir makes it, owned by the server's user
	_, err = pg.StartDataDir(ctx, pg.ServerOptions{Bin: bin, DataDir: x.DataDir, Port: x.Port,
		LogFile: filepath.Join(x.DataDir, "log", "backstop-restore.log"), SocketDir: sockets})
	return err
}

// deleteInstance stops a restored instance and removes its data directory, only when the
// directory carries the restore's marker. A directory without it (placed there since, or
// made before markers existed) is left in place and the returned note says so.
func deleteInstance(ctx context.Context, x store.Restore) (note string, err error) {
	if !dest.Owned(x.DataDir, x.Marker) {
		if _, serr := os.Lstat(x.DataDir); errors.Is(serr, os.ErrNotExist) {
			return "", nil
		}
		return fmt.Sprintf("left %s in place: it does not carry restore %d's marker, so Backstop did not create what is there now", x.DataDir, x.ID), nil
	}
	if err := stopInstance(ctx, x); err != nil {
		return "", err
	}
	if err := dest.Remove(x.DataDir, x.Marker, x.CreatedDir); err != nil {
		return "", err
	}
	return "", nil
}

// SweepRestores resolves restores whose process died mid-restore: each becomes
// interrupted, the instance it may have started is stopped, and the directory it created
// is removed (only where its marker matches). It returns how many it resolved.
func SweepRestores(ctx context.Context, st *store.Store) (int, error) {
	xs, err := st.OrphanedRestores(ctx)
	if err != nil {
		return 0, err
	}
	for _, x := range xs {
		stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
		note := "the process running this restore died before it ended"
		if dest.Owned(x.DataDir, x.Marker) {
			if err := stopInstance(stopCtx, x); err != nil {
				note += fmt.Sprintf("; stopping its server failed: %v", err)
			}
			if err := dest.Remove(x.DataDir, x.Marker, x.CreatedDir); err != nil {
				note += fmt.Sprintf("; %v", err)
			} else {
				note += "; what it had written was removed"
			}
		}
		cancel()
		if _, err := st.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreInterrupted, Error: note}); err != nil {
			return 0, err
		}
	}
	return len(xs), nil
}

// StopRunningInstances stops every restored instance that runs now (the demo stops what it
// started when it ends). It returns the restores it stopped.
func StopRunningInstances(ctx context.Context, st *store.Store) ([]int64, error) {
	xs, err := st.Restores(ctx, false)
	if err != nil {
		return nil, err
	}
	var stopped []int64
	for _, x := range xs {
		if x.State != store.RestoreRunning || !InstanceRunning(ctx, x) {
			continue
		}
		if err := stopInstance(ctx, x); err != nil {
			return stopped, err
		}
		if _, err := st.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreStopped}); err != nil {
			return stopped, err
		}
		stopped = append(stopped, x.ID)
	}
	return stopped, nil
}
