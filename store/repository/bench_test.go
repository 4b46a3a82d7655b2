package repository

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// pageBlocks returns n distinct 1 MiB blocks of PostgreSQL-like pages.
func pageBlocks(n int) [][]byte {
	rng := rand.New(rand.NewPCG(42, 43))
	blocks := make([][]byte, n)
	for i := range blocks {
		blocks[i] = pgLikeBlock(rng, DefaultBlockSize)
	}
	return blocks
}

// stamp makes block unique for i by rewriting the LSN of its first page.
func stamp(block []byte, i uint64) {
	binary.LittleEndian.PutUint64(block, i<<32|0xfeed)
}

// BenchmarkPut stores new 1 MiB blocks: keyed hash, cache lookup, zstd, seal, append to
// the pack, and a share of the pack's upload when it is full.
func BenchmarkPut(b *testing.B) {
	r, _ := setup(b)
	ctx := b.Context()
	blocks := pageBlocks(16)
	var stored int64
	b.SetBytes(DefaultBlockSize)
	i := 0
	for ; b.Loop(); i++ {
		block := blocks[i%len(blocks)]
		stamp(block, uint64(i))
		ref, written, err := r.Put(ctx, block)
		if err != nil || !written {
			b.Fatalf("Put(block %d) = %v, %v, want a new object", i, written, err)
		}
		stored += ref.StoredSize
	}
	b.ReportMetric(float64(stored)/float64(i)/DefaultBlockSize, "stored/size")
}

// BenchmarkPutParallel is BenchmarkPut from GOMAXPROCS goroutines.
func BenchmarkPutParallel(b *testing.B) {
	r, _ := setup(b)
	ctx := b.Context()
	var next atomic.Uint64
	b.SetBytes(DefaultBlockSize)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		block := pageBlocks(1)[0]
		for pb.Next() {
			stamp(block, next.Add(1))
			if _, written, err := r.Put(ctx, block); err != nil || !written {
				b.Errorf("Put = %v, %v, want a new object", written, err)
				return
			}
		}
	})
}

// BenchmarkGet reads and verifies stored 1 MiB blocks.
func BenchmarkGet(b *testing.B) {
	r, _ := setup(b)
	ctx := b.Context()
	blocks := pageBlocks(16)
	names := make([]string, len(blocks))
	for i, block := range blocks {
		ref, _, err := r.Put(ctx, block)
		if err != nil {
			b.Fatal(err)
		}
		names[i] = ref.Name
	}
	// Read from the stored pack, not from the one in memory.
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, DefaultBlockSize)
	b.SetBytes(DefaultBlockSize)
	for i := 0; b.Loop(); i++ {
		var err error
		if dst, err = r.Get(ctx, names[i%len(names)], dst); err != nil {
			b.Fatalf("Get(%s) = %v", names[i%len(names)], err)
		}
	}
}

// BenchmarkPutDedupeHit stores a 1 MiB block that is already stored: keyed
// hash and index cache lookup only.
func BenchmarkPutDedupeHit(b *testing.B) {
	r, _ := setup(b)
	ctx := b.Context()
	block := pageBlocks(1)[0]
	if _, _, err := r.Put(ctx, block); err != nil {
		b.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(DefaultBlockSize)
	for b.Loop() {
		if _, written, err := r.Put(ctx, block); err != nil || written {
			b.Fatalf("Put(stored block) = %v, %v, want a dedupe hit", written, err)
		}
	}
}
