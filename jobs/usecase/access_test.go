package usecase

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

// TestRestoreScopeRefusesBeforeAnything: an operator limited to billing is refused, with
// the reason, a restore of an orders backup and the management of an orders instance,
// before any job or audit entry; an admin is never limited.
func TestRestoreScopeRefusesBeforeAnything(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(st, nil, nil, Paths{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	admin := CLIActor("root")
	var srcs []store.Source
	for i, name := range []string{"orders", "billing"} {
		src, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://x@127.0.0.1:1/postgres",
			SystemIdentifier: "733000000000000000" + string(rune('1'+i)), PGVersion: 150004})
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	b, err := st.CreateBackup(ctx, store.BackupParams{SourceID: srcs[0].ID, RepoID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := st.CreateRestore(ctx, store.RestoreParams{SourceID: srcs[0].ID, Target: "latest", DataDir: t.TempDir() + "/r",
		Port: 55994, PGMajor: 15, Marker: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, admin, "olga", "a long enough password", store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRestoreSources(ctx, admin, "olga", false, []string{"billing"}); err != nil {
		t.Fatal(err)
	}
	olga := Actor{Name: "olga", Role: store.RoleOperator}
	audited := func() int {
		es, err := st.AuditEntries(ctx, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := audited()
	_, err = s.RestoreBackup(ctx, olga, b.ID, t.TempDir(), "", false)
	var fe *ForbiddenError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "limited to billing, and orders is not one of them") {
		t.Errorf("RestoreBackup(orders) as olga = %v, want a *ForbiddenError naming her sources", err)
	}
	if _, err := s.ChangeInstance(ctx, olga, x.ID, "delete"); !errors.As(err, &fe) {
		t.Errorf("ChangeInstance(orders) as olga = %v, want a *ForbiddenError", err)
	}
	if _, _, err := s.StartRestore(ctx, olga, RestoreRequest{SourceID: srcs[0].ID, Target: "latest"}); !errors.As(err, &fe) {
		t.Errorf("StartRestore(orders) as olga = %v, want a *ForbiddenError", err)
	}
	// Cancelling a restore in progress is managing it: limited like the rest.
	for _, p := range []store.JobParams{
		{Kind: jobs.KindRestore, Args: json.RawMessage(fmt.Sprintf(`{"backup_id": %d, "into": "/tmp/x"}`, b.ID))},
		{Kind: jobs.KindPITR, SourceID: srcs[0].ID},
		{Kind: jobs.KindInstance, SourceID: srcs[0].ID},
	} {
		job, err := st.InsertJob(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CancelJob(ctx, olga, job.ID); !errors.As(err, &fe) {
			t.Errorf("CancelJob(%s of orders) as olga = %v, want a *ForbiddenError", p.Kind, err)
		}
	}
	if n := audited(); n != before {
		t.Errorf("refused restores wrote %d audit entries", n-before)
	}
	if sc, err := s.RestoreScope(ctx, admin); err != nil || sc.Limited {
		t.Errorf("RestoreScope(admin) = %+v, %v; want unlimited", sc, err)
	}
	if _, err := s.SetRestoreSources(ctx, olga, "olga", true, nil); !errors.As(err, &fe) {
		t.Errorf("an operator widening her own sources = %v, want a *ForbiddenError", err)
	}
}
