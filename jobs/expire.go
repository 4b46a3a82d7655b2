package jobs

// Expiry: what a source's retention policy no longer needs, and deleting it.
//
// Every backup carries the WAL that makes it consistent, so a backup kept by any rule
// restores to its consistency point on its own. Continuous archived WAL is kept only for
// the recovery window: from the start of the oldest backup the window needs (its base:
// the newest backup consistent at or before the window's start) onwards. WAL below that
// position on any timeline is needed by no kept backup and no second of the window, so
// it goes; history files are tiny and always kept.
//
// A plan is checked before anything is deleted: the window computed without what would
// go must still hold every second of the policy's window that is restorable now. A plan
// that fails the check is refused, naming the second it would lose.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/retention"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindExpire is the kind of jobs that apply retention policies and prune the repository.
const KindExpire = "expire"

// ErrPlanRefused means an expiry plan would have lost a restorable second of its window:
// a defect, refused before anything is deleted.
var ErrPlanRefused = errors.New("expiry plan refused")

// ExpiryPlan is what applying a policy to a source would keep and delete.
type ExpiryPlan struct {
	SourceID int64
	Policy   retention.Policy
	Now      time.Time
	// Kept are the complete backups the policy keeps, newest first, with the rules that
	// keep each.
	Kept []KeptBackup
	// Expired are the complete backups no rule keeps, newest first.
	Expired []ExpiredBackup
	// WAL are the archived WAL files to delete, by position; WALBytes their size.
	WAL      []store.WALFile
	WALBytes int64
	// KeepWALFrom is the position from which archived WAL is kept, 0 when none is
	// deleted because nothing anchors it (no complete backup).
	KeepWALFrom pglogrepl.LSN
	// Before is the restorable window now; After the window once the plan is applied.
	Before, After Window
}

// KeptBackup is a backup a policy keeps.
type KeptBackup struct {
	Backup store.Backup
	// At is the backup's consistency time as retention counts it.
	At    time.Time
	Rules []retention.Rule
}

// ExpiredBackup is a backup a policy no longer keeps.
type ExpiredBackup struct {
	Backup store.Backup
	At     time.Time
	// Reason says why no rule keeps it.
	Reason string
}

// Empty reports whether p deletes nothing.
func (p ExpiryPlan) Empty() bool { return len(p.Expired) == 0 && len(p.WAL) == 0 }

// ExpiredBytes is the stored size the expired backups added when they were taken: an
// upper bound of what deleting them frees, since later backups may share their blocks.
func (p ExpiryPlan) ExpiredBytes() int64 {
	var n int64
	for _, e := range p.Expired {
		n += e.Backup.Stats.StoredBytesNew
	}
	return n
}

// Summary is one sentence: "3 backups and 1.2 GiB of WAL (52 files) would go; the
// restorable window afterwards is from … to …".
func (p ExpiryPlan) Summary() string {
	if p.Empty() {
		return "Nothing to expire: the policy keeps every backup and all archived WAL."
	}
	var parts []string
	if n := len(p.Expired); n > 0 {
		parts = append(parts, plural(n, "backup"))
	}
	if n := len(p.WAL); n > 0 {
		parts = append(parts, fmt.Sprintf("%s of WAL (%s)", humanize.IBytes(uint64(p.WALBytes)), plural(n, "file")))
	}
	return fmt.Sprintf("%s go; the restorable window afterwards is %s.", strings.Join(parts, " and "), p.After.String())
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// PlanExpiry decides what policy p keeps of the source whose catalog rows in holds, at
// now. It returns an error, and no plan, when the plan would lose a second of the
// policy's window that is restorable now: that would be a defect, never a trade-off.
func PlanExpiry(in WindowInput, p retention.Policy, now time.Time) (ExpiryPlan, error) {
	plan := ExpiryPlan{Policy: p, Now: now, Before: ComputeWindow(in)}
	if len(in.Backups) > 0 {
		plan.SourceID = in.Backups[0].SourceID
	}
	at := consistencyTimes(in.Backups, plan.Before)
	candidates := make([]retention.Backup, len(in.Backups))
	for i, b := range in.Backups {
		candidates[i] = retention.Backup{ID: b.ID, At: at[b.ID], Pinned: b.Pin != nil}
	}
	keep := retention.Select(candidates, p, now)

	backups := slices.Clone(in.Backups)
	slices.SortFunc(backups, func(a, b store.Backup) int {
		if c := at[b.ID].Compare(at[a.ID]); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	var kept []store.Backup
	for _, b := range backups {
		if rules, ok := keep[b.ID]; ok {
			plan.Kept = append(plan.Kept, KeptBackup{Backup: b, At: at[b.ID], Rules: rules})
			kept = append(kept, b)
		}
	}
	base := windowBase(plan.Kept)
	for _, b := range backups {
		if _, ok := keep[b.ID]; !ok {
			plan.Expired = append(plan.Expired, ExpiredBackup{Backup: b, At: at[b.ID], Reason: expiryReason(p, at[b.ID], base)})
		}
	}

	plan.KeepWALFrom = keepWALFrom(plan.Kept, in.WAL)
	after := in
	after.Backups = kept
	after.WAL = nil
	for _, f := range in.WAL {
		if plan.KeepWALFrom != 0 && (f.Kind == store.WALSegment || f.Kind == store.WALPartial) {
			if end, ok := parseLSN(f.EndLSN); ok && end <= plan.KeepWALFrom {
				plan.WAL = append(plan.WAL, f)
				plan.WALBytes += f.Size
				continue
			}
		}
		after.WAL = append(after.WAL, f)
	}
	plan.After = ComputeWindow(after)
	if err := checkWindowKept(plan.Before, plan.After, p.Window, now); err != nil {
		return ExpiryPlan{}, err
	}
	return plan, nil
}

// consistencyTimes returns each backup's consistency time as the window knows it, or its
// finish time (at or after it) when the window does not (another timeline's backup).
func consistencyTimes(backups []store.Backup, w Window) map[int64]time.Time {
	at := make(map[int64]time.Time, len(backups))
	for _, b := range backups {
		switch {
		case b.FinishedAt != nil:
			at[b.ID] = *b.FinishedAt
		default:
			at[b.ID] = b.StartedAt
		}
	}
	for _, bp := range w.Backups {
		if _, ok := at[bp.ID]; ok && !bp.ConsistentAt.IsZero() {
			at[bp.ID] = bp.ConsistentAt
		}
	}
	return at
}

// windowBase returns the oldest backup kept for the window, nil when the window keeps
// none.
func windowBase(kept []KeptBackup) *KeptBackup {
	var base *KeptBackup
	for i := range kept {
		if slices.Contains(kept[i].Rules, retention.RuleWindow) {
			base = &kept[i]
		}
	}
	return base
}

// keepWALFrom returns the position from which archived WAL must be kept: the lowest start
// of the backups the window keeps, or, without a window, of the newest kept backup (so
// that restoring to the latest second stays possible); lowered to keep what tells each of
// those backups' consistency time (see walFloor). 0 when no backup is kept: then no WAL
// is deleted.
func keepWALFrom(kept []KeptBackup, files []store.WALFile) pglogrepl.LSN {
	var from pglogrepl.LSN
	lower := func(b store.Backup) {
		start, ok1 := parseLSN(b.StartLSN)
		end, ok2 := parseLSN(b.EndLSN)
		if !ok1 || !ok2 {
			return
		}
		l := min(start, walFloor(files, end))
		if from == 0 || l < from {
			from = l
		}
	}
	for _, k := range kept {
		if slices.Contains(k.Rules, retention.RuleWindow) {
			lower(k.Backup)
		}
	}
	if from == 0 && len(kept) > 0 {
		lower(kept[0].Backup)
	}
	return from
}

// walFloor returns where the WAL begins that the window reads to find the consistency
// time of a backup ending at end: the newest commit before end, found by walking back
// from the file that holds end through contiguous files to one with commits (see
// pathView.consistency). Without that WAL the consistency time would fall back to a
// later one, and the window would shrink.
func walFloor(files []store.WALFile, end pglogrepl.LSN) pglogrepl.LSN {
	type span struct {
		start, end pglogrepl.LSN
		commits    bool
	}
	var spans []span
	for _, f := range files {
		s, ok1 := parseLSN(f.StartLSN)
		e, ok2 := parseLSN(f.EndLSN)
		if ok1 && ok2 && (f.Kind == store.WALSegment || f.Kind == store.WALPartial) {
			spans = append(spans, span{s, e, f.Commits > 0})
		}
	}
	pos := end
	for _, s := range spans {
		if s.start < end && end < s.end {
			pos = min(pos, s.start)
		}
	}
	for {
		prev := -1
		for i, s := range spans {
			if s.end == pos && s.start < pos && (prev < 0 || s.commits) {
				prev = i
			}
		}
		if prev < 0 {
			return pos
		}
		pos = spans[prev].start
		if spans[prev].commits {
			return pos
		}
	}
}

// expiryReason says why no rule of p keeps a backup consistent at at.
func expiryReason(p retention.Policy, at time.Time, base *KeptBackup) string {
	var why string
	switch {
	case p.Window > 0 && base != nil:
		why = fmt.Sprintf("older than backup %d (consistent %s), the base of the recovery window (%s)", base.Backup.ID,
			base.At.UTC().Format(time.DateTime+" UTC"), retention.FormatDuration(p.Window))
	case p.Window > 0:
		why = fmt.Sprintf("outside the recovery window (%s)", retention.FormatDuration(p.Window))
	default:
		why = "the policy has no recovery window"
	}
	return fmt.Sprintf("%s, and no other rule keeps it (policy: %s)", why, p.Describe())
}

// checkWindowKept returns an error naming a second of the policy window [now-window, now]
// that before can restore and after cannot.
func checkWindowKept(before, after Window, window time.Duration, now time.Time) error {
	if window <= 0 {
		return nil
	}
	start := now.Add(-window).Truncate(time.Microsecond)
	for _, r := range before.Ranges {
		from, to := r.From, r.To
		if to.Before(start) {
			continue
		}
		if from.Before(start) {
			from = start
		}
		covered := false
		for _, a := range after.Ranges {
			if !a.From.After(from) && !a.To.Before(to) {
				covered = true
				break
			}
		}
		if !covered {
			return fmt.Errorf("%w: %s, inside the recovery window, is restorable now and would not be afterwards (window before: %s; after: %s); nothing was deleted",
				ErrPlanRefused, from.UTC().Format(time.DateTime+" UTC"), before, after)
		}
	}
	return nil
}

// ExpireArgs are an expire job's arguments: the sources whose policies to apply (none:
// every source with a policy, removed ones included).
type ExpireArgs struct {
	SourceIDs []int64 `json:"source_ids,omitempty"`
}

// ExpireResult is what an expire job did.
type ExpireResult struct {
	Sources []SourceExpiry          `json:"sources"`
	Prune   *repository.PruneResult `json:"prune,omitempty"`
}

// SourceExpiry is what an expire job did to one source.
type SourceExpiry struct {
	SourceID int64  `json:"source_id"`
	Source   string `json:"source"`
	Backups  int    `json:"backups_expired"`
	WALFiles int    `json:"wal_files_expired"`
	WALBytes int64  `json:"wal_bytes_expired"`
	// KeepWALFrom is where the archived WAL kept begins ("0/0": all kept).
	KeepWALFrom  string `json:"keep_wal_from"`
	WindowBefore string `json:"window_before"`
	WindowAfter  string `json:"window_after"`
	// Postponed says why the source was left alone this time (a restore running).
	Postponed string `json:"postponed,omitempty"`
}

// ExpireWorker applies retention policies: it records what each source's policy no
// longer needs as expired (the catalog stops counting on it at once), then deletes it
// from the repository through pruning, which also collects whatever else nothing needs.
type ExpireWorker struct {
	store *store.Store
	repo  *repository.Repo
	// prune is the repository's pruning options (zero: its defaults); tests shorten them.
	prune repository.PruneOptions
}

// NewExpireWorker returns a worker applying the policies of st's sources to repo.
func NewExpireWorker(st *store.Store, repo *repository.Repo) *ExpireWorker {
	return &ExpireWorker{store: st, repo: repo}
}

// WithPruneOptions returns w pruning with o's timing (Grace, Delay); o's Backups and WAL
// are ignored.
func (w *ExpireWorker) WithPruneOptions(o repository.PruneOptions) *ExpireWorker {
	w2 := *w
	w2.prune = repository.PruneOptions{Grace: o.Grace, Delay: o.Delay}
	return &w2
}

// Kind implements Worker.
func (w *ExpireWorker) Kind() string { return KindExpire }

// Work implements Worker.
func (w *ExpireWorker) Work(ctx context.Context, job *Job) error {
	var args ExpireArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	policies, err := w.store.Policies(ctx)
	if err != nil {
		return err
	}
	var res ExpireResult
	job.Phase(ctx, "planning", int64(len(policies)))
	for i, pol := range policies {
		if len(args.SourceIDs) > 0 && !slices.Contains(args.SourceIDs, pol.SourceID) {
			continue
		}
		se, err := w.expireSource(ctx, job, pol)
		if err != nil {
			return err
		}
		res.Sources = append(res.Sources, se)
		job.Progress(ctx, int64(i+1), int64(len(policies)))
	}

	pending, err := w.store.PendingExpirations(ctx)
	if err != nil {
		return err
	}
	opts := w.prune
	var ids []int64
	for _, x := range pending {
		ids = append(ids, x.ID)
		switch x.Kind {
		case store.ExpireBackup:
			opts.Backups = append(opts.Backups, x.Name)
		case store.ExpireWAL:
			opts.WAL = append(opts.WAL, repository.WALName{SystemID: x.SystemID, Name: x.Name})
		}
	}
	job.Phase(ctx, "pruning", 0)
	pr, err := w.repo.Prune(ctx, opts)
	if err != nil {
		return err
	}
	res.Prune = &pr
	if err := w.store.FinishExpirations(ctx, ids); err != nil {
		return err
	}
	logPrune(ctx, job, pr)
	sampleStorage(ctx, job, w.store, w.repo)
	return job.SetResult(res)
}

// expireSource applies one source's policy: plans, refuses what cannot be proven safe,
// and records the expirations with an audit entry for each backup and one for the WAL.
func (w *ExpireWorker) expireSource(ctx context.Context, job *Job, pol store.Policy) (SourceExpiry, error) {
	src, err := w.store.Source(ctx, pol.SourceID)
	if err != nil {
		return SourceExpiry{}, err
	}
	se := SourceExpiry{SourceID: src.ID, Source: src.Name}
	active, err := w.store.Jobs(ctx, store.JobFilter{SourceID: src.ID, Kinds: []string{KindRestore, KindPITR},
		States: []store.JobState{store.JobQueued, store.JobRunning}, Limit: 1})
	if err != nil {
		return SourceExpiry{}, err
	}
	if len(active) > 0 {
		se.Postponed = fmt.Sprintf("a restore of %s is %s (job %d): its backup and WAL are left alone until it ends", src.Name, active[0].State, active[0].ID)
		job.Logf(ctx, LevelInfo, "planning", "%s", se.Postponed)
		return se, nil
	}
	p, err := PolicyOf(pol)
	if err != nil {
		return SourceExpiry{}, fmt.Errorf("policy of %s: %w", src.Name, err)
	}
	in, err := LoadWindowInput(ctx, w.store, w.repo, src)
	if err != nil {
		return SourceExpiry{}, err
	}
	plan, err := PlanExpiry(in, p, time.Now())
	if err != nil {
		return SourceExpiry{}, fmt.Errorf("%s: %w", src.Name, err)
	}
	se.WindowBefore, se.WindowAfter = plan.Before.String(), plan.After.String()
	se.Backups, se.WALFiles, se.WALBytes = len(plan.Expired), len(plan.WAL), plan.WALBytes
	se.KeepWALFrom = plan.KeepWALFrom.String()
	if plan.Empty() {
		job.Logf(ctx, LevelInfo, "planning", "%s: nothing to expire; window %s", src.Name, plan.Before.String())
		return se, nil
	}
	xs := plan.Expirations(src, job.ID)
	if err := w.store.Expire(ctx, xs); err != nil {
		return SourceExpiry{}, fmt.Errorf("%s: %w", src.Name, err)
	}
	for _, e := range plan.Expired {
		auditExpiry(ctx, w.store, job, "backup.expire", src.Name, map[string]any{
			"backup": e.Backup.ID, "manifest": e.Backup.RepoID, "consistent_at": e.At.UTC(), "rule": e.Reason})
	}
	if len(plan.WAL) > 0 {
		auditExpiry(ctx, w.store, job, "wal.expire", src.Name, map[string]any{
			"files": len(plan.WAL), "bytes": plan.WALBytes, "first": plan.WAL[0].Name, "last": plan.WAL[len(plan.WAL)-1].Name,
			"rule": fmt.Sprintf("below %s, where the WAL that the recovery window (%s) and the backups kept need begins",
				plan.KeepWALFrom, retention.FormatDuration(p.Window))})
	}
	job.Logf(ctx, LevelInfo, "planning", "%s: %s", src.Name, plan.Summary())
	return se, nil
}

// Expirations returns the catalog records of what plan deletes, for src, by job jobID.
func (plan ExpiryPlan) Expirations(src store.Source, jobID int64) []store.Expiration {
	var xs []store.Expiration
	for _, e := range plan.Expired {
		xs = append(xs, store.Expiration{SourceID: src.ID, Kind: store.ExpireBackup, Name: e.Backup.RepoID,
			SystemID: e.Backup.SystemIdentifier, BackupID: e.Backup.ID, StartLSN: e.Backup.StartLSN, EndLSN: e.Backup.EndLSN,
			Bytes: e.Backup.Stats.StoredBytesNew, Reason: e.Reason, JobID: jobID})
	}
	for _, f := range plan.WAL {
		xs = append(xs, store.Expiration{SourceID: src.ID, Kind: store.ExpireWAL, Name: f.Name, SystemID: src.SystemIdentifier,
			StartLSN: f.StartLSN, EndLSN: f.EndLSN, Bytes: f.Size, JobID: jobID,
			Reason: fmt.Sprintf("below %s, where the WAL the policy keeps begins", plan.KeepWALFrom)})
	}
	return xs
}

func auditExpiry(ctx context.Context, st *store.Store, job *Job, action, target string, detail map[string]any) {
	detail["job"] = job.ID
	e := store.AuditEntry{Actor: job.RequestedBy, Action: action, Target: target}
	if b, err := json.Marshal(detail); err == nil {
		e.Detail = b
	}
	if err := st.Audit(context.WithoutCancel(ctx), e); err != nil {
		job.Logf(ctx, LevelWarn, "planning", "audit %s of %s: %v", action, target, err)
	}
}

// PolicyOf returns the retention policy of a stored policy, with its time zone loaded.
func PolicyOf(p store.Policy) (retention.Policy, error) {
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil {
		return retention.Policy{}, fmt.Errorf("time zone %q: %w", p.TimeZone, err)
	}
	return retention.Policy{Window: p.Window, KeepLast: p.KeepLast, Daily: p.Daily, Weekly: p.Weekly,
		Monthly: p.Monthly, Yearly: p.Yearly, MinKeep: p.MinKeep, ArchiveYears: p.ArchiveYears, Location: loc}, nil
}
