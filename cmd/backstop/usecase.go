package main

import (
	"context"
	"errors"
	"log/slog"
	"os/user"
	"path/filepath"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
)

// service returns the use cases over this home, starting jobs with starter.
func (h *home) service(starter usecase.Starter, log *slog.Logger) *usecase.Service {
	return usecase.New(h.store, h.repo, starter, usecase.Paths{Home: h.dir, Repository: h.repo.Dir(),
		Spool: filepath.Join(h.dir, "spool"), RestoreRoot: h.restoreRoot()}, log).UseWindows(h.windowCache())
}

// cliStarter runs jobs in the foreground of a CLI command, with a progress bar, and
// returns them finished.
type cliStarter struct {
	c *cli
	h *home
}

func (s cliStarter) Start(ctx context.Context, p jobs.Params) (store.Job, error) {
	return s.c.runJob(ctx, s.h, p)
}
func (s cliStarter) Cancel(context.Context, int64) error {
	return errors.New("cancel a job from the dashboard, or stop the command that runs it")
}

// cliService returns the use cases for a CLI command, acting as the OS user.
func (c *cli) cliService(h *home) (*usecase.Service, usecase.Actor) {
	return h.service(cliStarter{c, h}, c.log), usecase.CLIActor(osUserName())
}

func osUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
