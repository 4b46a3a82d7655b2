package repository

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/backstop/backstop/store/repository/storage"
)

const objectMagic = "BSO1"

// ErrNotFound reports that an object or manifest is not in the repository.
var ErrNotFound = errors.New("not found")

// CorruptError reports a stored object or manifest that fails verification:
// wrong header, failed authentication, truncation, undecodable content, or
// content that does not match its name.
type CorruptError struct {
	// Object is the object name, or the repository-relative path of a
	// manifest ("backups/<id>.manifest").
	Object string
	// Reason says what check failed.
	Reason string
}

// Error names the object and the reason.
func (e *CorruptError) Error() string {
	return "object " + e.Object + ": " + e.Reason
}

// ObjectRef identifies a stored object.
type ObjectRef struct {
	// Name is the hex HMAC-SHA256 of the plaintext under the repository's
	// hash key: 64 lowercase hex characters.
	Name string
	// StoredSize is the number of bytes the object takes on disk.
	StoredSize int64
	// Size is the length of the plaintext.
	Size int64
}

// Put stores plaintext as an object unless an object with the same content is
// already stored, and reports whether it wrote a new object. The object is
// stored atomically; the next Sync makes it durable. Put is safe for concurrent use, including for
// the same plaintext.
func (r *Repo) Put(ctx context.Context, plaintext []byte) (ObjectRef, bool, error) {
	if err := ctx.Err(); err != nil {
		return ObjectRef{}, false, fmt.Errorf("put object: %w", err)
	}
	name := r.objectName(plaintext)
	ref := ObjectRef{Name: name, Size: int64(len(plaintext))}

	release, err := r.claim(ctx, name)
	if err != nil {
		return ObjectRef{}, false, fmt.Errorf("put object %s: %w", name, err)
	}
	defer release()

	key := objectKey(name)
	size, err := r.st.Size(ctx, key)
	if err == nil {
		// Another process may have written it without syncing it yet: the storage makes
		// what Size found durable at the next Sync too.
		ref.StoredSize = size
		return ref, false, nil
	}
	if !errors.Is(err, storage.ErrNotExist) {
		return ObjectRef{}, false, fmt.Errorf("put object %s: %w", name, err)
	}

	buf := r.getBuf()
	defer r.putBuf(buf)
	sealed, err := r.seal((*buf)[:0], objectMagic, []byte(name), plaintext)
	if err != nil {
		return ObjectRef{}, false, fmt.Errorf("put object %s: %w", name, err)
	}
	*buf = sealed
	if err := ctx.Err(); err != nil {
		return ObjectRef{}, false, fmt.Errorf("put object %s: %w", name, err)
	}
	// Racing writers in other processes replace identical content with each other;
	// both results are valid objects under this name.
	if err := r.st.Put(ctx, key, sealed, false); err != nil {
		return ObjectRef{}, false, fmt.Errorf("put object %s: %w", name, err)
	}
	ref.StoredSize = int64(len(sealed))
	return ref, true, nil
}

// claim makes concurrent Puts of one name in this process take turns, so that
// exactly one of them writes and reports a new object. The returned function
// ends the turn.
func (r *Repo) claim(ctx context.Context, name string) (func(), error) {
	for {
		r.mu.Lock()
		busy, ok := r.inflight[name]
		if !ok {
			done := make(chan struct{})
			r.inflight[name] = done
			r.mu.Unlock()
			return func() {
				r.mu.Lock()
				delete(r.inflight, name)
				r.mu.Unlock()
				close(done)
			}, nil
		}
		r.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Get reads, verifies and returns the plaintext of the named object, reusing
// the storage of dst when it is large enough. A missing object yields an error
// wrapping ErrNotFound; an object that fails verification yields a
// *CorruptError.
func (r *Repo) Get(ctx context.Context, name string, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get object %s: %w", name, err)
	}
	if !validObjectName(name) {
		return nil, fmt.Errorf("get object %q: invalid object name", name)
	}
	buf := r.getBuf()
	defer r.putBuf(buf)
	sealed, err := storage.GetInto(ctx, r.st, objectKey(name), *buf)
	*buf = sealed
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("get object %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", name, err)
	}
	plain, err := r.open(dst, sealed, objectMagic, []byte(name), name)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal([]byte(r.objectName(plain)), []byte(name)) {
		return nil, &CorruptError{Object: name, Reason: "content does not match its name"}
	}
	return plain, nil
}

// Stat returns the number of bytes the named object takes on disk, or an error
// wrapping ErrNotFound.
func (r *Repo) Stat(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat object %s: %w", name, err)
	}
	if !validObjectName(name) {
		return 0, fmt.Errorf("stat object %q: invalid object name", name)
	}
	size, err := r.st.Size(ctx, objectKey(name))
	if errors.Is(err, storage.ErrNotExist) {
		return 0, fmt.Errorf("stat object %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat object %s: %w", name, err)
	}
	return size, nil
}

// Has reports whether the named object is stored. It does not verify it.
func (r *Repo) Has(ctx context.Context, name string) (bool, error) {
	_, err := r.Stat(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// objectName returns the name of the object holding plaintext.
func (r *Repo) objectName(plaintext []byte) string {
	h := hmac.New(sha256.New, r.hashKey)
	h.Write(plaintext)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// objectKey is where the named object is in the storage.
func objectKey(name string) string { return "objects/" + name[:2] + "/" + name }

// validObjectName reports whether name has the form of an object name: 64
// lowercase hex characters.
func validObjectName(name string) bool {
	return len(name) == 2*sha256.Size && isLowerHex(name)
}
