package repository

// Verification.
//
// Verify proves that what the repository holds reads back, without taking any lock that a
// backup, WAL archiving or pruning waits for: it only reads, and writes bad/ markers.
//
// Packs: each pack it reads is streamed in ranged reads of a few MiB, a few reads in
// flight and the blobs opened on every core. Every blob must authenticate, decompress
// and hash to its name (a deep run takes the last two as proven for the packs whose very
// seals were fully checked before, and fully checks a rotating share of those: see
// proof.go); the pack's header and trailer must be intact, and the trailer's index must
// be the index object's. A corrupt copy is marked bad, so that writers stop
// deduplicating against it and readers prefer another copy.
//
// References: every manifest and archived WAL file it checks must open, and every blob
// it refers to must have a stored copy that is not known to be bad: one this run read and
// found sound, or one in the index cache, not marked bad, not found corrupt or gone in
// this run. Blobs with a finding are traced back to the backups and file paths, or the
// WAL files, that refer to them.
//
// Memory stays flat: a pack is never held whole, the sets kept are those of the blobs
// with findings, and the references are checked against the on-disk index cache. A
// bounded set of the blobs this run found sound (verifiedCap) spares most references a
// lookup in the index cache.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

// Kinds of Finding.
const (
	// FindingCorruptBlob is a stored copy of a blob that fails verification (Object is the
	// blob's name, Pack the pack holding the copy).
	FindingCorruptBlob = "corrupt-blob"
	// FindingMissingBlob is a blob a backup refers to with no readable copy: none in the
	// index, or only copies that are corrupt or in packs that are gone.
	FindingMissingBlob = "missing-blob"
	// FindingMissingWALBlob is FindingMissingBlob for a blob only archived WAL refers to.
	FindingMissingWALBlob = "missing-wal-blob"
	// FindingCorruptPack is a pack whose header or trailer is damaged, or whose index
	// object cannot be opened or disagrees with the trailer (Object is the pack's or the
	// index object's key).
	FindingCorruptPack = "corrupt-pack"
	// FindingMissingPack is a pack the index lists that is not stored.
	FindingMissingPack = "missing-pack"
	// FindingMissingIndex is a stored pack without its index object (a writer died
	// between the two); the next prune writes the index again from the pack's trailer.
	FindingMissingIndex = "missing-index"
	// FindingCorruptManifest is a backup manifest that fails verification, or whose file
	// disagrees with its block map.
	FindingCorruptManifest = "corrupt-manifest"
	// FindingMissingManifest is a manifest the caller named that is not stored.
	FindingMissingManifest = "missing-manifest"
	// FindingCorruptWAL is an archived WAL file's manifest that fails verification.
	FindingCorruptWAL = "corrupt-wal"
	// FindingMissingWAL is an archived WAL file the caller named that is not stored.
	FindingMissingWAL = "missing-wal"
)

const (
	// verifySegment is what one ranged read of a pack asks for; a larger blob is read whole.
	verifySegment = 4 << 20
	// verifyFetches is how many ranged reads are in flight beyond one per core, so that
	// the cores open blobs while the storage answers.
	verifyFetches = 2
	// verifyUnits is how many manifests and WAL files are checked at once.
	verifyUnits = 4
	// verifyBatch is how many references are checked against the index cache at once.
	verifyBatch = 256
	// verifiedCap bounds verifier.verified: about 20 MiB at most.
	verifiedCap = 1 << 18
	// maxRefPaths and maxWALRefs bound the references a finding lists: a block of zeros
	// is in thousands of files.
	maxRefPaths = 8
	maxWALRefs  = 32
)

// VerifyOptions say what Verify reads.
type VerifyOptions struct {
	// Deep reads and checks every pack. Otherwise (a routine run) Verify reads the packs
	// created at or after Since, the packs without an index object, and a Sample of the
	// others.
	//
	// A deep run authenticates and decrypts every blob it reads; it also decompresses it
	// and recomputes its name (a full check) unless its pack holds a proof in the index
	// cache that this very ciphertext was fully checked before (see proof.go). A routine
	// run fully checks every blob it reads. Either records the proofs of the packs it
	// fully checked and found sound.
	Deep bool
	// Rehash makes a deep run fully check every blob, proven or not.
	Rehash bool
	// RehashEvery is the number of deep runs within which each proven pack is fully
	// checked again, a share of them in each run; 0 means DefaultRehashEvery, 1 every run.
	RehashEvery int
	// Since selects the packs a routine run reads whole: those created at or after it, by
	// the time in their index (the writer's clock). The zero time selects every pack.
	Since time.Time
	// Sample is the share, from 0 to 1, of the packs Since leaves out that a routine run
	// reads: the next ones by pack id after Cursor, wrapping around, so that runs passing
	// the returned Cursor along read every such pack in ceil(1/Sample) runs. Packs marked
	// for deletion are left to deep runs.
	Sample float64
	// Cursor is the Cursor the previous routine run returned; "" starts at the beginning.
	Cursor string
	// Manifests are the backups whose manifests are checked: each must open and every blob
	// it refers to must have a readable copy. nil means every manifest; an empty, non-nil
	// slice none. A named manifest that is not stored is a finding.
	Manifests []string
	// WAL are the archived WAL files checked, like Manifests: nil means every one; an
	// empty, non-nil slice none.
	WAL []WALName
	// Progress, when not nil, is called with the pack bytes read so far and the total
	// this run reads, from Verify's goroutines one call at a time; it must return quickly.
	Progress func(done, total int64)
	// MarkBad marks every corrupt copy found with MarkBad (what a verify job wants).
	MarkBad bool
}

// VerifyResult says what Verify read and found.
type VerifyResult struct {
	// PacksChecked are the packs read whole; PacksTotal those the repository holds (as
	// its listing and index say; packs pruning deleted meanwhile are not counted).
	PacksChecked, PacksTotal int
	// BytesRead is what was read of packs.
	BytesRead int64
	// BlobsChecked counts the blob copies read and verified: every one authenticated and
	// decrypted; BlobsRehashed of them also decompressed and their name recomputed (the
	// others are in packs proven before, see proof.go).
	BlobsChecked, BlobsRehashed int64
	// KnownBad counts the copies marked bad before this run that still fail: they are not
	// findings again (while a backup needs such a blob and it has no other copy, that is a
	// missing-blob finding; once the next backup stored a good copy, nothing).
	KnownBad int64
	// ManifestsChecked and WALChecked count the manifests and WAL files whose
	// references were checked.
	ManifestsChecked int
	WALChecked       int
	// Cursor is where the rotation of a routine run stopped: pass it to the next one.
	Cursor string
	// NextSince is the Since for the next routine run, so that it reads every pack this
	// one could not see: when this run listed the packs, or when the oldest backup
	// session then running began if earlier (a pack is dated when its writer opens it,
	// and a backup may keep one open for long), less a minute of clock skew between hosts.
	NextSince time.Time
	// Findings are sorted by Kind, Object and Pack.
	Findings []Finding
}

// Finding is one thing wrong in the repository.
type Finding struct {
	// Kind is one of the Finding* constants.
	Kind string `json:"kind"`
	// Object is a blob's name, or the key of a pack, index object, manifest or WAL file.
	Object string `json:"object"`
	// Pack is the pack concerned, when there is one.
	Pack string `json:"pack,omitempty"`
	// Refs are the backups and file paths, and the WAL files, that refer to the blob (or
	// the manifest or WAL file itself; for a pack without a readable index object, to the
	// blobs no other pack holds), sorted; at most 8 paths per backup and 32 WAL
	// files are listed, and RefsOmitted counts the references left out.
	Refs        []FindingRef `json:"refs,omitempty"`
	RefsOmitted int          `json:"refs_omitted,omitempty"`
	// OtherCopy, for a corrupt blob, is a pack holding another copy not known to be bad
	// (not read by this run unless it was selected): readers use it, so the backups that
	// refer to the blob still restore. Empty when there is none.
	OtherCopy string `json:"other_copy,omitempty"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
}

// FindingRef is what refers to the object of a finding: a file of a backup, or an
// archived WAL file.
type FindingRef struct {
	// Manifest is the backup id and Path the file in it.
	Manifest string `json:"manifest,omitempty"`
	Path     string `json:"path,omitempty"`
	// System and WAL name an archived WAL file.
	System string `json:"system,omitempty"`
	WAL    string `json:"wal,omitempty"`
}

// Verify checks the repository as o says (see VerifyOptions and the comment at the top
// of verify.go) and returns what it read and found. It takes no lock: backups, WAL
// archiving, restores and pruning run meanwhile, and a pack pruning deletes while Verify
// reads it is not a finding. An error means the run could not finish (the storage
// failed, or ctx ended); the result then holds what was done so far.
func (r *Repo) Verify(ctx context.Context, o VerifyOptions) (VerifyResult, error) {
	if math.IsNaN(o.Sample) || o.Sample < 0 || o.Sample > 1 {
		return VerifyResult{}, fmt.Errorf("verify: sample %v is outside 0 to 1", o.Sample)
	}
	if o.RehashEvery < 0 {
		return VerifyResult{}, fmt.Errorf("verify: rehash every %d runs: want 1 or more (0 for the default, %d)", o.RehashEvery, DefaultRehashEvery)
	}
	for _, id := range o.Manifests {
		if err := validateID(id); err != nil {
			return VerifyResult{}, fmt.Errorf("verify: %w", err)
		}
	}
	for _, w := range o.WAL {
		if err := validateSystemID(w.SystemID); err != nil {
			return VerifyResult{}, fmt.Errorf("verify: %w", err)
		}
		if _, _, err := parseWALName(w.Name); err != nil {
			return VerifyResult{}, fmt.Errorf("verify: %w", err)
		}
	}
	v := &verifier{
		r:         r,
		o:         o,
		corrupt:   map[[32]byte][]int{},
		badCopies: map[copyKey]bool{},
		missing:   map[[32]byte]int{},
		gonePacks: map[string]bool{},
		inGone:    map[[32]byte]bool{},
		weakPacks: map[string]int{},
		weakBlobs: map[[32]byte]int{},
		verified:  map[[32]byte]struct{}{},
		cursor:    o.Cursor,
	}
	err := v.run(ctx)
	return v.result(), err
}

// verifier is the state of one Verify run.
type verifier struct {
	r *Repo
	o VerifyOptions

	bytesRead, blobs, rehashed, knownBad atomic.Int64
	// deepRun is the number of this deep run, or of the last one for a routine run
	// (proof.go).
	deepRun int64

	progressMu                  sync.Mutex
	progressDone, progressTotal int64

	// mu guards what follows.
	mu        sync.Mutex
	findings  []Finding
	refCounts []refCount         // per finding: the references listed so far
	corrupt   map[[32]byte][]int // blob → its corrupt-blob findings
	badCopies map[copyKey]bool   // copies found corrupt by this run
	missing   map[[32]byte]int   // blob → its missing-blob finding
	gonePacks map[string]bool    // packs found missing by this run
	inGone    map[[32]byte]bool  // blobs with a copy in one of them
	// weakPacks are the packs whose index object is missing, damaged or disagrees with
	// their trailer, with the finding that says so (-1 for a pack just stored, whose
	// index object is on its way); weakBlobs the blobs they hold. A process whose index
	// cache does not list these blobs cannot read them until pruning writes the index
	// again from the trailer: what refers to them is traced to the pack's finding.
	weakPacks map[string]int
	weakBlobs map[[32]byte]int
	// verified are blobs of which this run read a sound copy, not marked bad, in a pack
	// with a sound index object (at most verifiedCap): a reference to one of them is
	// sound without a lookup in the index cache, unless a corrupt copy was found too (its
	// finding lists the references). checkPacks fills it; once it has returned, the set
	// is only read, by the reference checks.
	verified map[[32]byte]struct{}
	cursor   string
	next     time.Time // NextSince

	packsChecked, packsTotal, manifests, wal int

	refreshMu   sync.Mutex
	refreshedAt time.Time // when the last refresh of the index cache began
}

type copyKey struct {
	pack string
	name [32]byte
}

type refCount struct {
	seen  map[FindingRef]bool
	paths map[string]int // backup → paths listed
	wal   int
}

func (v *verifier) run(ctx context.Context) error {
	began := time.Now()
	if err := v.r.cache.refresh(ctx, v.r); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.refreshedAt = began
	deepRun, err := v.r.cache.deepRun(ctx, v.o.Deep)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.deepRun = deepRun
	if err := v.nextSince(ctx, began); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	packs, err := v.plan(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := v.checkPacks(ctx, packs); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if err := v.checkReferences(ctx); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	return nil
}

// clockSkew is how far apart the clocks of hosts sharing a repository may be.
const clockSkew = time.Minute

// nextSince sets the NextSince of a run that lists the packs after began.
func (v *verifier) nextSince(ctx context.Context, began time.Time) error {
	locks, err := v.r.locks(ctx)
	if err != nil {
		return err
	}
	since := began
	for _, l := range locks {
		if !l.unreadable && time.Since(l.Beat) <= v.r.opts.StaleAfter && l.Started.Before(since) {
			since = l.Started
		}
	}
	v.mu.Lock()
	v.next = since.Add(-clockSkew).UTC()
	v.mu.Unlock()
	return nil
}

// result returns the run's result with its findings and references sorted.
func (v *verifier) result() VerifyResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	findings := slices.Clone(v.findings)
	for i := range findings {
		findings[i].Refs = slices.Clone(findings[i].Refs)
		slices.SortFunc(findings[i].Refs, func(a, b FindingRef) int {
			return cmp.Or(strings.Compare(a.Manifest, b.Manifest), strings.Compare(a.Path, b.Path),
				strings.Compare(a.System, b.System), strings.Compare(a.WAL, b.WAL))
		})
	}
	slices.SortFunc(findings, func(a, b Finding) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Object, b.Object), strings.Compare(a.Pack, b.Pack))
	})
	return VerifyResult{
		PacksChecked:     v.packsChecked,
		PacksTotal:       v.packsTotal,
		BytesRead:        v.bytesRead.Load(),
		BlobsChecked:     v.blobs.Load(),
		BlobsRehashed:    v.rehashed.Load(),
		KnownBad:         v.knownBad.Load(),
		ManifestsChecked: v.manifests,
		WALChecked:       v.wal,
		Cursor:           v.cursor,
		NextSince:        v.next,
		Findings:         findings,
	}
}

// addFinding records f and returns its index; v.mu is held.
func (v *verifier) addFinding(f Finding) int {
	v.findings = append(v.findings, f)
	v.refCounts = append(v.refCounts, refCount{})
	return len(v.findings) - 1
}

// finding records f.
func (v *verifier) finding(f Finding) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.addFinding(f)
}

// attach lists ref among the references of finding i, within the bounds; v.mu is held.
func (v *verifier) attach(i int, ref FindingRef) {
	f, c := &v.findings[i], &v.refCounts[i]
	if c.seen[ref] {
		return
	}
	if ref.Manifest != "" {
		if c.paths[ref.Manifest] >= maxRefPaths {
			f.RefsOmitted++
			return
		}
		if c.paths == nil {
			c.paths = map[string]int{}
		}
		c.paths[ref.Manifest]++
	} else {
		if c.wal >= maxWALRefs {
			f.RefsOmitted++
			return
		}
		c.wal++
	}
	if c.seen == nil {
		c.seen = map[FindingRef]bool{}
	}
	c.seen[ref] = true
	f.Refs = append(f.Refs, ref)
}

// corruptCopy records that the copy of blob name in pack is corrupt, marks it bad when
// asked to, and returns its finding.
func (v *verifier) corruptCopy(ctx context.Context, name [32]byte, pack, reason string) (int, error) {
	key := copyKey{pack, name}
	v.mu.Lock()
	if v.badCopies[key] {
		for _, i := range v.corrupt[name] {
			if v.findings[i].Pack == pack {
				v.mu.Unlock()
				return i, nil
			}
		}
	}
	v.badCopies[key] = true
	hexName := hex.EncodeToString(name[:])
	i := v.addFinding(Finding{Kind: FindingCorruptBlob, Object: hexName, Pack: pack, Reason: reason})
	v.corrupt[name] = append(v.corrupt[name], i)
	v.mu.Unlock()
	if v.o.MarkBad {
		if err := v.r.MarkBad(ctx, BadObject{Name: hexName, Pack: pack, Reason: reason}); err != nil {
			return i, err
		}
	}
	return i, nil
}

// failedCopy records a copy of blob name in pack p that failed verification: a finding,
// unless it was marked bad before this run.
func (v *verifier) failedCopy(ctx context.Context, p *verifyPack, name [32]byte, reason string) error {
	p.failed.Store(true)
	if p.marked[name] {
		v.knownBad.Add(1)
		v.mu.Lock()
		v.badCopies[copyKey{p.id, name}] = true
		v.mu.Unlock()
		return nil
	}
	_, err := v.corruptCopy(ctx, name, p.id, reason)
	return err
}

// progress counts n bytes of packs read.
func (v *verifier) progress(n int64) {
	v.bytesRead.Add(n)
	v.advance(n)
}

// advance moves Progress on by n bytes: read, or not to be read after all (a pack
// deleted meanwhile, or one whose blobs cannot be found).
func (v *verifier) advance(n int64) {
	if v.o.Progress == nil {
		return
	}
	v.progressMu.Lock()
	defer v.progressMu.Unlock()
	v.progressDone += n
	v.o.Progress(v.progressDone, v.progressTotal)
}

// verifyPack is a pack this run reads.
type verifyPack struct {
	id      string
	size    int64 // as stored
	created time.Time
	dead    bool
	// indexed: the index cache holds its index object, and bytes come from there, and
	// entries from the index object (from the index cache when it cannot be read);
	// otherwise both come from the pack's trailer.
	indexed bool
	// index is the index object, opened, when prepare read it; finish compares it with
	// the trailer.
	index []byte
	// finding is the index of the finding about its index object, or -1.
	finding int
	bytes   int64             // where its blobs end and its trailer begins
	entries []indexEntry      // by offset
	marked  map[[32]byte]bool // its copies marked bad before this run
	// proof is its proof in the index cache, or nil; full says whether its blobs are
	// fully checked (otherwise only authenticated, the proof vouching for the rest).
	proof *proof
	full  bool
	segs  []*packSegment

	left    atomic.Int32 // segments not yet checked
	failed  atomic.Bool  // something in it failed verification
	gone    atomic.Bool  // deleted since it was listed
	trailer []byte       // the trailer's index, opened; nil when it could not be
}

// plan lists the packs, reports those the index lists that are not stored, and returns
// the packs this run reads.
func (v *verifier) plan(ctx context.Context) ([]*verifyPack, error) {
	listed := map[string]int64{}
	err := v.r.st.List(ctx, packDir, func(key string, size int64) error {
		if id, ok := packIDOfKey(key, packDir); ok {
			listed[id] = size
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err := v.r.cache.db.QueryContext(ctx, `SELECT id, created, bytes, dead FROM packs`)
	if err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	var all []*verifyPack
	for rows.Next() {
		p := &verifyPack{indexed: true, finding: -1}
		var created int64
		if err := rows.Scan(&p.id, &created, &p.bytes, &p.dead); err != nil {
			rows.Close()
			return nil, fmt.Errorf("index cache: %w", err)
		}
		p.created = time.Unix(0, created)
		all = append(all, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	var packs []*verifyPack
	for _, p := range all {
		size, ok := listed[p.id]
		delete(listed, p.id)
		if !ok {
			// Stored after the listing, deleted by pruning, or lost.
			size, err = v.r.st.Size(ctx, packKey(p.id))
			if errors.Is(err, storage.ErrNotExist) {
				if err := v.packMissing(ctx, p); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		p.size = size
		packs = append(packs, p)
	}
	// Stored packs the index cache does not know: stored since the refresh, or without a
	// readable index object.
	for id, size := range listed {
		if v.r.pendingPack(id) {
			continue
		}
		p := &verifyPack{id: id, size: size, finding: -1}
		idx, err := v.r.readIndex(ctx, id)
		var ce *CorruptError
		switch {
		case err == nil:
			if err := v.r.cache.addPack(ctx, idx); err != nil {
				return nil, err
			}
			p.indexed, p.created, p.bytes = true, idx.Created, idx.Bytes
		case errors.As(err, &ce):
			p.finding = v.finding(Finding{Kind: FindingCorruptPack, Object: indexKey(id), Pack: id, Reason: "index object: " + ce.Reason})
		case errors.Is(err, ErrNotFound):
		default:
			return nil, err
		}
		packs = append(packs, p)
	}
	v.packsTotal += len(packs)

	slices.SortFunc(packs, func(a, b *verifyPack) int { return strings.Compare(a.id, b.id) })
	if v.o.Deep {
		return packs, nil
	}
	var selected, others []*verifyPack
	for _, p := range packs {
		switch {
		case !p.indexed:
			selected = append(selected, p)
		case p.dead:
		case !p.created.Before(v.o.Since):
			selected = append(selected, p)
		default:
			others = append(others, p)
		}
	}
	n := int(math.Ceil(v.o.Sample*float64(len(others)) - 1e-9))
	n = min(max(n, 0), len(others))
	start := sort.Search(len(others), func(i int) bool { return others[i].id > v.o.Cursor })
	for i := range n {
		p := others[(start+i)%len(others)]
		selected = append(selected, p)
		v.cursor = p.id
	}
	slices.SortFunc(selected, func(a, b *verifyPack) int { return strings.Compare(a.id, b.id) })
	return selected, nil
}

// vanished reports whether pack id, found not stored, was deleted by pruning: pruning
// marks a pack, then deletes its index object, then the pack, then the mark.
func (v *verifier) vanished(ctx context.Context, id string) (bool, error) {
	if _, err := v.r.st.Size(ctx, deadKey(id)); err == nil {
		return true, nil
	} else if !errors.Is(err, storage.ErrNotExist) {
		return false, err
	}
	if _, err := v.r.st.Size(ctx, indexKey(id)); errors.Is(err, storage.ErrNotExist) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}

// packMissing records that pack p, which its index lists, is not stored, unless pruning
// deleted it; the blobs it held are then checked for another copy wherever they are met.
func (v *verifier) packMissing(ctx context.Context, p *verifyPack) error {
	gone, err := v.vanished(ctx, p.id)
	if err != nil || gone {
		return err
	}
	entries := p.entries
	if !p.indexed {
		entries = nil // what the trailer listed: the index cache does not count them
	} else if entries == nil {
		if entries, err = v.cacheEntries(ctx, p.id); err != nil {
			return err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.packsTotal++
	v.gonePacks[p.id] = true
	for _, e := range entries {
		v.inGone[e.Name] = true
	}
	v.addFinding(Finding{Kind: FindingMissingPack, Object: packKey(p.id), Pack: p.id,
		Reason: "the pack's index object lists it, but the pack is not stored"})
	return nil
}

// markedBad returns the blobs of pack id whose copy there is marked bad.
func (v *verifier) markedBad(ctx context.Context, id string) (map[[32]byte]bool, error) {
	rows, err := v.r.cache.db.QueryContext(ctx, `SELECT name FROM bad WHERE pack = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	defer rows.Close()
	var out map[[32]byte]bool
	for rows.Next() {
		var name []byte
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		var sum [32]byte
		copy(sum[:], name)
		if out == nil {
			out = map[[32]byte]bool{}
		}
		out[sum] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	return out, nil
}

// indexObject reads and opens the index object of pack id. Any error, a missing or
// damaged object included, means it cannot be used.
func (v *verifier) indexObject(ctx context.Context, id string) ([]byte, *packIndex, error) {
	sealed, err := v.r.st.Get(ctx, indexKey(id))
	if err != nil {
		return nil, nil, err
	}
	plain, err := v.r.open(nil, sealed, indexMagic, indexAD(id), indexKey(id))
	if err != nil {
		return nil, nil, err
	}
	idx, err := parseIndex(id, plain)
	return plain, idx, err
}

// cacheEntries returns the blobs of pack id as the index cache lists them, by offset.
func (v *verifier) cacheEntries(ctx context.Context, id string) ([]indexEntry, error) {
	rows, err := v.r.cache.db.QueryContext(ctx, `SELECT name, off, len, size FROM blobs WHERE pack = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	defer rows.Close()
	var out []indexEntry
	for rows.Next() {
		var e indexEntry
		var name []byte
		if err := rows.Scan(&name, &e.Offset, &e.Length, &e.Size); err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		copy(e.Name[:], name)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	slices.SortFunc(out, func(a, b indexEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	return out, nil
}

// prepare loads what pack p holds: from the index cache, or from the pack's trailer for a
// pack without a readable index object. It reports false when there is nothing to read.
func (v *verifier) prepare(ctx context.Context, p *verifyPack) (bool, error) {
	marked, err := v.markedBad(ctx, p.id)
	if err != nil {
		return false, err
	}
	p.marked = marked
	if p.indexed {
		// The index object is read once, here: finish compares it with the trailer.
		// Reading it is cheaper than asking the index cache for the pack's blobs, which
		// is where they came from.
		proof, err := v.r.cache.loadProof(ctx, p.id)
		if err != nil {
			return false, err
		}
		every := cmp.Or(v.o.RehashEvery, DefaultRehashEvery)
		p.proof = proof
		p.full = proof == nil || !v.o.Deep || v.o.Rehash || proofDue(p.id, proof.run, v.deepRun, every)
		plain, idx, err := v.indexObject(ctx, p.id)
		if err == nil && idx.Bytes == p.bytes {
			p.index, p.entries = plain, idx.Entries
			slices.SortFunc(p.entries, func(a, b indexEntry) int { return cmp.Compare(a.Offset, b.Offset) })
			return true, nil
		}
		// Missing or damaged: finish reads it again and says what is wrong.
		entries, err := v.cacheEntries(ctx, p.id)
		if err != nil {
			return false, err
		}
		p.entries = entries
		return true, nil
	}
	_, idx, err := v.r.readTrailer(ctx, p.id)
	var ce *CorruptError
	switch {
	case errors.Is(err, ErrNotFound):
		// Deleted since it was listed: by pruning (packs are never deleted otherwise).
		v.mu.Lock()
		v.packsTotal--
		v.mu.Unlock()
		return false, nil
	case errors.As(err, &ce):
		why := "no index object, and its trailer: " + ce.Reason
		if p.finding >= 0 {
			why = "its trailer cannot be read either: " + ce.Reason
		}
		v.mu.Lock()
		v.packsChecked++
		v.addFinding(Finding{Kind: FindingCorruptPack, Object: packKey(p.id), Pack: p.id, Reason: why})
		v.mu.Unlock()
		return false, nil
	case err != nil:
		return false, err
	}
	p.bytes, p.created, p.full = idx.Bytes, idx.Created, true
	p.entries = idx.Entries
	slices.SortFunc(p.entries, func(a, b indexEntry) int { return cmp.Compare(a.Offset, b.Offset) })
	// A writer stores the pack, then its index object: only one that stopped in between
	// leaves a pack without one for long.
	if p.finding < 0 && time.Since(p.created) > v.r.opts.StaleAfter {
		p.finding = v.finding(Finding{Kind: FindingMissingIndex, Object: indexKey(p.id), Pack: p.id,
			Reason: fmt.Sprintf("the pack (written %s) has no index object; the next prune writes it again from the pack's trailer",
				p.created.UTC().Format(time.RFC3339))})
	}
	v.weak(p, p.finding)
	return true, nil
}

// weak records that pack p has no sound index object, finding i saying so.
func (v *verifier) weak(p *verifyPack, i int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.weakPacks[p.id] = i
	for _, e := range p.entries {
		if j, ok := v.weakBlobs[e.Name]; !ok || j < 0 {
			v.weakBlobs[e.Name] = i
		}
	}
}

// packSegment is one ranged read of a pack and the blobs wholly in it.
type packSegment struct {
	p          *verifyPack
	start, end int64
	entries    []indexEntry
	tail       bool     // it ends the pack: the trailer is checked
	seal       [32]byte // the seal digest of its blobs (proof.go)
}

// segments cuts pack p into ranged reads of about verifySegment bytes at blob boundaries,
// the last one running to the end of the pack; blobs that run past the end of the pack
// are reported as they are met.
func (v *verifier) segments(ctx context.Context, p *verifyPack) ([]*packSegment, error) {
	var segs []*packSegment
	cur := &packSegment{p: p}
	for _, e := range p.entries {
		if e.Offset+e.Length > p.size {
			reason := fmt.Sprintf("truncated: the pack holds %d bytes, the blob ends at %d", p.size, e.Offset+e.Length)
			if err := v.failedCopy(ctx, p, e.Name, reason); err != nil {
				return nil, err
			}
			continue
		}
		if len(cur.entries) > 0 && e.Offset+e.Length-cur.start > verifySegment {
			cur.end = e.Offset
			segs = append(segs, cur)
			cur = &packSegment{p: p, start: e.Offset}
		}
		cur.entries = append(cur.entries, e)
	}
	cur.end, cur.tail = p.size, true
	p.segs = append(segs, cur)
	return p.segs, nil
}

// checkPacks reads the packs: one goroutine cuts them into segments, and verifyWorkers
// goroutines each read a segment and open its blobs.
func (v *verifier) checkPacks(ctx context.Context, packs []*verifyPack) error {
	var total int64
	for _, p := range packs {
		total += p.size
	}
	v.progressTotal = total
	if v.o.Progress != nil {
		v.o.Progress(0, total)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce sync.Once
		first   error
	)
	fail := func(err error) {
		errOnce.Do(func() {
			first = err
			cancel()
		})
	}
	segs := make(chan *packSegment)
	var wg sync.WaitGroup
	for range verifyWorkers() {
		wg.Go(func() {
			var buf []byte
			for s := range segs {
				if ctx.Err() != nil {
					continue
				}
				if err := v.checkSegment(ctx, s, &buf); err != nil {
					fail(err)
					continue
				}
				if s.p.left.Add(-1) == 0 {
					if err := v.finish(ctx, s.p); err != nil {
						fail(err)
					}
				}
			}
		})
	}
	func() {
		defer close(segs)
		for _, p := range packs {
			ok, err := v.prepare(ctx, p)
			if err == nil && !ok {
				v.advance(p.size)
			}
			if err == nil && ok {
				var ss []*packSegment
				if ss, err = v.segments(ctx, p); err == nil {
					p.left.Store(int32(len(ss)))
					for _, s := range ss {
						select {
						case segs <- s:
						case <-ctx.Done():
							return
						}
					}
				}
			}
			if err != nil {
				fail(err)
				return
			}
		}
	}()
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// verifyWorkers is how many segments are read and checked at once.
func verifyWorkers() int {
	return runtime.GOMAXPROCS(0) + verifyFetches
}

// checkSegment reads one segment and checks what it holds: the pack's header, each
// blob, and the trailer.
func (v *verifier) checkSegment(ctx context.Context, s *packSegment, buf *[]byte) error {
	p := s.p
	if p.gone.Load() {
		v.advance(s.end - s.start)
		return nil
	}
	data, err := v.r.st.GetRange(ctx, packKey(p.id), s.start, s.end-s.start)
	if errors.Is(err, storage.ErrNotExist) {
		p.gone.Store(true)
		v.advance(s.end - s.start)
		return nil
	}
	if err != nil {
		return err
	}
	if s.start == 0 && (len(data) < len(packMagic) || string(data[:len(packMagic)]) != packMagic) {
		p.failed.Store(true)
		v.finding(Finding{Kind: FindingCorruptPack, Object: packKey(p.id), Pack: p.id,
			Reason: fmt.Sprintf("bad header %q, want %q", data[:min(len(data), len(packMagic))], packMagic)})
	}
	if err := v.checkBlobs(ctx, s, data, buf, p.full, false); err != nil {
		return err
	}
	if s.tail {
		v.checkTrailer(p, data[min(max(p.bytes-s.start, 0), int64(len(data))):])
	}
	v.progress(int64(len(data)))
	return nil
}

// checkBlobs checks the blobs of segment s, read into data: each is authenticated, and
// with full also decompressed and its name recomputed; it sets the segment's seal
// digest. again is for a second reading by recheck: the copies already found corrupt are
// left out, and the blobs are not counted again.
func (v *verifier) checkBlobs(ctx context.Context, s *packSegment, data []byte, buf *[]byte, full, again bool) error {
	p := s.p
	h := sha256.New()
	for _, e := range s.entries {
		if e.Offset < s.start || e.Offset+e.Length > s.start+int64(len(data)) {
			// Only an index whose blobs overlap (sealed with the key, so never) gets here.
			return fmt.Errorf("pack %s: blob at [%d, %d) overlaps another", p.id, e.Offset, e.Offset+e.Length)
		}
		sealed := data[e.Offset-s.start : e.Offset-s.start+e.Length]
		sealDigest(h, e, sealed) // before opening: that decrypts in place
		if again {
			v.mu.Lock()
			skip := p.marked[e.Name] || v.badCopies[copyKey{p.id, e.Name}]
			v.mu.Unlock()
			if skip {
				continue
			}
		} else {
			v.blobs.Add(1)
		}
		name := hex.EncodeToString(e.Name[:])
		loc := location{Pack: p.id, Offset: e.Offset, Length: e.Length, Size: e.Size}
		var plain []byte
		var err error
		if full {
			v.rehashed.Add(1)
			plain, err = v.r.openBlob(name, loc, sealed, (*buf)[:0])
		} else {
			_, err = v.r.authenticateBlob(name, loc, sealed)
		}
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			if err := v.failedCopy(ctx, p, e.Name, ce.Reason); err != nil {
				return err
			}
		case err != nil:
			return err
		case plain != nil && cap(plain) <= verifySegment:
			*buf = plain[:0] // kept for the next blob; a larger one is left to the collector
		}
	}
	h.Sum(s.seal[:0])
	return nil
}

// recheck reads pack p, whose blobs were only authenticated, again and fully checks every
// blob not already found corrupt: its proof turned out not to be about these bytes.
func (v *verifier) recheck(ctx context.Context, p *verifyPack) error {
	var buf []byte
	for _, s := range p.segs {
		data, err := v.r.st.GetRange(ctx, packKey(p.id), s.start, s.end-s.start)
		if errors.Is(err, storage.ErrNotExist) {
			p.failed.Store(true) // deleted by pruning meanwhile: nothing to prove
			return nil
		}
		if err != nil {
			return err
		}
		v.bytesRead.Add(int64(len(data)))
		if err := v.checkBlobs(ctx, s, data, &buf, true, true); err != nil {
			return err
		}
	}
	p.full = true
	return nil
}

// settleProof records, keeps or drops the proof of pack p once it is read (proof.go):
// sound says whether its index object is sound. A pack only authenticated whose seal
// digest is not its proof's is fully checked first.
func (v *verifier) settleProof(ctx context.Context, p *verifyPack, sound bool) error {
	seal := packSeal(p)
	if !p.full && !bytes.Equal(seal, p.proof.seal) {
		if err := v.recheck(ctx, p); err != nil {
			return err
		}
		seal = packSeal(p)
	}
	switch {
	case !sound || p.failed.Load() || p.trailer == nil:
		if p.proof == nil {
			return nil
		}
		return v.r.cache.dropProof(ctx, p.id)
	case p.full:
		return v.r.cache.saveProof(ctx, p.id, seal, v.deepRun)
	}
	return nil // the proof stands
}

// checkTrailer checks the end of pack p: its sealed index, the index's length and the
// trailer's magic, and keeps the opened index for finish to compare with the index object.
func (v *verifier) checkTrailer(p *verifyPack, tail []byte) {
	bad := func(why string) {
		p.failed.Store(true)
		v.finding(Finding{Kind: FindingCorruptPack, Object: packKey(p.id), Pack: p.id, Reason: "trailer: " + why})
	}
	if p.size < p.bytes {
		bad(fmt.Sprintf("truncated: the pack holds %d bytes, its index says its blobs end at %d", p.size, p.bytes))
		return
	}
	n := len(tail) - 4 - len(packTrailer)
	if n < 0 || string(tail[len(tail)-len(packTrailer):]) != packTrailer {
		bad(fmt.Sprintf("no %q at the end of the pack", packTrailer))
		return
	}
	if got := binary.LittleEndian.Uint32(tail[n:]); int64(got) != int64(n) {
		bad(fmt.Sprintf("it gives its index %d bytes, but %d lie between the blobs and it", got, n))
		return
	}
	plain, err := v.r.open(nil, tail[:n], indexMagic, indexAD(p.id), packKey(p.id))
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			err = errors.New(ce.Reason)
		}
		bad(err.Error())
		return
	}
	idx, err := parseIndex(p.id, plain)
	if err != nil {
		bad(err.Error())
		return
	}
	if idx.Bytes != p.bytes {
		bad(fmt.Sprintf("its index says the blobs end at %d, the index object at %d", idx.Bytes, p.bytes))
		return
	}
	p.trailer = plain
}

// finish concludes pack p once every segment is checked: a pack deleted meanwhile by
// pruning is forgotten, one lost is reported; the index object must open and agree with
// the trailer.
func (v *verifier) finish(ctx context.Context, p *verifyPack) error {
	defer func() { p.entries, p.index, p.segs = nil, nil, nil }()
	if p.gone.Load() {
		v.mu.Lock()
		v.packsTotal--
		v.mu.Unlock()
		return v.packMissing(ctx, p)
	}
	v.mu.Lock()
	v.packsChecked++
	v.mu.Unlock()
	if !p.indexed {
		return nil
	}
	plain, err := v.readIndexObject(ctx, p)
	var ce *CorruptError
	sound := false
	switch {
	case errors.Is(err, errIndexGone):
	case errors.As(err, &ce):
		v.weak(p, v.finding(Finding{Kind: FindingCorruptPack, Object: indexKey(p.id), Pack: p.id, Reason: "index object: " + ce.Reason}))
	case err != nil:
		return err
	case p.trailer != nil && !bytes.Equal(plain, p.trailer):
		v.weak(p, v.finding(Finding{Kind: FindingCorruptPack, Object: indexKey(p.id), Pack: p.id,
			Reason: "the index object disagrees with the pack's trailer"}))
	default:
		v.remember(p)
		sound = true
	}
	return v.settleProof(ctx, p, sound)
}

// errIndexGone is readIndexObject's error for an index object that is gone: deleted by
// pruning, or reported as missing.
var errIndexGone = errors.New("index object gone")

// readIndexObject reads and opens the index object of pack p, once the pack is read.
// When prepare read it, it is only checked to be still stored.
func (v *verifier) readIndexObject(ctx context.Context, p *verifyPack) ([]byte, error) {
	var sealed []byte
	var err error
	if p.index != nil {
		_, err = v.r.st.Size(ctx, indexKey(p.id))
	} else {
		sealed, err = v.r.st.Get(ctx, indexKey(p.id))
	}
	if errors.Is(err, storage.ErrNotExist) {
		// Pruning deletes a marked pack's index object first, then the pack.
		if _, err := v.r.st.Size(ctx, deadKey(p.id)); err == nil || !errors.Is(err, storage.ErrNotExist) {
			return nil, cmp.Or(err, errIndexGone)
		}
		if _, err := v.r.st.Size(ctx, packKey(p.id)); err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				err = errIndexGone
			}
			return nil, err
		}
		v.weak(p, v.finding(Finding{Kind: FindingMissingIndex, Object: indexKey(p.id), Pack: p.id,
			Reason: "the pack's index object is gone; the next prune writes it again from the pack's trailer"}))
		return nil, errIndexGone
	}
	if err != nil || p.index != nil {
		return p.index, err
	}
	return v.r.open(nil, sealed, indexMagic, indexAD(p.id), indexKey(p.id))
}

// remember adds to v.verified the blobs of pack p, read whole and with a sound index
// object, whose copy there opened and was not marked bad before this run.
func (v *verifier) remember(p *verifyPack) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range p.entries {
		if len(v.verified) >= verifiedCap {
			return
		}
		if !p.marked[e.Name] && !v.badCopies[copyKey{p.id, e.Name}] {
			v.verified[e.Name] = struct{}{}
		}
	}
}

// unit is a manifest or an archived WAL file whose references are checked.
type unit struct {
	manifest string // a backup id, or
	wal      WALName
	// named by the caller: missing is a finding
	named bool
	// check: every reference is checked; otherwise only the blobs already found wrong
	// are traced to it.
	check bool
}

// checkReferences checks the manifests and WAL files o names, then, when something was
// found wrong, traces the blobs concerned through the other manifests and WAL files.
func (v *verifier) checkReferences(ctx context.Context) error {
	err := v.walkUnits(ctx, func(ctx context.Context, send func(unit) error) error {
		if v.o.Manifests == nil {
			ids, err := v.r.Manifests(ctx)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if err := send(unit{manifest: id, check: true}); err != nil {
					return err
				}
			}
		}
		for _, id := range v.o.Manifests {
			if err := send(unit{manifest: id, check: true, named: true}); err != nil {
				return err
			}
		}
		if v.o.WAL == nil {
			return v.listWAL(ctx, func(w WALName) error { return send(unit{wal: w, check: true}) })
		}
		for _, w := range v.o.WAL {
			if err := send(unit{wal: w, check: true, named: true}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.mu.Lock()
	problems := len(v.corrupt) + len(v.inGone) + len(v.missing)
	for _, i := range v.weakPacks {
		if i >= 0 {
			problems++
		}
	}
	v.mu.Unlock()
	if problems == 0 || (v.o.Manifests == nil && v.o.WAL == nil) {
		return nil
	}
	return v.walkUnits(ctx, func(ctx context.Context, send func(unit) error) error {
		if v.o.Manifests != nil {
			done := map[string]bool{}
			for _, id := range v.o.Manifests {
				done[id] = true
			}
			ids, err := v.r.Manifests(ctx)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if !done[id] {
					if err := send(unit{manifest: id}); err != nil {
						return err
					}
				}
			}
		}
		if v.o.WAL != nil {
			done := map[WALName]bool{}
			for _, w := range v.o.WAL {
				done[w] = true
			}
			return v.listWAL(ctx, func(w WALName) error {
				if done[w] {
					return nil
				}
				return send(unit{wal: w})
			})
		}
		return nil
	})
}

// listWAL calls fn with every archived WAL file, as the listing finds them.
func (v *verifier) listWAL(ctx context.Context, fn func(WALName) error) error {
	return storage.Keys(ctx, v.r.st, walDir+"/", func(key string) error {
		rest, ok := strings.CutSuffix(strings.TrimPrefix(key, walDir+"/"), walSuffix)
		if !ok {
			return nil
		}
		sys, name, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(name, "/") || validateSystemID(sys) != nil {
			return nil
		}
		if _, _, err := parseWALName(name); err != nil {
			return nil
		}
		return fn(WALName{SystemID: sys, Name: name})
	})
}

// walkUnits checks the units produce sends, verifyUnits at a time.
func (v *verifier) walkUnits(ctx context.Context, produce func(context.Context, func(unit) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce sync.Once
		first   error
	)
	fail := func(err error) {
		errOnce.Do(func() {
			first = err
			cancel()
		})
	}
	units := make(chan unit)
	var wg sync.WaitGroup
	for range verifyUnits {
		wg.Go(func() {
			for u := range units {
				if ctx.Err() != nil {
					continue
				}
				var err error
				if u.manifest != "" {
					err = v.checkManifest(ctx, u)
				} else {
					err = v.checkWAL(ctx, u)
				}
				if err != nil {
					fail(err)
				}
			}
		})
	}
	err := produce(ctx, func(u unit) error {
		select {
		case units <- u:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(units)
	wg.Wait()
	if first != nil {
		return first
	}
	return err
}

// checkManifest checks one backup's manifest and the blobs it refers to.
func (v *verifier) checkManifest(ctx context.Context, u unit) error {
	id := u.manifest
	c := refChecker{v: v, check: u.check, kind: FindingMissingBlob, readAt: time.Now()}
	m, err := v.r.Manifest(ctx, id)
	var ce *CorruptError
	switch {
	case errors.Is(err, ErrNotFound):
		if u.named {
			i := v.finding(Finding{Kind: FindingMissingManifest, Object: manifestKey(id), Reason: "the manifest is not stored"})
			v.mu.Lock()
			v.attach(i, FindingRef{Manifest: id})
			v.mu.Unlock()
		}
		return nil // otherwise deleted since it was listed
	case errors.As(err, &ce):
		i := v.finding(Finding{Kind: FindingCorruptManifest, Object: manifestKey(id), Reason: ce.Reason})
		v.mu.Lock()
		v.attach(i, FindingRef{Manifest: id})
		v.mu.Unlock()
		return nil
	case err != nil:
		return err
	}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Type != TypeFile {
			continue
		}
		ref := FindingRef{Manifest: id, Path: f.Path}
		blocks := f.Blocks
		if f.Map != "" {
			blocks, err = v.r.FileBlocks(ctx, f, m.BlockSize)
			if err != nil {
				if err := v.mapFailed(ctx, m, f, err); err != nil {
					return err
				}
				continue
			}
			if err := c.add(ctx, f.Map, ref); err != nil {
				return err
			}
		}
		for _, b := range blocks {
			if err := c.add(ctx, b, ref); err != nil {
				return err
			}
		}
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	if u.check {
		v.mu.Lock()
		v.manifests++
		v.mu.Unlock()
	}
	return nil
}

// mapFailed records why the block map of file f of manifest m could not be read.
func (v *verifier) mapFailed(ctx context.Context, m *Manifest, f *File, err error) error {
	ref := FindingRef{Manifest: m.BackupID, Path: f.Path}
	var name [32]byte
	hex.Decode(name[:], []byte(f.Map))
	var ce *CorruptError
	switch {
	case errors.As(err, &ce) && ce.Pack != "":
		// Every copy failed; Get names the first.
		marked, err := v.markedBad(ctx, ce.Pack)
		if err != nil {
			return err
		}
		if !marked[name] {
			if _, err := v.corruptCopy(ctx, name, ce.Pack, ce.Reason); err != nil {
				return err
			}
		}
		copies, err := v.copies(ctx, [][32]byte{name})
		if err != nil {
			return err
		}
		v.mu.Lock()
		v.badCopies[copyKey{ce.Pack, name}] = true
		v.judge(name, copies[name], ref, FindingMissingBlob)
		v.mu.Unlock()
	case errors.As(err, &ce):
		// The map opens, but does not fit the file the manifest describes.
		i := v.finding(Finding{Kind: FindingCorruptManifest, Object: manifestKey(m.BackupID), Reason: err.Error()})
		v.mu.Lock()
		v.attach(i, ref)
		v.mu.Unlock()
	case errors.Is(err, ErrNotFound):
		v.mu.Lock()
		defer v.mu.Unlock()
		if i, ok := v.weakBlobs[name]; ok {
			// Readable once pruning writes the pack's index again (its blocks are not
			// checked before then).
			if i >= 0 {
				v.attach(i, ref)
			}
			return nil
		}
		i, ok := v.missing[name]
		if !ok {
			i = v.addFinding(Finding{Kind: FindingMissingBlob, Object: f.Map, Reason: "block map: " + err.Error()})
			v.missing[name] = i
		}
		v.attach(i, ref)
	default:
		return err
	}
	return nil
}

// checkWAL checks one archived WAL file's manifest and the blobs it refers to.
func (v *verifier) checkWAL(ctx context.Context, u unit) error {
	w := u.wal
	rel := walRel(w.SystemID, w.Name)
	ref := FindingRef{System: w.SystemID, WAL: w.Name}
	c := refChecker{v: v, check: u.check, kind: FindingMissingWALBlob, readAt: time.Now()}
	m, err := v.r.readWALManifest(ctx, w.SystemID, w.Name)
	var ce *CorruptError
	switch {
	case errors.Is(err, ErrNotFound):
		if u.named {
			i := v.finding(Finding{Kind: FindingMissingWAL, Object: rel, Reason: "the WAL file is not archived"})
			v.mu.Lock()
			v.attach(i, ref)
			v.mu.Unlock()
		}
		return nil
	case errors.As(err, &ce):
		i := v.finding(Finding{Kind: FindingCorruptWAL, Object: rel, Reason: ce.Reason})
		v.mu.Lock()
		v.attach(i, ref)
		v.mu.Unlock()
		return nil
	case err != nil:
		return err
	}
	for _, b := range m.Blocks {
		if err := c.add(ctx, b, ref); err != nil {
			return err
		}
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	if u.check {
		v.mu.Lock()
		v.wal++
		v.mu.Unlock()
	}
	return nil
}

// refChecker checks the references of one manifest or WAL file in batches.
type refChecker struct {
	v      *verifier
	check  bool
	kind   string    // of a missing blob's finding
	readAt time.Time // when the manifest was read
	names  [][32]byte
	refs   []FindingRef
}

// add checks, with the next batch, that blob name has a readable copy, and traces it to
// ref when it has a finding. Without check, only blobs already found wrong are looked at.
func (c *refChecker) add(ctx context.Context, name string, ref FindingRef) error {
	var sum [32]byte
	hex.Decode(sum[:], []byte(name))
	if _, ok := c.v.verified[sum]; ok && c.check {
		c.v.mu.Lock()
		_, bad := c.v.corrupt[sum]
		c.v.mu.Unlock()
		if !bad {
			return nil // read and found sound by this run
		}
	}
	if !c.check {
		c.v.mu.Lock()
		_, bad := c.v.corrupt[sum]
		_, missing := c.v.missing[sum]
		weak, isWeak := c.v.weakBlobs[sum]
		bad = bad || missing || c.v.inGone[sum] || (isWeak && weak >= 0)
		c.v.mu.Unlock()
		if !bad {
			return nil
		}
	}
	c.names = append(c.names, sum)
	c.refs = append(c.refs, ref)
	if len(c.names) >= verifyBatch {
		return c.flush(ctx)
	}
	return nil
}

func (c *refChecker) flush(ctx context.Context) error {
	if len(c.names) == 0 {
		return nil
	}
	defer func() {
		c.names, c.refs = c.names[:0], c.refs[:0]
	}()
	v := c.v
	uniq := slices.Clone(c.names)
	slices.SortFunc(uniq, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	uniq = slices.Compact(uniq)
	copies, err := v.copies(ctx, uniq)
	if err != nil {
		return err
	}
	// A blob the index cache does not know may be in a pack stored since it was last
	// refreshed: refresh it once, if that was before the manifest was read.
	var absent [][32]byte
	v.mu.Lock()
	for _, n := range uniq {
		_, known := v.missing[n]
		_, weak := v.weakBlobs[n]
		if len(copies[n]) == 0 && !known && !weak {
			absent = append(absent, n)
		}
	}
	v.mu.Unlock()
	if len(absent) > 0 {
		refreshed, err := v.refreshSince(ctx, c.readAt)
		if err != nil {
			return err
		}
		if refreshed {
			again, err := v.copies(ctx, absent)
			if err != nil {
				return err
			}
			for n, cs := range again {
				copies[n] = cs
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, n := range c.names {
		v.judge(n, copies[n], c.refs[i], c.kind)
	}
	return nil
}

// blobCopy is a stored copy of a blob, as the index cache lists it.
type blobCopy struct {
	pack string
	bad  bool // marked bad
}

// copies returns every copy of each of names that the index cache lists.
func (v *verifier) copies(ctx context.Context, names [][32]byte) (map[[32]byte][]blobCopy, error) {
	out := make(map[[32]byte][]blobCopy, len(names))
	for len(names) > 0 {
		batch := names[:min(len(names), lookupBatch)]
		names = names[len(batch):]
		query := `
SELECT b.name, b.pack, EXISTS (SELECT 1 FROM bad WHERE bad.pack = b.pack AND bad.name = b.name)
FROM blobs b WHERE b.name IN (?` + strings.Repeat(",?", len(batch)-1) + `)`
		st, err := v.r.cache.stmt(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		args := make([]any, len(batch))
		for i := range batch {
			args[i] = batch[i][:]
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		for rows.Next() {
			var name []byte
			var c blobCopy
			if err := rows.Scan(&name, &c.pack, &c.bad); err != nil {
				rows.Close()
				return nil, fmt.Errorf("index cache: %w", err)
			}
			var sum [32]byte
			copy(sum[:], name)
			out[sum] = append(out[sum], c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
	}
	return out, nil
}

// refreshSince refreshes the index cache unless a refresh began after t, and reports
// whether it did.
func (v *verifier) refreshSince(ctx context.Context, t time.Time) (bool, error) {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if v.refreshedAt.After(t) {
		return false, nil
	}
	began := time.Now()
	if err := v.r.cache.refresh(ctx, v.r); err != nil {
		return false, err
	}
	v.refreshedAt = began
	return true, nil
}

// judge decides, from its copies, whether the reference ref to blob name is sound, and
// traces it to the blob's findings when it is not; v.mu is held.
func (v *verifier) judge(name [32]byte, copies []blobCopy, ref FindingRef, kind string) {
	good := ""
	weak, weakOK := v.weakBlobs[name]
	var bad, gone []string
	for _, c := range copies {
		switch i, isWeak := v.weakPacks[c.pack]; {
		case c.bad || v.badCopies[copyKey{c.pack, name}]:
			bad = append(bad, c.pack)
		case v.gonePacks[c.pack]:
			gone = append(gone, c.pack)
		case isWeak:
			weak, weakOK = i, true
		default:
			good = c.pack
		}
	}
	if found := v.corrupt[name]; len(found) > 0 {
		for _, i := range found {
			v.attach(i, ref)
			if good != "" && v.findings[i].OtherCopy == "" {
				v.findings[i].OtherCopy = good
			}
		}
		return
	}
	if good != "" {
		return
	}
	if weakOK {
		// Checked, in a pack without a sound index object: that is the finding.
		if weak >= 0 {
			v.attach(weak, ref)
		}
		return
	}
	i, ok := v.missing[name]
	if !ok {
		f := Finding{Kind: kind, Object: hex.EncodeToString(name[:])}
		switch {
		case len(copies) == 0:
			f.Reason = "no stored copy: no pack's index lists it"
		case len(bad) == 0 && len(gone) == 1:
			f.Pack = gone[0]
			f.Reason = "its only copy was in pack " + gone[0] + ", which is not stored"
		case len(gone) == 0:
			f.Reason = "every stored copy is marked bad (in pack " + strings.Join(bad, ", ") +
				"): the next backup that meets the same content stores it again"
		default:
			f.Reason = "no readable copy: marked bad in pack(s) " + strings.Join(bad, ", ") +
				"; in pack(s) not stored " + strings.Join(gone, ", ")
		}
		i = v.addFinding(f)
		v.missing[name] = i
	}
	if ref.Manifest != "" && v.findings[i].Kind == FindingMissingWALBlob {
		v.findings[i].Kind = FindingMissingBlob // a backup needs it too
	}
	v.attach(i, ref)
}
