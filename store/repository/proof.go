package repository

// Proofs: how a deep verification checks every stored byte without decompressing and
// rehashing every blob every time.
//
// A full check of a blob opens its seal (XChaCha20-Poly1305, bound to its name),
// decompresses it and recomputes the keyed hash that names it. Once every blob of a pack
// passed it, Verify records a proof in the index cache: the pack, the deep run it was
// made in, and a seal digest, SHA-256 over the pack's size and, for each blob, its
// entry (name, offset, lengths) and the nonce and tag of its seal. A later run that
// opens the seal of every blob of the pack again, and computes the same digest, has read
// the very ciphertext that was proven: a tag that authenticates under Backstop's key and
// the same nonce can only come from the same ciphertext, and the same ciphertext holds
// the same plaintext, which hashed to its name. So such a run only authenticates the
// blobs (every stored byte is still read and checked); a pack whose digest differs (a
// pack rewritten under the same name, or a proof tampered with) is checked fully again,
// and a pack with any finding loses its proof.
//
// Every proven pack is still fully checked once in every RehashEvery deep runs: in the
// runs whose number, modulo RehashEvery, is the pack's slot (from its id, so that each
// run takes its share), and at the latest RehashEvery runs after its proof. The proofs
// and the run counter live in the index cache only: a lost cache means nothing is proven.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// DefaultRehashEvery is VerifyOptions.RehashEvery when it is 0.
const DefaultRehashEvery = 8

// proof is a pack's proof as the index cache holds it.
type proof struct {
	seal []byte // the seal digest
	run  int64  // the deep run that made it
}

// loadProof returns the proof of pack id, or nil.
func (c *cache) loadProof(ctx context.Context, id string) (*proof, error) {
	var p proof
	err := c.db.QueryRowContext(ctx, `SELECT seal, run FROM proofs WHERE pack = ?`, id).Scan(&p.seal, &p.run)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	return &p, nil
}

// saveProof records that every blob of pack id, as sealed, was fully checked in deep run run.
func (c *cache) saveProof(ctx context.Context, id string, seal []byte, run int64) error {
	if _, err := c.db.ExecContext(ctx, `INSERT OR REPLACE INTO proofs (pack, seal, run) VALUES (?, ?, ?)`, id, seal, run); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

// dropProof forgets the proof of pack id.
func (c *cache) dropProof(ctx context.Context, id string) error {
	if _, err := c.db.ExecContext(ctx, `DELETE FROM proofs WHERE pack = ?`, id); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

const deepRunsCounter = "deep-runs"

// deepRun returns the number of the current deep run: with next, that of a new one,
// counted; otherwise that of the last one (0 before any).
func (c *cache) deepRun(ctx context.Context, next bool) (int64, error) {
	var n int64
	var err error
	if next {
		err = c.db.QueryRowContext(ctx, `INSERT INTO counters (name, n) VALUES (?, 1)
			ON CONFLICT (name) DO UPDATE SET n = n + 1 RETURNING n`, deepRunsCounter).Scan(&n)
	} else {
		err = c.db.QueryRowContext(ctx, `SELECT n FROM counters WHERE name = ?`, deepRunsCounter).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("index cache: %w", err)
	}
	return n, nil
}

// proofDue reports whether a pack proven in run proven, of id, is fully checked again in
// deep run run when every pack is to be every runs.
func proofDue(id string, proven, run int64, every int) bool {
	if run-proven >= int64(every) {
		return true
	}
	slot, _ := strconv.ParseUint(id[:8], 16, 32)
	return int64(slot%uint64(every)) == run%int64(every)
}

// sealDigest adds a blob's entry and the nonce and tag of its seal to h.
func sealDigest(h hash.Hash, e indexEntry, sealed []byte) {
	var head [32 + 3*8]byte
	copy(head[:], e.Name[:])
	binary.LittleEndian.PutUint64(head[32:], uint64(e.Offset))
	binary.LittleEndian.PutUint64(head[40:], uint64(e.Length))
	binary.LittleEndian.PutUint64(head[48:], uint64(e.Size))
	h.Write(head[:])
	const nonceEnd = len(blobMagic) + chacha20poly1305.NonceSizeX
	if len(sealed) < nonceEnd+chacha20poly1305.Overhead {
		h.Write(sealed)
		return
	}
	h.Write(sealed[:nonceEnd])
	h.Write(sealed[len(sealed)-chacha20poly1305.Overhead:])
}

// packSeal is the seal digest of pack p, from those of its segments in order.
func packSeal(p *verifyPack) []byte {
	h := sha256.New()
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(p.size))
	h.Write(size[:])
	for _, s := range p.segs {
		h.Write(s.seal[:])
	}
	return h.Sum(nil)
}
