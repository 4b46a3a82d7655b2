package usecase

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/retention"
	"github.com/backstop/backstop/store"
)

// PolicyInput is a schedule and retention policy as a person gives it.
type PolicyInput struct {
	// BackupCron is the full-backup schedule (cron syntax), "" for none.
	BackupCron string
	// TimeZone is an IANA zone name; "" means UTC.
	TimeZone                       string
	Window                         time.Duration
	KeepLast                       int
	Daily, Weekly, Monthly, Yearly int
	MinKeep                        int
	ArchiveYears                   int
	// VerifyCron and DrillCron schedule routine verification and restore drills ("" for
	// none), in the same time zone.
	VerifyCron, DrillCron string
	// RPO is the archiving lag beyond which an alert fires; DrillMaxAge how old the newest
	// passing drill may be (when drills are scheduled); VerifyPeriod the time within which
	// routine verification re-reads every pack. Zero: the defaults.
	RPO, DrillMaxAge, VerifyPeriod time.Duration
}

// DefaultPolicy is what a source without a policy is offered: a nightly full backup and
// a 14-day window, at least two backups kept.
var DefaultPolicy = PolicyInput{BackupCron: "0 2 * * *", TimeZone: "UTC", Window: 14 * 24 * time.Hour, MinKeep: 2}

// PolicyInputOf returns the input that stores p.
func PolicyInputOf(p store.Policy) PolicyInput {
	return PolicyInput{BackupCron: p.BackupCron, TimeZone: p.TimeZone, Window: p.Window, KeepLast: p.KeepLast,
		Daily: p.Daily, Weekly: p.Weekly, Monthly: p.Monthly, Yearly: p.Yearly, MinKeep: p.MinKeep, ArchiveYears: p.ArchiveYears,
		VerifyCron: p.VerifyCron, DrillCron: p.DrillCron, RPO: p.RPO, DrillMaxAge: p.DrillMaxAge, VerifyPeriod: p.VerifyPeriod}
}

// check validates in, returning the stored policy of source sourceID and its retention
// form, or an *InputError by field ("backup_cron", "time_zone", "window", "policy").
func (in PolicyInput) check(sourceID int64, by string) (store.Policy, retention.Policy, error) {
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	fields := map[string]string{}
	if _, err := time.LoadLocation(in.TimeZone); err != nil {
		fields["time_zone"] = fmt.Sprintf("Unknown time zone %q: use an IANA name such as Europe/Berlin, America/New_York or UTC.", in.TimeZone)
	} else {
		for field, expr := range map[string]string{"backup_cron": in.BackupCron, "verify_cron": in.VerifyCron, "drill_cron": in.DrillCron} {
			if expr == "" {
				continue
			}
			if _, err := jobs.ParseSchedule(expr, in.TimeZone); err != nil {
				fields[field] = Sentence(err.Error())
			}
		}
	}
	for field, d := range map[string]time.Duration{"rpo": in.RPO, "drill_max_age": in.DrillMaxAge, "verify_period": in.VerifyPeriod} {
		if d < 0 || d%time.Second != 0 {
			fields[field] = "Give a whole number of seconds, or nothing for the default."
		}
	}
	if in.Window%time.Second != 0 {
		fields["window"] = "The recovery window must be a whole number of seconds."
	}
	sp := store.Policy{SourceID: sourceID, BackupCron: in.BackupCron, TimeZone: in.TimeZone, Window: in.Window,
		KeepLast: in.KeepLast, Daily: in.Daily, Weekly: in.Weekly, Monthly: in.Monthly, Yearly: in.Yearly,
		MinKeep: in.MinKeep, ArchiveYears: in.ArchiveYears, VerifyCron: in.VerifyCron, DrillCron: in.DrillCron,
		RPO: in.RPO, DrillMaxAge: in.DrillMaxAge, VerifyPeriod: in.VerifyPeriod, UpdatedBy: by}
	rp, err := jobs.PolicyOf(sp)
	if err == nil {
		err = rp.Validate()
	}
	if err != nil && len(fields) == 0 {
		fields["policy"] = Sentence(err.Error())
	}
	if len(fields) > 0 {
		return store.Policy{}, retention.Policy{}, &InputError{Fields: fields}
	}
	return sp, rp, nil
}

// Policy returns source sourceID's policy; store.ErrNotFound when it has none.
func (s *Service) Policy(ctx context.Context, a Actor, sourceID int64) (store.Policy, error) {
	if err := Authorize(a, View); err != nil {
		return store.Policy{}, err
	}
	return s.store.Policy(ctx, sourceID)
}

// SetPolicy checks and stores source sourceID's schedule and retention policy. It deletes
// nothing: expiry applies it (hourly, or at once with Expire).
func (s *Service) SetPolicy(ctx context.Context, a Actor, sourceID int64, in PolicyInput) (store.Policy, error) {
	if err := Authorize(a, SetPolicy); err != nil {
		return store.Policy{}, err
	}
	src, err := s.store.Source(ctx, sourceID)
	if err != nil {
		return store.Policy{}, err
	}
	sp, rp, err := in.check(src.ID, a.Name)
	if err != nil {
		return store.Policy{}, err
	}
	old, err := s.store.Policy(ctx, src.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Policy{}, err
	}
	saved, err := s.store.SetPolicy(ctx, sp)
	if err != nil {
		return store.Policy{}, err
	}
	detail := map[string]any{"schedule": schedule(saved), "retention": rp.Describe()}
	if old.SourceID != 0 {
		oldRP, _ := jobs.PolicyOf(old)
		detail["before"] = map[string]any{"schedule": schedule(old), "retention": oldRP.Describe()}
	}
	s.audit(ctx, a, "policy.set", src.Name, detail)
	return saved, nil
}

func schedule(p store.Policy) string {
	if p.BackupCron == "" && p.VerifyCron == "" && p.DrillCron == "" {
		return "none"
	}
	return fmt.Sprintf("backups %q, verification %q, drills %q (%s)", p.BackupCron, p.VerifyCron, p.DrillCron, p.TimeZone)
}

// PreviewExpiry plans what applying a policy to source sourceID would delete, now, without
// deleting anything: in, when not nil, is a policy being edited; otherwise the stored one.
func (s *Service) PreviewExpiry(ctx context.Context, a Actor, sourceID int64, in *PolicyInput) (jobs.ExpiryPlan, error) {
	if err := Authorize(a, View); err != nil {
		return jobs.ExpiryPlan{}, err
	}
	src, err := s.store.Source(ctx, sourceID)
	if err != nil {
		return jobs.ExpiryPlan{}, err
	}
	var rp retention.Policy
	if in != nil {
		if _, rp, err = in.check(src.ID, a.Name); err != nil {
			return jobs.ExpiryPlan{}, err
		}
	} else {
		sp, err := s.store.Policy(ctx, src.ID)
		if errors.Is(err, store.ErrNotFound) {
			return jobs.ExpiryPlan{}, conflict("%s has no retention policy: nothing expires until one is set", src.Name)
		}
		if err != nil {
			return jobs.ExpiryPlan{}, err
		}
		if rp, err = jobs.PolicyOf(sp); err != nil {
			return jobs.ExpiryPlan{}, err
		}
	}
	win, err := jobs.LoadWindowInput(ctx, s.store, s.repo, src)
	if err != nil {
		return jobs.ExpiryPlan{}, err
	}
	return jobs.PlanExpiry(win, rp, s.now())
}

// Expire applies source sourceID's stored policy now, as a job (it also prunes the
// repository). confirm, when not nil, must be the source's name: the dashboard's typed
// confirmation (an *InputError on "confirm" otherwise). A prune or expiry already queued
// or running is a *store.LockedError.
func (s *Service) Expire(ctx context.Context, a Actor, sourceID int64, confirm *string) (store.Job, error) {
	if err := Authorize(a, Expire); err != nil {
		return store.Job{}, err
	}
	src, err := s.store.Source(ctx, sourceID)
	if err != nil {
		return store.Job{}, err
	}
	if confirm != nil && strings.TrimSpace(*confirm) != src.Name {
		return store.Job{}, &InputError{Fields: map[string]string{"confirm": fmt.Sprintf(
			"Type %s exactly: it confirms that the backups and WAL the preview lists are deleted.", src.Name)}}
	}
	if _, err := s.store.Policy(ctx, src.ID); errors.Is(err, store.ErrNotFound) {
		return store.Job{}, conflict("%s has no retention policy: set one first (backstop policy set --source %s …)", src.Name, src.Name)
	} else if err != nil {
		return store.Job{}, err
	}
	job, err := s.jobs.Start(ctx, jobs.Params{Kind: jobs.KindExpire, SourceID: src.ID, LockKey: jobs.PruneLockKey,
		Args: jobs.ExpireArgs{SourceIDs: []int64{src.ID}}, RequestedBy: a.Name})
	if job.ID != 0 {
		s.audit(ctx, a, "expire.start", src.Name, map[string]any{"job_id": job.ID})
	}
	return job, err
}

// PinBackup pins a complete backup (legal hold): no policy expires it until it is
// unpinned. note says why, for the audit log and the backup's page.
func (s *Service) PinBackup(ctx context.Context, a Actor, backupID int64, note string) (store.Backup, error) {
	if err := Authorize(a, PinBackup); err != nil {
		return store.Backup{}, err
	}
	b, err := s.store.PinBackup(ctx, backupID, a.Name, note)
	if errors.Is(err, store.ErrConflict) {
		return store.Backup{}, conflict("backup %d is not complete: only complete backups can be pinned", backupID)
	}
	if err != nil {
		return store.Backup{}, err
	}
	s.audit(ctx, a, "backup.pin", fmt.Sprintf("backup %d", b.ID), map[string]any{"manifest": b.RepoID, "note": note})
	return b, nil
}

// UnpinBackup removes a backup's pin: its policy may expire it from then on.
func (s *Service) UnpinBackup(ctx context.Context, a Actor, backupID int64) (store.Backup, error) {
	if err := Authorize(a, PinBackup); err != nil {
		return store.Backup{}, err
	}
	b, err := s.store.UnpinBackup(ctx, backupID)
	if err != nil {
		return store.Backup{}, err
	}
	s.audit(ctx, a, "backup.unpin", fmt.Sprintf("backup %d", b.ID), map[string]any{"manifest": b.RepoID})
	return b, nil
}
