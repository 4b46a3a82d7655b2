package repository

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuditHead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, err := Init(t.TempDir(), make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.AuditHead(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("AuditHead(none written) = %v, want ErrNotFound", err)
	}
	at := time.Date(2026, 12, 7, 5, 0, 0, 123456000, time.UTC)
	for _, h := range []AuditHead{
		{ID: 41, Hash: strings.Repeat("a", 64), At: at, WrittenAt: at.Add(time.Minute)},
		{ID: 42, Hash: strings.Repeat("b", 64), At: at.Add(time.Second), WrittenAt: at.Add(2 * time.Minute)},
	} {
		if err := r.PutAuditHead(ctx, h); err != nil {
			t.Fatal(err)
		}
		got, err := r.AuditHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("AuditHead() mismatch (-want +got):\n%s", diff)
		}
	}
	if err := r.PutAuditHead(ctx, AuditHead{ID: 1, Hash: "short"}); err == nil {
		t.Error("PutAuditHead(invalid hash) = nil, want an error")
	}

	// A head forged without the key, or flipped, does not open.
	sealed, err := r.st.Get(ctx, auditHeadKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)-1] ^= 1
	if err := r.st.Put(ctx, auditHeadKey, sealed, false); err != nil {
		t.Fatal(err)
	}
	var corrupt *CorruptError
	if _, err := r.AuditHead(ctx); !errors.As(err, &corrupt) {
		t.Errorf("AuditHead(flipped bit) = %v, want a *CorruptError", err)
	}
}
