package handlers

import (
	"errors"
	"net/http"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

func (h *Handler) showOverview(w http.ResponseWriter, r *http.Request) error {
	sums, err := h.sourceSummaries(r.Context())
	if err != nil {
		return err
	}
	vm := web.OverviewVM{Now: h.now(), Sources: sums}
	if vm.Storage, err = h.storage(r.Context()); err != nil {
		return err
	}
	return h.page(w, r, "Overview", web.NavOverview, web.OverviewPage(vm))
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func backupLockKey(sourceID int64) string { return jobs.BackupLockKey(sourceID) }
