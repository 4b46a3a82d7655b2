package jobs_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// TestRebuildCatalogAssignsBackups: without PostgreSQL, from records and manifests alone, a
// rebuild gives each backup the source its manifest names, else the only source of its
// system; a system shared by several sources, or one without a record, leaves the backup
// out and says why. A removed source is created removed if something belongs to it, and
// not at all otherwise.
func TestRebuildCatalogAssignsBackups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, key)
	defer repo.Close()
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	removed := t0.Add(time.Hour)
	for i, rec := range []repository.SourceRecord{
		{Name: "a", SystemIdentifier: "111"},
		{Name: "b", SystemIdentifier: "111"}, // a restored copy of a, registered as a source
		{Name: "c", SystemIdentifier: "222", RemovedAt: &removed},
		{Name: "d", SystemIdentifier: "333", RemovedAt: &removed},
	} {
		rec.DSN, rec.PGVersion = "postgres://backstop:pw@db/"+rec.Name, 150004
		rec.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		rec.UpdatedAt = rec.CreatedAt
		if err := repo.PutSource(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []repository.Manifest{
		{BackupID: "b1", SourceName: "a", SystemIdentifier: "111"},
		{BackupID: "b2", SystemIdentifier: "111"},                    // no name, shared system: unassigned
		{BackupID: "b3", SourceName: "old", SystemIdentifier: "333"}, // unknown name: by system
		{BackupID: "b4", SourceName: "e", SystemIdentifier: "444"},   // no record at all
	} {
		m.PGVersion, m.Timeline, m.StartLSN, m.EndLSN = 150004, 1, "0/2000028", "0/2000100"
		m.StartedAt, m.FinishedAt, m.BlockSize = t0.Add(2*time.Hour), t0.Add(2*time.Hour+time.Minute), repo.BlockSize()
		m.Files = []repository.File{{Path: "PG_VERSION", Type: repository.TypeFile, Mode: 0o600, Size: 0}}
		if _, err := repo.PutManifest(ctx, m.BackupID, &m); err != nil {
			t.Fatal(err)
		}
	}

	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := jobs.RebuildCatalog(ctx, st, repo, func(s string) { t.Log(s) })
	if err != nil {
		t.Fatalf("RebuildCatalog() = %v", err)
	}
	if rep.Sources != 3 || rep.RemovedSources != 1 || rep.Backups != 2 || len(rep.Unassigned) != 2 {
		t.Errorf("RebuildCatalog() = %+v; want 3 sources (1 removed), 2 backups, 2 unassigned", rep)
	}
	if u := strings.Join(rep.Unassigned, "\n"); !strings.Contains(u, "b2") || !strings.Contains(u, "several sources (a, b)") ||
		!strings.Contains(u, "b4") || !strings.Contains(u, "no source record of system 444") {
		t.Errorf("unassigned = %q; want b2 (system shared by a and b) and b4 (no record)", u)
	}
	owner := map[string]string{}
	srcs, err := st.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		at, err := st.SourceRemovedAt(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := s.Name == "d"; (at != nil) != want {
			t.Errorf("source %s removed at %v, want removed %v", s.Name, at, want)
		}
		if !s.CreatedAt.Equal(t0.Add(time.Duration(s.Name[0]-'a') * time.Minute)) {
			t.Errorf("source %s created at %v, want its original time", s.Name, s.CreatedAt)
		}
		bs, err := st.Backups(ctx, store.BackupFilter{SourceID: s.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			owner[b.RepoID] = s.Name
			if b.State != store.BackupComplete || b.StartLSN != "0/2000028" || b.EndLSN != "0/2000100" || b.Stats.FileCount != 1 {
				t.Errorf("backup %s = %+v, want complete with the manifest's LSNs and 1 file", b.RepoID, b)
			}
		}
	}
	if len(srcs) != 3 || owner["b1"] != "a" || owner["b3"] != "d" || len(owner) != 2 {
		t.Errorf("sources %d, backups by source %v; want a, b and d (c, removed with nothing, not made), b1 under a, b3 under d", len(srcs), owner)
	}
	if _, err := jobs.RebuildCatalog(ctx, st, repo, nil); err == nil {
		t.Errorf("RebuildCatalog() into a catalog that holds sources succeeded, want a refusal")
	}
}
