package usecase

import (
	"context"
	"path/filepath"

	"github.com/backstop/backstop/jobs/health"
)

// ServiceChecks are what /healthz checks of this server: the catalog and the repository
// can be written, and the disks holding them are not nearly full.
func (s *Service) ServiceChecks(ctx context.Context) health.ServiceChecks {
	c := health.ServiceChecks{WriteCatalog: s.store.ProbeWrite}
	if file, err := s.store.File(ctx); err == nil && file != "" {
		c.Paths = append(c.Paths, filepath.Dir(file))
	}
	if s.repo != nil {
		c.WriteRepository = s.repo.ProbeWrite
		c.Paths = append(c.Paths, s.repo.Dir())
	}
	return c
}
