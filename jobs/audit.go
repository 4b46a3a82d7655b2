package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// endActions names the audit action recorded when a job of a kind ends, where it is not
// "<kind>.end": a point-in-time restore ends what "restore.start" began.
var endActions = map[string]string{
	KindPITR:     "restore.end",
	KindRestore:  "restore.end",
	KindInstance: "restore.instance.end",
}

// auditEnd records how a job ended, in the audit log: who started it, on which source,
// with its arguments (the restore target, the backup restored) and its result (the backup
// taken, the base backup a restore used, what was checked). A failure to record is
// logged: the job has ended either way.
func (r *Runner) auditEnd(ctx context.Context, job store.Job) {
	action, ok := endActions[job.Kind]
	if !ok {
		action = job.Kind + ".end"
	}
	e := store.AuditEntry{Actor: job.RequestedBy, Action: action}
	if e.Actor == "" {
		e.Actor = "system"
	}
	if job.SourceID != 0 {
		if src, err := r.store.Source(ctx, job.SourceID); err == nil {
			e.Target = src.Name
		}
	}
	detail := map[string]any{"job_id": job.ID, "kind": job.Kind, "state": job.State}
	if job.Error != "" {
		detail["error"] = job.Error
	}
	if len(job.Args) > 0 {
		detail["args"] = job.Args
	}
	if len(job.Result) > 0 {
		detail["result"] = job.Result
	}
	b, err := json.Marshal(detail)
	if err == nil {
		e.Detail = b
		err = r.store.Audit(ctx, e)
	}
	if err != nil {
		r.log.Error("audit job end", "job", job.ID, "err", err)
	}
}

// AuditHeadError is a catalog whose audit log does not hold the head the repository
// recorded: an older copy of the catalog, or a rewritten audit log.
type AuditHeadError struct {
	Head repository.AuditHead
	// Catalog says what the catalog holds instead.
	Catalog string
}

func (e *AuditHeadError) Error() string {
	return fmt.Sprintf("the repository's audit head names entry %d (hash %s, written %s) but %s: "+
		"the catalog was replaced by an older copy or its audit log was rewritten",
		e.Head.ID, e.Head.Hash, e.Head.WrittenAt.UTC().Format(time.RFC3339), e.Catalog)
}

// CheckAuditHead compares the head stored in the repository with the catalog's audit
// log and returns the stored head (zero when none was written yet); a catalog without
// that entry, or with another hash for it, is an *AuditHeadError.
func CheckAuditHead(ctx context.Context, st *store.Store, repo *repository.Repo) (repository.AuditHead, error) {
	head, err := repo.AuditHead(ctx)
	if errors.Is(err, repository.ErrNotFound) {
		return repository.AuditHead{}, nil
	}
	if err != nil {
		return repository.AuditHead{}, err
	}
	hash, err := st.AuditEntryHash(ctx, head.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		last, lerr := st.LastAuditHead(ctx)
		if lerr != nil {
			return head, lerr
		}
		return head, &AuditHeadError{Head: head, Catalog: fmt.Sprintf("the catalog has no entry %d (its newest is %d)", head.ID, last.ID)}
	case err != nil:
		return head, err
	case hash != head.Hash:
		return head, &AuditHeadError{Head: head, Catalog: fmt.Sprintf("the catalog's entry %d has hash %s", head.ID, hash)}
	}
	return head, nil
}

// WriteAuditHead closes the counting windows that have ended, then writes the catalog's
// newest audit entry to the repository as the head, unless it is already there. It
// first checks the head stored before: a catalog that does not hold it never replaces
// it, so that restoring an older catalog cannot hide itself.
func WriteAuditHead(ctx context.Context, st *store.Store, repo *repository.Repo, now time.Time) (store.AuditHead, error) {
	if _, err := st.CloseAuditCounts(ctx, now); err != nil {
		return store.AuditHead{}, err
	}
	stored, err := CheckAuditHead(ctx, st, repo)
	if err != nil {
		return store.AuditHead{}, fmt.Errorf("write audit head: %w", err)
	}
	head, err := st.LastAuditHead(ctx)
	if err != nil || head.ID == 0 || (head.ID == stored.ID && head.Hash == stored.Hash) {
		return head, err
	}
	err = repo.PutAuditHead(ctx, repository.AuditHead{ID: head.ID, Hash: head.Hash, At: head.At, WrittenAt: now.UTC()})
	if err != nil {
		return store.AuditHead{}, fmt.Errorf("write audit head: %w", err)
	}
	return head, nil
}

// RunAuditHead writes the audit head every interval (and once at once) until ctx is done.
// A catalog that does not hold the stored head is logged as an error at each turn.
func RunAuditHead(ctx context.Context, st *store.Store, repo *repository.Repo, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := WriteAuditHead(ctx, st, repo, time.Now()); err != nil && ctx.Err() == nil {
			log.Error("audit head", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// restartAuditChain starts the audit log of a rebuilt catalog: its first entry,
// "audit.restart", names the head the repository held for the lost log, and that head is
// replaced by the new log's, so that the chain check passes again while the break stays
// on record.
func restartAuditChain(ctx context.Context, st *store.Store, repo *repository.Repo) error {
	old, err := repo.AuditHead(ctx)
	if err != nil && !errors.Is(err, repository.ErrNotFound) {
		return err
	}
	detail := map[string]any{"reason": "the catalog was rebuilt from the repository: the audit log before this entry is lost"}
	if old.ID != 0 {
		detail["previous_head"] = old
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	if err := st.Audit(ctx, store.AuditEntry{Actor: "system", Action: "audit.restart", Detail: b}); err != nil {
		return err
	}
	head, err := st.LastAuditHead(ctx)
	if err != nil {
		return err
	}
	return repo.PutAuditHead(ctx, repository.AuditHead{ID: head.ID, Hash: head.Hash, At: head.At, WrittenAt: time.Now().UTC()})
}
