package usecase

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/jackc/pgx/v5/pgconn"
)

// AddSource checks a database and registers it. It returns warnings a person should read
// (the same cluster registered under another name: a second slot, holding WAL twice).
func (s *Service) AddSource(ctx context.Context, a Actor, name, dsn string) (store.Source, []string, error) {
	if err := Authorize(a, AddSource); err != nil {
		return store.Source{}, nil, err
	}
	if strings.TrimSpace(dsn) == "" {
		return store.Source{}, nil, &store.ValidationError{Field: "dsn", Message: "enter a connection string"}
	}
	src, err := jobs.RegisterSource(ctx, s.store, name, dsn)
	if err != nil {
		return store.Source{}, nil, err
	}
	s.audit(ctx, a, "source.create", src.Name, map[string]any{"dsn": pg.MaskDSN(src.DSN), "system_identifier": src.SystemIdentifier})
	warnings, err := s.sameSystem(ctx, src)
	if rerr := s.recordSource(ctx, src); rerr != nil {
		warnings = append(warnings, rerr.Error())
	}
	return src, warnings, err
}

// recordSource writes the source's record into the repository after the catalog changed,
// so that a lost catalog can be rebuilt with it. The catalog already holds the change:
// a failure is logged and returned for showing, not undone; the next backup of the
// source writes the record again.
func (s *Service) recordSource(ctx context.Context, src store.Source) error {
	if s.repo == nil {
		return nil
	}
	removedAt, err := s.store.SourceRemovedAt(ctx, src.ID)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted outright (it had nothing in the catalog): recorded as removed.
		now := s.now().UTC()
		removedAt, err = &now, nil
	}
	if err == nil {
		err = jobs.PutSourceRecord(context.WithoutCancel(ctx), s.repo, src, removedAt)
	}
	if err != nil {
		s.log.Error("write the source's record into the repository", "source", src.Name, "err", err)
		return fmt.Errorf("source %s is saved in the catalog, but its record could not be written into the repository "+
			"(a catalog rebuild needs it; its next backup writes it again): %v", src.Name, err)
	}
	return nil
}

// sameSystem names the other active sources of src's cluster.
func (s *Service) sameSystem(ctx context.Context, src store.Source) ([]string, error) {
	all, err := s.store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	removed, err := s.store.RemovedSourceIDs(ctx)
	if err != nil {
		return nil, err
	}
	var others []string
	for _, o := range all {
		if o.ID != src.ID && !removed[o.ID] && o.SystemIdentifier == src.SystemIdentifier {
			others = append(others, o.Name)
		}
	}
	if len(others) == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("System %s is also registered as %s: each source holds its own replication slot, so the server keeps WAL for each. Remove the duplicate unless it is a restored copy.",
		src.SystemIdentifier, strings.Join(others, ", "))}, nil
}

// ChangeSource replaces a source's connection string (a new password, host or port) after
// checking it reaches the same cluster. Nothing is saved when the check fails.
func (s *Service) ChangeSource(ctx context.Context, a Actor, sourceID int64, dsn string) (store.Source, error) {
	if err := Authorize(a, ChangeSource); err != nil {
		return store.Source{}, err
	}
	if strings.TrimSpace(dsn) == "" {
		return store.Source{}, &store.ValidationError{Field: "dsn", Message: "enter the new connection string"}
	}
	src, err := s.activeSource(ctx, sourceID)
	if err != nil {
		return store.Source{}, err
	}
	info, err := pg.CheckSource(ctx, dsn)
	if err != nil {
		return store.Source{}, err
	}
	if info.SystemID != src.SystemIdentifier {
		return store.Source{}, &store.ValidationError{Field: "dsn", Message: fmt.Sprintf(
			"this connection string reaches system %s, not %s (source %s): register another cluster as a new source",
			info.SystemID, src.SystemIdentifier, src.Name)}
	}
	checksums := info.DataChecksums
	updated, err := s.store.UpdateSource(ctx, src.ID, store.SourceParams{Name: src.Name, DSN: dsn, SystemIdentifier: src.SystemIdentifier,
		PGVersion: info.VersionNum, Timeline: int64(info.Timeline), DataChecksums: &checksums, Dirs: info.Dirs()})
	if err != nil {
		return store.Source{}, err
	}
	s.audit(ctx, a, "source.change", src.Name, map[string]any{"dsn": pg.MaskDSN(dsn)})
	s.recordSource(ctx, updated) //nolint:errcheck // logged; the change is saved
	return updated, nil
}

// RemoveResult says what removing a source did.
type RemoveResult struct {
	// Deleted is true when the source had nothing in the catalog and its row is gone;
	// otherwise it is marked removed and its backups and WAL stay restorable.
	Deleted bool
	// SlotDropped is true when the replication slot is gone from the server.
	SlotDropped bool
	// SlotNote says why the slot could not be dropped, and how to drop it by hand.
	SlotNote string
}

// RemoveSource stops archiving a source and drops its replication slot, so the server
// stops keeping WAL for Backstop. Its backups and archived WAL are kept, listed and
// restorable (deleting them arrives with retention's pruning). A source with a backup
// queued or running is refused.
func (s *Service) RemoveSource(ctx context.Context, a Actor, sourceID int64) (RemoveResult, error) {
	if err := Authorize(a, RemoveSource); err != nil {
		return RemoveResult{}, err
	}
	src, err := s.activeSource(ctx, sourceID)
	if err != nil {
		return RemoveResult{}, err
	}
	if j, err := s.store.ActiveJobByLock(ctx, jobs.BackupLockKey(src.ID)); err == nil {
		return RemoveResult{}, conflict("a backup of %s is %s (job %d): cancel it or wait for it to end first", src.Name, j.State, j.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return RemoveResult{}, err
	}
	var res RemoveResult
	if res.Deleted, err = s.store.RemoveSource(ctx, src.ID); err != nil {
		return RemoveResult{}, err
	}
	s.recordSource(ctx, src) //nolint:errcheck // logged; the removal is saved
	// The archiver notices within seconds and lets go of the slot; until then the server
	// refuses to drop an active slot.
	slot := jobs.SlotName(src)
	deadline := s.now().Add(20 * time.Second)
	for {
		err = pg.DropSlot(ctx, src.DSN, slot)
		var pgErr *pgconn.PgError
		inUse := errors.As(err, &pgErr) && pgErr.Code == "55006" // object_in_use: still streaming
		if !inUse || s.now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err == nil {
		res.SlotDropped = true
	} else {
		res.SlotNote = fmt.Sprintf("the replication slot %s could not be dropped (%v): drop it on the server with SELECT pg_drop_replication_slot('%s'); until then it keeps WAL",
			slot, err, slot)
	}
	s.audit(ctx, a, "source.remove", src.Name, map[string]any{"deleted": res.Deleted, "slot": slot, "slot_dropped": res.SlotDropped})
	return res, nil
}

// CheckError is a failed check of a source's database, naming the field at fault and a
// hint; the dashboard shows it next to the connection string.
type CheckError = pg.CheckError
