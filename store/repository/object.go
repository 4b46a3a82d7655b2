package repository

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"github.com/backstop/backstop/store/repository/storage"
)

// ErrNotFound reports that an object or manifest is not in the repository.
var ErrNotFound = errors.New("not found")

// CorruptError reports a stored object or manifest that fails verification:
// wrong header, failed authentication, truncation, undecodable content, or
// content that does not match its name.
type CorruptError struct {
	// Object is the blob name, or the repository-relative path of a
	// manifest ("backups/<id>.manifest").
	Object string
	// Pack is the pack holding the copy of a blob that failed.
	Pack string
	// Reason says what check failed.
	Reason string
}

// Error names the object and the reason.
func (e *CorruptError) Error() string {
	if e.Pack != "" {
		return "object " + e.Object + " in pack " + e.Pack + ": " + e.Reason
	}
	return "object " + e.Object + ": " + e.Reason
}

// ObjectRef identifies a stored blob.
type ObjectRef struct {
	// Name is the hex HMAC-SHA256 of the plaintext under the repository's
	// hash key: 64 lowercase hex characters.
	Name string
	// Pack is the pack holding the copy that was stored or found.
	Pack string
	// StoredSize is the number of bytes the blob takes in its pack.
	StoredSize int64
	// Size is the length of the plaintext.
	Size int64
}

// Put stores plaintext as a blob unless a good copy of the same content is already
// stored, and reports whether it wrote a new one. New blobs go into the pack being
// filled; the next Sync stores it and makes it durable. The dedupe check is a lookup in
// the local index cache, never a request to the storage. Put is safe for concurrent use,
// including for the same plaintext: one of the callers reports the write.
func (r *Repo) Put(ctx context.Context, plaintext []byte) (ObjectRef, bool, error) {
	refs, written, err := r.PutMany(ctx, [][]byte{plaintext})
	if err != nil {
		return ObjectRef{}, false, err
	}
	return refs[0], written[0], nil
}

// PutMany is Put for several blobs at once, with one index lookup for all of them.
func (r *Repo) PutMany(ctx context.Context, plaintexts [][]byte) ([]ObjectRef, []bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("put object: %w", err)
	}
	refs := make([]ObjectRef, len(plaintexts))
	written := make([]bool, len(plaintexts))
	sums := make([][32]byte, len(plaintexts))
	var misses [][32]byte
	for i, p := range plaintexts {
		sums[i] = r.objectSum(p)
		refs[i] = ObjectRef{Name: hex.EncodeToString(sums[i][:]), Size: int64(len(p))}
		if loc, ok := r.pending(sums[i]); ok {
			refs[i].Pack, refs[i].StoredSize = loc.Pack, loc.Length
			continue
		}
		misses = append(misses, sums[i])
	}
	found, err := r.cache.lookupMany(ctx, misses)
	if err != nil {
		return nil, nil, fmt.Errorf("put object: %w", err)
	}
	buf := r.getBuf()
	defer r.putBuf(buf)
	for i, p := range plaintexts {
		if refs[i].Pack != "" {
			continue
		}
		if loc, ok := found[sums[i]]; ok {
			refs[i].Pack, refs[i].StoredSize = loc.Pack, loc.Length
			continue
		}
		sealed, err := r.seal((*buf)[:0], blobMagic, blobAD(refs[i].Name), p)
		if err != nil {
			return nil, nil, fmt.Errorf("put object %s: %w", refs[i].Name, err)
		}
		*buf = sealed
		loc, added, err := r.appendBlob(ctx, sums[i], sealed, int64(len(p)))
		if err != nil {
			return nil, nil, fmt.Errorf("put object %s: %w", refs[i].Name, err)
		}
		refs[i].Pack, refs[i].StoredSize = loc.Pack, loc.Length
		written[i] = added
	}
	return refs, written, nil
}

// Get reads, verifies and returns the plaintext of the named blob, reusing the storage
// of dst when it is large enough. When one stored copy fails verification and another
// is good, the good one is returned. A blob with no stored copy yields an error wrapping
// ErrNotFound; one whose every copy fails verification yields a *CorruptError naming the
// pack of the first.
func (r *Repo) Get(ctx context.Context, name string, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get object %s: %w", name, err)
	}
	if !validObjectName(name) {
		return nil, fmt.Errorf("get object %q: invalid object name", name)
	}
	for attempt := 0; ; attempt++ {
		locs, err := r.find(ctx, name)
		if err != nil {
			return nil, err
		}
		var first error
		gone := 0
		for _, loc := range locs {
			plain, err := r.readBlob(ctx, name, loc, dst)
			if err == nil {
				return plain, nil
			}
			if errors.Is(err, ErrNotFound) {
				gone++
			}
			if first == nil {
				first = err
			}
		}
		// Every copy this process knew of was deleted by pruning elsewhere (after copying
		// what was needed): look again once.
		if gone < len(locs) || attempt > 0 {
			return nil, first
		}
		if err := r.cache.refresh(ctx, r); err != nil {
			return nil, errors.Join(first, err)
		}
	}
}

// find returns the copies of a blob, refreshing the cache once when it knows none (another
// process may have stored it since).
func (r *Repo) find(ctx context.Context, name string) ([]location, error) {
	raw, _ := hex.DecodeString(name)
	var sum [32]byte
	copy(sum[:], raw)
	if loc, ok := r.pending(sum); ok {
		return []location{loc}, nil
	}
	for attempt := 0; ; attempt++ {
		locs, err := r.cache.locations(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("get object %s: %w", name, err)
		}
		if len(locs) > 0 || attempt > 0 {
			if len(locs) == 0 {
				return nil, fmt.Errorf("get object %s: %w", name, ErrNotFound)
			}
			return locs, nil
		}
		if err := r.cache.refreshOnMiss(ctx, r); err != nil {
			return nil, fmt.Errorf("get object %s: %w", name, err)
		}
	}
}

// readBlob reads one copy of a blob and verifies it.
func (r *Repo) readBlob(ctx context.Context, name string, loc location, dst []byte) ([]byte, error) {
	sealed, ok := r.readPending(loc)
	if !ok {
		var err error
		sealed, err = r.st.GetRange(ctx, packKey(loc.Pack), loc.Offset, loc.Length)
		if errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("get object %s: pack %s: %w", name, loc.Pack, ErrNotFound)
		}
		if err != nil {
			// A range past the end is the storage's own error: a pack that ends before
			// the blob its index lists is damage, like any other truncation.
			if size, serr := r.st.Size(ctx, packKey(loc.Pack)); serr == nil && size < loc.Offset+loc.Length {
				return nil, &CorruptError{Object: name, Pack: loc.Pack,
					Reason: fmt.Sprintf("truncated: the pack holds %d bytes, the blob ends at %d", size, loc.Offset+loc.Length)}
			}
			return nil, fmt.Errorf("get object %s: %w", name, err)
		}
	}
	return r.openBlob(name, loc, sealed, dst)
}

// openBlob opens a sealed copy of a blob read from loc and checks it holds what its name says.
func (r *Repo) openBlob(name string, loc location, sealed, dst []byte) ([]byte, error) {
	return r.openBlobChecked(name, loc, sealed, dst, true)
}

// openBlobChecked is openBlob; without checkName it skips recomputing the keyed hash of
// the plaintext, for a reader that checks the content another way (a restore checks
// every file's CRC-32C). The seal, bound to the name, is checked either way.
func (r *Repo) openBlobChecked(name string, loc location, sealed, dst []byte, checkName bool) ([]byte, error) {
	compressed, err := r.authenticateBlob(name, loc, sealed)
	if err != nil {
		return nil, err
	}
	plain, err := r.decompress(dst, compressed, name)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Pack = loc.Pack
		}
		return nil, err
	}
	if checkName {
		sum := r.objectSum(plain)
		var got [2 * sha256.Size]byte
		hex.Encode(got[:], sum[:])
		if !hmac.Equal(got[:], []byte(name)) {
			return nil, &CorruptError{Object: name, Pack: loc.Pack, Reason: "content does not match its name"}
		}
	}
	if int64(len(plain)) != loc.Size {
		return nil, &CorruptError{Object: name, Pack: loc.Pack, Reason: fmt.Sprintf("holds %d bytes, the index says %d", len(plain), loc.Size)}
	}
	return plain, nil
}

// authenticateBlob checks the seal of a blob's copy at loc, bound to its name, and
// decrypts it in place, returning its compressed content. It neither decompresses it nor
// recomputes its name: Verify does only this with a copy already fully proven (see
// proof.go).
func (r *Repo) authenticateBlob(name string, loc location, sealed []byte) ([]byte, error) {
	if int64(len(sealed)) != loc.Length {
		return nil, &CorruptError{Object: name, Pack: loc.Pack, Reason: fmt.Sprintf("truncated: %d of %d bytes stored", len(sealed), loc.Length)}
	}
	compressed, err := r.unseal(sealed, blobMagic, blobAD(name), name)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Pack = loc.Pack
		}
		return nil, err
	}
	return compressed, nil
}

// Has reports whether a good copy of the named blob is stored (as far as the local index
// cache knows). It does not read it.
func (r *Repo) Has(ctx context.Context, name string) (bool, error) {
	if !validObjectName(name) {
		return false, fmt.Errorf("has object %q: invalid object name", name)
	}
	raw, _ := hex.DecodeString(name)
	var sum [32]byte
	copy(sum[:], raw)
	if _, ok := r.pending(sum); ok {
		return true, nil
	}
	_, ok, err := r.cache.lookup(ctx, raw)
	return ok, err
}

// Locate returns the pack holding the copy of the named blob that Get reads first.
func (r *Repo) Locate(ctx context.Context, name string) (pack string, offset, length int64, err error) {
	if !validObjectName(name) {
		return "", 0, 0, fmt.Errorf("locate object %q: invalid object name", name)
	}
	locs, err := r.find(ctx, name)
	if err != nil {
		return "", 0, 0, err
	}
	return locs[0].Pack, locs[0].Offset, locs[0].Length, nil
}

// PackKey is where pack id is in the storage.
func PackKey(id string) string { return packKey(id) }

// objectSum returns the keyed hash naming plaintext. The keyed HMACs are pooled: Reset
// returns one to its keyed state without hashing the key again.
func (r *Repo) objectSum(plaintext []byte) [32]byte {
	h := r.macs.Get().(hash.Hash)
	h.Reset()
	h.Write(plaintext)
	var sum [32]byte
	h.Sum(sum[:0])
	r.macs.Put(h)
	return sum
}

// objectName returns the name of the blob holding plaintext.
func (r *Repo) objectName(plaintext []byte) string {
	sum := r.objectSum(plaintext)
	return hex.EncodeToString(sum[:])
}

// validObjectName reports whether name has the form of an object name: 64
// lowercase hex characters.
func validObjectName(name string) bool {
	return len(name) == 2*sha256.Size && isLowerHex(name)
}
