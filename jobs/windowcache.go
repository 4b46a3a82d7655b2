package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// WindowCache keeps each source's restorable window, computed again only when what it is
// computed from changes (store.WindowVersion): pages, alerts and metrics read it without
// reading every WAL row, listing the repository and decrypting history files each time.
//
// While Run keeps the windows (as serve does), reads never compute: they get the last
// window computed, with its ComputedAt, or ErrWindowUnknown before the first one. Without
// Run (the CLI, tests), a read computes a window that is missing or out of date.
type WindowCache struct {
	store *store.Store
	repo  *repository.Repo
	// ListEvery is how long the repository's WAL is trusted without listing it again
	// (maxAge when zero): a WAL file deleted there behind the catalog's back shows as a
	// gap within it, and health reports a window not checked for longer.
	ListEvery time.Duration

	mu     sync.Mutex
	m      map[int64]*cachedWindow
	failed map[int64]windowFailure // by source: the last computation, when it failed
	// computing serializes the computations of each source: they keep its WAL rows by
	// appending to them (store.WALDelta.Apply), which one at a time may do.
	computing map[int64]*sync.Mutex
	running   bool // Run keeps the windows
}

// cachedWindow is a source's window as last computed, with what it was computed from.
type cachedWindow struct {
	version string
	in      WindowInput
	w       Window
	facts   windowFacts
	// wal and histories are the source's WAL rows as the catalog holds them (in.WAL
	// leaves out the missing ones), read up to cursor: a computation reads only what
	// changed since.
	wal, histories []store.WALFile
	cursor         store.WALCursor
	// listedAt is when the repository's WAL of the source was last listed; missing are
	// the catalog's WAL files (of ID up to listedUpTo) that the listing did not find.
	// A WAL row recorded later (a higher ID) was stored in the repository before it was
	// recorded, so only a listing can find it missing: one is made every ListEvery.
	listedAt   time.Time
	listedUpTo int64
	missing    map[string]bool
}

// windowFailure is a failed computation of a source's window.
type windowFailure struct {
	at  time.Time
	err error
}

// ErrWindowUnknown is what a read gets while a kept window was never computed (the first
// computation runs in the background after start-up) or the last one failed.
var ErrWindowUnknown = errors.New("the restorable window is not known yet: Backstop is computing it")

// NewWindowCache returns an empty cache over st and repo.
func NewWindowCache(st *store.Store, repo *repository.Repo) *WindowCache {
	return &WindowCache{store: st, repo: repo, m: map[int64]*cachedWindow{}, failed: map[int64]windowFailure{},
		computing: map[int64]*sync.Mutex{}}
}

// maxAge is ListEvery's default: the repository is the truth, and health must reflect a
// broken guarantee within a minute.
const maxAge = time.Minute

func (c *WindowCache) listEvery() time.Duration {
	if c.ListEvery > 0 {
		return c.ListEvery
	}
	return maxAge
}

// Window returns src's window and the inputs it was computed from (which callers must not
// change). While Run keeps the windows it is the last one computed, or ErrWindowUnknown.
func (c *WindowCache) Window(ctx context.Context, src store.Source) (Window, WindowInput, error) {
	cw, err := c.entry(ctx, src)
	if err != nil {
		return Window{}, WindowInput{}, err
	}
	return cw.w, cw.in, nil
}

// Current is Window computed now if it is missing or out of date, even while Run keeps
// the windows: for the actions that plan from it (a restore, a drill), which may not wait
// for the refresh or start from a window before the newest change.
func (c *WindowCache) Current(ctx context.Context, src store.Source) (Window, WindowInput, error) {
	cw, err := c.refresh(ctx, src)
	if err != nil {
		return Window{}, WindowInput{}, err
	}
	return cw.w, cw.in, nil
}

// entry returns src's cached window: as kept by Run, or else computed again if what it is
// computed from changed or the repository was not listed for ListEvery.
func (c *WindowCache) entry(ctx context.Context, src store.Source) (*cachedWindow, error) {
	c.mu.Lock()
	cw, running := c.m[src.ID], c.running
	failure, failed := c.failed[src.ID]
	c.mu.Unlock()
	if running {
		switch {
		case cw != nil:
			return cw, nil
		case failed:
			return nil, fmt.Errorf("%w (the last attempt, %s, failed: %w)", ErrWindowUnknown, failure.at.UTC().Format(time.DateTime+" UTC"), failure.err)
		}
		return nil, ErrWindowUnknown
	}
	return c.refresh(ctx, src)
}

// refresh computes src's window again if it is missing, if what it is computed from
// changed, or if the repository's WAL is due to be listed again, and keeps it.
func (c *WindowCache) refresh(ctx context.Context, src store.Source) (*cachedWindow, error) {
	version, err := c.store.WindowVersion(ctx, src.ID)
	if err != nil {
		return nil, err
	}
	computing := c.computingLock(src.ID)
	computing.Lock()
	defer computing.Unlock()
	c.mu.Lock()
	prev := c.m[src.ID]
	c.mu.Unlock()
	if prev != nil && prev.version == version && time.Since(prev.listedAt) < c.listEvery() {
		return prev, nil
	}
	cw, err := c.compute(ctx, src, version, prev)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			c.failed[src.ID] = windowFailure{at: time.Now(), err: err}
		}
		return nil, err
	}
	delete(c.failed, src.ID)
	c.m[src.ID] = cw
	return cw, nil
}

// compute computes src's window from the catalog at version, listing the repository's WAL
// only when prev's listing is older than ListEvery. An unchanged catalog whose listing finds
// the same files missing keeps prev's window, checked now.
func (c *WindowCache) compute(ctx context.Context, src store.Source, version string, prev *cachedWindow) (*cachedWindow, error) {
	now := time.Now()
	due := prev == nil || now.Sub(prev.listedAt) >= c.listEvery()
	var missing map[string]bool
	if due && prev != nil && prev.version == version {
		var err error
		if missing, err = c.listMissing(ctx, src, prev.in.WAL, prev.missing); err != nil {
			return nil, err
		}
		if maps.Equal(missing, prev.missing) {
			cw := *prev
			cw.listedAt = now
			return &cw, nil
		}
	}
	cw := &cachedWindow{version: version}
	if err := cw.readWAL(ctx, c.store, src.ID, prev); err != nil {
		return nil, err
	}
	in, err := windowInputsWith(ctx, c.store, src.ID, cw.wal, cw.histories, RepositoryHistory(ctx, c.repo, src.SystemIdentifier))
	if err != nil {
		return nil, err
	}
	if due {
		if missing == nil {
			if missing, err = c.listMissing(ctx, src, in.WAL, nil); err != nil {
				return nil, err
			}
		}
		cw.listedAt, cw.missing = now, missing
		for _, f := range in.WAL {
			cw.listedUpTo = max(cw.listedUpTo, f.ID)
		}
	} else {
		cw.listedAt, cw.listedUpTo, cw.missing = prev.listedAt, prev.listedUpTo, prev.missing
	}
	if len(cw.missing) > 0 { // in.WAL is cw.wal's array: filter a copy
		in.WAL = slices.DeleteFunc(slices.Clone(in.WAL), func(f store.WALFile) bool { return f.ID <= cw.listedUpTo && cw.missing[f.Name] })
	}
	cw.in, cw.w = in, ComputeWindow(in)
	cw.w.ComputedAt = now
	cw.facts = factsOf(cw.in, cw.w)
	return cw, nil
}

// computingLock returns the lock that serializes source sourceID's computations.
func (c *WindowCache) computingLock(sourceID int64) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.computing[sourceID]
	if !ok {
		l = &sync.Mutex{}
		c.computing[sourceID] = l
	}
	return l
}

// readWAL brings cw's WAL rows up to date: prev's with what changed since they were read,
// or all of them when there is no prev. Called with the source's computing lock held.
func (cw *cachedWindow) readWAL(ctx context.Context, st *store.Store, sourceID int64, prev *cachedWindow) error {
	var since store.WALCursor
	if prev != nil {
		since, cw.wal, cw.histories = prev.cursor, prev.wal, prev.histories
	}
	d, err := st.WALSince(ctx, sourceID, since)
	if err != nil {
		return fmt.Errorf("window inputs: %w", err)
	}
	wal, histories := splitHistories(d.Files)
	cw.wal = store.WALDelta{Full: d.Full, Files: wal, Gone: d.Gone}.Apply(cw.wal)
	cw.histories = store.WALDelta{Full: d.Full, Files: histories, Gone: d.Gone}.Apply(cw.histories)
	cw.cursor = d.Cursor
	return nil
}

// listMissing lists src's WAL in the repository and returns the names among files and
// known (names already missing) that it does not hold.
func (c *WindowCache) listMissing(ctx context.Context, src store.Source, files []store.WALFile, known map[string]bool) (map[string]bool, error) {
	names, err := c.repo.WALNames(ctx, src.SystemIdentifier)
	if err != nil {
		return nil, fmt.Errorf("window inputs: %w", err)
	}
	held := make(map[string]bool, len(names))
	for _, n := range names {
		held[n] = true
	}
	missing := map[string]bool{}
	for _, f := range files {
		if !held[f.Name] {
			missing[f.Name] = true
		}
	}
	for n := range known {
		if !held[n] {
			missing[n] = true
		}
	}
	return missing, nil
}

// refreshEvery is how often Run looks for sources whose window inputs changed: a page
// shows the window of a change within this plus the time to compute it.
const refreshEvery = 2 * time.Second

// Run keeps every source's window until ctx is done: at once and then every refreshEvery,
// each source whose window is missing or out of date is computed again, one at a time.
// Reads meanwhile get the last window computed and never compute.
func (c *WindowCache) Run(ctx context.Context, log *slog.Logger) {
	c.Keep()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		if err := c.RefreshAll(ctx); err != nil && ctx.Err() == nil {
			log.Warn("restorable windows", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Keep makes reads serve the windows as kept, never computing one: Run calls it, and
// serve before it serves, so that no page computes while Run starts.
func (c *WindowCache) Keep() {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
}

// RefreshAll computes again the window of every source whose window is missing or out of
// date, and returns the failures (each also kept for health: see GatherFacts).
func (c *WindowCache) RefreshAll(ctx context.Context) error {
	srcs, err := c.store.Sources(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, src := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := c.refresh(ctx, src); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src.Name, err))
		}
	}
	return errors.Join(errs...)
}

// windowFacts are the facts health reads from a source's window: the gaps with archived
// WAL after them, the tablespaces that block restores, and how much the newest backup
// changed. Each scans every WAL row or backup, so they are computed with the window.
type windowFacts struct {
	gaps        []health.Gap
	tablespaces []string
	change      *health.Change
}

// facts returns src's window facts (shared: callers must not change them) and, when they
// cannot be trusted now, why: the window is not computed yet (pending), its last
// computation failed and the repository was not checked for ListEvery, or it was not
// checked for twice that (Run stopped or far behind).
func (c *WindowCache) facts(ctx context.Context, src store.Source) (wf windowFacts, unknown string, pending bool, err error) {
	cw, err := c.entry(ctx, src)
	c.mu.Lock()
	failure, failed := c.failed[src.ID]
	c.mu.Unlock()
	switch {
	case errors.Is(err, ErrWindowUnknown) && !failed:
		return wf, "Backstop is computing the restorable window (after start-up).", true, nil
	case errors.Is(err, ErrWindowUnknown):
		return wf, fmt.Sprintf("Backstop cannot compute the restorable window: %v.", failure.err), false, nil
	case err != nil:
		return wf, "", false, err
	case failed && time.Since(cw.listedAt) >= c.listEvery():
		return cw.facts, fmt.Sprintf("Backstop has not been able to check the restorable window since %s: %v.",
			cw.listedAt.UTC().Format(time.DateTime+" UTC"), failure.err), false, nil
	case time.Since(cw.listedAt) >= 2*c.listEvery():
		// Run is stopped or far behind: what the window rests on is not checked.
		return cw.facts, fmt.Sprintf("Backstop has not checked the restorable window since %s.",
			cw.listedAt.UTC().Format(time.DateTime+" UTC")), false, nil
	}
	return cw.facts, "", false, nil
}

func factsOf(in WindowInput, w Window) windowFacts {
	var wf windowFacts
	// A hole at the end of the archive is WAL not archived yet (lag measures it); a gap
	// is a hole with archived WAL after it.
	for _, g := range archivedGaps(in, w) {
		hg := health.Gap{Segment: g.Segment, FromLSN: g.FromLSN.String(), ToLSN: g.ToLSN.String(), Timeline: g.Timeline,
			RestorableBefore: g.RestorableUntil}
		for _, r := range w.Ranges {
			if r.From.After(g.RestorableUntil) {
				hg.RestorableAfter = r.From
				break
			}
		}
		wf.gaps = append(wf.gaps, hg)
	}
	for _, tc := range BlockingTablespaces(in.Backups, in.Tablespaces) {
		wf.tablespaces = append(wf.tablespaces, fmt.Sprintf("OID %d at %s (LSN %s)", tc.OID, tc.Location, tc.LSN))
	}
	wf.change = backupChange(in.Backups)
	return wf
}

// Invalidate makes source sourceID's window be computed again, with a listing of the
// repository (after a verification found the repository differs from the catalog, say):
// at the next read, or by Run, which serves the last window until then. A computation
// in progress finishes first, so that it cannot put back the window invalidated.
func (c *WindowCache) Invalidate(sourceID int64) {
	computing := c.computingLock(sourceID)
	computing.Lock()
	defer computing.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cw, ok := c.m[sourceID]; ok {
		stale := *cw
		stale.version, stale.listedAt = "", time.Time{}
		c.m[sourceID] = &stale
	}
}
