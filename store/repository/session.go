package repository

// Writers and pruning at the same time.
//
// Pruning deletes a pack in two steps, on two runs at least Delay apart: it marks the pack
// with a tombstone (prune/<id>.deleted), then deletes it only if, read again, no manifest
// needs a blob that has no other copy. Writers never deduplicate against a pack with a
// tombstone, and before they store a manifest they commit: they store their packs, list
// the tombstones, copy every blob the manifest needs out of a marked pack into a new one,
// and store the manifest within CommitWindow of that check (else they check again). As
// long as Delay is longer than CommitWindow, a manifest is either stored before pruning
// reads the manifests again, or its writer saw the tombstone and copied the blob.
//
// A backup is a Session: it writes locks/<id>.lock when it begins and rewrites it every
// Heartbeat. Pruning marks no pack written after the oldest live session began, and
// deletes no pack marked before it, so the packs of a long backup are safe until its
// manifest refers to them, and a blob it deduplicated against hours ago is still there
// at its commit. A session whose lock has not been rewritten for StaleAfter is dead to
// pruning; the session itself refuses to commit once its heartbeat is that old.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

const (
	lockDir    = "locks/"
	lockSuffix = ".lock"
	pruneLock  = lockDir + "prune" + lockSuffix

	// DefaultHeartbeat is how often a session rewrites its lock.
	DefaultHeartbeat = 30 * time.Second
	// DefaultStaleAfter is how long a lock may go without a heartbeat before pruning
	// treats its writer as dead.
	DefaultStaleAfter = 10 * time.Minute
	// DefaultCommitWindow bounds the time from a writer's tombstone check to its
	// manifest being stored.
	DefaultCommitWindow = 2 * time.Minute
)

// ErrSessionStale reports a session that could not rewrite its lock for too long:
// pruning may have treated it as dead, so it must not store a manifest.
var ErrSessionStale = errors.New("the session's lock was not renewed in time; pruning may have run as if it were dead")

// lockRecord is the content of locks/<id>.lock.
type lockRecord struct {
	ID      string    `json:"id"`
	What    string    `json:"what"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Beat    time.Time `json:"beat"`

	unreadable bool // read back, but not as a lock record
}

// Session is a writer whose work ends in a manifest, such as a backup. Its methods are
// safe for concurrent use.
type Session struct {
	r   *Repo
	rec lockRecord

	mu       sync.Mutex
	packs    map[string]struct{}
	lastBeat time.Time // monotonic: when the lock was last rewritten
	beatErr  error

	stop chan struct{}
	done chan struct{}
}

// Begin starts a session: it writes the session's lock, refreshes the index cache so the
// session deduplicates against what is stored now, and keeps the lock fresh until End.
func (r *Repo) Begin(ctx context.Context, what string) (*Session, error) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	s := &Session{
		r:     r,
		rec:   lockRecord{ID: newPackID(), What: what, Host: host, PID: os.Getpid(), Started: now, Beat: now},
		packs: map[string]struct{}{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := s.beat(ctx); err != nil {
		return nil, fmt.Errorf("begin %s: %w", what, err)
	}
	if err := r.cache.refresh(ctx, r); err != nil {
		r.st.Delete(context.WithoutCancel(ctx), s.lockKey())
		return nil, fmt.Errorf("begin %s: %w", what, err)
	}
	go s.heartbeat()
	return s, nil
}

func (s *Session) lockKey() string { return lockDir + s.rec.ID + lockSuffix }

func (s *Session) beat(ctx context.Context) error {
	s.rec.Beat = time.Now().UTC()
	data, err := json.Marshal(s.rec)
	if err != nil {
		return err
	}
	t := time.Now()
	if err := s.r.st.Put(ctx, s.lockKey(), data, false); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastBeat = t
	s.mu.Unlock()
	return nil
}

func (s *Session) heartbeat() {
	defer close(s.done)
	t := time.NewTicker(s.r.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.r.opts.Heartbeat)
			err := s.beat(ctx)
			cancel()
			if err != nil {
				s.mu.Lock()
				s.beatErr = err
				s.mu.Unlock()
			}
		}
	}
}

// End stops the heartbeat and removes the session's lock. Packs the session stored and
// no manifest refers to are collected by pruning after its grace period.
func (s *Session) End() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.r.st.Delete(ctx, s.lockKey())
}

// fresh returns ErrSessionStale when the lock was last rewritten more than half of
// StaleAfter ago.
func (s *Session) fresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if age := time.Since(s.lastBeat); age > s.r.opts.StaleAfter/2 {
		if s.beatErr != nil {
			return fmt.Errorf("%w (last renewed %s ago: %v)", ErrSessionStale, age.Round(time.Second), s.beatErr)
		}
		return fmt.Errorf("%w (last renewed %s ago)", ErrSessionStale, age.Round(time.Second))
	}
	return nil
}

// Put stores a blob as Repo.Put does and remembers its pack for the commit.
func (s *Session) Put(ctx context.Context, plaintext []byte) (ObjectRef, bool, error) {
	ref, written, err := s.r.Put(ctx, plaintext)
	if err == nil {
		s.mu.Lock()
		s.packs[ref.Pack] = struct{}{}
		s.mu.Unlock()
	}
	return ref, written, err
}

// PutMany stores blobs as Repo.PutMany does and remembers their packs for the commit.
func (s *Session) PutMany(ctx context.Context, plaintexts [][]byte) ([]ObjectRef, []bool, error) {
	refs, written, err := s.r.PutMany(ctx, plaintexts)
	if err == nil {
		s.mu.Lock()
		for _, ref := range refs {
			s.packs[ref.Pack] = struct{}{}
		}
		s.mu.Unlock()
	}
	return refs, written, err
}

// PutBlockMap stores a file's block list as Repo.PutBlockMap does and remembers its pack.
func (s *Session) PutBlockMap(ctx context.Context, names [][32]byte) (ObjectRef, bool, error) {
	return s.Put(ctx, blockMap(names))
}

// PutManifest commits the session: it makes sure every blob m refers to is stored in a
// pack that pruning will not delete, then stores m as Repo.PutManifest does.
func (s *Session) PutManifest(ctx context.Context, id string, m *Manifest) (ObjectRef, error) {
	if err := checkManifest(id, m); err != nil {
		return ObjectRef{}, err
	}
	s.mu.Lock()
	packs := make(map[string]struct{}, len(s.packs))
	for p := range s.packs {
		packs[p] = struct{}{}
	}
	s.mu.Unlock()
	names := func(fn func(string) error) error { return s.r.manifestBlobs(ctx, m, fn) }
	var ref ObjectRef
	wrote := false
	err := s.r.commit(ctx, packs, names, s.fresh, func(ctx context.Context) error {
		var err error
		wrote = true
		ref, err = s.r.putManifest(ctx, id, m)
		return err
	})
	if err != nil && !wrote {
		return ObjectRef{}, fmt.Errorf("put manifest %s: %w", id, err)
	}
	if err != nil {
		return ObjectRef{}, err
	}
	return ref, nil
}

// commit stores the packs in memory, then checks that none of packs (those the blobs about
// to be referred to were found in or written to) is marked for deletion or gone, copying
// the blobs names lists out of marked packs, and calls write within CommitWindow of the
// check. fresh, when not nil, vetoes the write.
func (r *Repo) commit(ctx context.Context, packs map[string]struct{}, names func(func(string) error) error, fresh func() error, write func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return errors.New("commit: could not check the packs within the commit window five times in a row")
		}
		if err := r.Sync(ctx); err != nil {
			return err
		}
		checked := time.Now()
		dead, err := r.tombstones(ctx)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		marked := false
		for p := range packs {
			if _, ok := dead[p]; ok {
				marked = true
				continue
			}
			if err := r.packExists(ctx, p); err != nil {
				// Deleted since this process last looked: forget it, so that the caller's
				// next attempt stores the blobs again instead of finding them there.
				if rerr := r.cache.refresh(ctx, r); rerr != nil {
					err = errors.Join(err, rerr)
				}
				return fmt.Errorf("commit: %w", err)
			}
		}
		if marked {
			// A whole refresh, not only the marks: packs deleted since this process last
			// looked must not pass for good copies.
			if err := r.cache.refresh(ctx, r); err != nil {
				return err
			}
			moved, err := r.copyOut(ctx, names)
			if err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			for p := range dead {
				delete(packs, p)
			}
			for _, p := range moved {
				packs[p] = struct{}{}
			}
			continue
		}
		if fresh != nil {
			if err := fresh(); err != nil {
				return err
			}
		}
		if time.Since(checked) > r.opts.CommitWindow {
			continue
		}
		return write(ctx)
	}
}

// packExists checks that a pack is stored.
func (r *Repo) packExists(ctx context.Context, id string) error {
	if !validPackID(id) {
		return fmt.Errorf("invalid pack id %q", id)
	}
	_, err := r.st.Size(ctx, packKey(id))
	if errors.Is(err, storage.ErrNotExist) {
		return fmt.Errorf("pack %s is gone: %w", id, ErrNotFound)
	}
	return err
}

// copyOut stores a new copy of every listed blob whose only good copies are in packs
// marked for deletion, and returns the packs the copies went to.
func (r *Repo) copyOut(ctx context.Context, names func(func(string) error) error) ([]string, error) {
	moved := map[string]struct{}{}
	err := names(func(name string) error {
		raw, err := hex.DecodeString(name)
		if err != nil {
			return err
		}
		var sum [32]byte
		copy(sum[:], raw)
		if loc, ok, err := r.cache.lookup(ctx, raw); err != nil || ok {
			if ok {
				// Checked to exist at the next round of the commit.
				moved[loc.Pack] = struct{}{}
			}
			return err
		}
		if loc, ok := r.pending(sum); ok {
			moved[loc.Pack] = struct{}{}
			return nil
		}
		plain, err := r.Get(ctx, name, nil)
		if err != nil {
			return err
		}
		sealed, err := r.seal(nil, blobMagic, blobAD(name), plain)
		if err != nil {
			return err
		}
		loc, _, err := r.appendBlob(ctx, sum, sealed, int64(len(plain)))
		if err != nil {
			return err
		}
		moved[loc.Pack] = struct{}{}
		return nil
	})
	out := make([]string, 0, len(moved))
	for p := range moved {
		out = append(out, p)
	}
	return out, err
}

// locks lists the sessions' locks (not pruning's own).
func (r *Repo) locks(ctx context.Context) ([]lockRecord, error) {
	var keys []string
	err := storage.Keys(ctx, r.st, lockDir, func(key string) error {
		if strings.HasSuffix(key, lockSuffix) && key != pruneLock {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []lockRecord
	for _, key := range keys {
		data, err := r.st.Get(ctx, key)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec lockRecord
		if json.Unmarshal(data, &rec) != nil || lockDir+rec.ID+lockSuffix != key {
			// Damage, or not ours (locks are written whole): pruning treats it as a
			// session that began at the dawn of time and never ends.
			rec = lockRecord{ID: strings.TrimSuffix(strings.TrimPrefix(key, lockDir), lockSuffix), unreadable: true}
		}
		out = append(out, rec)
	}
	return out, nil
}
