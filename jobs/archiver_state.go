package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
)

// Thresholds of the archiver's state.
const (
	// defaultStateEvery is how often a streaming archiver saves its state.
	defaultStateEvery = 10 * time.Second
	// behindBytes and behindFor make a streaming archiver "behind": one
	// segment, or half a minute without holding all the server has.
	behindBytes = 16 << 20
	behindFor   = 30 * time.Second
)

// removedSegment finds the segment named in the server's "requested WAL segment … has
// already been removed".
var removedSegment = regexp.MustCompile(`WAL segment ([0-9A-F]{24}) has already been removed`)

// errWrongSystem means the server at the source's address is another cluster.
var errWrongSystem = errors.New("wrong system identifier")

// errSlotInvalidated means the server invalidated the slot (wal_status 'lost').
var errSlotInvalidated = errors.New("replication slot invalidated")

// stateTracker keeps one source's archiver state: in memory as WAL flows,
// in the catalog every StateEvery and at once when the state changes, so that
// health is computed from what the archiver actually does.
type stateTracker struct {
	a   *Archiver
	src store.Source

	mu sync.Mutex
	st store.ArchiverState
	// flushed and serverEnd are the spool's durable end and the server's WAL
	// end as last reported; caughtUp is when flushed last reached serverEnd.
	flushed, serverEnd pglogrepl.LSN
	caughtUp           time.Time
	// live is set once the server sends in the current session.
	live bool
	// changed is signalled (without blocking the receiver) when the state
	// must be saved at once.
	changed chan struct{}
}

// newTracker loads the source's saved state (keeping its gap and
// needs-backup facts across restarts) and marks it starting.
func (a *Archiver) newTracker(ctx context.Context, src store.Source) *stateTracker {
	t := &stateTracker{a: a, src: src, changed: make(chan struct{}, 1)}
	st, err := a.store.ArchiverState(ctx, src.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.log.Warn("read archiver state", "source", src.Name, "err", err)
	}
	st.SourceID, st.SlotName = src.ID, SlotName(src)
	if lsn, err := pglogrepl.ParseLSN(st.FlushedLSN); err == nil {
		t.flushed = lsn
	}
	t.st = st
	t.set(ctx, store.ArchiverStarting, "", "")
	return t
}

// set changes the state and saves it at once if anything a person sees changed.
func (t *stateTracker) set(ctx context.Context, kind store.ArchiverStateKind, reason, cause string) {
	t.mu.Lock()
	if t.st.State == kind && t.st.Reason == reason && t.st.Cause == cause {
		t.mu.Unlock()
		return
	}
	if t.st.State != kind {
		t.st.Since = time.Now().UTC()
	}
	t.st.State, t.st.Reason, t.st.Cause = kind, reason, cause
	t.mu.Unlock()
	t.save(ctx)
}

// state returns the current state.
func (t *stateTracker) state() store.ArchiverStateKind {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.State
}

// startSession marks the start of a receiver session: not live until the
// server sends.
func (t *stateTracker) startSession() {
	t.mu.Lock()
	t.live = false
	t.mu.Unlock()
}

// hadWAL reports whether the archiver ever received WAL for the source.
func (t *stateTracker) hadWAL() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flushed != 0 || t.st.Recoveries > 0
}

// onFlush and onServerEnd are the receiver's callbacks: they must not block.
func (t *stateTracker) onFlush(lsn pglogrepl.LSN) {
	t.mu.Lock()
	t.flushed = lsn
	if lsn >= t.serverEnd {
		t.caughtUp = time.Now()
	}
	t.mu.Unlock()
}

func (t *stateTracker) onServerEnd(lsn pglogrepl.LSN) {
	t.mu.Lock()
	t.serverEnd = max(t.serverEnd, lsn)
	if t.flushed >= t.serverEnd {
		t.caughtUp = time.Now()
	}
	first := !t.live
	t.live = true
	t.mu.Unlock()
	if first {
		// The server sends: streaming works. Saved by loop, not here.
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// loop saves the state every StateEvery, and at once when the receiver starts
// streaming, until ctx is done.
func (t *stateTracker) loop(ctx context.Context) {
	every := t.a.StateEvery
	if every <= 0 {
		every = defaultStateEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.changed:
		case <-tick.C:
		}
		t.refresh(ctx)
	}
}

// refresh reads the slot on the source, works out how far behind the spool is,
// clears the need for a backup once one completed after the gap, and saves.
func (t *stateTracker) refresh(ctx context.Context) {
	slot, slotErr := pg.ReadSlotStatus(ctx, t.src.DSN, SlotName(t.src))
	var clear bool
	if t.st.NeedsBackupSince != nil {
		if b, err := t.a.store.LatestBackup(ctx, t.src.ID, store.BackupComplete); err == nil && b.StartedAt.After(*t.st.NeedsBackupSince) {
			clear = true
		}
	}
	now := time.Now()
	t.mu.Lock()
	if slotErr == nil {
		t.serverEnd = max(t.serverEnd, slot.FlushLSN)
		t.st.SlotWALStatus, t.st.SlotRetainedBytes = slot.WALStatus, slot.Retained()
		if !slot.Exists {
			t.st.SlotWALStatus = "missing"
		}
		if t.flushed >= t.serverEnd {
			t.caughtUp = now
		}
	}
	if clear {
		t.st.NeedsBackupSince = nil
	}
	t.fill()
	if t.live {
		kind := store.ArchiverStreaming
		if t.st.BehindBytes > behindBytes || (!t.caughtUp.IsZero() && t.st.BehindBytes > 0 && now.Sub(t.caughtUp) > behindFor) {
			kind = store.ArchiverBehind
		}
		if kind != t.st.State {
			t.st.Reason, t.st.Cause = "", ""
			t.st.State, t.st.Since = kind, now.UTC()
		}
	}
	t.mu.Unlock()
	t.save(ctx)
}

// fill copies the in-memory positions into t.st; t.mu is held.
func (t *stateTracker) fill() {
	if t.flushed != 0 {
		t.st.FlushedLSN, t.st.ReceivedLSN = t.flushed.String(), t.flushed.String()
	}
	if t.serverEnd != 0 {
		t.st.ServerLSN = t.serverEnd.String()
	}
	t.st.BehindBytes = 0
	if t.serverEnd > t.flushed && t.flushed != 0 {
		t.st.BehindBytes = int64(t.serverEnd - t.flushed)
	}
	if !t.caughtUp.IsZero() {
		c := t.caughtUp.UTC()
		t.st.CaughtUpAt = &c
	}
}

// save writes the state to the catalog; a failure is logged: the archiver goes on.
func (t *stateTracker) save(ctx context.Context) {
	t.mu.Lock()
	t.fill()
	st := t.st
	t.mu.Unlock()
	if ctx.Err() != nil {
		// Shutting down: still record why the archiver stopped.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	}
	if err := t.a.store.SaveArchiverState(ctx, st); err != nil {
		t.a.log.Warn("save archiver state", "source", t.src.Name, "err", err)
	}
}

// describe says why streaming stopped, in words for a person, and the kind of
// cause (store.Cause*).
func describe(err error) (reason, cause string) {
	var ce *pg.CheckError
	var netErr net.Error
	switch {
	case errors.As(err, &ce):
		cause = store.CauseUnreachable
		if ce.Field != "host" && ce.Field != "auth" && ce.Field != "dsn" {
			cause = store.CauseError
		}
		return sentenceCase(ce.Message), cause
	case errors.Is(err, errWrongSystem):
		return sentenceCase(err.Error()), store.CauseIdentity
	case errors.Is(err, errSlotInvalidated):
		return sentenceCase(err.Error()), store.CauseSlotLost
	case strings.Contains(err.Error(), "has already been removed"):
		seg := "WAL"
		if m := removedSegment.FindStringSubmatch(err.Error()); m != nil {
			seg = "segment " + m[1]
		}
		return "The source removed " + seg + " before Backstop received it: the replication slot was dropped or invalidated.", store.CauseSlotLost
	case pg.IsSlotLost(err):
		return "The replication slot is gone (dropped by hand?): " + sentenceCase(err.Error()), store.CauseSlotLost
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr), strings.Contains(err.Error(), "shutting down"), strings.Contains(err.Error(), "unexpected EOF"):
		return sentenceCase(err.Error()), store.CauseUnreachable
	case strings.Contains(err.Error(), "spool"):
		return sentenceCase(err.Error()), store.CauseSpool
	}
	return sentenceCase(err.Error()), store.CauseError
}

func sentenceCase(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "Unknown error."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}

// needsGapRecovery reports whether err means WAL the archiver needs is gone
// from the source: the slot was invalidated, or the server removed the WAL.
// A slot that merely does not exist is recreated by the next session, which
// then finds out whether the WAL is still there.
func needsGapRecovery(err error) bool {
	return errors.Is(err, errSlotInvalidated) || (err != nil && strings.Contains(err.Error(), "has already been removed"))
}

// recoverLostSlot makes the archiver stream again after the source lost WAL
// it had not sent: it stores everything the spool holds (all of it is valid
// WAL, and nothing there may be lost), empties the spool, drops the slot and
// creates it again at the server's current position, and records the gap
// between what the repository holds and where streaming restarts, with the
// need for a new base backup. The caller then streams from the new slot.
func (a *Archiver) recoverLostSlot(ctx context.Context, src store.Source, t *stateTracker, cause error) error {
	reason, _ := describe(cause)
	t.set(ctx, store.ArchiverRecovering, reason, store.CauseSlotLost)
	info, err := pg.CheckSource(ctx, src.DSN)
	if err != nil {
		return err
	}
	s := &spoolUploader{a: a, src: src, segSize: info.WALSegmentSize, dir: filepath.Join(a.SpoolRoot, fmt.Sprint(src.ID))}
	if err := s.drain(ctx); err != nil {
		return fmt.Errorf("save the spool before recreating the slot: %w", err)
	}
	from, tli, err := a.archivedEnd(ctx, src)
	if err != nil {
		return err
	}
	if err := pg.DropSlot(ctx, src.DSN, SlotName(src)); err != nil {
		return err
	}
	_, restart, err := pg.CreatePhysicalSlot(ctx, src.DSN, SlotName(src))
	if err != nil {
		return err
	}
	to := pgwal.SegmentStart(pgwal.SegmentOf(restart, info.WALSegmentSize), info.WALSegmentSize)
	now := time.Now().UTC()
	detail := map[string]any{"slot": SlotName(src), "reason": reason, "restart_lsn": restart.String()}
	if to > from && from != 0 {
		g, err := a.store.RecordWALGap(ctx, store.WALGap{SourceID: src.ID, Timeline: int64(max(tli, uint32(info.Timeline))),
			FromLSN: from.String(), ToLSN: to.String(), Reason: reason, DetectedAt: now})
		if err != nil {
			return err
		}
		detail["gap_from"], detail["gap_to"], detail["gap_bytes"] = g.FromLSN, g.ToLSN, int64(to-from)
		t.mu.Lock()
		t.st.GapFromLSN, t.st.GapToLSN, t.st.GapAt, t.st.NeedsBackupSince = g.FromLSN, g.ToLSN, &now, &now
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.st.Recoveries++
	t.flushed, t.serverEnd, t.caughtUp = 0, 0, time.Time{}
	t.st.FlushedLSN, t.st.ReceivedLSN, t.st.ServerLSN = "", "", ""
	t.mu.Unlock()
	a.log.Warn("replication slot lost: spool saved, slot recreated, WAL gap recorded; a new base backup is needed",
		"source", src.Name, "gap_from", from, "gap_to", to, "reason", reason)
	raw, _ := json.Marshal(detail)
	if err := a.store.Audit(ctx, store.AuditEntry{Actor: "archiver", Action: "archiver.recover_slot", Target: src.Name, Detail: raw}); err != nil {
		a.log.Error("audit", "action", "archiver.recover_slot", "err", err)
	}
	t.set(ctx, store.ArchiverStarting, "", "")
	return nil
}

// archivedEnd returns the end of the newest WAL the catalog holds for src, and
// its timeline; 0 when there is none.
func (a *Archiver) archivedEnd(ctx context.Context, src store.Source) (pglogrepl.LSN, uint32, error) {
	fs, err := a.store.WALFiles(ctx, store.WALFilter{SourceID: src.ID, Kinds: []store.WALKind{store.WALSegment, store.WALPartial}})
	if err != nil {
		return 0, 0, err
	}
	var end pglogrepl.LSN
	var tli uint32
	for _, f := range fs {
		e, err := pglogrepl.ParseLSN(f.EndLSN)
		if err == nil && e > end {
			end, tli = e, uint32(f.Timeline)
		}
	}
	return end, tli, nil
}

// drain stores every file the spool holds and removes it: finished segments
// and history files as the receiver hands them over, a partial segment as a
// piece of its segment. A file it cannot store stays, and drain fails: the
// spool is emptied only of what the repository holds.
func (s *spoolUploader) drain(ctx context.Context) error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.dir, name)
		switch {
		case strings.HasSuffix(name, ".history.tmp"):
			// A history file being written: the server sends it again.
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
		case strings.HasSuffix(name, pgwal.PartialSuffix):
			fi, err := e.Info()
			if err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			if fi.Size() > 0 {
				if err := StoreWALFile(ctx, s.a.store, s.a.repo, s.src, path, s.segSize, store.WALViaStream); err != nil {
					return err
				}
			}
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
		case pgwal.IsHistoryFile(name), s.isSegment(name):
			if err := s.archive(ctx, name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("spool %s: unexpected file %s: left in place", s.dir, name)
		}
	}
	return nil
}

// isSegment reports whether name is a complete segment's name.
func (s *spoolUploader) isSegment(name string) bool {
	_, _, err := pgwal.ParseSegmentName(name, s.segSize)
	return err == nil
}
