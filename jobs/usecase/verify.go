package usecase

import (
	"context"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// StartVerify verifies a source's backups and archived WAL in the repository: a routine
// run, or with deep every pack (with rehash, every blob decompressed and rehashed, proven
// before or not). A verification of the source already queued or running is
// a *store.LockedError naming it.
func (s *Service) StartVerify(ctx context.Context, a Actor, sourceID int64, deep, rehash bool) (store.Job, error) {
	if rehash && !deep {
		return store.Job{}, &InputError{Fields: map[string]string{"rehash": "rehashing every blob is for a deep verification: ask for deep too (--deep --rehash)"}}
	}
	if err := Authorize(a, StartVerify); err != nil {
		return store.Job{}, err
	}
	src, err := s.store.Source(ctx, sourceID)
	if err != nil {
		return store.Job{}, err
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindVerify, SourceID: src.ID, LockKey: jobs.VerifyLockKey(src.ID),
		Args: jobs.VerifyArgs{SourceID: src.ID, Deep: deep, Rehash: rehash}, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "verify.start", src.Name, map[string]any{"job_id": job.ID, "deep": deep, "rehash": rehash})
	}
	return job, err
}
