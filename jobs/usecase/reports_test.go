package usecase

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// TestReportSourceNamedTwice: a source named twice in a request is reported once, so that
// a signed report never counts one source's backups, drills and days twice.
func TestReportSourceNamedTwice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, repo, nil, Paths{Home: dir}, slog.New(slog.NewTextHandler(io.Discard, nil))).UseWindows(jobs.NewWindowCache(st, repo))
	if _, err := st.CreateSource(ctx, store.SourceParams{Name: "orders", DSN: "postgres://x@127.0.0.1:1/postgres",
		SystemIdentifier: "7330000000000000001", PGVersion: 150004}); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	r, err := s.BuildReport(ctx, CLIActor("root"), ReportRequest{From: day.AddDate(0, 0, -2), To: day.AddDate(0, 0, -1),
		Sources: []string{"orders", "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sources) != 1 || len(r.Summary.Sources) != 1 {
		t.Errorf("BuildReport(orders, orders) reports %d sources (%v), want 1", len(r.Sources), r.Summary.Sources)
	}
}
