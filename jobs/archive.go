package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/wal"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// Archiver streams a source's WAL from a physical replication slot into a local spool,
// fsynced as it arrives, and from there into the repository: completed segments, timeline
// history files, and every PartialEvery an immutable piece of the segment being written.
// Each file is recorded in the catalog with the commit times read from the WAL itself, and
// removed from the spool only once the repository holds it.
type Archiver struct {
	store *store.Store
	repo  *repository.Repo
	log   *slog.Logger
	// SpoolRoot holds one spool directory per source.
	SpoolRoot string
	// PartialEvery is how often the growing segment is stored as a piece (default 5 s).
	PartialEvery time.Duration
	// StateEvery is how often a streaming archiver saves its state in the
	// catalog (default 10 s); changes of state are saved at once.
	StateEvery time.Duration
}

// NewArchiver returns an archiver that spools below spoolRoot.
func NewArchiver(st *store.Store, repo *repository.Repo, spoolRoot string, log *slog.Logger) *Archiver {
	return &Archiver{store: st, repo: repo, log: log, SpoolRoot: spoolRoot, PartialEvery: 5 * time.Second}
}

// RunAll streams the WAL of every active source in the catalog until ctx is done, checking
// the catalog every 5 s: it picks up sources added later, stops a removed source's stream
// (so that its slot can be dropped), and restarts a stream whose source changed (a new
// connection string). Each source restarts on its own after errors.
func (a *Archiver) RunAll(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	type stream struct {
		version time.Time // the source's updated_at when the stream started
		stop    context.CancelFunc
	}
	running := make(map[int64]stream)
	defer func() {
		for _, r := range running {
			r.stop()
		}
	}()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		srcs, err := a.store.Sources(ctx)
		removed, rerr := a.store.RemovedSourceIDs(ctx)
		if err = errors.Join(err, rerr); err != nil && ctx.Err() == nil {
			a.log.Error("list sources for WAL archiving", "err", err)
		}
		if err == nil {
			active := make(map[int64]bool, len(srcs))
			for _, src := range srcs {
				if removed[src.ID] {
					continue
				}
				active[src.ID] = true
				if r, ok := running[src.ID]; ok {
					if r.version.Equal(src.UpdatedAt) {
						continue
					}
					r.stop()
				}
				sctx, stop := context.WithCancel(ctx)
				running[src.ID] = stream{version: src.UpdatedAt, stop: stop}
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.Run(sctx, src)
				}()
			}
			for id, r := range running {
				if !active[id] {
					r.stop()
					delete(running, id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SlotName is the replication slot Backstop streams a source's WAL from. Slot names allow
// lowercase letters, digits and underscores; source names also allow dashes.
func SlotName(src store.Source) string {
	return "backstop_" + strings.ReplaceAll(src.Name, "-", "_")
}

// Run streams src's WAL until ctx is done, restarting with a growing backoff (1 s to 1 min)
// after an error, and keeps the archiver's state in the catalog. When the source lost
// WAL the archiver had not received (the slot was invalidated or dropped), it saves the
// spool, recreates the slot, records the gap and streams on from the server's current
// position. It returns ctx's error.
func (a *Archiver) Run(ctx context.Context, src store.Source) error {
	t := a.newTracker(ctx, src)
	backoff := time.Second
	for {
		start := time.Now()
		err := a.stream(ctx, src, t)
		if ctx.Err() != nil {
			t.set(ctx, store.ArchiverStopped, "Backstop stopped archiving (the server process is shutting down).", store.CauseError)
			return ctx.Err()
		}
		if needsGapRecovery(err) {
			a.log.Warn("WAL the archiver needs is gone from the source; recovering", "source", src.Name, "err", err)
			rerr := a.recoverLostSlot(ctx, src, t, err)
			if rerr == nil {
				backoff = time.Second
				continue
			}
			err = fmt.Errorf("recover from the lost slot: %w", rerr)
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		reason, cause := describe(err)
		t.set(ctx, store.ArchiverStopped, reason, cause)
		a.log.Warn("WAL streaming stopped; restarting", "source", src.Name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			t.set(ctx, store.ArchiverStopped, "Backstop stopped archiving (the server process is shutting down).", store.CauseError)
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// stream runs one receiver session: slot, spool, uploads.
func (a *Archiver) stream(ctx context.Context, src store.Source, t *stateTracker) error {
	info, err := pg.CheckSource(ctx, src.DSN)
	if err != nil {
		return err
	}
	if info.SystemID != src.SystemIdentifier {
		return fmt.Errorf("archive %s: %w: the server reports system identifier %s, registered as %s", src.Name, errWrongSystem, info.SystemID, src.SystemIdentifier)
	}
	if slot, err := pg.ReadSlotStatus(ctx, src.DSN, SlotName(src)); err == nil {
		switch {
		case slot.Lost():
			return fmt.Errorf("%w: the server invalidated replication slot %s (wal_status lost) and removed WAL Backstop had not received", errSlotInvalidated, SlotName(src))
		case !slot.Exists && t.hadWAL():
			// Dropped by hand, say. Recreated below; if the WAL after the spool is gone
			// too, streaming fails and the gap is recovered.
			a.log.Warn("replication slot missing; recreating it", "source", src.Name, "slot", SlotName(src))
			if err := a.store.Audit(ctx, store.AuditEntry{Actor: "archiver", Action: "archiver.recreate_slot", Target: src.Name,
				Detail: []byte(fmt.Sprintf(`{"slot":%q}`, SlotName(src)))}); err != nil {
				a.log.Error("audit", "action", "archiver.recreate_slot", "err", err)
			}
		}
	}
	if _, _, err := pg.CreatePhysicalSlot(ctx, src.DSN, SlotName(src)); err != nil {
		return err
	}
	s := &spoolUploader{a: a, src: src, segSize: info.WALSegmentSize, dir: filepath.Join(a.SpoolRoot, fmt.Sprint(src.ID))}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pieces := make(chan error, 1)
	go func() { pieces <- s.uploadPieces(ctx) }()
	t.startSession()
	tracked := make(chan struct{})
	go func() { defer close(tracked); t.loop(ctx) }()
	err = pg.ReceiveWAL(ctx, src.DSN, pg.ReceiveOptions{
		Slot:      SlotName(src),
		Dir:       s.dir,
		OnSegment: s.archive,
		OnFlush: func(lsn pglogrepl.LSN) {
			s.flushed.Store(uint64(lsn))
			t.onFlush(lsn)
		},
		OnServerWALEnd: t.onServerEnd,
	})
	cancel()
	<-tracked
	if perr := <-pieces; err == nil || errors.Is(err, context.Canceled) {
		if perr != nil && !errors.Is(perr, context.Canceled) {
			err = perr
		}
	}
	return err
}

// spoolUploader moves one source's spool into the repository and the catalog.
type spoolUploader struct {
	a       *Archiver
	src     store.Source
	dir     string
	segSize int64
	flushed atomic.Uint64 // the receiver's durable position
	pieceAt pglogrepl.LSN // the end of the last stored piece of the current segment
}

// archive stores a finished spool file (a segment, a history file, or the last partial
// segment of a timeline that ended), records it, and removes it from the spool. It may be
// called again for a file already stored: storing it again is harmless.
func (s *spoolUploader) archive(ctx context.Context, name string) error {
	path := filepath.Join(s.dir, name)
	if err := StoreWALFile(ctx, s.a.store, s.a.repo, s.src, path, s.segSize, store.WALViaStream); err != nil {
		return err
	}
	// Only now, with the repository and the catalog holding it, may the spool forget it.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

// StoreWALFile stores one finished WAL file of src (a segment, a timeline history file, or
// the last partial segment of a timeline that ended) in the repository and records it in
// the catalog with the commit times and restore points it holds. Storing a file again with
// the same content is harmless; different content under the same name is refused
// (repository.ErrWALConflict).
func StoreWALFile(ctx context.Context, st *store.Store, repo *repository.Repo, src store.Source, path string, segSize int64, via store.WALVia) error {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	size := fi.Size()
	kind, repoName := store.WALSegment, name
	switch {
	case pgwal.IsHistoryFile(name):
		kind = store.WALHistory
	case strings.HasSuffix(name, pgwal.PartialSuffix):
		kind, repoName = store.WALPartial, repository.PartialWALName(strings.TrimSuffix(name, pgwal.PartialSuffix), size)
	}
	p, err := walFileParams(f, src, repoName, kind, size, segSize)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	p.Via, p.ArchivedAt = via, time.Now().UTC()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	ref, _, err := repo.PutWAL(ctx, src.SystemIdentifier, repoName, f, size)
	if err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	p.StoredBytes = ref.StoredBytesNew
	if _, err := st.RecordWAL(ctx, p); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return nil
}

// walFileParams describes the WAL file stored in the repository as name (a segment, a
// partial piece named by repository.PartialWALName, or a history file), of size bytes,
// whose content r holds, as the catalog records it: its position and, for WAL, the commit
// times, restore points and tablespace creations read from r. The archiver records what
// it stores with it, and a catalog rebuild what it reads back.
func walFileParams(r io.Reader, src store.Source, name string, kind store.WALKind, size, segSize int64) (store.WALFileParams, error) {
	p := store.WALFileParams{SourceID: src.ID, Name: name, Kind: kind, Size: size}
	if kind == store.WALHistory {
		tli, err := pgwal.ParseHistoryFileName(name)
		if err != nil {
			return p, err
		}
		p.Timeline = int64(tli)
		return p, nil
	}
	seg, _, _ := strings.Cut(name, pgwal.PartialSuffix)
	tli, segNo, err := pgwal.ParseSegmentName(seg, segSize)
	if err != nil {
		return p, err
	}
	p.Timeline, p.SegNo = int64(tli), int64(segNo)
	start := pgwal.SegmentStart(segNo, segSize)
	p.StartLSN, p.EndLSN = start.String(), (start + pglogrepl.LSN(size)).String()
	if err := summarizeWAL(r, segSize, start, &p); err != nil {
		return p, err
	}
	return p, nil
}

// summarizeWAL reads the commit times, restore points and tablespace creations of the WAL
// in r into p.
func summarizeWAL(r io.Reader, segSize int64, start pglogrepl.LSN, p *store.WALFileParams) error {
	sum, err := wal.Summarize(r, wal.ScanOptions{SegmentSize: segSize, StartLSN: start})
	if err != nil {
		return err
	}
	for _, c := range sum.Commits {
		if !c.Kind.Committed() {
			continue
		}
		if p.Commits == 0 || c.Time.Before(p.FirstCommitAt) {
			p.FirstCommitAt = c.Time
		}
		if c.Time.After(p.LastCommitAt) {
			p.LastCommitAt = c.Time
		}
		p.Commits++
	}
	for _, rp := range sum.RestorePoints {
		p.RestorePoints = append(p.RestorePoints, store.RestorePointParams{Name: rp.Name, LSN: rp.LSN.String(), At: rp.Time})
	}
	for _, tc := range sum.Tablespaces {
		// A time target stops replay at a commit or abort record: the latest one
		// before the creation tells the planner which targets stop short of it.
		var prev time.Time
		for _, c := range sum.Commits {
			if c.LSN < tc.LSN && c.Time.After(prev) {
				prev = c.Time
			}
		}
		p.Tablespaces = append(p.Tablespaces, store.TablespaceCreationParams{Timeline: int64(tc.Timeline),
			LSN: tc.LSN.String(), EndLSN: tc.EndLSN.String(), PrevLSN: tc.PrevLSN.String(), OID: tc.OID, Location: tc.Location, PrevCommitAt: prev})
	}
	return nil
}

// uploadPieces stores, every PartialEvery, the durable prefix of the segment being
// received, as an immutable piece, so that the repository is at most that far behind.
func (s *spoolUploader) uploadPieces(ctx context.Context) error {
	every := s.a.PartialEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := s.uploadPiece(ctx); err != nil && ctx.Err() == nil {
			s.a.log.Warn("store a piece of the current WAL segment", "source", s.src.Name, "err", err)
		}
	}
}

func (s *spoolUploader) uploadPiece(ctx context.Context) error {
	flushed := pglogrepl.LSN(s.flushed.Load())
	segNo := pgwal.SegmentOf(flushed, s.segSize)
	end := int64(flushed) - int64(pgwal.SegmentStart(segNo, s.segSize))
	if flushed <= s.pieceAt || end == 0 {
		return nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, pgwal.PartialSuffix) {
			continue
		}
		tli, n, err := pgwal.ParseSegmentName(name, s.segSize)
		if err != nil || n != segNo {
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, name))
		if err != nil {
			return err // renamed meanwhile: the segment is complete and archive() stores it
		}
		defer f.Close()
		seg := strings.TrimSuffix(name, pgwal.PartialSuffix)
		pieceName := repository.PartialWALName(seg, end)
		start := pgwal.SegmentStart(segNo, s.segSize)
		p := store.WALFileParams{SourceID: s.src.ID, Name: pieceName, Kind: store.WALPartial, Timeline: int64(tli),
			SegNo: int64(segNo), StartLSN: start.String(), EndLSN: flushed.String(), Size: end,
			Via: store.WALViaStream, ArchivedAt: time.Now().UTC()}
		if err := summarizeWAL(io.LimitReader(f, end), s.segSize, start, &p); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		ref, _, err := s.a.repo.PutWAL(ctx, s.src.SystemIdentifier, pieceName, io.LimitReader(f, end), end)
		if err != nil {
			return err
		}
		p.StoredBytes = ref.StoredBytesNew
		if _, err := s.a.store.RecordWAL(ctx, p); err != nil {
			return err
		}
		s.pieceAt = flushed
		return nil
	}
	return nil
}
