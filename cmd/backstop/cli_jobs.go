package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/schollz/progressbar/v3"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// runJob runs one job in this process, as the CLI does, drawing a progress bar on stderr
// unless --json is set. It works whether or not a server is running and honours its locks.
func (c *cli) runJob(ctx context.Context, h *home, p jobs.Params) (store.Job, error) {
	hub := jobs.NewHub()
	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	go hub.Run(hubCtx)
	quiet := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := jobs.NewRunner(h.store, hub, quiet, jobs.Options{}, h.workers()...)
	if err := r.Start(ctx); err != nil {
		return store.Job{}, err
	}
	defer r.Stop()
	done := make(chan struct{})
	sub := hub.Subscribe()
	go func() {
		defer close(done)
		c.drawProgress(sub)
	}()
	job, err := r.Run(ctx, p)
	hub.Unsubscribe(sub)
	<-done
	if errors.Is(err, store.ErrLocked) {
		if other, oerr := h.store.ActiveJobByLock(ctx, p.LockKey); oerr == nil {
			return job, fmt.Errorf("job %d (%s, %s) holds the same lock; wait for it to end or cancel it", other.ID, other.Kind, other.State)
		}
	}
	return job, err
}

// drawProgress shows a progress bar per phase until the subscription closes.
func (c *cli) drawProgress(sub *jobs.Subscription) {
	var bar *progressbar.ProgressBar
	var phase string
	for ev := range sub.C {
		switch ev.Type {
		case jobs.EventLog:
			if c.json || ev.Log == nil {
				continue
			}
			if bar != nil {
				bar.Clear()
			}
			fmt.Fprintf(c.stderr, "%s  %s\n", ev.Log.Level, ev.Log.Message)
		case jobs.EventProgress:
			if c.json {
				continue
			}
			p := ev.Progress
			if bar == nil || p.Phase != phase {
				if bar != nil {
					bar.Finish()
					fmt.Fprintln(c.stderr)
				}
				phase = p.Phase
				max := p.Total
				if max <= 0 {
					max = -1
				}
				bar = progressbar.NewOptions64(max,
					progressbar.OptionSetWriter(c.stderr),
					progressbar.OptionSetDescription(fmt.Sprintf("%-16s", phase)),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100_000_000),
					progressbar.OptionShowCount(),
					progressbar.OptionClearOnFinish(),
					// No spinner goroutine: it redraws without the bar's lock, racing Clear.
					progressbar.OptionSetSpinnerChangeInterval(0),
				)
			}
			if p.Total > 0 && bar.GetMax64() != p.Total {
				bar.ChangeMax64(p.Total)
			}
			bar.Set64(p.Done)
		}
	}
	if bar != nil {
		bar.Finish()
	}
}
