// Package repository stores backups in a storage.Storage: a local directory or
// S3-compatible object storage.
//
// A repository holds content-addressed blobs (blocks of files, block maps and WAL),
// packed into pack objects, and one manifest per backup. Every blob is named by a
// keyed hash (HMAC-SHA256) of its plaintext, compressed with zstd, sealed with
// XChaCha20-Poly1305 and written once: nothing is modified after it is stored, so
// identical blocks are stored once across all backups, and only pruning deletes.
//
// Layout (keys in the storage; format 2):
//
//	backstop-repository.json   format, id, block size, key check (never a key)
//	packs/3f/3fa2…             a pack: sealed blobs, then its sealed index (pack.go)
//	index/3f/3fa2…             the pack's index: each blob's offset, length and size
//	prune/<pack>.deleted       a tombstone: pruning deletes the pack on a later run
//	bad/<pack>.<blob>          a copy that failed verification (never deduplicated against)
//	locks/<id>.lock            a writer or pruner at work (session.go)
//	backups/<id>.manifest      one backup: its files and their blocks
//	wal/<system>/<name>.wal    one archived WAL file (wal.go)
//	sources/<name>.source      one source: name, connection string, system (see source.go)
//
// The repository is the truth and knows nothing about the catalog: the catalog
// can be rebuilt from the manifests, the source records and the archived WAL.
package repository

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/backstop/backstop/store/repository/storage"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// KeySize is the length in bytes of a repository key.
const KeySize = 32

// DefaultBlockSize is the block size recorded by Init: files are cut into
// blocks of this many bytes before they are stored.
const DefaultBlockSize = 1 << 20

// ConfigKey is the object at the top of every repository: its format, id and key check.
const ConfigKey = configName

const (
	configName   = "backstop-repository.json"
	configFormat = 2

	// maxBlockSize bounds block sizes read from a configuration or manifest.
	maxBlockSize = 64 << 20

	infoHashKey       = "backstop repository v1 object name key"
	infoEncryptionKey = "backstop repository v1 encryption key"

	keyCheckMagic     = "BSK1"
	keyCheckPlaintext = "backstop repository key check"
)

// ErrOldFormat reports a repository written by an earlier Backstop in format 1 (one file
// per block). This version does not read it: nothing in it is touched.
var ErrOldFormat = errors.New("this repository is in format 1, written by Backstop before packs; this version reads format 2 only " +
	"and leaves it untouched: restore from it with the Backstop version that wrote it, and start a new repository for this one")

// ErrWrongKey reports that a key does not open the repository it was given to.
var ErrWrongKey = errors.New("repository key does not match this repository")

// config is the content of backstop-repository.json.
type config struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	BlockSize int       `json:"block_size"`
	// KeyCheck is a known plaintext sealed with the encryption key, so that
	// Open detects a wrong key before anything is read or written.
	KeyCheck []byte `json:"key_check"`
}

// Repo is an open repository. Its methods are safe for concurrent use.
type Repo struct {
	st        storage.Storage
	id        string
	blockSize int

	hashKey []byte
	aead    cipher.AEAD
	enc     *zstd.Encoder
	dec     *zstd.Decoder

	bufs sync.Pool // *[]byte scratch buffers for sealed bytes
	macs sync.Pool // hash.Hash: HMAC-SHA256 keyed with hashKey, reset for each use

	packSize int
	pk       packer
	cache    *cache
	opts     Options
}

// Options tune how a repository is opened.
type Options struct {
	// CacheDir holds the local index cache (a SQLite file per repository). Empty: a
	// temporary directory, removed by Close, so the index is read again at every open.
	CacheDir string
	// PackSize is the size at which a pack is closed; DefaultPackSize when zero.
	PackSize int
	// Heartbeat, StaleAfter and CommitWindow time the protocol that lets writers and
	// pruning run at once (see session.go); the defaults when zero.
	Heartbeat, StaleAfter, CommitWindow time.Duration
}

// GenerateKey returns a new random repository key.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// EncodeKey returns the text form of key kept in a key file: lowercase hex.
func EncodeKey(key []byte) string {
	return hex.EncodeToString(key)
}

// DecodeKey parses the text form of a key written by EncodeKey. Surrounding
// white space, such as the newline at the end of a key file, is ignored.
func DecodeKey(s string) ([]byte, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("decode key: %w", err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("decode key: %w", err)
	}
	return key, nil
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	return nil
}

// Init creates a new repository in the local directory dir, which must be empty or
// missing, and opens it.
func Init(dir string, key []byte) (*Repo, error) {
	st, err := storage.NewLocal(dir)
	if err != nil {
		return nil, fmt.Errorf("init repository %s: %w", dir, err)
	}
	return InitStorage(context.Background(), st, key, Options{})
}

// InitStorage creates a new repository in st, which must hold nothing yet, and opens it.
func InitStorage(ctx context.Context, st storage.Storage, key []byte, opts Options) (*Repo, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	errFull := errors.New("full")
	var first string
	err := storage.Keys(ctx, st, "", func(k string) error {
		first = k
		return errFull
	})
	switch {
	case first == configName:
		return nil, fmt.Errorf("init repository %s: it already holds a repository: %w", st, fs.ErrExist)
	case first != "":
		return nil, fmt.Errorf("init repository %s: it is not empty (it holds %q)", st, first)
	case err != nil:
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}

	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	r, err := newRepo(ctx, st, hex.EncodeToString(id[:]), DefaultBlockSize, key, opts)
	if err != nil {
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	check, err := r.seal(nil, keyCheckMagic, r.keyCheckAD(), []byte(keyCheckPlaintext))
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	data, err := json.MarshalIndent(config{
		Format:    configFormat,
		ID:        r.id,
		CreatedAt: time.Now().UTC(),
		BlockSize: r.blockSize,
		KeyCheck:  check,
	}, "", "  ")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	data = append(data, '\n')
	if err := st.Put(ctx, configName, data, true); err != nil {
		r.Close()
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	if err := st.Sync(ctx); err != nil {
		r.Close()
		return nil, fmt.Errorf("init repository %s: %w", st, err)
	}
	return r, nil
}

// Open opens the existing repository in the local directory dir. It fails with
// ErrWrongKey when key is not the key the repository was created with.
func Open(dir string, key []byte) (*Repo, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("open repository %s: no repository here: %w", dir, err)
	}
	st, err := storage.NewLocal(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	return OpenStorage(context.Background(), st, key, Options{})
}

// OpenStorage opens the existing repository in st. It fails with ErrWrongKey when key
// is not the key the repository was created with.
func OpenStorage(ctx context.Context, st storage.Storage, key []byte, opts Options) (*Repo, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", st, err)
	}
	data, err := st.Get(ctx, configName)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("open repository %s: no repository here (%s is missing): %w", st, configName, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", st, err)
	}
	var c config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("open repository %s: read %s: %w", st, configName, err)
	}
	if c.Format == 1 {
		return nil, fmt.Errorf("open repository %s: %w", st, ErrOldFormat)
	}
	if c.Format != configFormat {
		return nil, fmt.Errorf("open repository %s: unsupported repository format %d (this version reads format %d)", st, c.Format, configFormat)
	}
	if len(c.ID) != 32 || !isLowerHex(c.ID) {
		return nil, fmt.Errorf("open repository %s: %s: invalid id %q", st, configName, c.ID)
	}
	if c.BlockSize <= 0 || c.BlockSize > maxBlockSize {
		return nil, fmt.Errorf("open repository %s: %s: invalid block size %d", st, configName, c.BlockSize)
	}
	if len(c.KeyCheck) == 0 {
		return nil, fmt.Errorf("open repository %s: %s has no key_check", st, configName)
	}
	r, err := newRepo(ctx, st, c.ID, c.BlockSize, key, opts)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", st, err)
	}
	got, err := r.open(nil, c.KeyCheck, keyCheckMagic, r.keyCheckAD(), configName)
	if err != nil || string(got) != keyCheckPlaintext {
		r.Close()
		return nil, fmt.Errorf("open repository %s: %w", st, ErrWrongKey)
	}
	if err := r.cache.refresh(ctx, r); err != nil {
		r.Close()
		return nil, fmt.Errorf("open repository %s: %w", st, err)
	}
	return r, nil
}

// newRepo derives the keys and builds the codecs and the index cache of a repository.
func newRepo(ctx context.Context, st storage.Storage, id string, blockSize int, key []byte, opts Options) (*Repo, error) {
	hashKey, err := deriveKey(key, infoHashKey)
	if err != nil {
		return nil, err
	}
	encKey, err := deriveKey(key, infoEncryptionKey)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(encKey)
	if err != nil {
		return nil, err
	}
	// A window beyond the block size finds no more matches but costs each
	// of the GOMAXPROCS encoders its size in history buffer.
	window := zstd.MinWindowSize
	for window < blockSize {
		window <<= 1
	}
	enc, err := zstd.NewWriter(nil,
		// SpeedFastest: measured on PostgreSQL heap pages, it compresses to within 1% of
		// SpeedDefault at 1.7 times its speed, and compression is most of a backup's CPU.
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(window),
		zstd.WithZeroFrames(true), // an empty block still gets a valid frame
		// No frame checksum: the AEAD tag and the keyed name already prove every byte.
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	if err != nil {
		enc.Close()
		return nil, err
	}
	c, err := openCache(ctx, opts.CacheDir, id)
	if err != nil {
		enc.Close()
		dec.Close()
		return nil, err
	}
	packSize := opts.PackSize
	if packSize <= 0 {
		packSize = DefaultPackSize
	}
	// Offsets in an index are 32-bit, and a pack is held in memory while it fills.
	packSize = min(packSize, 1<<30)
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.CommitWindow <= 0 {
		opts.CommitWindow = DefaultCommitWindow
	}
	return &Repo{
		opts:      opts,
		packSize:  packSize,
		pk:        packer{sending: map[string]*openPack{}, inMemory: map[[32]byte]memBlob{}, slots: make(chan struct{}, uploadsInFlight)},
		cache:     c,
		st:        st,
		id:        id,
		blockSize: blockSize,
		hashKey:   hashKey,
		aead:      aead,
		enc:       enc,
		dec:       dec,
		bufs: sync.Pool{New: func() any {
			b := make([]byte, 0, DefaultBlockSize+DefaultBlockSize/8)
			return &b
		}},
		macs: sync.Pool{New: func() any { return hmac.New(sha256.New, hashKey) }},
	}, nil
}

// deriveKey derives a 32-byte subkey of the repository key for one purpose.
func deriveKey(key []byte, info string) ([]byte, error) {
	sub := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, key, nil, []byte(info)), sub); err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return sub, nil
}

func (r *Repo) keyCheckAD() []byte {
	return []byte("key-check:" + r.id)
}

// ID returns the random identifier given to the repository by Init.
func (r *Repo) ID() string {
	return r.id
}

// BlockSize returns the size of the blocks files are cut into for this
// repository.
func (r *Repo) BlockSize() int {
	return r.blockSize
}

// Close waits for packs on their way to the storage and releases the codecs and the
// index cache. Blobs put since the last Sync are not stored. The Repo must not be used
// afterwards.
func (r *Repo) Close() error {
	r.pk.mu.Lock()
	waits := make([]chan struct{}, 0, len(r.pk.sending))
	for _, p := range r.pk.sending {
		waits = append(waits, p.done)
	}
	r.pk.cur = nil
	r.pk.mu.Unlock()
	for _, w := range waits {
		<-w
	}
	r.dec.Close()
	return errors.Join(r.enc.Close(), r.cache.close())
}

// seal appends magic | nonce | XChaCha20-Poly1305(zstd(plaintext), ad) to dst.
func (r *Repo) seal(dst []byte, magic string, ad, plaintext []byte) ([]byte, error) {
	dst = append(dst, magic...)
	nonceAt := len(dst)
	dst = append(dst, make([]byte, chacha20poly1305.NonceSizeX)...)
	if _, err := rand.Read(dst[nonceAt:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	bodyAt := len(dst)
	dst = r.enc.EncodeAll(plaintext, dst)
	dst = slices.Grow(dst, r.aead.Overhead())
	// Seal in place: the ciphertext overwrites the compressed bytes.
	return r.aead.Seal(dst[:bodyAt], dst[nonceAt:bodyAt], dst[bodyAt:], ad), nil
}

// open reverses seal, appending the plaintext to dst[:0]. It decrypts in
// place, so sealed is overwritten. Failures are *CorruptError naming object.
func (r *Repo) open(dst, sealed []byte, magic string, ad []byte, object string) ([]byte, error) {
	compressed, err := r.unseal(sealed, magic, ad, object)
	if err != nil {
		return nil, err
	}
	return r.decompress(dst, compressed, object)
}

// unseal checks the header and the seal of sealed and decrypts it in place, returning
// the compressed plaintext (a slice of sealed). Failures are *CorruptError naming object.
func (r *Repo) unseal(sealed []byte, magic string, ad []byte, object string) ([]byte, error) {
	bodyAt := len(magic) + chacha20poly1305.NonceSizeX
	if least := bodyAt + r.aead.Overhead(); len(sealed) < least {
		return nil, &CorruptError{Object: object, Reason: fmt.Sprintf("truncated: %d bytes stored, at least %d needed", len(sealed), least)}
	}
	if string(sealed[:len(magic)]) != magic {
		return nil, &CorruptError{Object: object, Reason: fmt.Sprintf("bad header %q, want %q: stored bytes were altered or this is not a backstop object", sealed[:len(magic)], magic)}
	}
	compressed, err := r.aead.Open(sealed[bodyAt:bodyAt], sealed[len(magic):bodyAt], sealed[bodyAt:], ad)
	if err != nil {
		return nil, &CorruptError{Object: object, Reason: "authentication failed: stored bytes were altered, truncated, or moved from another name"}
	}
	return compressed, nil
}

// decompress appends the plaintext of an unsealed object to dst[:0].
func (r *Repo) decompress(dst, compressed []byte, object string) ([]byte, error) {
	out, err := r.dec.DecodeAll(compressed, dst[:0])
	if err != nil {
		return nil, &CorruptError{Object: object, Reason: "decompress: " + err.Error()}
	}
	return out, nil
}

// getBuf and putBuf recycle scratch buffers of about one block.
func (r *Repo) getBuf() *[]byte {
	return r.bufs.Get().(*[]byte)
}

func (r *Repo) putBuf(b *[]byte) {
	if cap(*b) > 4*maxBlockSize {
		return // do not keep a huge manifest's buffer alive
	}
	*b = (*b)[:0]
	r.bufs.Put(b)
}

// Sync stores the pack being filled, waits for every pack on its way, and makes
// everything stored durable (the storage's directories on a local disk). It returns the
// first failed pack write since the last Sync. PutManifest and PutWAL call it before
// they store what refers to the blobs.
func (r *Repo) Sync(ctx context.Context) error {
	if err := r.flush(ctx); err != nil {
		return fmt.Errorf("sync repository: %w", err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return fmt.Errorf("sync repository: %w", err)
	}
	return nil
}

// Storage is where the repository's objects are.
func (r *Repo) Storage() storage.Storage { return r.st }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
