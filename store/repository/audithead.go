package repository

// The audit chain's head.
//
// Layout:
//
//	audit/head   a sealed JSON record of the catalog's newest audit entry: its id, its hash
//	             and its time, replaced each time Backstop writes it
//
// The catalog's audit log is a hash chain (store/auditchain.go), which shows an edited or
// deleted entry; the head kept here shows a catalog replaced as a whole (an older copy, or
// a rewritten chain), because it names an entry such a catalog does not have. It is
// sealed with the repository key, so only a holder of the key can forge it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

const (
	auditHeadMagic = "BSA1"
	auditHeadKey   = "audit/head"
)

// AuditHead is the newest audit entry of the catalog, as last written to the repository.
type AuditHead struct {
	ID   int64     `json:"id"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
	// WrittenAt is when it was written.
	WrittenAt time.Time `json:"written_at"`
}

// PutAuditHead stores h as the audit chain's head, replacing the one stored before, and
// makes it durable.
func (r *Repo) PutAuditHead(ctx context.Context, h AuditHead) error {
	if h.ID <= 0 || len(h.Hash) != 64 {
		return fmt.Errorf("put audit head: invalid head %d %q", h.ID, h.Hash)
	}
	data, err := json.Marshal(&h)
	if err != nil {
		return fmt.Errorf("put audit head: %w", err)
	}
	sealed, err := r.seal(nil, auditHeadMagic, []byte(auditHeadKey), data)
	if err != nil {
		return fmt.Errorf("put audit head: %w", err)
	}
	if err := r.st.Put(ctx, auditHeadKey, sealed, false); err != nil {
		return fmt.Errorf("put audit head: %w", err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return fmt.Errorf("put audit head: %w", err)
	}
	return nil
}

// AuditHead reads and verifies the stored head. None stored yet yields an error wrapping
// ErrNotFound; one that does not open with the repository key, a *CorruptError.
func (r *Repo) AuditHead(ctx context.Context) (AuditHead, error) {
	sealed, err := r.st.Get(ctx, auditHeadKey)
	if errors.Is(err, storage.ErrNotExist) {
		return AuditHead{}, fmt.Errorf("read audit head: %w", ErrNotFound)
	}
	if err != nil {
		return AuditHead{}, fmt.Errorf("read audit head: %w", err)
	}
	data, err := r.open(nil, sealed, auditHeadMagic, []byte(auditHeadKey), auditHeadKey)
	if err != nil {
		return AuditHead{}, err
	}
	var h AuditHead
	if err := json.Unmarshal(data, &h); err != nil {
		return AuditHead{}, &CorruptError{Object: auditHeadKey, Reason: "invalid audit head: " + err.Error()}
	}
	return h, nil
}
