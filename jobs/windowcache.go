package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// WindowCache keeps each source's restorable window, computed again only when what it is
// computed from changes (store.WindowVersion): pages, alerts and metrics read it without
// reading every WAL row, listing the repository and decrypting history files each time.
type WindowCache struct {
	store *store.Store
	repo  *repository.Repo

	mu sync.Mutex
	m  map[int64]*cachedWindow
}

type cachedWindow struct {
	version string
	in      WindowInput
	w       Window
	at      time.Time

	// facts is what health reads from the window, computed on first use.
	once  sync.Once
	facts windowFacts
}

// NewWindowCache returns an empty cache over st and repo.
func NewWindowCache(st *store.Store, repo *repository.Repo) *WindowCache {
	return &WindowCache{store: st, repo: repo, m: map[int64]*cachedWindow{}}
}

// maxAge bounds how long a window is reused without change in the catalog: the
// repository is the truth (a WAL file deleted there behind the catalog's back shows as a
// gap within this).
const maxAge = time.Minute

// Window returns src's window and the inputs it was computed from (which callers must not
// change).
func (c *WindowCache) Window(ctx context.Context, src store.Source) (Window, WindowInput, error) {
	cw, err := c.entry(ctx, src)
	if err != nil {
		return Window{}, WindowInput{}, err
	}
	return cw.w, cw.in, nil
}

// entry returns src's cached window, computed again if what it is computed from changed.
func (c *WindowCache) entry(ctx context.Context, src store.Source) (*cachedWindow, error) {
	version, err := c.store.WindowVersion(ctx, src.ID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cw, ok := c.m[src.ID]
	c.mu.Unlock()
	if ok && cw.version == version && time.Since(cw.at) < maxAge {
		return cw, nil
	}
	in, err := LoadWindowInput(ctx, c.store, c.repo, src)
	if err != nil {
		return nil, err
	}
	cw = &cachedWindow{version: version, in: in, w: ComputeWindow(in), at: time.Now()}
	c.mu.Lock()
	c.m[src.ID] = cw
	c.mu.Unlock()
	return cw, nil
}

// windowFacts are the facts health reads from a source's window: the gaps with archived
// WAL after them, the tablespaces that block restores, and how much the newest backup
// changed. Each scans every WAL row or backup, so they are computed once per window.
type windowFacts struct {
	gaps        []health.Gap
	tablespaces []string
	change      *health.Change
}

// facts returns src's window facts (shared: callers must not change them).
func (c *WindowCache) facts(ctx context.Context, src store.Source) (windowFacts, error) {
	cw, err := c.entry(ctx, src)
	if err != nil {
		return windowFacts{}, err
	}
	cw.once.Do(func() { cw.facts = factsOf(cw.in, cw.w) })
	return cw.facts, nil
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

// Invalidate forgets source sourceID's window: the next read computes it again (after a
// verification found the repository differs from the catalog, say).
func (c *WindowCache) Invalidate(sourceID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, sourceID)
}
