package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindPrune is the kind of jobs that prune the repository.
const KindPrune = "prune"

// PruneLockKey keeps two prune jobs of this catalog from running at once (the repository's
// own lock keeps prunes of other installations out).
const PruneLockKey = "repository:prune"

// PruneArgs are a prune job's arguments: the backups to delete (by repository id) and the
// archived WAL to delete. Empty: collect only what nothing needs any more (superseded WAL
// pieces, what failed backups stored, packs left mostly dead).
type PruneArgs struct {
	Backups []string             `json:"backups,omitempty"`
	WAL     []repository.WALName `json:"wal,omitempty"`
}

// PruneWorker runs repository.Repo.Prune as a job.
type PruneWorker struct {
	repo *repository.Repo
}

// NewPruneWorker returns a worker pruning repo.
func NewPruneWorker(repo *repository.Repo) *PruneWorker { return &PruneWorker{repo: repo} }

// Kind implements Worker.
func (w *PruneWorker) Kind() string { return KindPrune }

// Work implements Worker.
func (w *PruneWorker) Work(ctx context.Context, job *Job) error {
	var args PruneArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	job.Phase(ctx, "pruning", 0)
	res, err := w.repo.Prune(ctx, repository.PruneOptions{Backups: args.Backups, WAL: args.WAL})
	if err != nil {
		return err
	}
	logPrune(ctx, job, res)
	return job.SetResult(res)
}

// logPrune logs what a prune did, and what it could not do, in the job's log.
func logPrune(ctx context.Context, job *Job, res repository.PruneResult) {
	job.Logf(ctx, LevelInfo, "pruning", "%d backups and %d WAL files deleted (%d superseded pieces); %d packs marked, %d repacked, %d deleted (%s)",
		res.BackupsDeleted, res.WALDeleted, res.PiecesDeleted, res.PacksMarked, res.PacksRepacked, res.PacksDeleted, humanize.IBytes(uint64(res.BytesDeleted)))
	for _, l := range res.LocksUnreadable {
		job.Logf(ctx, LevelWarn, "pruning", "lock object %s cannot be read: it holds pruning back (nothing is marked or deleted) until it is removed; remove it if no backup is running", l)
	}
	if res.PacksUnreadable > 0 {
		job.Logf(ctx, LevelWarn, "pruning", "%d packs have neither a readable index nor a readable trailer: left alone", res.PacksUnreadable)
	}
}

// RunMaintenance queues an expire job every interval until ctx is done: it applies every
// source's retention policy and prunes the repository, so that what nothing needs is
// collected without anyone asking: expired backups and WAL, superseded WAL pieces (one
// every few seconds while WAL streams), failed backups' packs, mostly dead packs.
func RunMaintenance(ctx context.Context, r *Runner, every time.Duration, log *slog.Logger) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := r.Enqueue(ctx, Params{Kind: KindExpire, LockKey: PruneLockKey, Args: ExpireArgs{}, RequestedBy: "backstop (maintenance)"})
		if err != nil && !errors.Is(err, store.ErrLocked) && ctx.Err() == nil {
			log.Warn("queue the repository's maintenance", "err", fmt.Sprint(err))
		}
		t.Reset(every)
	}
}
