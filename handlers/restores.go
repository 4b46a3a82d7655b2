package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

func (h *Handler) showRestores(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	names, err := h.sourceNames(ctx)
	if err != nil {
		return err
	}
	xs, err := h.store.Restores(ctx, false)
	if err != nil {
		return err
	}
	vm := web.RestoresVM{Now: h.now()}
	for _, x := range xs {
		vm.Rows = append(vm.Rows, restoreRow(x, names[x.SourceID]))
	}
	return h.page(w, r, "Restores", web.NavRestores, web.RestoresPage(vm))
}

func restoreRow(x store.Restore, sourceName string) web.RestoreRow {
	row := web.RestoreRow{ID: x.ID, SourceID: x.SourceID, SourceName: sourceName, Target: restoreTargetVM(x),
		State: string(x.State), Port: x.Port, DataDir: x.DataDir, CreatedAt: x.CreatedAt, JobID: x.JobID, Error: x.Error}
	if x.Port != 0 {
		row.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", x.Port)
	}
	return row
}

// restoreTargetVM reads a restore's recorded target back for display.
func restoreTargetVM(x store.Restore) web.RestoreTarget {
	t, err := jobs.ParseTarget(x.Target)
	if err != nil {
		return web.RestoreTarget{Kind: web.TargetLatest}
	}
	vm := targetVM(t)
	if t.Kind == jobs.TargetLatest && x.LastCommitAt != nil {
		vm.Time = *x.LastCommitAt
	}
	return vm
}

func restoreFrom(r *http.Request) store.Restore {
	return r.Context().Value(restoreKey).(store.Restore)
}

// changeRestore runs one action on a restored instance and returns to the list.
func (h *Handler) changeRestore(action string) appHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		x := restoreFrom(r)
		ctx := r.Context()
		var err error
		switch action {
		case "stop":
			err = h.stopRestore(ctx, x)
		case "start":
			err = h.startRestored(ctx, x)
		case "delete":
			err = h.deleteRestore(ctx, x)
		}
		var he *httpError
		if errors.As(err, &he) {
			setFlash(w, web.FlashError, he.message)
		} else if err != nil {
			return err
		} else {
			h.audit(r, "restore."+action, fmt.Sprintf("restore %d", x.ID), "")
			setFlash(w, web.FlashSuccess, fmt.Sprintf("Restored instance %d: %s done.", x.ID, action))
		}
		http.Redirect(w, r, "/restores", http.StatusSeeOther)
		return nil
	}
}

func (h *Handler) restoreServer(ctx context.Context, x store.Restore) (*pg.Cluster, error) {
	bin, err := pg.FindBinaries(ctx, x.PGMajor)
	if err != nil {
		return nil, err
	}
	return pg.DataDirServer(bin, x.DataDir, x.Port)
}

func (h *Handler) stopRestore(ctx context.Context, x store.Restore) error {
	if x.State != store.RestoreRunning {
		return &httpError{status: http.StatusConflict, message: fmt.Sprintf("Restored instance %d is %s, not running.", x.ID, x.State)}
	}
	c, err := h.restoreServer(ctx, x)
	if err != nil {
		return err
	}
	if err := c.Stop(ctx, "fast"); err != nil {
		return err
	}
	_, err = h.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreStopped})
	return err
}

func (h *Handler) startRestored(ctx context.Context, x store.Restore) error {
	if x.State != store.RestoreStopped || x.Port == 0 {
		return &httpError{status: http.StatusConflict, message: fmt.Sprintf("Restored instance %d is %s: only a stopped instance can be started.", x.ID, x.State)}
	}
	bin, err := pg.FindBinaries(ctx, x.PGMajor)
	if err != nil {
		return err
	}
	sockets, err := os.MkdirTemp("", "backstop-pg-")
	if err != nil {
		return err
	}
	os.Remove(sockets)
	if _, err := pg.StartDataDir(ctx, pg.ServerOptions{Bin: bin, DataDir: x.DataDir, Port: x.Port,
		LogFile: filepath.Join(x.DataDir, "log", "backstop-restore.log"), SocketDir: sockets}); err != nil {
		return err
	}
	_, err = h.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreRunning})
	return err
}

// deleteRestore stops the instance and removes its data directory. Only directories that
// Backstop made (below its restore root, or recorded as this restore's) are removed.
func (h *Handler) deleteRestore(ctx context.Context, x store.Restore) error {
	if x.State == store.RestoreRestoring {
		return &httpError{status: http.StatusConflict, message: fmt.Sprintf("Restored instance %d is still being restored: cancel its job first.", x.ID)}
	}
	if x.State == store.RestoreRunning {
		c, err := h.restoreServer(ctx, x)
		if err != nil {
			return err
		}
		if err := c.Stop(ctx, "fast"); err != nil {
			return err
		}
	}
	if x.DataDir == "" || x.DataDir == "/" || !strings.HasPrefix(filepath.Clean(x.DataDir), "/") {
		return fmt.Errorf("refusing to delete data directory %q", x.DataDir)
	}
	if err := os.RemoveAll(x.DataDir); err != nil {
		return err
	}
	_, err := h.store.UpdateRestore(ctx, x.ID, store.RestoreUpdate{State: store.RestoreDeleted})
	return err
}
