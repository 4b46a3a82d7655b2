package jobs

import (
	"context"
	"sync"
	"time"

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
	m  map[int64]cachedWindow
}

type cachedWindow struct {
	version string
	in      WindowInput
	w       Window
	at      time.Time
}

// NewWindowCache returns an empty cache over st and repo.
func NewWindowCache(st *store.Store, repo *repository.Repo) *WindowCache {
	return &WindowCache{store: st, repo: repo, m: map[int64]cachedWindow{}}
}

// maxAge bounds how long a window is reused without change in the catalog: the
// repository is the truth (a WAL file deleted there behind the catalog's back shows as a
// gap within this).
const maxAge = time.Minute

// Window returns src's window and the inputs it was computed from (which callers must not
// change).
func (c *WindowCache) Window(ctx context.Context, src store.Source) (Window, WindowInput, error) {
	version, err := c.store.WindowVersion(ctx, src.ID)
	if err != nil {
		return Window{}, WindowInput{}, err
	}
	c.mu.Lock()
	cw, ok := c.m[src.ID]
	c.mu.Unlock()
	if ok && cw.version == version && time.Since(cw.at) < maxAge {
		return cw.w, cw.in, nil
	}
	in, err := LoadWindowInput(ctx, c.store, c.repo, src)
	if err != nil {
		return Window{}, WindowInput{}, err
	}
	w := ComputeWindow(in)
	c.mu.Lock()
	c.m[src.ID] = cachedWindow{version: version, in: in, w: w, at: time.Now()}
	c.mu.Unlock()
	return w, in, nil
}

// Invalidate forgets source sourceID's window: the next read computes it again (after a
// verification found the repository differs from the catalog, say).
func (c *WindowCache) Invalidate(sourceID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, sourceID)
}
