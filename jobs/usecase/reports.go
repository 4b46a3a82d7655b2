package usecase

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// ReportRequest chooses a report's period and sources.
type ReportRequest struct {
	// From and To are the first and last day of the period (UTC), both included, or
	// exact instants (To excluded) when they are not midnight.
	From, To time.Time
	// Sources are the sources' names; none means every source.
	Sources []string
}

// period returns the request's period as [from, to).
func (q ReportRequest) period() (time.Time, time.Time) {
	from, to := q.From.UTC(), q.To.UTC()
	if to.Equal(to.Truncate(24 * time.Hour)) {
		to = to.Add(24 * time.Hour)
	}
	return from, to
}

// reportKey returns the installation's report signing key, made on first use.
func (s *Service) reportKey() (ed25519.PrivateKey, error) {
	if s.paths.Home == "" {
		return nil, errors.New("report key: no home directory")
	}
	return report.LoadOrCreateKey(filepath.Join(s.paths.Home, report.KeyFile))
}

// ReportPublicKey returns the public key that signs this installation's reports, in PEM,
// and its fingerprint.
func (s *Service) ReportPublicKey(ctx context.Context, a Actor) ([]byte, string, error) {
	if err := Authorize(a, View); err != nil {
		return nil, "", err
	}
	key, err := s.reportKey()
	if err != nil {
		return nil, "", err
	}
	pub := key.Public().(ed25519.PublicKey)
	return report.PublicKeyPEM(pub), report.Fingerprint(pub), nil
}

// BuildReport builds the report q asks for, to preview it.
func (s *Service) BuildReport(ctx context.Context, a Actor, q ReportRequest) (report.Report, error) {
	if err := Authorize(a, ReadReports); err != nil {
		return report.Report{}, err
	}
	from, to := q.period()
	if q.From.IsZero() || q.To.IsZero() {
		from, to = time.Time{}, time.Time{}
	}
	if err := report.CheckPeriod(from, to); err != nil {
		return report.Report{}, &store.ValidationError{Field: "period", Message: err.Error()}
	}
	var srcs []store.Source
	if len(q.Sources) == 0 {
		all, err := s.store.Sources(ctx)
		if err != nil {
			return report.Report{}, err
		}
		srcs = all
	}
	for i, name := range q.Sources {
		if slices.Contains(q.Sources[:i], name) {
			continue // a source named twice is reported once, never counted twice
		}
		src, err := s.store.SourceByName(ctx, name)
		if err != nil {
			return report.Report{}, fmt.Errorf("report: source %q: %w", name, err)
		}
		srcs = append(srcs, src)
	}
	facts := report.Facts{
		Window: func(ctx context.Context, src store.Source) (jobs.WindowInput, error) {
			_, in, err := s.windows.Window(ctx, src)
			return in, err
		},
		ManifestSHA256: func(ctx context.Context, id string) (string, error) {
			h, err := s.repo.ManifestSHA256(ctx, id)
			if errors.Is(err, repository.ErrNotFound) {
				return "", nil
			}
			return h, err
		},
	}
	return report.Build(ctx, s.store, facts, report.Params{From: from, To: to, Sources: srcs, Now: s.now()})
}

// DownloadReport builds the report q asks for and renders it in format (pdf, csv or
// json), signed with the installation's key. Every download is audited.
func (s *Service) DownloadReport(ctx context.Context, a Actor, q ReportRequest, format string) ([]byte, error) {
	if err := Authorize(a, ReadReports); err != nil {
		return nil, err
	}
	if !slices.Contains(report.Formats, format) {
		return nil, &store.ValidationError{Field: "format", Message: fmt.Sprintf("format %q: choose pdf, csv or json", format)}
	}
	r, err := s.BuildReport(ctx, a, q)
	if err != nil {
		return nil, err
	}
	key, err := s.reportKey()
	if err != nil {
		return nil, err
	}
	out, err := report.Render(r, format, key)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, a, "report.download", format, map[string]any{"from": r.From, "to": r.To, "sources": r.Summary.Sources,
		"bytes": len(out), "key": report.Fingerprint(key.Public().(ed25519.PublicKey))})
	return out, nil
}

// ReportSources lists the sources a report may cover, for the page that chooses them.
func (s *Service) ReportSources(ctx context.Context, a Actor) ([]store.Source, error) {
	if err := Authorize(a, ReadReports); err != nil {
		return nil, err
	}
	return s.store.Sources(ctx)
}
