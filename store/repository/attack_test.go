package repository

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

// Probes written by attacking format 2: each forces, with storage hooks, an interleaving of
// writers, readers and prunes in several "processes" (Repos on one storage) that once lost
// data, returned errors for data that was there, or deadlocked; each was fixed.

func attackGate(t *testing.T) {
	t.Helper()
	t.Parallel()
}

// hookSt is a storage that calls hooks before and after each operation, to force
// interleavings between processes (Repos) deterministically.
type hookSt struct {
	storage.Storage
	mu     sync.Mutex
	before func(op, key string)
	after  func(op, key string)
}

func (h *hookSt) set(before, after func(op, key string)) {
	h.mu.Lock()
	h.before, h.after = before, after
	h.mu.Unlock()
}

func (h *hookSt) call(b bool, op, key string) {
	h.mu.Lock()
	f := h.after
	if b {
		f = h.before
	}
	h.mu.Unlock()
	if f != nil {
		f(op, key)
	}
}

func (h *hookSt) Put(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	h.call(true, "put", key)
	err := h.Storage.Put(ctx, key, data, ifAbsent)
	if err == nil {
		h.call(false, "put", key)
	}
	return err
}

func (h *hookSt) Get(ctx context.Context, key string) ([]byte, error) {
	h.call(true, "get", key)
	d, err := h.Storage.Get(ctx, key)
	h.call(false, "get", key)
	return d, err
}

func (h *hookSt) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	h.call(true, "list", prefix)
	err := h.Storage.List(ctx, prefix, fn)
	h.call(false, "list", prefix)
	return err
}

func (h *hookSt) Delete(ctx context.Context, key string) error {
	h.call(true, "delete", key)
	err := h.Storage.Delete(ctx, key)
	h.call(false, "delete", key)
	return err
}

func attackOpts(cache string) Options {
	return Options{CacheDir: cache, PackSize: 8 << 10,
		Heartbeat: 50 * time.Millisecond, StaleAfter: 3 * time.Second, CommitWindow: 150 * time.Millisecond}
}

// attackInit makes an empty repository in dir/repo.
func attackInit(t *testing.T, dir string) string {
	t.Helper()
	st := filepath.Join(dir, "repo")
	r, err := Init(st, testKey())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return st
}

// attackOpen opens the repository in dir (another "process": its own storage object and
// the given cache directory) through a hooked storage.
func attackOpen(t *testing.T, dir string, opts Options) (*Repo, *hookSt) {
	t.Helper()
	l, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookSt{Storage: l}
	r, err := OpenStorage(context.Background(), h, testKey(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, h
}

func putHist(ctx context.Context, r *Repo, name string, data []byte) error {
	_, _, err := r.PutWAL(ctx, "1", name, bytes.NewReader(data), int64(len(data)))
	return err
}

func readHist(ctx context.Context, r *Repo, name string) ([]byte, error) {
	var b bytes.Buffer
	err := r.ReadWAL(ctx, "1", name, &b)
	return b.Bytes(), err
}

// TestAttackStaleCacheCopyOut: a long-running WAL archiver (no session) whose cache still
// lists a pack that another process's prune has deleted. At commit, setDead resets that
// deleted pack to "live" (its tombstone is gone), so copyOut believes the blob has a good
// copy there and does not copy it out of the marked pack it deduplicated against. A prune
// that read the WAL list before the commit then deletes the marked pack: the stored WAL
// file refers to a blob nobody has.
func TestAttackStaleCacheCopyOut(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	w, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-w")))
	p, ph := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-p")))

	x := content(1)            // small, compressible
	y := randomBytes(99, 6000) // large, incompressible: makes the pack mostly dead later
	if _, _, err := w.Put(ctx, y); err != nil {
		t.Fatal(err)
	}
	if err := putHist(ctx, w, "00000002.history", x); err != nil {
		t.Fatal(err)
	}
	if err := putHist(ctx, w, "00000003.history", y); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	opts := func(wal ...WALName) PruneOptions { return PruneOptions{WAL: wal, Grace: -1, Delay: delay} }
	// Run 1: Y's WAL goes; the pack Q holding X and Y is mostly dead: X is copied to P1, Q marked.
	res, err := p.Prune(ctx, opts(WALName{"1", "00000003.history"}))
	if err != nil || res.PacksRepacked != 1 {
		t.Fatalf("prune 1 = %+v, %v, want a repack", res, err)
	}
	// The archiver process starts now: its cache knows Q (marked) and P1.
	a, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-a")))
	time.Sleep(delay + 50*time.Millisecond)
	// Run 2: Q is deleted (X has its copy in P1).
	if res, err := p.Prune(ctx, opts()); err != nil || res.PacksDeleted != 1 {
		t.Fatalf("prune 2 = %+v, %v, want Q deleted", res, err)
	}
	// Run 3: X's WAL goes; P1 is marked.
	if res, err := p.Prune(ctx, opts(WALName{"1", "00000002.history"})); err != nil || res.PacksMarked != 1 {
		t.Fatalf("prune 3 = %+v, %v, want P1 marked", res, err)
	}
	time.Sleep(delay + 50*time.Millisecond)
	// Run 4: between reading the WAL list (collectRefs) and deleting marked packs, the
	// archiver archives a new file whose block is X.
	var lists int
	var putErr error
	ran := false
	ph.set(func(op, key string) {
		if op == "list" && key == pruneDir {
			lists++
			if lists == 2 && !ran {
				ran = true
				putErr = putHist(ctx, a, "00000004.history", x)
			}
		}
	}, nil)
	res, err = p.Prune(ctx, opts())
	ph.set(nil, nil)
	if !ran {
		t.Fatal("hook did not run")
	}
	if putErr != nil {
		t.Fatalf("PutWAL during prune = %v", putErr)
	}
	t.Logf("prune 4 = %+v, %v", res, err)
	got, rerr := readHist(ctx, a, "00000004.history")
	fresh, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-fresh")))
	got2, rerr2 := readHist(ctx, fresh, "00000004.history")
	if rerr != nil || rerr2 != nil || !bytes.Equal(got, x) || !bytes.Equal(got2, x) {
		t.Errorf("BUG: PutWAL of 00000004.history succeeded, but after prune 4 ReadWAL = %v / fresh repo: %v", rerr, rerr2)
	}
}

// TestAttackStaleCacheWALStuck: an archiver whose cache lists a pack another process
// repacked and deleted deduplicates against it forever: every PutWAL of a file holding that
// block fails ("pack gone"), because nothing on the PutWAL path refreshes the cache.
func TestAttackStaleCacheWALStuck(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	w, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-w")))
	p, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-p")))
	x := content(1)
	y := randomBytes(98, 6000)
	if _, _, err := w.Put(ctx, y); err != nil {
		t.Fatal(err)
	}
	if err := putHist(ctx, w, "00000002.history", x); err != nil {
		t.Fatal(err)
	}
	if err := putHist(ctx, w, "00000003.history", y); err != nil {
		t.Fatal(err)
	}
	a, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-a"))) // long-running archiver
	res, err := p.Prune(ctx, PruneOptions{WAL: []WALName{{"1", "00000003.history"}}, Grace: -1, Delay: -1})
	if err != nil || res.PacksRepacked != 1 || res.PacksDeleted != 1 {
		t.Fatalf("prune = %+v, %v, want Q repacked and deleted", res, err)
	}
	// X is still needed (00000002.history) and stored in the repack copy. A read through
	// the long-running process's cache finds only the deleted copy and does not refresh.
	if _, err := readHist(ctx, a, "00000002.history"); err != nil {
		t.Errorf("BUG: ReadWAL of a file whose block was repacked, in a process opened before the repack: %v", err)
	}
	xname := a.objectName(x)
	if err := a.ReadBlobs(ctx, []string{xname}, ReadOptions{}, func(int, []byte) error { return nil }); err != nil {
		t.Errorf("BUG: ReadBlobs of a repacked blob through a stale cache: %v", err)
	}
	// The archiver archives another file with the same block.
	var errs []error
	for i := 0; i < 3; i++ {
		errs = append(errs, putHist(ctx, a, "00000004.history", x))
		time.Sleep(1100 * time.Millisecond * time.Duration(i)) // even after refresh-on-miss windows
	}
	if errs[0] != nil && errs[1] != nil && errs[2] != nil {
		t.Errorf("BUG: PutWAL fails at every retry: %v", errs[2])
	}
}

// TestAttackRefreshForgetsNewPack: a refresh that lists index/ just before a pack of this
// process is stored forgets it (it is no longer pending when the cache's packs are read),
// and a Get right after fails with ErrNotFound because refreshOnMiss skips within 1 s.
func TestAttackRefreshForgetsNewPack(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, h := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	x := content(5)
	ref, _, err := r.Put(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	h.set(nil, func(op, key string) {
		if op == "list" && key == indexDir && !done {
			done = true
			// Another goroutine's Sync stores the pack right after the listing.
			if err := r.Sync(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	s, err := r.Begin(ctx, "backup") // refreshes
	h.set(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	has, _ := r.Has(ctx, ref.Name)
	_, gerr := r.Get(ctx, ref.Name, nil)
	if !has || gerr != nil {
		t.Errorf("BUG: after a concurrent refresh, a blob stored and synced is unknown: Has = %v, Get = %v", has, gerr)
	}
	// The consequence for a backup: its manifest with a block map read back at commit.
	m := &Manifest{BackupID: "b", BlockSize: 1 << 20, Files: []File{{Path: "f", Type: TypeFile, Mode: 0o600, Size: int64(len(x)), Blocks: []string{ref.Name}}}}
	if _, err := s.PutManifest(ctx, "b", m); err != nil {
		t.Logf("PutManifest = %v", err)
	}
}

// TestAttackMalformedLockDisablesHold: an unreadable lock is meant to hold pruning back
// ("as old as can be"), but it is given a zero Started, and oldestLiveSession takes a zero
// time as "no live session": a garbage lock listed after a live session's lock removes
// that session's protection, and a pack it deduplicated against is deleted under it.
func TestAttackMalformedLockDisablesHold(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	if _, _, err := r.Put(ctx, content(7)); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := r.Begin(ctx, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	ref, _, err := s.Put(ctx, content(7))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.Put(ctx, lockDir+"zzzz"+lockSuffix, []byte("not json"), false); err != nil {
		t.Fatal(err)
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	t.Logf("prune during session = %+v, %v", res, err)
	m := &Manifest{BackupID: "b", BlockSize: 1 << 20, Files: []File{{Path: "f", Type: TypeFile, Mode: 0o600, Size: int64(len(content(7))), Blocks: []string{ref.Name}}}}
	_, perr := s.PutManifest(ctx, "b", m)
	if res.PacksDeleted > 0 || perr != nil {
		t.Errorf("BUG: with a garbage lock present, prune deleted %d pack(s) a live session deduplicated against (marked after it began); PutManifest = %v", res.PacksDeleted, perr)
	}
}

// TestAttackFutureBeatLock: a lock whose beat is in the future is never stale.
func TestAttackFutureBeatLock(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	if _, _, err := r.Put(ctx, content(7)); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// A beat in the far future: never stale, holds everything back forever.
	if err := r.st.Put(ctx, lockDir+"future"+lockSuffix, []byte(`{"id":"future","started":"2020-01-01T00:00:00Z","beat":"2999-01-01T00:00:00Z"}`), false); err != nil {
		t.Fatal(err)
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	t.Logf("prune with a lock beating in 2999 = %+v, %v", res, err)
	if res.PacksDeleted == 0 {
		t.Logf("NOTE: a lock with a future beat is never stale: pruning never collects packs created after its start")
	}
}

// TestAttackPruneRefreshDeadlock: collectRefs holds an IMMEDIATE write transaction on the
// cache for its whole run; reading a block map of a manifest stored after the prune's own
// refresh misses the cache, and refreshOnMiss tries to write the cache from another
// connection: it waits for the busy timeout (30 s) and the prune fails.
func TestAttackPruneRefreshDeadlock(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	w, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-w")))
	p, ph := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-p")))
	done := false
	var berr error
	ph.set(func(op, key string) {
		if op == "list" && key == lockDir && !done {
			done = true
			// A backup on another host ends between the prune's refresh and its reading
			// of the manifests; its file has a block map.
			s, err := w.Begin(ctx, "backup")
			if err != nil {
				berr = err
				return
			}
			defer s.End()
			r1, _, _ := s.Put(ctx, content(11))
			r2, _, _ := s.Put(ctx, content(12))
			var n1, n2 [32]byte
			copy(n1[:], mustHex(r1.Name))
			copy(n2[:], mustHex(r2.Name))
			mp, _, err := s.PutBlockMap(ctx, [][32]byte{n1, n2})
			if err != nil {
				berr = err
				return
			}
			m := &Manifest{BackupID: "b", BlockSize: 1 << 20, Files: []File{{Path: "f", Type: TypeFile, Mode: 0o600, Size: 2 << 20, Map: mp.Name}}}
			_, berr = s.PutManifest(ctx, "b", m)
			time.Sleep(1100 * time.Millisecond) // past refreshOnMiss's one second
		}
	}, nil)
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	res, err := p.Prune(pctx, PruneOptions{Grace: -1, Delay: -1})
	el := time.Since(start)
	ph.set(nil, nil)
	if berr != nil {
		t.Fatalf("backup = %v", berr)
	}
	t.Logf("prune = %+v, %v after %s", res, err, el.Round(time.Millisecond))
	if err != nil {
		t.Errorf("BUG: a prune that meets a block map stored since its refresh fails after %s: %v", el.Round(time.Second), err)
	}
}

func mustHex(s string) []byte {
	b := make([]byte, 32)
	for i := 0; i < 32; i++ {
		var v byte
		for _, c := range []byte(s[2*i : 2*i+2]) {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= c - '0'
			default:
				v |= c - 'a' + 10
			}
		}
		b[i] = v
	}
	return b
}

// TestAttackCollectRefsBlocksWriters: while collectRefs reads manifests (slow on object
// storage), a writer in the same process cannot record its packs in the cache.
func TestAttackCollectRefsBlocksWriters(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, h := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	s, err := r.Begin(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := backupOf(t, ctx, s, "b1", []int{1}); err != nil {
		t.Fatal(err)
	}
	s.End()
	// The prune's reading of the manifests waits until a WAL file is archived in the same
	// process: with the reading holding the cache's write lock, that never happens.
	archived, inside := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.set(func(op, key string) {
		if op == "get" && key == manifestKey("b1") {
			once.Do(func() {
				close(inside)
				select {
				case <-archived:
				case <-time.After(time.Minute):
					t.Errorf("WAL archiving in the pruning process did not get through while the prune read the manifests")
				}
			})
		}
	}, nil)
	defer h.set(nil, nil)
	pdone := make(chan error, 1)
	go func() {
		_, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
		pdone <- err
	}()
	<-inside
	if _, err := putHistT(ctx, r, "00000002.history", content(40)); err != nil {
		t.Errorf("PutWAL during the prune = %v", err)
	}
	close(archived)
	if err := <-pdone; err != nil {
		t.Errorf("Prune = %v", err)
	}
}

func putHistT(ctx context.Context, r *Repo, name string, data []byte) (WALRef, error) {
	ref, _, err := r.PutWAL(ctx, "1", name, bytes.NewReader(data), int64(len(data)))
	return ref, err
}

// TestAttackSlowCollectRefs: deleteMarked measures Delay at deletion time, not at the time
// the WAL list and manifests were read. A non-session writer (PutWAL) that checked before
// the mark and stores its file shortly after (within CommitWindow), while a prune that
// listed the WAL just before is still reading WAL manifests, loses its block.
func TestAttackSlowCollectRefs(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	wopts := attackOpts(filepath.Join(dir, "cache-w"))
	wopts.CommitWindow = 2 * time.Second
	w, wh := attackOpen(t, st, wopts)
	p, ph := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-p")))
	x := content(3)
	if err := putHist(ctx, w, "00000002.history", x); err != nil {
		t.Fatal(err)
	}
	if err := putHist(ctx, w, "00000005.history", content(4)); err != nil { // something to read
		t.Fatal(err)
	}
	const delay = 2500 * time.Millisecond // longer than the writer's CommitWindow
	checked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	wh.set(func(op, key string) {
		if op == "put" && key == walRel("1", "00000003.history") {
			once.Do(func() {
				close(checked)
				<-release
			})
		}
	}, nil)
	werr := make(chan error, 1)
	go func() { werr <- putHist(ctx, w, "00000003.history", x) }()
	<-checked
	t0 := time.Now()
	// Prune 1 (after the writer's check): X's old WAL goes, X's pack is marked.
	res, err := p.Prune(ctx, PruneOptions{WAL: []WALName{{"1", "00000002.history"}}, Grace: -1, Delay: delay})
	if err != nil || res.PacksMarked == 0 {
		t.Fatalf("prune 1 = %+v, %v", res, err)
	}
	// Prune 2 starts right away and lists the WAL before the writer's Put lands; reading
	// the WAL manifests then takes a while (object storage, thousands of files).
	var lonce sync.Once
	walLists := 0
	ph.set(nil, func(op, key string) {
		// The first listing of wal/1/ is pruneSupersededPieces'; the second is collectRefs'.
		if op == "list" && key == walDir+"/1/" {
			walLists++
		}
		if op == "list" && key == walDir+"/1/" && walLists == 2 {
			lonce.Do(func() {
				close(release)
				if e := <-werr; e != nil {
					t.Errorf("PutWAL = %v", e)
				}
				t.Logf("writer stored its WAL %s after its check", time.Since(t0).Round(time.Millisecond))
				time.Sleep(delay)
			})
		}
	})
	res, err = p.Prune(ctx, PruneOptions{Grace: -1, Delay: delay})
	ph.set(nil, nil)
	wh.set(nil, nil)
	t.Logf("prune 2 = %+v, %v", res, err)
	fresh, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-fresh")))
	got, rerr := readHist(ctx, fresh, "00000003.history")
	if rerr != nil || !bytes.Equal(got, x) {
		t.Errorf("BUG: WAL 00000003.history stored within its commit window lost its block: ReadWAL = %v", rerr)
	}
}

// TestAttackPruneLockRace: two prunes that find the same stale prune lock both take it.
func TestAttackPruneLockRace(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	p1, h1 := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-1")))
	p2, h2 := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache-2")))
	stale := []byte(`{"id":"prune","what":"prune","started":"2020-01-01T00:00:00Z","beat":"2020-01-01T00:00:00Z"}`)
	if err := p1.st.Put(ctx, pruneLock, stale, false); err != nil {
		t.Fatal(err)
	}
	p2read := make(chan struct{})
	p1locked := make(chan struct{})
	p1inside := make(chan struct{})
	p1go := make(chan struct{})
	var o1, o2, o3, o4 sync.Once
	h1.set(func(op, key string) {
		if op == "delete" && key == pruneLock {
			o1.Do(func() { <-p2read })
		}
		if op == "list" && key == lockDir {
			o3.Do(func() { close(p1inside); <-p1go })
		}
	}, func(op, key string) {
		if op == "put" && key == pruneLock {
			o4.Do(func() { close(p1locked) })
		}
	})
	h2.set(func(op, key string) {
		if op == "delete" && key == pruneLock {
			o2.Do(func() { <-p1locked })
		}
	}, func(op, key string) {
		if op == "get" && key == pruneLock {
			select {
			case <-p2read:
			default:
				close(p2read)
			}
		}
	})
	e1 := make(chan error, 1)
	go func() {
		_, err := p1.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
		e1 <- err
	}()
	var err2 error
	done2 := make(chan struct{})
	go func() {
		_, err2 = p2.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
		close(done2)
	}()
	// Prune 1 either gets in, or finds at once that its lock was replaced and stops.
	var err1 error
	p1ended := false
	select {
	case <-p1inside:
	case err1 = <-e1:
		p1ended = true
	case <-time.After(10 * time.Second):
		t.Fatal("prune 1 neither got in nor stopped")
	}
	select {
	case <-done2:
	case <-time.After(10 * time.Second):
		t.Fatal("prune 2 stuck")
	}
	close(p1go)
	if !p1ended {
		err1 = <-e1
	}
	if err2 == nil && err1 == nil {
		t.Errorf("BUG: two prunes ran at once, both past the stale prune lock")
	}
	t.Logf("prune1 = %v, prune2 = %v", err1, err2)
}

// TestAttackReadWhileUploading: ReadBlobs and Get of blobs that move from the open pack to
// uploads to the storage while packs' buffers are recycled (packer.spare), with -race.
func TestAttackReadWhileUploading(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				var names []string
				var datas [][]byte
				for k := 0; k < 6; k++ {
					d := randomBytes(uint64(g*1_000_000+i*10+k), 900+k*300)
					ref, _, err := r.Put(ctx, d)
					if err != nil {
						t.Error(err)
						return
					}
					names = append(names, ref.Name)
					datas = append(datas, d)
				}
				if i%3 == 0 {
					if err := r.Sync(ctx); err != nil {
						t.Error(err)
						return
					}
				}
				err := r.ReadBlobs(ctx, names, ReadOptions{SkipNameCheck: i%2 == 0}, func(j int, p []byte) error {
					if !bytes.Equal(p, datas[j]) {
						t.Errorf("BUG: ReadBlobs returned wrong bytes for blob %d", j)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// TestAttackTruncatedPackAndForgedMarks: a truncated pack, forged bad/ markers and a
// forged old tombstone on a needed pack: reads fail loudly, prune keeps what is needed.
func TestAttackTruncatedPackAndForgedMarks(t *testing.T) {
	attackGate(t)
	ctx := context.Background()
	dir := t.TempDir()
	st := attackInit(t, dir)
	r, _ := attackOpen(t, st, attackOpts(filepath.Join(dir, "cache")))
	s, err := r.Begin(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := backupOf(t, ctx, s, "b1", []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	s.End()
	m, _ := r.Manifest(ctx, "b1")
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Blocks[0])
	}
	pack, _, _, _ := r.Locate(ctx, names[0])
	// Forged tombstone dated long ago and forged bad marks on every copy.
	if err := r.st.Put(ctx, deadKey(pack), []byte(`{"pack":"`+pack+`","at":"2000-01-01T00:00:00Z"}`), false); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		p, _, _, _ := r.Locate(ctx, n)
		if err := r.st.Put(ctx, badKey(p, n), []byte(`{}`), false); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	t.Logf("prune = %+v, %v", res, err)
	checkBackups(t, ctx, r, map[string][]int{"b1": {1, 2, 3}})
	// Truncate the pack in the middle of its blobs.
	path := filepath.Join(st, filepath.FromSlash(packKey(pack)))
	os.Chmod(path, 0o600)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, data[:len(data)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	err = r.ReadBlobs(ctx, names, ReadOptions{SkipNameCheck: true}, func(i int, p []byte) error {
		if !bytes.Equal(p, content([]int{1, 2, 3}[i])) {
			t.Errorf("BUG: wrong bytes for blob %d", i)
		}
		return nil
	})
	t.Logf("ReadBlobs of a truncated pack = %v", err)
	if err == nil {
		t.Errorf("ReadBlobs of a truncated pack succeeded")
	}
}
