package jobs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/backstop/backstop/store"
)

// Kinds of scheduled runs: a full backup, a routine verification, a restore drill.
const (
	ScheduleBackup = "backup"
	ScheduleVerify = "verify"
	ScheduleDrill  = "drill"
)

// lateAfter is how long after its due time (jitter included) a run is counted late.
const lateAfter = time.Minute

// maxJitter caps how long after its due time a source's run starts, so that many
// sources on the same schedule do not all connect in the same second.
const maxJitter = 5 * time.Minute

// ParseSchedule parses a cron expression (five fields, or a descriptor such as "@daily"),
// read in time zone tz (an IANA name such as "Europe/Berlin").
func ParseSchedule(expr, tz string) (cron.Schedule, error) {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return nil, errors.New("give the time zone separately, not inside the cron expression")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as Europe/Berlin or UTC)", tz)
	}
	s, err := cron.ParseStandard("CRON_TZ=" + tz + " " + expr)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %w (five fields: minute hour day-of-month month day-of-week, such as \"0 2 * * *\", or @daily, @hourly)", expr, err)
	}
	return s, nil
}

// Jitter is how long after each due time source's scheduled runs start: a fixed share,
// from the source's name, of a tenth of the schedule's interval, at most maxJitter.
// Fixed, so that "due 02:00, started 02:03" is the same every night.
func Jitter(sched cron.Schedule, sourceName string, around time.Time) time.Duration {
	a := sched.Next(around)
	interval := sched.Next(a).Sub(a)
	limit := min(interval/10, maxJitter)
	if limit <= time.Second {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(sourceName))
	return time.Duration(h.Sum64() % uint64(limit/time.Second) * uint64(time.Second))
}

// NextRun returns when a source's schedule of kind (ScheduleBackup, …) next starts after
// now: the first due time whose start (due time plus the source's jitter) is still ahead,
// and that jitter.
func NextRun(sched cron.Schedule, sourceName, kind string, now time.Time) (time.Time, time.Duration) {
	jitter := Jitter(sched, sourceName+"/"+kind, now)
	due := sched.Next(now.Add(-jitter))
	if due.IsZero() {
		return time.Time{}, jitter
	}
	return due.Add(jitter), jitter
}

// Due is the run a schedule owes at now, if any: the latest due time not after now
// (with jitter), how many earlier ones it folds in, and whether it is late.
type Due struct {
	At     time.Time
	Missed int
	Late   bool
}

// NextDue returns the run owed at now by a schedule whose last run was due at last (or
// that was set at last, when it never ran), with jitter added to every due time; ok is
// false when none is owed yet. Runs missed while nothing ran them (Backstop was down)
// fold into one, counted in Missed and marked late.
func NextDue(sched cron.Schedule, last time.Time, jitter time.Duration, now time.Time) (Due, bool) {
	next := sched.Next(last)
	if next.IsZero() || next.Add(jitter).After(now) {
		return Due{}, false
	}
	d := Due{At: next}
	for i := 0; i < 1_000_000; i++ {
		n := sched.Next(d.At)
		if n.IsZero() || n.Add(jitter).After(now) {
			break
		}
		d.At = n
		d.Missed++
	}
	d.Late = d.Missed > 0 || now.Sub(d.At.Add(jitter)) > lateAfter
	return d, true
}

// Scheduler queues each source's scheduled full backups. It keeps no state of its own:
// the catalog's schedule runs say what ran, so a restart neither repeats nor forgets a
// run, and a run missed while Backstop was down runs once on start-up, recorded late.
type Scheduler struct {
	store   *store.Store
	enqueue func(context.Context, Params) (store.Job, error)
	log     *slog.Logger
	now     func() time.Time
}

// NewScheduler returns a scheduler queuing jobs with enqueue (Runner.Enqueue).
func NewScheduler(st *store.Store, enqueue func(context.Context, Params) (store.Job, error), log *slog.Logger) *Scheduler {
	return &Scheduler{store: st, enqueue: enqueue, log: log, now: time.Now}
}

// Run checks the schedules at once and then every interval until ctx is done.
func (s *Scheduler) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("schedules", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick queues every run owed now.
func (s *Scheduler) Tick(ctx context.Context) error {
	policies, err := s.store.Policies(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range policies {
		if p.BackupCron == "" && p.VerifyCron == "" && p.DrillCron == "" {
			continue
		}
		if err := s.tickSource(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("source %d: %w", p.SourceID, err))
		}
	}
	return errors.Join(errs...)
}

// scheduled is one kind of scheduled run: its cron expression and the job it queues.
type scheduled struct {
	kind, cron string
	params     Params
}

func (s *Scheduler) tickSource(ctx context.Context, p store.Policy) error {
	removed, err := s.store.SourceRemovedAt(ctx, p.SourceID)
	if err != nil || removed != nil {
		return err
	}
	src, err := s.store.Source(ctx, p.SourceID)
	if err != nil {
		return err
	}
	var errs []error
	for _, sc := range []scheduled{
		{ScheduleBackup, p.BackupCron, Params{Kind: KindBackup, SourceID: src.ID, LockKey: BackupLockKey(src.ID), Args: BackupArgs{SourceID: src.ID}}},
		{ScheduleVerify, p.VerifyCron, Params{Kind: KindVerify, SourceID: src.ID, LockKey: VerifyLockKey(src.ID), Args: VerifyArgs{SourceID: src.ID}}},
		{ScheduleDrill, p.DrillCron, Params{Kind: KindDrill, SourceID: src.ID, LockKey: DrillLockKey(src.ID), Args: DrillArgs{SourceID: src.ID}}},
	} {
		if sc.cron == "" {
			continue
		}
		if err := s.tickSchedule(ctx, src, p, sc); err != nil {
			errs = append(errs, fmt.Errorf("%s schedule: %w", sc.kind, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) tickSchedule(ctx context.Context, src store.Source, p store.Policy, sc scheduled) error {
	sched, err := ParseSchedule(sc.cron, p.TimeZone)
	if err != nil {
		return err
	}
	last := p.ScheduleSince
	if r, err := s.store.LastScheduleRun(ctx, src.ID, sc.kind); err == nil {
		last = latest(last, r.DueAt)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	now := s.now()
	_, jitter := NextRun(sched, src.Name, sc.kind, now)
	due, ok := NextDue(sched, last, jitter, now)
	if !ok {
		return nil
	}
	run, err := s.store.RecordScheduleRun(ctx, store.ScheduleRun{SourceID: src.ID, Kind: sc.kind, DueAt: due.At,
		Late: due.Late, Missed: due.Missed})
	if errors.Is(err, store.ErrConflict) {
		return nil // another process sharing the catalog ran it
	}
	if err != nil {
		return err
	}
	params := sc.params
	params.RequestedBy = "schedule"
	if due.Late {
		params.RequestedBy = fmt.Sprintf("schedule (late: due %s)", due.At.UTC().Format(time.DateTime+" UTC"))
	}
	job, err := s.enqueue(ctx, params)
	var note string
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		note = fmt.Sprintf("not queued: a %s of %s was already queued or running (job %d)", sc.kind, src.Name, locked.JobID)
	case err != nil:
		note = "not queued: " + err.Error()
	}
	if err := s.store.SetScheduleRunJob(ctx, run.ID, job.ID, note); err != nil {
		return err
	}
	if note != "" {
		s.log.Warn("scheduled "+sc.kind, "source", src.Name, "due", due.At, "note", note)
	} else if due.Late {
		s.log.Warn("scheduled "+sc.kind+" queued late", "source", src.Name, "due", due.At, "missed", due.Missed, "job", job.ID)
	}
	return nil
}
