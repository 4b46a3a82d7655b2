package usecase

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// cancels records the jobs it was asked to cancel.
type cancels []int64

func (c *cancels) Start(context.Context, jobs.Params) (store.Job, error) {
	return store.Job{}, errors.New("not in this test")
}

func (c *cancels) Cancel(_ context.Context, id int64) error {
	*c = append(*c, id)
	return nil
}

// TestCancelRestoreOfGoneBackup: a restore job whose backup is no longer in the catalog
// restores nothing of any source, so the scope check lets anyone who may cancel jobs
// cancel it; a restore of a source outside the scope is still refused.
func TestCancelRestoreOfGoneBackup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var done cancels
	s := New(st, nil, &done, Paths{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	src, err := st.CreateSource(ctx, store.SourceParams{Name: "orders", DSN: "postgres://x@127.0.0.1:1/postgres",
		SystemIdentifier: "7330000000000000001", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, CLIActor("root"), "olga", "a long enough password", store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRestoreSources(ctx, CLIActor("root"), "olga", false, nil); err != nil {
		t.Fatal(err)
	}
	olga := Actor{Name: "olga", Role: store.RoleOperator}
	gone, err := st.InsertJob(ctx, store.JobParams{Kind: jobs.KindRestore, Args: json.RawMessage(`{"backup_id": 9999, "into": "/tmp/x"}`)})
	if err != nil {
		t.Fatal(err)
	}
	pitr, err := st.InsertJob(ctx, store.JobParams{Kind: jobs.KindPITR, SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CancelJob(ctx, olga, gone.ID); err != nil {
		t.Errorf("CancelJob(restore of a gone backup) as olga = %v, want nil", err)
	}
	var fe *ForbiddenError
	if err := s.CancelJob(ctx, olga, pitr.ID); !errors.As(err, &fe) {
		t.Errorf("CancelJob(restore of orders) as olga = %v, want a *ForbiddenError", err)
	}
	if !slices.Equal(done, cancels{gone.ID}) {
		t.Errorf("cancelled jobs %v, want only %d", done, gone.ID)
	}
}
