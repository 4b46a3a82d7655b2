package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// Params choose what a report covers.
type Params struct {
	// From and To bound the period (From ≤ t < To), truncated to the second.
	From, To time.Time
	// Sources are the sources to report on, in the report's order.
	Sources []store.Source
	// Now is when the report is made: the scorecard measures up to it.
	Now time.Time
}

// Facts are where Build reads what it cannot read from the catalog rows alone.
type Facts struct {
	// Window returns the inputs of src's restorable window (the repository's view of
	// its backups and WAL; see jobs.LoadWindowInput and jobs.WindowCache).
	Window func(ctx context.Context, src store.Source) (jobs.WindowInput, error)
	// ManifestSHA256 returns the SHA-256 (hex) of a backup's manifest as stored in the
	// repository, "" when the repository no longer holds it; nil leaves the field empty.
	ManifestSHA256 func(ctx context.Context, repoID string) (string, error)
}

// maxPeriod bounds a report's period: the catalog rows of more than this are more than
// a person reads, and the scorecard one row per day.
const maxPeriod = 2 * 366 * 24 * time.Hour

// CheckPeriod refuses an empty or reversed period, one longer than two years, or one
// that ends after year 9999, which RFC 3339 (and so every format of the report) cannot
// write.
func CheckPeriod(from, to time.Time) error {
	switch {
	case from.IsZero() || to.IsZero():
		return errors.New("a report needs a period: give both its first and its last day")
	case to.UTC().Year() > 9999:
		return errors.New("the period must end by 9999-12-30")
	case !from.Before(to):
		return fmt.Errorf("the period from %s to %s is empty: the first day must come before the last", from.Format(time.DateOnly), to.Format(time.DateOnly))
	case to.Sub(from) > maxPeriod:
		return fmt.Errorf("the period from %s to %s is longer than two years: make one report per year", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	return nil
}

// Build reads a report from the catalog st and facts.
func Build(ctx context.Context, st *store.Store, facts Facts, p Params) (Report, error) {
	p.From, p.To, p.Now = p.From.UTC().Truncate(time.Second), p.To.UTC().Truncate(time.Second), p.Now.UTC().Truncate(time.Second)
	if err := CheckPeriod(p.From, p.To); err != nil {
		return Report{}, err
	}
	r := Report{Format: FormatVersion, GeneratedAt: p.Now, From: p.From, To: p.To, Sources: []Source{}}
	restores, err := st.Restores(ctx, true)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	for _, src := range p.Sources {
		s, err := buildSource(ctx, st, facts, p, src, restores)
		if err != nil {
			return Report{}, fmt.Errorf("report on %s: %w", src.Name, err)
		}
		r.Sources = append(r.Sources, s)
	}
	summarize(&r)
	return r, nil
}

// in reports whether t is in the period.
func (p Params) in(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

func buildSource(ctx context.Context, st *store.Store, facts Facts, p Params, src store.Source, restores []store.Restore) (Source, error) {
	s := Source{Name: src.Name, SystemIdentifier: src.SystemIdentifier, Backups: []Backup{}, VerifyRuns: []VerifyRun{},
		Drills: []Drill{}, Alerts: []Alert{}, Restores: []Restore{}}
	pol, err := st.Policy(ctx, src.ID)
	if errors.Is(err, store.ErrNotFound) {
		pol = store.Policy{RPO: store.DefaultRPO, DrillMaxAge: store.DefaultDrillMaxAge}
	} else if err != nil {
		return Source{}, err
	}
	s.Policy = Policy{WindowSeconds: int64(pol.Window / time.Second), DrillMaxAgeSeconds: int64(pol.DrillMaxAge / time.Second),
		RPOSeconds: int64(pol.RPO / time.Second)}

	backups, err := st.Backups(ctx, store.BackupFilter{SourceID: src.ID})
	if err != nil {
		return Source{}, err
	}
	for _, b := range backups {
		if p.in(b.StartedAt) {
			x, err := backupOf(ctx, facts, b)
			if err != nil {
				return Source{}, err
			}
			s.Backups = append(s.Backups, x)
		}
	}
	slices.SortFunc(s.Backups, func(a, b Backup) int { return cmp.Compare(a.ID, b.ID) })

	runs, err := st.VerifyRuns(ctx, src.ID, -1)
	if err != nil {
		return Source{}, err
	}
	badWAL := map[string]bool{}
	var lastRead time.Time // the start of the newest finished run: WAL archived before it was read
	for _, v := range runs {
		if v.State == store.VerifyClean || v.State == store.VerifyFindings {
			lastRead = later(lastRead, v.StartedAt)
		}
		var findings []store.VerifyFinding
		if v.Findings > 0 {
			if findings, err = st.VerifyFindings(ctx, v.ID, -1); err != nil {
				return Source{}, err
			}
		}
		for _, f := range findings {
			if f.BackupID == 0 && f.Path != "" {
				badWAL[f.Path] = true
			}
		}
		if p.in(v.StartedAt) {
			s.VerifyRuns = append(s.VerifyRuns, verifyRunOf(v, findings))
		}
	}
	slices.SortFunc(s.VerifyRuns, func(a, b VerifyRun) int { return cmp.Compare(a.ID, b.ID) })

	drills, err := st.Drills(ctx, src.ID, -1)
	if err != nil {
		return Source{}, err
	}
	var passes []time.Time
	for _, d := range drills {
		if d.State == store.DrillPassed && d.FinishedAt != nil {
			passes = append(passes, *d.FinishedAt)
		}
		if p.in(d.StartedAt) {
			s.Drills = append(s.Drills, drillOf(d))
		}
	}
	slices.SortFunc(s.Drills, func(a, b Drill) int { return cmp.Compare(a.ID, b.ID) })

	alerts, err := st.Alerts(ctx, store.AlertFilter{SourceID: src.ID})
	if err != nil {
		return Source{}, err
	}
	for _, a := range alerts {
		if p.in(a.FirstAt) {
			s.Alerts = append(s.Alerts, alertOf(a))
		}
	}
	slices.SortFunc(s.Alerts, func(a, b Alert) int { return cmp.Compare(a.ID, b.ID) })

	for _, x := range restores {
		if x.SourceID == src.ID && p.in(x.CreatedAt) {
			s.Restores = append(s.Restores, Restore{ID: x.ID, Target: x.Target, BackupID: x.BackupID, State: string(x.State),
				CreatedAt: x.CreatedAt.UTC().Truncate(time.Second)})
		}
	}
	slices.SortFunc(s.Restores, func(a, b Restore) int { return cmp.Compare(a.ID, b.ID) })

	in, err := facts.Window(ctx, src)
	if err != nil {
		return Source{}, err
	}
	s.Window = windowCheck(in, pol.Window, p)
	verified := verifiedInput(in, lastRead, badWAL)
	holes := windowHoles(jobs.ComputeWindow(verified), "verified base backup", "no verified WAL", p.From, p.To)
	holes = append(holes, drillHoles(passes, pol.DrillMaxAge, p.From, p.To)...)
	s.Days = scoreDays(p.From, p.To, p.Now, holes)
	return s, nil
}

// windowCheck checks that every second of the policy window ending at the end of the
// period (or now, when that is earlier) was restorable.
func windowCheck(in jobs.WindowInput, window time.Duration, p Params) WindowCheck {
	to := earlier(p.To, p.Now)
	c := WindowCheck{From: to.Add(-window), To: to}
	c.Gaps = union(windowHoles(jobs.ComputeWindow(in), "base backup", "no archived WAL", c.From, c.To), c.From, c.To)
	c.Held = len(c.Gaps) == 0
	return c
}

// verifiedInput keeps of in the backups whose latest verification passed and the WAL
// files a finished verification read (archived before readBefore) without a finding.
func verifiedInput(in jobs.WindowInput, readBefore time.Time, bad map[string]bool) jobs.WindowInput {
	out := in
	out.Backups = slices.DeleteFunc(slices.Clone(in.Backups), func(b store.Backup) bool { return b.VerifyState != "ok" })
	out.WAL = slices.DeleteFunc(slices.Clone(in.WAL), func(f store.WALFile) bool {
		return bad[f.Name] || !f.ArchivedAt.Before(readBefore)
	})
	return out
}

func backupOf(ctx context.Context, facts Facts, b store.Backup) (Backup, error) {
	x := Backup{ID: b.ID, RepoID: b.RepoID, State: string(b.State), StartedAt: sec(b.StartedAt), FinishedAt: secp(b.FinishedAt),
		SourceBytes: b.Stats.SourceBytes, StoredBytesNew: b.Stats.StoredBytesNew, StartLSN: b.StartLSN, EndLSN: b.EndLSN,
		Timeline: b.Timeline, VerifyState: b.VerifyState, VerifiedAt: secp(b.VerifiedAt)}
	if b.FinishedAt != nil {
		x.DurationSeconds = int64(b.FinishedAt.Sub(b.StartedAt).Round(time.Second) / time.Second)
	}
	if facts.ManifestSHA256 != nil && b.State == store.BackupComplete {
		h, err := facts.ManifestSHA256(ctx, b.RepoID)
		if err != nil {
			return Backup{}, err
		}
		x.ManifestSHA256 = h
	}
	return x, nil
}

func verifyRunOf(v store.VerifyRun, findings []store.VerifyFinding) VerifyRun {
	x := VerifyRun{ID: v.ID, Deep: v.Deep, State: v.State, StartedAt: sec(v.StartedAt), FinishedAt: secp(v.FinishedAt),
		Packs: v.PacksChecked, Bytes: v.BytesRead, Findings: []Finding{}}
	for _, f := range findings {
		x.Findings = append(x.Findings, Finding{Kind: f.Kind, Object: f.Object, BackupID: f.BackupID, Path: f.Path, Reason: f.Reason})
	}
	return x
}

func drillOf(d store.Drill) Drill {
	return Drill{ID: d.ID, State: d.State, TargetAt: sec(d.TargetAt), StartedAt: sec(d.StartedAt), FinishedAt: secp(d.FinishedAt),
		RTOSeconds: d.RTO.Round(time.Millisecond).Seconds(), Error: d.Error}
}

func alertOf(a store.Alert) Alert {
	x := Alert{ID: a.ID, Rule: a.Rule, Severity: a.Severity, State: string(a.State), Title: a.Title, FirstAt: sec(a.FirstAt),
		AckedAt: secp(a.AckedAt), ResolvedAt: secp(a.ResolvedAt)}
	since := func(t *time.Time) *int64 {
		if t == nil {
			return nil
		}
		n := int64(t.Sub(a.FirstAt).Round(time.Second) / time.Second)
		return &n
	}
	x.SecondsToAcknowledge, x.SecondsToResolve = since(a.AckedAt), since(a.ResolvedAt)
	return x
}

func sec(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

func secp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	x := sec(*t)
	return &x
}
