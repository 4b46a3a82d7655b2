package repository

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

// Pruning defaults.
const (
	// DefaultGrace is how old an unreferenced pack must be before pruning marks it: a
	// writer stores its manifest well within it after storing the pack.
	DefaultGrace = time.Hour
	// DefaultDelay is how long a pack stays marked before pruning deletes it; longer
	// than DefaultCommitWindow, so that a writer that checked before the mark has stored
	// its manifest before pruning looks again.
	DefaultDelay = 15 * time.Minute
	// repackBelow: a pack whose needed blobs take less than this share of it is repacked.
	repackBelow = 0.5
	// minSmallPacks is how many packs under a quarter of the pack size it takes to merge them.
	minSmallPacks = 8
)

// ErrPruneBusy reports that another prune holds the repository's prune lock.
var ErrPruneBusy = errors.New("another prune is running on this repository")

// WALName names one archived WAL file: a system and a file name.
type WALName struct {
	SystemID string
	Name     string
}

// PruneOptions say what to delete and how carefully.
type PruneOptions struct {
	// Backups are the ids of the manifests to delete; WAL the archived WAL files to
	// delete. Superseded pieces of partial segments are always deleted.
	Backups []string
	WAL     []WALName
	// Grace and Delay: DefaultGrace and DefaultDelay when zero; negative means none
	// (tests). With no Delay, packs are marked and deleted in the same run.
	Grace, Delay time.Duration
}

// PruneResult says what a prune did.
type PruneResult struct {
	BackupsDeleted      int
	WALDeleted          int // WAL manifests, superseded pieces included
	PiecesDeleted       int
	PacksMarked         int
	PacksRepacked       int
	PacksDeleted        int
	BytesDeleted        int64
	TombstonesCancelled int
	// IndexesRecovered counts packs whose index object was missing or damaged (a writer
	// that died between storing a pack and its index) and was written again from the
	// pack's own trailer; PacksUnreadable those whose trailer could not be read either:
	// they are left alone.
	IndexesRecovered int
	PacksUnreadable  int
	// LocksUnreadable lists lock objects that could not be read: each holds pruning back
	// (nothing is marked or deleted) until it is removed by hand.
	LocksUnreadable []string
}

// Prune deletes the given manifests and WAL, then the packs no remaining manifest
// needs, in two steps (see session.go), repacking packs that are mostly dead. It is safe
// while backups, WAL archiving and restores run in this and other processes and hosts.
// Prunes take turns through a lock object written with a conditional write; a second one
// fails with ErrPruneBusy.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	var res PruneResult
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Delay == 0 {
		opts.Delay = DefaultDelay
	}
	opts.Grace, opts.Delay = max(opts.Grace, 0), max(opts.Delay, 0)
	for _, id := range opts.Backups {
		if err := validateID(id); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	for _, w := range opts.WAL {
		if err := validateSystemID(w.SystemID); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
		if _, _, err := parseWALName(w.Name); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	ctx, release, err := r.lockPrune(ctx)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	defer release()
	// The table of needed blobs is a temporary table on a connection of its own: filling
	// it takes no lock on the cache, which writers in this process keep using.
	conn, err := r.cache.db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	defer conn.Close()

	for _, id := range opts.Backups {
		if err := r.st.Delete(ctx, manifestKey(id)); err != nil {
			return res, fmt.Errorf("prune: delete backup %s: %w", id, err)
		}
		res.BackupsDeleted++
	}
	for _, w := range opts.WAL {
		if err := r.st.Delete(ctx, walRel(w.SystemID, w.Name)); err != nil {
			return res, fmt.Errorf("prune: delete WAL %s/%s: %w", w.SystemID, w.Name, err)
		}
		res.WALDeleted++
	}
	n, err := r.pruneSupersededPieces(ctx)
	res.WALDeleted += n
	res.PiecesDeleted = n
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}

	if err := r.cache.refresh(ctx, r); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.recoverIndexes(ctx, &res); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	oldest, err := r.oldestLiveSession(ctx, &res)
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	// The manifests are read after the locks: a writer that ends between the two
	// readings has its manifest read; one that has not ended is still in the locks. A
	// mark counts as old enough to act on only if it was at least Delay old when the
	// reading began, however long the reading takes.
	refsAt := time.Now()
	if err := r.collectRefs(ctx, conn); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.stillPruning(ctx); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.deleteMarked(ctx, conn, opts, oldest, refsAt, &res); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.markUnneeded(ctx, conn, opts, oldest, &res); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if opts.Delay == 0 {
		if err := r.deleteMarked(ctx, conn, opts, oldest, time.Now(), &res); err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
	}
	if err := r.st.Sync(ctx); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	if err := r.stillPruning(ctx); err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	return res, nil
}

// recoverIndexes finds the packs the index cache does not know (their index object is
// missing or damaged) and writes their index again from the pack's trailer, so that they
// are pruned like any other; a pack whose trailer cannot be read is counted and left.
func (r *Repo) recoverIndexes(ctx context.Context, res *PruneResult) error {
	var ids []string
	err := storage.Keys(ctx, r.st, packDir, func(key string) error {
		if id, ok := packIDOfKey(key, packDir); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if r.pendingPack(id) {
			continue
		}
		var known int
		if err := r.cache.db.QueryRowContext(ctx, `SELECT count(*) FROM packs WHERE id = ?`, id).Scan(&known); err != nil {
			return err
		}
		if known > 0 {
			continue
		}
		sealed, idx, err := r.readTrailer(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since it was listed
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			res.PacksUnreadable++
			continue
		}
		if err != nil {
			return err
		}
		if err := r.st.Put(ctx, indexKey(id), sealed, false); err != nil {
			return err
		}
		if err := r.cache.addPack(ctx, idx); err != nil {
			return err
		}
		res.IndexesRecovered++
	}
	return nil
}

// readTrailer reads the index a pack carries at its end.
func (r *Repo) readTrailer(ctx context.Context, id string) ([]byte, *packIndex, error) {
	key := packKey(id)
	size, err := r.st.Size(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil, fmt.Errorf("pack %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	corrupt := func(why string) error { return &CorruptError{Object: key, Reason: why} }
	if size < int64(len(packMagic)+8) {
		return nil, nil, corrupt("too short for a pack")
	}
	tail, err := r.st.GetRange(ctx, key, size-8, 8)
	if err != nil {
		return nil, nil, err
	}
	if string(tail[4:]) != packTrailer {
		return nil, nil, corrupt("no trailer")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n <= 0 || n > size-8-int64(len(packMagic)) {
		return nil, nil, corrupt("trailer length out of range")
	}
	sealed, err := r.st.GetRange(ctx, key, size-8-n, n)
	if err != nil {
		return nil, nil, err
	}
	plain, err := r.open(nil, append([]byte(nil), sealed...), indexMagic, indexAD(id), key)
	if err != nil {
		return nil, nil, err
	}
	idx, err := parseIndex(id, plain)
	if err != nil {
		return nil, nil, corrupt(err.Error())
	}
	if idx.Bytes != size-8-n {
		return nil, nil, corrupt("the index does not end where the blobs do")
	}
	return sealed, idx, nil
}

// pruneLockKey is the context key of the prune lock's id while a prune runs.
type pruneLockKey struct{}

// lockPrune takes the prune lock, replacing one whose holder stopped renewing it, and
// keeps it fresh. The returned context carries the lock's id (see stillPruning) and is
// cancelled when the heartbeat finds the lock is no longer this prune's.
func (r *Repo) lockPrune(ctx context.Context) (context.Context, func(), error) {
	host, _ := os.Hostname()
	rec := lockRecord{ID: "prune-" + newPackID(), What: "prune", Host: host, PID: os.Getpid(), Started: time.Now().UTC(), Beat: time.Now().UTC()}
	data, _ := json.Marshal(rec)
	for attempt := 0; ; attempt++ {
		err := r.st.Put(ctx, pruneLock, data, true)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrExists) {
			return nil, nil, err
		}
		if attempt > 0 {
			return nil, nil, ErrPruneBusy
		}
		held, gerr := r.st.Get(ctx, pruneLock)
		var other lockRecord
		if gerr == nil && json.Unmarshal(held, &other) == nil && time.Since(other.Beat) < r.opts.StaleAfter {
			return nil, nil, fmt.Errorf("%w (%s, pid %d, since %s)", ErrPruneBusy, other.Host, other.PID, other.Started.Format(time.RFC3339))
		}
		if err := r.st.Delete(ctx, pruneLock); err != nil {
			return nil, nil, err
		}
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(ctx, pruneLockKey{}, rec.ID))
	// Two prunes that found the same stale lock may both have replaced it: the one whose
	// lock is not there now stops.
	if err := r.stillPruning(ctx); err != nil {
		cancel(err)
		return nil, nil, err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.opts.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if err := r.stillPruning(ctx); err != nil {
				cancel(err)
				return
			}
			rec.Beat = time.Now().UTC()
			data, _ := json.Marshal(rec)
			r.st.Put(ctx, pruneLock, data, false)
		}
	}()
	return ctx, func() {
		close(stop)
		<-done
		if r.stillPruning(context.WithoutCancel(ctx)) == nil {
			r.st.Delete(context.WithoutCancel(ctx), pruneLock)
		}
		cancel(nil)
	}, nil
}

// stillPruning checks that the prune lock is still the one this prune took; it is
// checked again before every deletion.
func (r *Repo) stillPruning(ctx context.Context) error {
	id, _ := ctx.Value(pruneLockKey{}).(string)
	data, err := r.st.Get(ctx, pruneLock)
	if err != nil {
		return fmt.Errorf("prune lock: %w", err)
	}
	var held lockRecord
	if json.Unmarshal(data, &held) != nil || held.ID != id {
		return fmt.Errorf("%w: this prune's lock was replaced by another's", ErrPruneBusy)
	}
	return nil
}

// pruneSupersededPieces deletes every piece of a partial segment that a longer piece or
// the complete segment has replaced: what it holds is in them too.
func (r *Repo) pruneSupersededPieces(ctx context.Context) (int, error) {
	systems, err := r.WALSystems(ctx)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, sys := range systems {
		names, err := r.WALNames(ctx, sys)
		if err != nil {
			return deleted, err
		}
		have := make(map[string]bool, len(names))
		longest := map[string]int64{}
		for _, n := range names {
			have[n] = true
			if kind, end, err := parseWALName(n); err == nil && kind == WALPartial {
				seg := n[:strings.Index(n, partialInfix)]
				longest[seg] = max(longest[seg], end)
			}
		}
		for _, n := range names {
			kind, end, err := parseWALName(n)
			if err != nil || kind != WALPartial {
				continue
			}
			seg := n[:strings.Index(n, partialInfix)]
			if !have[seg] && end >= longest[seg] {
				continue
			}
			if err := r.st.Delete(ctx, walRel(sys, n)); err != nil {
				return deleted, err
			}
			deleted++
		}
	}
	return deleted, nil
}

// oldestLiveSession returns when the oldest session whose lock is fresh began (the zero
// time when there is none), and deletes the locks of dead sessions. A lock that cannot be
// read holds pruning back as if a session had been running forever: it is counted in
// res, for an operator to look at.
func (r *Repo) oldestLiveSession(ctx context.Context, res *PruneResult) (time.Time, error) {
	locks, err := r.locks(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var oldest time.Time
	for _, l := range locks {
		if l.unreadable {
			res.LocksUnreadable = append(res.LocksUnreadable, lockDir+l.ID+lockSuffix)
			l.Started = time.Unix(0, 1)
		} else if time.Since(l.Beat) > r.opts.StaleAfter {
			// Dead: the session refuses to commit once its lock is this old.
			if err := r.st.Delete(ctx, lockDir+l.ID+lockSuffix); err != nil {
				return time.Time{}, err
			}
			continue
		}
		if oldest.IsZero() || l.Started.Before(oldest) {
			oldest = l.Started
		}
	}
	return oldest, nil
}

// collectRefs fills a temporary table of conn, refs, with every blob a backup manifest or
// an archived WAL file refers to. It is on disk, so memory stays flat at any size.
func (r *Repo) collectRefs(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE IF NOT EXISTS refs (name BLOB PRIMARY KEY) WITHOUT ROWID`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `DELETE FROM refs`); err != nil {
		return err
	}
	// Many names a statement, each statement on its own: a transaction would take the
	// cache's write lock for the whole reading.
	const rows = 256
	batch := make([]any, 0, rows)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		query := `INSERT OR IGNORE INTO refs (name) VALUES (?)` + strings.Repeat(`, (?)`, len(batch)-1)
		_, err := conn.ExecContext(ctx, query, batch...)
		batch = batch[:0]
		return err
	}
	add := func(name string) error {
		raw, err := hex.DecodeString(name)
		if err != nil {
			return err
		}
		batch = append(batch, raw)
		if len(batch) == rows {
			return flush()
		}
		return nil
	}
	ids, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			// What an unreadable manifest refers to is unknown: delete nothing.
			return fmt.Errorf("backup %s cannot be read, so nothing is deleted: %w", id, err)
		}
		if err := r.manifestBlobs(ctx, m, add); err != nil {
			return fmt.Errorf("backup %s: %w", id, err)
		}
	}
	systems, err := r.WALSystems(ctx)
	if err != nil {
		return err
	}
	for _, sys := range systems {
		names, err := r.WALNames(ctx, sys)
		if err != nil {
			return err
		}
		for _, n := range names {
			m, err := r.readWALManifest(ctx, sys, n)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("WAL %s/%s cannot be read, so nothing is deleted: %w", sys, n, err)
			}
			for _, b := range m.Blocks {
				if err := add(b); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// neededSQL counts the blobs of pack ?1 that a manifest refers to and that have no good
// copy in another pack without a tombstone, and the bytes they take.
//
// The reference test is EXISTS, not IN (SELECT name FROM refs): SQLite plans the IN form
// by walking every row of refs and looking each up in the pack, so each call cost a walk
// of all the repository's references; EXISTS walks the pack's blobs and looks each up in
// refs by its key.
const neededSQL = `
SELECT COUNT(*), COALESCE(SUM(b.len), 0) FROM blobs b
WHERE b.pack = ?1 AND EXISTS (SELECT 1 FROM refs WHERE refs.name = b.name)
  AND NOT EXISTS (
    SELECT 1 FROM blobs o JOIN packs op ON op.id = o.pack
    WHERE o.name = b.name AND o.pack <> ?1 AND op.dead = 0
      AND NOT EXISTS (SELECT 1 FROM bad WHERE bad.pack = o.pack AND bad.name = o.name))`

func (r *Repo) needed(ctx context.Context, conn *sql.Conn, pack string) (count, bytes int64, err error) {
	err = conn.QueryRowContext(ctx, neededSQL, pack).Scan(&count, &bytes)
	return count, bytes, err
}

// deleteMarked deletes the packs marked at least Delay ago, before the oldest live
// session began, that nothing needs; a marked pack something needs loses its mark.
func (r *Repo) deleteMarked(ctx context.Context, conn *sql.Conn, opts PruneOptions, oldest, refsAt time.Time, res *PruneResult) error {
	dead, err := r.tombstones(ctx)
	if err != nil {
		return err
	}
	if err := r.cache.setDead(ctx, dead); err != nil {
		return err
	}
	ids := make([]string, 0, len(dead))
	for id := range dead {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		t := dead[id]
		if refsAt.Sub(t.At) < opts.Delay || (!oldest.IsZero() && !t.At.Before(oldest)) {
			continue
		}
		if err := r.stillPruning(ctx); err != nil {
			return err
		}
		n, _, err := r.needed(ctx, conn, id)
		if err != nil {
			return err
		}
		if n > 0 {
			// A manifest stored since the mark needs it: keep it.
			if err := r.st.Delete(ctx, deadKey(id)); err != nil {
				return err
			}
			if _, err := r.cache.db.ExecContext(ctx, `UPDATE packs SET dead = 0 WHERE id = ?`, id); err != nil {
				return err
			}
			res.TombstonesCancelled++
			continue
		}
		size, err := r.st.Size(ctx, packKey(id))
		if err != nil && !errors.Is(err, storage.ErrNotExist) {
			return err
		}
		// The index first: a pack without an index is invisible, an index without its
		// pack would be a lie.
		if err := r.st.Delete(ctx, indexKey(id)); err != nil {
			return err
		}
		if err := r.st.Delete(ctx, packKey(id)); err != nil {
			return err
		}
		if err := r.deleteBadMarks(ctx, id); err != nil {
			return err
		}
		if err := r.st.Delete(ctx, deadKey(id)); err != nil {
			return err
		}
		if err := r.cache.forgetPack(ctx, id); err != nil {
			return err
		}
		res.PacksDeleted++
		res.BytesDeleted += max(size, 0)
	}
	return nil
}

func (r *Repo) deleteBadMarks(ctx context.Context, pack string) error {
	var keys []string
	err := storage.Keys(ctx, r.st, badDir+pack+".", func(key string) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := r.st.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// markUnneeded marks the packs older than the grace period (and than the oldest live
// session) that nothing needs, after copying the needed blobs of mostly dead packs into
// new packs.
func (r *Repo) markUnneeded(ctx context.Context, conn *sql.Conn, opts PruneOptions, oldest time.Time, res *PruneResult) error {
	cutoff := time.Now().Add(-opts.Grace)
	if !oldest.IsZero() && oldest.Before(cutoff) {
		cutoff = oldest
	}
	type candidate struct {
		id    string
		bytes int64
	}
	var packs []candidate
	rows, err := r.cache.db.QueryContext(ctx, `SELECT id, bytes FROM packs WHERE dead = 0 AND created < ? ORDER BY created, id`, cutoff.UnixNano())
	if err != nil {
		return err
	}
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.id, &c.bytes); err != nil {
			rows.Close()
			return err
		}
		packs = append(packs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var repack []string
	var small []string
	for _, p := range packs {
		if r.pendingPack(p.id) {
			continue
		}
		n, bytes, err := r.needed(ctx, conn, p.id)
		if err != nil {
			return err
		}
		switch {
		case n == 0:
			if err := r.mark(ctx, p.id, "no backup or WAL refers to it"); err != nil {
				return err
			}
			res.PacksMarked++
		case float64(bytes) < repackBelow*float64(p.bytes):
			repack = append(repack, p.id)
		case p.bytes < int64(r.packSize)/4:
			small = append(small, p.id)
		}
	}
	// Many small packs (WAL pieces stored every few seconds make them) are merged; a few
	// are left alone, so that the merged pack is not merged again at every run.
	if len(small) >= minSmallPacks {
		repack = append(repack, small...)
	}
	if len(repack) == 0 {
		return nil
	}
	var copied []string
	for _, id := range repack {
		ok, err := r.repack(ctx, conn, id)
		if err != nil {
			return err
		}
		if ok {
			copied = append(copied, id)
		}
	}
	// The copies are stored and in the index before their originals are marked.
	if err := r.Sync(ctx); err != nil {
		return err
	}
	for _, id := range copied {
		n, _, err := r.needed(ctx, conn, id)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if err := r.mark(ctx, id, "repacked: its needed blobs were copied into new packs"); err != nil {
			return err
		}
		res.PacksRepacked++
		res.PacksMarked++
	}
	return nil
}

// repack copies the blobs of a pack that something needs into the pack being filled,
// each checked first; a pack with a blob that fails the check is left alone (it keeps
// the evidence for verification) and false is returned.
func (r *Repo) repack(ctx context.Context, conn *sql.Conn, id string) (bool, error) {
	rows, err := conn.QueryContext(ctx, `
SELECT b.name, b.off, b.len, b.size FROM blobs b
WHERE b.pack = ?1 AND EXISTS (SELECT 1 FROM refs WHERE refs.name = b.name)
  AND NOT EXISTS (SELECT 1 FROM bad WHERE bad.pack = b.pack AND bad.name = b.name)
ORDER BY b.off`, id)
	if err != nil {
		return false, err
	}
	type blob struct {
		name []byte
		loc  location
	}
	var blobs []blob
	for rows.Next() {
		b := blob{loc: location{Pack: id}}
		if err := rows.Scan(&b.name, &b.loc.Offset, &b.loc.Length, &b.loc.Size); err != nil {
			rows.Close()
			return false, err
		}
		blobs = append(blobs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	data, err := r.st.Get(ctx, packKey(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	var plain []byte
	for _, b := range blobs {
		if b.loc.Offset+b.loc.Length > int64(len(data)) {
			return false, nil
		}
		name := hex.EncodeToString(b.name)
		sealed := data[b.loc.Offset : b.loc.Offset+b.loc.Length]
		// open decrypts in place: check a copy, store the original bytes.
		plain, err = r.openBlob(name, b.loc, append([]byte(nil), sealed...), plain)
		if err != nil {
			return false, nil
		}
		var sum [32]byte
		copy(sum[:], b.name)
		if _, _, err := r.appendBlob(ctx, sum, sealed, b.loc.Size); err != nil {
			return false, err
		}
	}
	return true, nil
}

// mark writes a pack's tombstone.
func (r *Repo) mark(ctx context.Context, id, reason string) error {
	if err := r.stillPruning(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(tombstone{Pack: id, At: time.Now().UTC(), Reason: reason})
	if err != nil {
		return err
	}
	if err := r.st.Put(ctx, deadKey(id), data, false); err != nil {
		return err
	}
	_, err = r.cache.db.ExecContext(ctx, `UPDATE packs SET dead = 1 WHERE id = ?`, id)
	return err
}
