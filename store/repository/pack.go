package repository

// Packs and their index.
//
// Blobs (blocks of files, block maps, WAL) are sealed one by one and appended to a pack
// of about PackSize bytes, which is written once under packs/<xx>/<id>:
//
//	"BSP2" | blob | blob | ... | sealed index | index length (4 bytes, little-endian) | "BSPT"
//
// Each blob is sealed on its own (its name is the additional data), so a restore reads
// just the ranges it needs. The sealed index names every blob of the pack with its
// offset, sealed length and plaintext size; the same bytes are written as the pack's
// index object, index/<xx>/<id>, which is what writers and readers load (the trailer
// lets a lost index object be rebuilt from the pack alone). A pack is never modified:
// pruning copies the live blobs of a mostly dead pack into a new one, then marks the old
// one with a tombstone, prune/<id>.deleted, and deletes it on a later run.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

const (
	packMagic    = "BSP2"
	packTrailer  = "BSPT"
	blobMagic    = "BSB2"
	indexMagic   = "BSI2"
	packDir      = "packs/"
	indexDir     = "index/"
	pruneDir     = "prune/"
	badDir       = "bad/"
	deadSuffix   = ".deleted"
	indexVersion = 2

	// DefaultPackSize is the size at which a pack is closed and written.
	DefaultPackSize = 16 << 20
	// maxPackSize bounds offsets read from an index.
	maxPackSize = 1 << 31
	// uploadsInFlight is how many full packs may be on their way to the storage while
	// the next one fills: the memory a writer holds is about (uploadsInFlight+1) packs.
	uploadsInFlight = 2

	indexEntrySize = 32 + 4 + 4 + 4
	// trailerRoom is kept free in a full pack's buffer for its sealed index, so that the
	// trailer is appended in place (a pack of small blobs may need more; append grows it).
	trailerRoom   = 256 << 10
	indexHeadSize = 1 + 8 + 8 + 4
)

// packIndex is the content of an index object: where each blob of one pack is.
type packIndex struct {
	Pack    string
	Created time.Time
	Bytes   int64 // where the blobs end and the pack's trailer begins
	Entries []indexEntry
}

type indexEntry struct {
	Name   [32]byte
	Offset int64
	Length int64
	Size   int64
}

func (x *packIndex) marshal() []byte {
	out := make([]byte, indexHeadSize, indexHeadSize+len(x.Entries)*indexEntrySize)
	out[0] = indexVersion
	binary.LittleEndian.PutUint64(out[1:], uint64(x.Created.UnixNano()))
	binary.LittleEndian.PutUint64(out[9:], uint64(x.Bytes))
	binary.LittleEndian.PutUint32(out[17:], uint32(len(x.Entries)))
	for _, e := range x.Entries {
		out = append(out, e.Name[:]...)
		out = binary.LittleEndian.AppendUint32(out, uint32(e.Offset))
		out = binary.LittleEndian.AppendUint32(out, uint32(e.Length))
		out = binary.LittleEndian.AppendUint32(out, uint32(e.Size))
	}
	return out
}

func parseIndex(pack string, data []byte) (*packIndex, error) {
	if len(data) < indexHeadSize || data[0] != indexVersion {
		return nil, errors.New("not a version 2 index")
	}
	x := &packIndex{
		Pack:    pack,
		Created: time.Unix(0, int64(binary.LittleEndian.Uint64(data[1:]))).UTC(),
		Bytes:   int64(binary.LittleEndian.Uint64(data[9:])),
	}
	n := int(binary.LittleEndian.Uint32(data[17:]))
	body := data[indexHeadSize:]
	if len(body) != n*indexEntrySize {
		return nil, fmt.Errorf("%d entries in %d bytes", n, len(body))
	}
	if x.Bytes <= 0 || x.Bytes > maxPackSize {
		return nil, fmt.Errorf("invalid pack size %d", x.Bytes)
	}
	x.Entries = make([]indexEntry, n)
	for i := range x.Entries {
		e := body[i*indexEntrySize:]
		copy(x.Entries[i].Name[:], e[:32])
		x.Entries[i].Offset = int64(binary.LittleEndian.Uint32(e[32:]))
		x.Entries[i].Length = int64(binary.LittleEndian.Uint32(e[36:]))
		x.Entries[i].Size = int64(binary.LittleEndian.Uint32(e[40:]))
		if end := x.Entries[i].Offset + x.Entries[i].Length; x.Entries[i].Offset < int64(len(packMagic)) || end > x.Bytes {
			return nil, fmt.Errorf("entry %d lies outside the pack", i)
		}
	}
	return x, nil
}

func packKey(id string) string  { return packDir + id[:2] + "/" + id }
func indexKey(id string) string { return indexDir + id[:2] + "/" + id }
func deadKey(id string) string  { return pruneDir + id + deadSuffix }
func indexAD(id string) []byte  { return []byte("index:" + id) }
func blobAD(name string) []byte { return []byte("blob:" + name) }

// validPackID reports whether id is a pack id: 32 lowercase hex characters.
func validPackID(id string) bool { return len(id) == 32 && isLowerHex(id) }

func newPackID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readIndex reads and opens the index object of pack id.
func (r *Repo) readIndex(ctx context.Context, id string) (*packIndex, error) {
	sealed, err := r.st.Get(ctx, indexKey(id))
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("index of pack %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("index of pack %s: %w", id, err)
	}
	plain, err := r.open(nil, sealed, indexMagic, indexAD(id), indexKey(id))
	if err != nil {
		return nil, err
	}
	x, err := parseIndex(id, plain)
	if err != nil {
		return nil, &CorruptError{Object: indexKey(id), Reason: err.Error()}
	}
	return x, nil
}

// openPack is a pack being filled.
type openPack struct {
	id      string
	buf     []byte
	entries []indexEntry
	created time.Time
	done    chan struct{} // closed once the pack is stored or has failed
	err     error
}

func newOpenPack(buf []byte) *openPack {
	p := &openPack{
		id:      newPackID(),
		buf:     buf[:0],
		created: time.Now().UTC(),
		done:    make(chan struct{}),
	}
	p.buf = append(p.buf, packMagic...)
	return p
}

// packer owns the pack being filled and the packs being uploaded.
type packer struct {
	mu      sync.Mutex
	cur     *openPack
	sending map[string]*openPack
	// inMemory finds the blobs of the open pack and of those being uploaded, for writers
	// deduplicating against them before they are in the index cache.
	inMemory map[[32]byte]memBlob
	slots    chan struct{}
	err      error  // the first failed upload not yet reported by flush
	spare    []byte // the buffer of the last stored pack, for the next one
}

// memBlob is a blob in a pack still in memory: its pack and its entry there.
type memBlob struct {
	pack  *openPack
	entry int
}

// pendingPack reports whether pack id is being filled or uploaded by this process.
func (r *Repo) pendingPack(id string) bool {
	r.pk.mu.Lock()
	defer r.pk.mu.Unlock()
	if r.pk.cur != nil && r.pk.cur.id == id {
		return true
	}
	_, ok := r.pk.sending[id]
	return ok
}

// pending looks a blob up in the packs this process has not finished storing.
func (r *Repo) pending(name [32]byte) (location, bool) {
	r.pk.mu.Lock()
	defer r.pk.mu.Unlock()
	b, ok := r.pk.inMemory[name]
	if !ok {
		return location{}, false
	}
	e := b.pack.entries[b.entry]
	return location{Pack: b.pack.id, Offset: e.Offset, Length: e.Length, Size: e.Size}, true
}

// packsInMemory returns the open pack and those being uploaded; r.pk.mu is held.
func (r *Repo) packsInMemory() []*openPack {
	out := make([]*openPack, 0, len(r.pk.sending)+1)
	if r.pk.cur != nil {
		out = append(out, r.pk.cur)
	}
	for _, p := range r.pk.sending {
		out = append(out, p)
	}
	return out
}

// readPending returns a copy of a blob's sealed bytes from a pack still in memory.
func (r *Repo) readPending(loc location) ([]byte, bool) {
	r.pk.mu.Lock()
	defer r.pk.mu.Unlock()
	for _, p := range r.packsInMemory() {
		if p.id == loc.Pack {
			return append([]byte(nil), p.buf[loc.Offset:loc.Offset+loc.Length]...), true
		}
	}
	return nil, false
}

// appendBlob adds a sealed blob to the open pack and returns where it is, and whether it
// was added; a full pack is handed to an uploader. A blob already in a pack in memory is
// not added twice.
func (r *Repo) appendBlob(ctx context.Context, name [32]byte, sealed []byte, size int64) (location, bool, error) {
	r.pk.mu.Lock()
	if b, ok := r.pk.inMemory[name]; ok {
		e := b.pack.entries[b.entry]
		r.pk.mu.Unlock()
		return location{Pack: b.pack.id, Offset: e.Offset, Length: e.Length, Size: e.Size}, false, nil
	}
	if r.pk.cur == nil {
		buf := r.pk.spare
		r.pk.spare = nil
		if buf == nil {
			buf = make([]byte, 0, min(r.packSize, 1<<20))
		}
		r.pk.cur = newOpenPack(buf)
	}
	p := r.pk.cur
	if need := len(p.buf) + len(sealed); need > cap(p.buf) {
		// Grow by doubling, but never past the pack size, this blob and room for the
		// trailer: a pack that closes at 16 MiB must not hold a 32 MiB buffer.
		grown := make([]byte, len(p.buf), max(need, min(2*cap(p.buf), r.packSize+len(sealed)+trailerRoom)))
		copy(grown, p.buf)
		p.buf = grown
	}
	e := indexEntry{Name: name, Offset: int64(len(p.buf)), Length: int64(len(sealed)), Size: size}
	p.buf = append(p.buf, sealed...)
	p.entries = append(p.entries, e)
	r.pk.inMemory[name] = memBlob{pack: p, entry: len(p.entries) - 1}
	loc := location{Pack: p.id, Offset: e.Offset, Length: e.Length, Size: size}
	var full *openPack
	if len(p.buf) >= r.packSize {
		full = p
		r.pk.cur = nil
		r.pk.sending[p.id] = p
	}
	r.pk.mu.Unlock()
	if full != nil {
		if err := r.send(ctx, full); err != nil {
			return location{}, false, err
		}
	}
	return loc, true, nil
}

// send uploads a closed pack on its own goroutine, waiting while uploadsInFlight others are
// on their way.
func (r *Repo) send(ctx context.Context, p *openPack) error {
	// The wait for a slot ignores ctx: Puts have reported the pack's blobs as stored, and
	// other writers in this process may already refer to them. Uploads end on their own.
	r.pk.slots <- struct{}{}
	go func() {
		defer func() { <-r.pk.slots }()
		r.finishPack(p, r.storePack(context.WithoutCancel(ctx), p))
	}()
	return nil
}

// storePack writes a pack, then its index object, then records it in the cache.
func (r *Repo) storePack(ctx context.Context, p *openPack) error {
	// Bytes is where the blobs end: the index follows them.
	idx := &packIndex{Pack: p.id, Created: p.created, Bytes: int64(len(p.buf)), Entries: p.entries}
	sealed, err := r.seal(nil, indexMagic, indexAD(p.id), idx.marshal())
	if err != nil {
		return fmt.Errorf("store pack %s: %w", p.id, err)
	}
	data := append(p.buf, sealed...)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(sealed)))
	data = append(data, packTrailer...)
	if err := r.st.Put(ctx, packKey(p.id), data, true); err != nil {
		return fmt.Errorf("store pack %s: %w", p.id, err)
	}
	// Not conditional: pruning may have written the same bytes from the trailer already.
	if err := r.st.Put(ctx, indexKey(p.id), sealed, false); err != nil {
		return fmt.Errorf("store index of pack %s: %w", p.id, err)
	}
	if err := r.cache.addPack(ctx, idx); err != nil {
		return err
	}
	return nil
}

func (r *Repo) finishPack(p *openPack, err error) {
	r.pk.mu.Lock()
	p.err = err
	delete(r.pk.sending, p.id)
	for _, e := range p.entries {
		if b, ok := r.pk.inMemory[e.Name]; ok && b.pack == p {
			delete(r.pk.inMemory, e.Name)
		}
	}
	if err != nil && r.pk.err == nil {
		r.pk.err = err
	}
	// The buffer, grown to about a pack, serves the next pack: one buffer kept, not one
	// allocated and zeroed per pack.
	if r.pk.spare == nil || cap(p.buf) > cap(r.pk.spare) {
		r.pk.spare = p.buf[:0]
	}
	p.buf = nil
	r.pk.mu.Unlock()
	close(p.done)
}

// flush closes the open pack and waits until every pack in memory is stored. It returns
// the first upload error since the last flush.
func (r *Repo) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.pk.mu.Lock()
	p := r.pk.cur
	if p != nil && len(p.entries) > 0 {
		r.pk.cur = nil
		r.pk.sending[p.id] = p
	} else {
		p = nil
	}
	r.pk.mu.Unlock()
	if p != nil {
		if err := r.send(ctx, p); err != nil {
			return err
		}
	}
	r.pk.mu.Lock()
	waits := make([]chan struct{}, 0, len(r.pk.sending))
	for _, s := range r.pk.sending {
		waits = append(waits, s.done)
	}
	r.pk.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.pk.mu.Lock()
	err := r.pk.err
	r.pk.err = nil
	r.pk.mu.Unlock()
	return err
}

// tombstone is the content of prune/<pack>.deleted.
type tombstone struct {
	Pack   string    `json:"pack"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// tombstones lists the packs marked for deletion.
func (r *Repo) tombstones(ctx context.Context) (map[string]tombstone, error) {
	out := map[string]tombstone{}
	var keys []string
	err := storage.Keys(ctx, r.st, pruneDir, func(key string) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, pruneDir), deadSuffix)
		if !ok || !validPackID(id) {
			continue
		}
		data, err := r.st.Get(ctx, key)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var t tombstone
		if json.Unmarshal(data, &t) != nil || t.Pack != id {
			// Unreadable: treat it as written now, which only delays the deletion.
			t = tombstone{Pack: id, At: time.Now().UTC()}
		}
		out[id] = t
	}
	return out, nil
}

// BadObject is a stored copy of a blob that failed verification.
type BadObject struct {
	// Name is the blob's name; Pack the pack holding the bad copy.
	Name   string    `json:"name"`
	Pack   string    `json:"pack"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func badKey(pack, name string) string { return badDir + pack + "." + name }

// MarkBad records that the copy of blob name in pack is corrupt. Writers stop
// deduplicating against it, so the next backup that meets the same content stores a good
// copy, and readers then use that copy: older backups that referenced the blob read it
// again. Verification calls MarkBad; a bad copy is never deleted by hand.
func (r *Repo) MarkBad(ctx context.Context, b BadObject) error {
	if !validObjectName(b.Name) || !validPackID(b.Pack) {
		return fmt.Errorf("mark bad: invalid blob %q or pack %q", b.Name, b.Pack)
	}
	if b.At.IsZero() {
		b.At = time.Now().UTC()
	}
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("mark bad: %w", err)
	}
	if err := r.st.Put(ctx, badKey(b.Pack, b.Name), data, false); err != nil {
		return fmt.Errorf("mark bad: %w", err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return fmt.Errorf("mark bad: %w", err)
	}
	name, _ := hex.DecodeString(b.Name)
	if _, err := r.cache.db.ExecContext(ctx, `INSERT OR IGNORE INTO bad (pack, name) VALUES (?, ?)`, b.Pack, name); err != nil {
		return fmt.Errorf("mark bad: %w", err)
	}
	return nil
}

// BadObjects lists the copies marked bad.
func (r *Repo) BadObjects(ctx context.Context) ([]BadObject, error) {
	return r.badMarks(ctx)
}

func (r *Repo) badMarks(ctx context.Context) ([]BadObject, error) {
	var keys []string
	err := storage.Keys(ctx, r.st, badDir, func(key string) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []BadObject
	for _, key := range keys {
		pack, name, ok := strings.Cut(strings.TrimPrefix(key, badDir), ".")
		if !ok || !validPackID(pack) || !validObjectName(name) {
			continue
		}
		b := BadObject{Name: name, Pack: pack}
		if data, err := r.st.Get(ctx, key); err == nil {
			var stored BadObject
			if json.Unmarshal(data, &stored) == nil {
				b.Reason, b.At = stored.Reason, stored.At
			}
		}
		out = append(out, b)
	}
	return out, nil
}
