package handlers

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// pageParam is the 1-based page number of a list, from ?page=N.
func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func (h *Handler) showBackupList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	names, err := h.sourceNames(ctx)
	if err != nil {
		return err
	}
	bs, err := h.store.Backups(ctx, store.BackupFilter{Limit: 200})
	if err != nil {
		return err
	}
	vm := web.BackupsVM{Now: h.now()}
	for _, b := range bs {
		vm.Rows = append(vm.Rows, h.withProgress(ctx, backupRow(b, names[b.SourceID]), b))
	}
	return h.page(w, r, "Backups", web.NavBackups, web.BackupsPage(vm))
}

const filesPerPage = 100

func (h *Handler) showBackup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	b := backupFrom(r)
	src, err := h.store.Source(ctx, b.SourceID)
	if err != nil {
		return err
	}
	page := pageParam(r)
	files, err := h.store.BackupFiles(ctx, b.ID, filesPerPage, (page-1)*filesPerPage)
	if err != nil {
		return err
	}
	vm := web.BackupVM{
		Now:              h.now(),
		BackupRow:        h.withProgress(ctx, backupRow(b, src.Name), b),
		Label:            b.Label,
		RepositoryID:     b.RepoID,
		Timeline:         b.Timeline,
		PGVersion:        pgVersion(b.PGVersion),
		SystemIdentifier: b.SystemIdentifier,
		WALBytes:         b.Stats.WALBytes,
		JobID:            b.JobID,
		Error:            b.Error,
		FilesPage:        web.Pager{Page: page, PerPage: filesPerPage, Total: b.Stats.FileCount},
		Pin:              pinVM(b.Pin),
	}
	if b.State == store.BackupComplete {
		vm.RestoreCommand = fmt.Sprintf("backstop restore --backup %d --into /path/to/new/datadir", b.ID)
	}
	for _, f := range files {
		vm.Files = append(vm.Files, web.FileRow{Path: f.Path, Type: f.Type, Size: f.Size, Blocks: f.Blocks})
	}
	return h.page(w, r, fmt.Sprintf("Backup %d", b.ID), web.NavBackups, web.BackupPage(vm))
}
