package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindVerify is the kind of jobs that verify a source's backups and WAL in the repository.
const KindVerify = "verify"

// VerifyLockKey keeps two verifications of one source from running at once. Nothing else
// waits for it: verification takes no lock that backups or WAL archiving need.
func VerifyLockKey(sourceID int64) string { return fmt.Sprintf("verify:source:%d", sourceID) }

// VerifyArgs are a verify job's arguments.
type VerifyArgs struct {
	SourceID int64 `json:"source_id"`
	// Deep reads every pack; a routine run reads what is new since the last run and a
	// rotating share of the rest.
	Deep bool `json:"deep,omitempty"`
	// Rehash makes a deep run decompress and rehash every blob, not only those of the
	// packs not proven before (repository.VerifyOptions.Rehash).
	Rehash bool `json:"rehash,omitempty"`
}

// VerifyResult is what a verify job records as its result.
type VerifyResult struct {
	RunID        int64  `json:"run_id"`
	State        string `json:"state"`
	Deep         bool   `json:"deep"`
	PacksChecked int    `json:"packs_checked"`
	PacksTotal   int    `json:"packs_total"`
	BytesRead    int64  `json:"bytes_read"`
	// BlobsChecked were authenticated and decrypted; BlobsRehashed of them also
	// decompressed and rehashed (the rest are in packs proven before).
	BlobsChecked  int64                 `json:"blobs_checked"`
	BlobsRehashed int64                 `json:"blobs_rehashed"`
	Findings      []store.VerifyFinding `json:"findings"`
}

// maxStoredFindings bounds the findings one run records: a lost pack can make thousands.
const maxStoredFindings = 1000

// VerifyWorker verifies a source's backups and archived WAL: every object they reference is
// present, authenticates, decrypts and hashes to its name (repository.Verify reads the
// packs), manifests and indexes agree, and the archived WAL is continuous across the
// restorable window. Corrupt copies are marked bad, so the next backup stores good ones.
type VerifyWorker struct {
	store   *store.Store
	repo    *repository.Repo
	windows *WindowCache
}

// NewVerifyWorker returns a worker verifying st's sources in repo; windows, when not nil,
// is told to recompute a window when the WAL was found to differ from the catalog.
func NewVerifyWorker(st *store.Store, repo *repository.Repo, windows *WindowCache) *VerifyWorker {
	return &VerifyWorker{store: st, repo: repo, windows: windows}
}

// Kind implements Worker.
func (w *VerifyWorker) Kind() string { return KindVerify }

// Work implements Worker.
func (w *VerifyWorker) Work(ctx context.Context, job *Job) error {
	var args VerifyArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	src, err := w.store.Source(ctx, args.SourceID)
	if err != nil {
		return err
	}
	opts, err := w.options(ctx, src, args.Deep)
	if err != nil {
		return err
	}
	opts.Rehash = args.Rehash
	run, err := w.store.StartVerifyRun(ctx, src.ID, job.ID, args.Deep)
	if err != nil {
		return err
	}
	job.Phase(ctx, "reading packs", 0)
	opts.Progress = func(done, total int64) { job.Progress(ctx, done, total) }
	res, verr := w.repo.Verify(ctx, opts)
	run.PacksChecked, run.PacksTotal, run.BytesRead = int64(res.PacksChecked), int64(res.PacksTotal), res.BytesRead
	run.BlobsChecked, run.ManifestsChecked, run.WALChecked, run.Cursor = res.BlobsChecked, int64(res.ManifestsChecked), int64(res.WALChecked), res.Cursor
	if !res.NextSince.IsZero() {
		run.NextSince = &res.NextSince
	}

	var findings []store.VerifyFinding
	var checked []int64
	if verr == nil {
		job.Phase(ctx, "checking the window", 0)
		if findings, checked, err = w.findings(ctx, src, opts, res); err != nil {
			verr = err
		}
	}
	errText := ""
	if verr != nil {
		errText = verr.Error()
		if ctx.Err() != nil {
			errText = "the verification was stopped before it finished"
		}
	}
	if len(findings) > maxStoredFindings {
		job.Logf(ctx, LevelWarn, "checking the window", "%d findings; the first %d are recorded", len(findings), maxStoredFindings)
		findings = findings[:maxStoredFindings]
	}
	done, err := w.store.FinishVerifyRun(context.WithoutCancel(ctx), run, findings, checked, errText)
	if err != nil {
		return errors.Join(verr, err)
	}
	if w.windows != nil && len(findings) > 0 {
		w.windows.Invalidate(src.ID)
	}
	for i, f := range findings {
		if i == 20 {
			job.Logf(ctx, LevelError, "checking the window", "… and %d more findings", len(findings)-20)
			break
		}
		job.Logf(ctx, LevelError, "checking the window", "%s", DescribeFinding(f))
	}
	job.Logf(ctx, LevelInfo, "checking the window", "read %d of %d packs (%s; %d blobs authenticated, %d of them also rehashed), %d manifests and %d WAL files checked: %s",
		res.PacksChecked, res.PacksTotal, humanize.IBytes(uint64(res.BytesRead)), res.BlobsChecked, res.BlobsRehashed, res.ManifestsChecked, res.WALChecked, done.State)
	if err := job.SetResult(VerifyResult{RunID: done.ID, State: done.State, Deep: args.Deep, PacksChecked: res.PacksChecked,
		PacksTotal: res.PacksTotal, BytesRead: res.BytesRead, BlobsChecked: res.BlobsChecked, BlobsRehashed: res.BlobsRehashed,
		Findings: findings}); err != nil {
		return err
	}
	return verr
}

// options decides what a run reads. A deep run reads everything. A routine run reads the
// packs written since the previous run began, and a share of the others sized so that,
// run as often as the previous one was, every pack is re-read within the policy's verify
// period; it checks the references of every backup of the source and of the WAL archived
// since the previous run.
func (w *VerifyWorker) options(ctx context.Context, src store.Source, deep bool) (repository.VerifyOptions, error) {
	o := repository.VerifyOptions{Deep: deep, MarkBad: true, Manifests: []string{}, WAL: []repository.WALName{}}
	backups, err := w.store.Backups(ctx, store.BackupFilter{SourceID: src.ID, States: []store.BackupState{store.BackupComplete}})
	if err != nil {
		return o, err
	}
	for _, b := range backups {
		o.Manifests = append(o.Manifests, b.RepoID)
	}
	// Packs are the repository's, shared by every source: the rotation through them (the
	// cursor, and the time from which new packs are read whole) continues from the last
	// finished run of any source.
	var since time.Time
	runs, err := w.store.VerifyRuns(ctx, 0, 20)
	if err != nil {
		return o, err
	}
	for _, prev := range runs {
		if prev.State == store.VerifyRunning || prev.State == store.VerifyFailed {
			continue
		}
		if prev.NextSince != nil {
			since = *prev.NextSince
		}
		o.Cursor = prev.Cursor
		break
	}
	var walSince time.Time
	if prev, err := w.store.LatestVerifyRun(ctx, src.ID); err == nil && prev.State != store.VerifyFailed {
		walSince = prev.StartedAt
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return o, err
	}
	files, err := w.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
	if err != nil {
		return o, err
	}
	for _, f := range files {
		if deep || walSince.IsZero() || !f.ArchivedAt.Before(walSince) {
			o.WAL = append(o.WAL, repository.WALName{SystemID: src.SystemIdentifier, Name: f.Name})
		}
	}
	if deep {
		return o, nil
	}
	period := store.DefaultVerifyPeriod
	if p, err := w.store.Policy(ctx, src.ID); err == nil {
		period = p.VerifyPeriod
	}
	o.Since = since
	if since.IsZero() {
		o.Sample = 1
	} else {
		o.Sample = min(1, float64(time.Since(since))/float64(period))
	}
	return o, nil
}

// findings turns what the repository found into catalog findings naming backups and
// files, adds the holes in the archived WAL, and returns the backups checked whole.
func (w *VerifyWorker) findings(ctx context.Context, src store.Source, o repository.VerifyOptions, res repository.VerifyResult) ([]store.VerifyFinding, []int64, error) {
	backups, err := w.store.Backups(ctx, store.BackupFilter{States: []store.BackupState{store.BackupComplete}})
	if err != nil {
		return nil, nil, err
	}
	byRepoID := make(map[string]store.Backup, len(backups))
	for _, b := range backups {
		byRepoID[b.RepoID] = b
	}
	var out []store.VerifyFinding
	bad := map[int64]bool{}
	for _, f := range res.Findings {
		if f.Kind == repository.FindingMissingManifest && !slices.ContainsFunc(backups, func(b store.Backup) bool { return b.RepoID == f.Object || strings.Contains(f.Object, b.RepoID) }) {
			continue // expired while the run read: not a loss
		}
		base := store.VerifyFinding{SourceID: src.ID, Kind: f.Kind, Object: f.Object, Pack: f.Pack, Reason: f.Reason}
		if f.OtherCopy != "" {
			base.Reason += fmt.Sprintf(" (another copy, in pack %s, is used meanwhile)", f.OtherCopy)
		}
		if len(f.Refs) == 0 {
			out = append(out, base)
			continue
		}
		for _, ref := range f.Refs {
			x := base
			switch {
			case ref.Manifest != "":
				b, ok := byRepoID[ref.Manifest]
				if ok {
					x.BackupID, x.SourceID = b.ID, b.SourceID
					bad[b.ID] = bad[b.ID] || f.OtherCopy == ""
				}
				x.Path = ref.Path
			case ref.WAL != "":
				x.Path = ref.WAL
			}
			out = append(out, x)
		}
	}
	// Every backup whose manifest was checked and has no finding is verified whole.
	var checked []int64
	for _, id := range o.Manifests {
		if b, ok := byRepoID[id]; ok && !bad[b.ID] {
			checked = append(checked, b.ID)
		}
	}

	// The archived WAL must be continuous across the window: a hole with archived WAL
	// after it is a gap (a hole at the end is WAL not archived yet).
	in, err := LoadWindowInput(ctx, w.store, w.repo, src)
	if err != nil {
		return nil, nil, err
	}
	win := ComputeWindow(in)
	for _, g := range archivedGaps(in, win) {
		lost := "from " + g.RestorableUntil.UTC().Format(time.DateTime+" UTC") + " on"
		for _, r := range win.Ranges {
			if r.From.After(g.RestorableUntil) {
				lost = fmt.Sprintf("from %s to %s", g.RestorableUntil.UTC().Format(time.DateTime+" UTC"), r.From.UTC().Format(time.DateTime+" UTC"))
				break
			}
		}
		out = append(out, store.VerifyFinding{SourceID: src.ID, Kind: "wal-gap", Object: g.Segment, Path: g.Segment,
			FromLSN: g.FromLSN.String(), ToLSN: g.ToLSN.String(),
			Reason: fmt.Sprintf("archived WAL is missing from %s to %s (segment %s on timeline %d): nothing can be restored %s",
				g.FromLSN, g.ToLSN, g.Segment, g.Timeline, lost)})
	}
	return out, checked, nil
}

// archivedGaps returns the window's gaps that have archived WAL after them.
func archivedGaps(in WindowInput, w Window) []Gap {
	var end uint64
	for _, f := range in.WAL {
		if l, ok := parseLSN(f.EndLSN); ok && uint64(l) > end {
			end = uint64(l)
		}
	}
	var out []Gap
	for _, g := range w.Gaps {
		if uint64(g.ToLSN) < end {
			out = append(out, g)
		}
	}
	return out
}

// DescribeFinding is a finding in one line, for the job's log and the CLI.
func DescribeFinding(f store.VerifyFinding) string {
	switch {
	case f.BackupID != 0:
		return fmt.Sprintf("backup %d, file %s: %s %s: %s", f.BackupID, f.Path, f.Kind, short(f.Object), f.Reason)
	case f.Path != "":
		return fmt.Sprintf("%s %s (%s): %s", f.Kind, short(f.Object), f.Path, f.Reason)
	}
	return fmt.Sprintf("%s %s: %s", f.Kind, short(f.Object), f.Reason)
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
