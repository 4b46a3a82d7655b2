package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// Sealer encrypts the secrets the catalog keeps (the connection strings of sources, which
// hold passwords), so that a copy of catalog.db alone gives no access to any database. ad
// binds a sealed value to the row it belongs to: a value moved to another row does not open.
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// ErrSecretsUnreadable reports sealed secrets that the given key does not open: the catalog
// was sealed with another repository key, or the value was altered.
var ErrSecretsUnreadable = errors.New("sealed source secrets do not open with this key (is it this home's repository key?)")

// secretsInfo is the HKDF label of the source-secrets key: a subkey of its own, so that
// nothing sealed here can be confused with a repository object.
const secretsInfo = "backstop source secrets v1"

// sealedPrefix marks a sealed value in a text column; what follows is base64 (standard, no
// padding) of the nonce and the ciphertext.
const sealedPrefix = "sealed:v1:"

// secretSealer is XChaCha20-Poly1305 under a key derived from the repository key.
type secretSealer struct {
	aead interface {
		NonceSize() int
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
	}
}

// NewSealer returns the Sealer of a home: XChaCha20-Poly1305 with a key derived by HKDF-SHA256
// from the repository key. The store never sees the repository key's other uses.
func NewSealer(repositoryKey []byte) (Sealer, error) {
	if len(repositoryKey) < 32 {
		return nil, fmt.Errorf("sealer: key is %d bytes, want at least 32", len(repositoryKey))
	}
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, repositoryKey, nil, []byte(secretsInfo)), key); err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return secretSealer{aead: aead}, nil
}

// Seal returns a random nonce followed by the ciphertext of plaintext.
func (s secretSealer) Seal(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+chacha20poly1305.Overhead)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open reverses Seal; a wrong key, wrong ad or altered value is ErrSecretsUnreadable.
func (s secretSealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+chacha20poly1305.Overhead {
		return nil, ErrSecretsUnreadable
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrSecretsUnreadable
	}
	return out, nil
}

// Option changes how Open opens the catalog.
type Option func(*Store)

// WithSealer seals source secrets with s: new and changed sources are stored sealed, and
// Open seals any left in plaintext by an older Backstop.
func WithSealer(s Sealer) Option {
	return func(st *Store) { st.sealer = s }
}

// sourceAD binds a sealed DSN to its source's name.
func sourceAD(name string) []byte { return []byte("source dsn:" + name) }

// sealDSN returns the stored form of a source's DSN: sealed with a sealer, else as is.
func (s *Store) sealDSN(name, dsn string) (string, error) {
	if s.sealer == nil {
		return dsn, nil
	}
	b, err := s.sealer.Seal([]byte(dsn), sourceAD(name))
	if err != nil {
		return "", fmt.Errorf("seal source secrets: %w", err)
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(b), nil
}

// openDSN returns the DSN of a stored value. Without a sealer a sealed value opens to ""
// with sealed set: such a process (a test, a tool reading the catalog alone) may list
// sources but cannot connect to them.
func (s *Store) openDSN(name, stored string) (dsn string, sealed bool, err error) {
	rest, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, false, nil
	}
	if s.sealer == nil {
		return "", true, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", true, fmt.Errorf("source %q: %w", name, ErrSecretsUnreadable)
	}
	out, err := s.sealer.Open(b, sourceAD(name))
	if err != nil {
		return "", true, fmt.Errorf("source %q: %w", name, err)
	}
	return string(out), false, nil
}

// sealSources seals every source DSN still in plaintext, once, when a catalog written by an
// older Backstop is first opened with a sealer; and checks that sealed ones open, so that a
// wrong key is refused at once rather than at the first backup.
func (s *Store) sealSources(ctx context.Context) error {
	if s.sealer == nil {
		return nil
	}
	var plain int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sources WHERE dsn NOT LIKE 'sealed:v1:%'`).Scan(&plain); err != nil {
		return fmt.Errorf("seal sources: %w", err)
	}
	if plain > 0 {
		// Zero the freed space of rewritten rows, so that the old plaintext does not linger
		// in the file's free space.
		if _, err := s.wdb.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
			return fmt.Errorf("seal sources: %w", err)
		}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		type row struct {
			id        int64
			name, dsn string
		}
		rows, err := queryAll(ctx, tx, func(r rowScanner) (row, error) {
			var x row
			err := r.Scan(&x.id, &x.name, &x.dsn)
			return x, err
		}, `SELECT id, name, dsn FROM sources ORDER BY id`)
		if err != nil {
			return fmt.Errorf("seal sources: %w", err)
		}
		for _, x := range rows {
			if strings.HasPrefix(x.dsn, sealedPrefix) {
				if _, _, err := s.openDSN(x.name, x.dsn); err != nil {
					return err
				}
				continue
			}
			sealed, err := s.sealDSN(x.name, x.dsn)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE sources SET dsn = ? WHERE id = ?`, sealed, x.id); err != nil {
				return fmt.Errorf("seal source %q: %w", x.name, err)
			}
		}
		return nil
	})
	if err != nil || plain == 0 {
		return err
	}
	// The write-ahead log may still hold pages with the plaintext: move everything into the
	// main file (where secure_delete zeroed it) and empty the log.
	if _, err := s.wdb.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("seal sources: checkpoint: %w", err)
	}
	return nil
}
