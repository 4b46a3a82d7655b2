package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/backstop/backstop/store/repository/storage"
)

// tb is what the helpers need of a *testing.T or a *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// pruneRepo makes a local repository with small packs and fast protocol timings.
func pruneRepo(t tb, dir string) *Repo {
	t.Helper()
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	opts := Options{CacheDir: filepath.Join(dir, "cache-"+strconv.Itoa(os.Getpid())), PackSize: 8 << 10,
		Heartbeat: 50 * time.Millisecond, StaleAfter: 3 * time.Second, CommitWindow: 150 * time.Millisecond}
	st := filepath.Join(dir, "repo")
	var r *Repo
	var err error
	if _, serr := os.Stat(st); serr == nil {
		r, err = openLocal(st, key, opts)
	} else {
		r, err = initLocal(st, key, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func initLocal(dir string, key []byte, opts Options) (*Repo, error) {
	r, err := Init(dir, key)
	if err != nil {
		return nil, err
	}
	r.Close()
	return openLocal(dir, key, opts)
}

func openLocal(dir string, key []byte, opts Options) (*Repo, error) {
	st, err := storage.NewLocal(dir)
	if err != nil {
		return nil, err
	}
	return OpenStorage(context.Background(), st, key, opts)
}

// content is the deterministic plaintext of blob number n: a few KiB, so that several
// share a pack.
func content(n int) []byte {
	seed := sha256.Sum256([]byte("blob " + strconv.Itoa(n)))
	return bytes.Repeat(seed[:], 40+n%50)
}

// backupOf stores a manifest with one single-block file per content number.
func backupOf(t tb, ctx context.Context, s *Session, id string, nums []int) error {
	t.Helper()
	m := &Manifest{BackupID: id, BlockSize: 1 << 20, StartLSN: "0/1", EndLSN: "0/2"}
	for i, n := range nums {
		ref, _, err := s.Put(ctx, content(n))
		if err != nil {
			return err
		}
		m.Files = append(m.Files, File{Path: fmt.Sprintf("f%d", i), Type: TypeFile, Mode: 0o600, Size: int64(len(content(n))), Blocks: []string{ref.Name}})
	}
	_, err := s.PutManifest(ctx, id, m)
	return err
}

// checkBackups reads every block of every listed backup back and compares it with what
// was stored.
func checkBackups(t tb, ctx context.Context, r *Repo, want map[string][]int) {
	t.Helper()
	for id, nums := range want {
		m, err := r.Manifest(ctx, id)
		if err != nil {
			t.Fatalf("Manifest(%s) = %v", id, err)
		}
		for i, f := range m.Files {
			got, err := r.Get(ctx, f.Blocks[0], nil)
			if err != nil {
				t.Fatalf("backup %s file %d: Get = %v", id, i, err)
			}
			if !bytes.Equal(got, content(nums[i])) {
				t.Fatalf("backup %s file %d: wrong content", id, i)
			}
		}
	}
}

func packCount(t tb, r *Repo) int {
	t.Helper()
	n := 0
	if err := r.st.List(context.Background(), packDir, func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPruneDeletesOnlyWhatNothingNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()

	s, err := r.Begin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := backupOf(t, ctx, s, "b1", []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := backupOf(t, ctx, s, "b2", []int{3, 4}); err != nil {
		t.Fatal(err)
	}
	// A failed backup: stored, never referred to.
	for n := 100; n < 110; n++ {
		if _, _, err := s.Put(ctx, content(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s.End()

	res, err := r.Prune(ctx, PruneOptions{Backups: []string{"b1"}, Grace: -1, Delay: -1})
	if err != nil {
		t.Fatalf("Prune = %v", err)
	}
	if res.BackupsDeleted != 1 || res.PacksDeleted == 0 {
		t.Errorf("Prune = %+v, want 1 backup and some packs deleted", res)
	}
	checkBackups(t, ctx, r, map[string][]int{"b2": {3, 4}})
	for _, n := range []int{1, 2, 100, 105} {
		if ok, _ := r.Has(ctx, r.objectName(content(n))); ok {
			t.Errorf("blob %d is still stored after the prune, want it collected", n)
		}
	}
	// Reopened with a cache of its own, the repository says the same.
	r2, err := openLocal(r.localDir(), testKey(), Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkBackups(t, ctx, r2, map[string][]int{"b2": {3, 4}})

	// Nothing more to do: a second prune deletes nothing.
	res, err = r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	if err != nil || res.PacksDeleted != 0 || res.PacksMarked != 0 {
		t.Errorf("second Prune = %+v, %v, want nothing to do", res, err)
	}
}

// testKey is the key pruneRepo uses.
func testKey() []byte {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	return key
}

func TestPruneMarksThenDeletesAfterDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	if _, _, err := r.Put(ctx, content(1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: delay})
	if err != nil || res.PacksMarked != 1 || res.PacksDeleted != 0 {
		t.Fatalf("first Prune = %+v, %v, want one pack marked, none deleted", res, err)
	}
	// Marked, not deleted: still readable, but no writer deduplicates against it.
	if _, err := r.Get(ctx, r.objectName(content(1)), nil); err != nil {
		t.Errorf("Get of a marked blob = %v, want it readable until deleted", err)
	}
	if _, written, err := r.Put(ctx, content(1)); err != nil || !written {
		t.Errorf("Put of a marked blob's content = written %v, %v, want a new copy", written, err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = r.Prune(ctx, PruneOptions{Grace: time.Hour, Delay: delay})
	if err != nil || res.PacksDeleted != 0 {
		t.Fatalf("Prune before the delay = %+v, %v, want nothing deleted", res, err)
	}
	time.Sleep(delay)
	res, err = r.Prune(ctx, PruneOptions{Grace: time.Hour, Delay: delay})
	if err != nil || res.PacksDeleted != 1 {
		t.Fatalf("Prune after the delay = %+v, %v, want the marked pack deleted", res, err)
	}
}

// TestPruneWhileSessionDeduplicates: a backup that found a blob in a pack that pruning
// then marks copies it out at its commit, and the pack is deleted only after the session
// ends; the backup reads back whole.
func TestPruneWhileSessionDeduplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	// An unreferenced blob, older than the grace period.
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
	ref, written, err := s.Put(ctx, content(7))
	if err != nil || written {
		t.Fatalf("Put = written %v, %v, want a dedupe hit", written, err)
	}
	old := ref.Pack
	// Pruning marks the pack (nothing refers to it yet) but may not delete it while the
	// session that began before the mark lives.
	if res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1}); err != nil || res.PacksMarked != 1 || res.PacksDeleted != 0 {
		t.Fatalf("Prune during the session = %+v, %v, want the pack marked, not deleted", res, err)
	}
	m := &Manifest{BackupID: "b", BlockSize: 1 << 20, Files: []File{{Path: "f", Type: TypeFile, Mode: 0o600, Size: int64(len(content(7))), Blocks: []string{ref.Name}}}}
	if _, err := s.PutManifest(ctx, "b", m); err != nil {
		t.Fatalf("PutManifest = %v", err)
	}
	s.End()
	if pack, _, _, err := r.Locate(ctx, ref.Name); err != nil || pack == old {
		t.Errorf("after the commit the blob is in pack %s (%v), want a copy outside marked pack %s", pack, err, old)
	}
	if res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1}); err != nil || res.PacksDeleted != 1 {
		t.Fatalf("Prune after the session = %+v, %v, want the marked pack deleted", res, err)
	}
	checkBackups(t, ctx, r, map[string][]int{"b": {7}})
}

// TestPruneCancelsMarkOfNeededPack: a manifest stored after a pack was marked, by a
// writer that checked before the mark, keeps the pack.
func TestPruneCancelsMarkOfNeededPack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	ref, _, err := r.Put(ctx, content(9))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: time.Hour}); err != nil || res.PacksMarked != 1 {
		t.Fatalf("Prune = %+v, %v, want the pack marked", res, err)
	}
	// As if its writer had checked just before the mark.
	m := &Manifest{BackupID: "late", BlockSize: 1 << 20, Files: []File{{Path: "f", Type: TypeFile, Mode: 0o600, Size: int64(len(content(9))), Blocks: []string{ref.Name}}}}
	if _, err := r.putManifest(ctx, "late", m); err != nil {
		t.Fatal(err)
	}
	dead, err := r.tombstones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, ts := range dead {
		ts.At = ts.At.Add(-2 * time.Hour)
		data := fmt.Appendf(nil, `{"pack":%q,"at":%q}`, id, ts.At.Format(time.RFC3339Nano))
		if err := r.st.Put(ctx, deadKey(id), data, false); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: time.Hour, Delay: time.Hour})
	if err != nil || res.TombstonesCancelled != 1 || res.PacksDeleted != 0 {
		t.Fatalf("Prune = %+v, %v, want the mark cancelled", res, err)
	}
	checkBackups(t, ctx, r, map[string][]int{"late": {9}})
}

func TestPruneRepacksMostlyDeadPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	s, err := r.Begin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Six blobs in one pack (the pack is 8 KiB; each blob is 1-3 KiB before
	// compression and compresses well), one of them kept.
	if err := backupOf(t, ctx, s, "all", []int{20, 21, 22, 23, 24, 25}); err != nil {
		t.Fatal(err)
	}
	if err := backupOf(t, ctx, s, "one", []int{22}); err != nil {
		t.Fatal(err)
	}
	s.End()
	before := packCount(t, r)
	res, err := r.Prune(ctx, PruneOptions{Backups: []string{"all"}, Grace: -1, Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.PacksRepacked == 0 {
		t.Errorf("Prune = %+v, want the mostly dead pack repacked", res)
	}
	checkBackups(t, ctx, r, map[string][]int{"one": {22}})
	if after := packCount(t, r); after > before {
		t.Errorf("%d packs after the repack, %d before", after, before)
	}
}

func TestPruneSupersededPieces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	const sys, seg = "7000000000000000001", "000000010000000000000002"
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	for _, end := range []int64{1 << 20, 3 << 20} {
		if _, _, err := r.PutWAL(ctx, sys, PartialWALName(seg, end), bytes.NewReader(data[:end]), end); err != nil {
			t.Fatal(err)
		}
	}
	other := "000000010000000000000003"
	if _, _, err := r.PutWAL(ctx, sys, PartialWALName(other, 2<<20), bytes.NewReader(data[:2<<20]), 2<<20); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.PutWAL(ctx, sys, seg, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.PiecesDeleted != 2 {
		t.Errorf("Prune = %+v, want the 2 pieces of the complete segment deleted", res)
	}
	names, err := r.WALNames(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{seg, PartialWALName(other, 2<<20)}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("WAL after the prune = %v, want %v (the newest piece of an incomplete segment stays)", names, want)
	}
	var buf bytes.Buffer
	if err := r.ReadWAL(ctx, sys, seg, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("ReadWAL(%s) after the prune = %v, content equal %v", seg, err, bytes.Equal(buf.Bytes(), data))
	}
}

// TestPruneRecoversLostIndex: a writer killed between storing a pack and its index leaves
// a pack no index names; pruning writes the index again from the pack's trailer, and then
// collects the pack like any other.
func TestPruneRecoversLostIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	ref, _, err := r.Put(ctx, content(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.st.Delete(ctx, indexKey(ref.Pack)); err != nil {
		t.Fatal(err)
	}
	fresh, err := openLocal(r.localDir(), testKey(), Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if ok, _ := fresh.Has(ctx, ref.Name); ok {
		t.Fatalf("a pack without its index is visible before pruning")
	}
	res, err := fresh.Prune(ctx, PruneOptions{Grace: time.Hour, Delay: time.Hour})
	if err != nil || res.IndexesRecovered != 1 {
		t.Fatalf("Prune = %+v, %v, want one index recovered", res, err)
	}
	if got, err := fresh.Get(ctx, ref.Name, nil); err != nil || !bytes.Equal(got, content(3)) {
		t.Errorf("Get after the index was recovered = %v", err)
	}
	if _, err := r.st.Size(ctx, indexKey(ref.Pack)); err != nil {
		t.Errorf("index object after recovery: %v", err)
	}
	res, err = fresh.Prune(ctx, PruneOptions{Grace: -1, Delay: -1})
	if err != nil || res.PacksDeleted != 1 {
		t.Errorf("Prune = %+v, %v, want the unreferenced pack deleted", res, err)
	}
}

func TestPruneLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := pruneRepo(t, t.TempDir())
	defer r.Close()
	_, release, err := r.lockPrune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1}); !errors.Is(err, ErrPruneBusy) {
		t.Errorf("Prune while another holds the lock = %v, want ErrPruneBusy", err)
	}
	release()
	if _, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: -1}); err != nil {
		t.Errorf("Prune after the lock was released = %v", err)
	}
}

// TestPruneProperty runs random histories of backups, failed backups, corruption marked
// bad, prunes and reopenings, and checks after every step that every remaining backup
// reads back exactly (or, for a block marked bad that no backup has stored again since,
// reads back exactly or fails as corrupt: never wrong, never missing), and so that no
// blob a backup needs was deleted.
func TestPruneProperty(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "prune-property-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		r := pruneRepo(rt, dir)
		defer func() { r.Close() }()
		live := map[string][]int{}
		damaged := map[int]bool{}
		next := 0
		rt.Repeat(map[string]func(*rapid.T){
			"backup": func(rt *rapid.T) {
				nums := rapid.SliceOfN(rapid.IntRange(0, 30), 1, 8).Draw(rt, "blobs")
				s, err := r.Begin(ctx, "backup")
				if err != nil {
					rt.Fatal(err)
				}
				defer s.End()
				id := fmt.Sprintf("b%03d", next)
				next++
				if err := backupOf(rt, ctx, s, id, nums); err != nil {
					rt.Fatal(err)
				}
				live[id] = nums
				for _, n := range nums {
					delete(damaged, n) // a good copy was stored, or found
				}
			},
			"failed backup": func(rt *rapid.T) {
				nums := rapid.SliceOfN(rapid.IntRange(0, 40), 1, 8).Draw(rt, "blobs")
				s, err := r.Begin(ctx, "failed")
				if err != nil {
					rt.Fatal(err)
				}
				for _, n := range nums {
					if _, _, err := s.Put(ctx, content(n)); err != nil {
						rt.Fatal(err)
					}
				}
				if rapid.Bool().Draw(rt, "synced") {
					if err := r.Sync(ctx); err != nil {
						rt.Fatal(err)
					}
				}
				s.End()
			},
			"prune": func(rt *rapid.T) {
				var del []string
				for id := range live {
					if rapid.Bool().Draw(rt, "delete "+id) {
						del = append(del, id)
					}
				}
				delay := time.Duration(-1)
				if rapid.Bool().Draw(rt, "two steps") {
					delay = time.Hour // marks only
				}
				if _, err := r.Prune(ctx, PruneOptions{Backups: del, Grace: -1, Delay: delay}); err != nil {
					rt.Fatal(err)
				}
				for _, id := range del {
					delete(live, id)
				}
			},
			"corrupt and mark bad": func(rt *rapid.T) {
				var ids []string
				for id := range live {
					ids = append(ids, id)
				}
				if len(ids) == 0 {
					rt.Skip("no backup")
				}
				slices.Sort(ids)
				id := rapid.SampledFrom(ids).Draw(rt, "backup")
				n := rapid.SampledFrom(live[id]).Draw(rt, "blob")
				name := r.objectName(content(n))
				if err := r.Sync(ctx); err != nil {
					rt.Fatal(err)
				}
				locs, err := r.find(ctx, name)
				if err != nil {
					rt.Fatal(err)
				}
				for _, loc := range locs {
					path := filepath.Join(r.localDir(), filepath.FromSlash(packKey(loc.Pack)))
					data, err := os.ReadFile(path)
					if err != nil {
						rt.Fatal(err)
					}
					data[loc.Offset+loc.Length/2]++ // not undone by a second corruption
					if err := os.WriteFile(path, data, 0o600); err != nil {
						rt.Fatal(err)
					}
					if err := r.MarkBad(ctx, BadObject{Name: name, Pack: loc.Pack, Reason: "test"}); err != nil {
						rt.Fatal(err)
					}
				}
				damaged[n] = true
			},
			"reopen": func(rt *rapid.T) {
				r.Close()
				r = pruneRepo(rt, dir)
			},
			"": func(rt *rapid.T) {
				for id, nums := range live {
					m, err := r.Manifest(ctx, id)
					if err != nil {
						rt.Fatalf("Manifest(%s) = %v", id, err)
					}
					for i, f := range m.Files {
						got, err := r.Get(ctx, f.Blocks[0], nil)
						var ce *CorruptError
						switch {
						case damaged[nums[i]] && err == nil && bytes.Equal(got, content(nums[i])):
							// Healed by a failed backup's copy, still in memory or stored.
						case damaged[nums[i]]:
							if !errors.As(err, &ce) {
								rt.Fatalf("backup %s blob %d (damaged): Get = %v, want the content or a *CorruptError", id, nums[i], err)
							}
						case err != nil:
							rt.Fatalf("backup %s blob %d: Get = %v", id, nums[i], err)
						case !bytes.Equal(got, content(nums[i])):
							rt.Fatalf("backup %s blob %d: wrong content", id, nums[i])
						}
					}
				}
			},
		})
	})
}

// TestPruneConcurrent runs backups in goroutines and in a second process, and WAL
// archiving, while pruning deletes old backups over and over; every backup that was not
// deleted reads back whole afterwards.
func TestPruneConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	ctx := context.Background()
	dir := t.TempDir()
	r := pruneRepo(t, dir)
	defer r.Close()

	// The second process: the test binary again, writing backups named p*.
	child := exec.Command(os.Args[0], "-test.run=^TestPruneChild$", "-test.count=1")
	child.Env = append(os.Environ(), "BACKSTOP_PRUNE_CHILD="+dir)
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	kept := map[string][]int{}
	errs := make(chan error, 16)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nums := []int{i % 40, (i*7 + w) % 40, 100 + w*1000 + i}
				s, err := r.Begin(ctx, "backup")
				if err != nil {
					errs <- err
					return
				}
				id := fmt.Sprintf("g%d-%04d", w, i)
				err = backupOf(t, ctx, s, id, nums)
				s.End()
				if err != nil {
					errs <- fmt.Errorf("backup %s: %w", id, err)
					return
				}
				mu.Lock()
				kept[id] = nums
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		const sys = "7000000000000000009"
		data := make([]byte, 16<<20)
		for seg := 1; ; seg++ {
			for i := range data {
				data[i] = byte(i*seg + seg)
			}
			name := fmt.Sprintf("0000000100000000%08X", seg)
			for _, end := range []int64{1 << 20, 2 << 20, 4 << 20} {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := r.PutWAL(ctx, sys, PartialWALName(name, end), bytes.NewReader(data[:end]), end); err != nil {
					errs <- err
					return
				}
			}
			if _, _, err := r.PutWAL(ctx, sys, name, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
				return
			}
		}
	})
	prunes := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			// Delete the older half of what the goroutines wrote.
			mu.Lock()
			var del []string
			for id := range kept {
				if len(del) < len(kept)/2 {
					del = append(del, id)
				}
			}
			for _, id := range del {
				delete(kept, id)
			}
			mu.Unlock()
			_, err := r.Prune(ctx, PruneOptions{Backups: del, Grace: 200 * time.Millisecond, Delay: 400 * time.Millisecond})
			if errors.Is(err, ErrPruneBusy) {
				continue
			}
			if err != nil {
				errs <- fmt.Errorf("prune: %w", err)
				return
			}
			prunes++
		}
	})
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Fatalf("second process: %v\n%s", err, childOut.String())
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if prunes == 0 {
		t.Fatal("no prune ran")
	}
	// Let the marks age and prune once more with nothing running, then read all back.
	time.Sleep(500 * time.Millisecond)
	res, err := r.Prune(ctx, PruneOptions{Grace: -1, Delay: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d prunes while writing; last: %+v; %d backups kept", prunes, res, len(kept))
	checkBackups(t, ctx, r, kept)
	ids, err := r.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if strings.HasPrefix(id, "p") {
			m, err := r.Manifest(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range m.Files {
				if _, err := r.Get(ctx, f.Blocks[0], nil); err != nil {
					t.Fatalf("backup %s of the second process: %v", id, err)
				}
			}
		}
	}
	if err := r.ReadWAL(ctx, "7000000000000000009", fmt.Sprintf("0000000100000000%08X", 1), new(bytes.Buffer)); err != nil {
		t.Errorf("ReadWAL of the first archived segment = %v", err)
	}
}

// TestPruneChild is the second process of TestPruneConcurrent.
func TestPruneChild(t *testing.T) {
	dir := os.Getenv("BACKSTOP_PRUNE_CHILD")
	if dir == "" {
		t.Skip("the second process of TestPruneConcurrent")
	}
	ctx := context.Background()
	r := pruneRepo(t, dir)
	defer r.Close()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		s, err := r.Begin(ctx, "child backup")
		if err != nil {
			t.Fatal(err)
		}
		err = backupOf(t, ctx, s, fmt.Sprintf("p%04d", i), []int{i % 40, 5000 + i})
		s.End()
		if err != nil {
			t.Fatal(err)
		}
	}
}
