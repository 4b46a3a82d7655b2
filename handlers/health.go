package handlers

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/a-h/templ"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// healthVM is a verdict of jobs/health as the pages show it.
func healthVM(h health.Health) *web.HealthVM {
	return &web.HealthVM{Level: string(h.Level), Word: h.Level.Word(), Reason: h.Reason, Do: h.Do}
}

// sourceHealth is src's health now, computed in jobs/health from the catalog's facts.
func (h *Handler) sourceHealth(ctx context.Context, src store.Source) (*web.HealthVM, error) {
	if v, ok := recalledHealth(ctx, src.ID); ok {
		return healthVM(v), nil
	}
	v, err := jobs.SourceHealth(ctx, h.store, h.svc.Windows(), src, h.now())
	if err != nil {
		return nil, err
	}
	rememberHealth(ctx, src.ID, v)
	return healthVM(v), nil
}

// archiverVM is the archiver's saved state for the source page; nil when no archiver ran.
func (h *Handler) archiverVM(ctx context.Context, src store.Source) (*web.ArchiverVM, error) {
	a, err := h.store.ArchiverState(ctx, src.ID)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := h.now()
	f, err := jobs.SourceFacts(ctx, h.store, src, now)
	if err != nil {
		return nil, err
	}
	vm := &web.ArchiverVM{State: string(a.State), Reason: a.Reason, Since: a.Since, FlushedLSN: a.FlushedLSN,
		ServerLSN: a.ServerLSN, BehindBytes: a.BehindBytes, BehindSeconds: a.BehindSeconds(now), SlotName: a.SlotName,
		SlotWALStatus: a.SlotWALStatus, SlotRetainedBytes: a.SlotRetainedBytes, GapFromLSN: a.GapFromLSN,
		GapToLSN: a.GapToLSN, NeedsBackup: health.NeedsBackup(f), UpdatedAt: a.UpdatedAt}
	if a.GapAt != nil {
		vm.GapAt = *a.GapAt
	}
	return vm, nil
}

// sourcesHealth returns every source with its health, in the catalog's order. A verdict
// this request already reached (the overview's cards) is reused: the navigation's
// indicator then costs no second look at the facts.
func (h *Handler) sourcesHealth(ctx context.Context) ([]store.Source, []health.Health, error) {
	srcs, err := h.store.Sources(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]health.Health, len(srcs))
	for i, s := range srcs {
		if v, ok := recalledHealth(ctx, s.ID); ok {
			out[i] = v
			continue
		}
		if out[i], err = jobs.SourceHealth(ctx, h.store, h.svc.Windows(), s, h.now()); err != nil {
			return nil, nil, err
		}
		rememberHealth(ctx, s.ID, out[i])
	}
	return srcs, out, nil
}

// healthMemo holds the verdicts reached while serving one request, by source.
type healthMemo struct {
	mu sync.Mutex
	m  map[int64]health.Health
}

type healthMemoKey struct{}

// withHealthMemo returns ctx with an empty memo of verdicts, for one request.
func withHealthMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, healthMemoKey{}, &healthMemo{m: map[int64]health.Health{}})
}

// rememberHealth records source sourceID's verdict in ctx's memo, if it has one.
func rememberHealth(ctx context.Context, sourceID int64, v health.Health) {
	if m, ok := ctx.Value(healthMemoKey{}).(*healthMemo); ok {
		m.mu.Lock()
		m.m[sourceID] = v
		m.mu.Unlock()
	}
}

// recalledHealth is source sourceID's verdict from ctx's memo.
func recalledHealth(ctx context.Context, sourceID int64) (health.Health, bool) {
	m, ok := ctx.Value(healthMemoKey{}).(*healthMemo)
	if !ok {
		return health.Health{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[sourceID]
	return v, ok
}

// navHealth is the layout's indicator; nil (shown as nothing) if the catalog cannot
// say, which the page's own content will then report.
func (h *Handler) navHealth(ctx context.Context, nav web.Nav) *web.NavHealthVM {
	_, hs, err := h.sourcesHealth(ctx)
	if err != nil {
		h.log.Warn("health for the navigation", "err", err)
		return nil
	}
	vm := &web.NavHealthVM{Total: len(hs), Overview: nav == web.NavOverview}
	for _, x := range hs {
		switch x.Level {
		case health.Broken:
			vm.Broken++
		case health.Warning:
			vm.Warning++
		}
	}
	return vm
}

// showHealth is what the navigation's indicator polls: itself, and on the overview each
// card's health out of band, so that a broken source shows within seconds everywhere.
func (h *Handler) showHealth(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	srcs, hs, err := h.sourcesHealth(ctx)
	if err != nil {
		return err
	}
	vm := web.NavHealthVM{Total: len(hs), Overview: r.URL.Query().Get("page") == "overview"}
	parts := []templ.Component{}
	for i, x := range hs {
		switch x.Level {
		case health.Broken:
			vm.Broken++
		case health.Warning:
			vm.Warning++
		}
		if vm.Overview {
			parts = append(parts, web.SourceHealthOOB(srcs[i].ID, *healthVM(x)))
			// The answer to "can I restore now?" follows the health, from the cached window.
			w, unknown, err := h.keptWindow(ctx, srcs[i])
			if err != nil {
				return err
			}
			parts = append(parts, web.RestoreAnswerOOB(srcs[i].ID, restoreAnswer(x, w, unknown)))
		}
	}
	parts = append([]templ.Component{web.NavHealth(vm)}, parts...)
	return render(w, r, http.StatusOK, templ.Join(parts...))
}

// healthz answers load balancers and monitors: 503 with the reason when the catalog or
// the repository cannot be written or the disk holding either is nearly full.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := health.CheckService(ctx, h.svc.ServiceChecks(ctx)); err != nil {
		h.log.Warn("healthz", "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
