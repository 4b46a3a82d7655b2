package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const secretPassword = "pw-Zq8xK3vT9mLr"

func secretSource(name string) SourceParams {
	return SourceParams{Name: name, DSN: "postgres://backup:" + secretPassword + "@db.example:5432/postgres?sslmode=require",
		SystemIdentifier: "7311111111111111111", PGVersion: 150004}
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t *testing.T, key []byte) Sealer {
	t.Helper()
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawCatalog returns the bytes of the catalog file and its write-ahead log.
func rawCatalog(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestSourceSecretsAreSealed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	key := newKey(t)
	s, err := Open(ctx, path, WithSealer(newSealer(t, key)))
	if err != nil {
		t.Fatal(err)
	}
	p := secretSource("orders-db")
	src, err := s.CreateSource(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if src.DSN != p.DSN {
		t.Errorf("CreateSource().DSN = %q, want %q", src.DSN, p.DSN)
	}
	p.Name = "orders"
	if _, err := s.UpdateSource(ctx, src.ID, p); err != nil {
		t.Fatal(err)
	}
	if raw := rawCatalog(t, path); bytes.Contains(raw, []byte(secretPassword)) {
		t.Errorf("the catalog's files hold the source's password in plaintext")
	}
	for _, get := range []func() (Source, error){
		func() (Source, error) { return s.Source(ctx, src.ID) },
		func() (Source, error) { return s.SourceByName(ctx, "orders") },
		func() (Source, error) { ss, err := s.Sources(ctx); return ss[0], err },
	} {
		if got, err := get(); err != nil || got.DSN != p.DSN || got.SecretsSealed {
			t.Errorf("read back = %q (sealed %v), %v; want %q", got.DSN, got.SecretsSealed, err, p.DSN)
		}
	}
	s.Close()

	t.Run("wrong key", func(t *testing.T) {
		_, err := Open(ctx, path, WithSealer(newSealer(t, newKey(t))))
		if !errors.Is(err, ErrSecretsUnreadable) {
			t.Errorf("Open(wrong key) = %v, want ErrSecretsUnreadable", err)
		}
	})
	t.Run("no key", func(t *testing.T) {
		s := openAt(t, path)
		got, err := s.SourceByName(ctx, "orders")
		if err != nil || got.DSN != "" || !got.SecretsSealed {
			t.Errorf("SourceByName without a key = %q (sealed %v), %v; want no DSN, sealed", got.DSN, got.SecretsSealed, err)
		}
	})
	t.Run("moved between rows", func(t *testing.T) {
		s := openAt(t, path)
		if _, err := s.wdb.ExecContext(ctx, `UPDATE sources SET name = 'other'`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := Open(ctx, path, WithSealer(newSealer(t, key)))
		if !errors.Is(err, ErrSecretsUnreadable) {
			t.Errorf("Open with a sealed DSN under another name = %v, want ErrSecretsUnreadable", err)
		}
	})
}

func TestPlaintextSourceSecretsAreSealedOnOpen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "catalog.db")
	old, err := Open(ctx, path) // as an older Backstop wrote it
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range []string{"a", "b", "c"} {
		src, err := old.CreateSource(ctx, secretSource(name))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, src.DSN)
	}
	old.Close()
	if !bytes.Contains(rawCatalog(t, path), []byte(secretPassword)) {
		t.Fatal("test is broken: the old catalog holds no plaintext password")
	}

	key := newKey(t)
	for range 2 { // the second open finds nothing left to seal
		s, err := Open(ctx, path, WithSealer(newSealer(t, key)))
		if err != nil {
			t.Fatalf("Open(plaintext catalog, sealer) = %v", err)
		}
		srcs, err := s.Sources(ctx)
		if err != nil || len(srcs) != 3 {
			t.Fatalf("Sources() = %v, %v", srcs, err)
		}
		for i, src := range srcs {
			if src.DSN != want[i] {
				t.Errorf("Sources()[%d].DSN = %q, want %q", i, src.DSN, want[i])
			}
		}
		s.Close()
	}
	if bytes.Contains(rawCatalog(t, path), []byte(secretPassword)) {
		t.Errorf("after the upgrade the catalog's files still hold a password in plaintext")
	}
}
