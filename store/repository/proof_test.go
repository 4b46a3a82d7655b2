package repository

import (
	"bytes"
	"context"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// neverDue is a RehashEvery under which no proven pack of a test is due for a full check
// (unless its slot is the run's number: about one chance in a billion).
const neverDue = math.MaxInt32

// fastVerify runs a deep verification that fully checks only the packs without a proof.
func fastVerify(t tb, r *Repo) VerifyResult {
	t.Helper()
	res, err := r.Verify(context.Background(), VerifyOptions{Deep: true, RehashEvery: neverDue})
	if err != nil {
		t.Fatalf("Verify(deep, RehashEvery %d) = %v", neverDue, err)
	}
	return res
}

// packBlobs returns the number of blobs of pack id.
func packBlobs(t tb, r *Repo, id string) int64 {
	t.Helper()
	idx, err := r.readIndex(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(idx.Entries))
}

// TestVerifyProofFastPath: a first deep run fully checks every blob and proves the packs;
// the next one reads every byte again but only authenticates; Rehash checks everything.
func TestVerifyProofFastPath(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	blobs := int64(storedBlobs(t, fx.r))
	first := fastVerify(t, fx.r)
	if len(first.Findings) != 0 || first.BlobsChecked != blobs || first.BlobsRehashed != blobs {
		t.Fatalf("first deep run: findings %+v, %d checked, %d rehashed, want none, %d, %d", first.Findings, first.BlobsChecked, first.BlobsRehashed, blobs, blobs)
	}
	second := fastVerify(t, fx.r)
	if len(second.Findings) != 0 || second.BlobsChecked != blobs || second.BlobsRehashed != 0 || second.BytesRead != first.BytesRead {
		t.Errorf("second deep run: findings %+v, %d checked, %d rehashed, %d bytes read, want none, %d, 0, %d",
			second.Findings, second.BlobsChecked, second.BlobsRehashed, second.BytesRead, blobs, first.BytesRead)
	}
	res, err := fx.r.Verify(t.Context(), VerifyOptions{Deep: true, Rehash: true, RehashEvery: neverDue})
	if err != nil || len(res.Findings) != 0 || res.BlobsRehashed != blobs {
		t.Errorf("Verify(deep, Rehash) = %d rehashed, findings %+v, %v, want %d, none", res.BlobsRehashed, res.Findings, err, blobs)
	}
	if _, err := fx.r.Verify(t.Context(), VerifyOptions{RehashEvery: -1}); err == nil {
		t.Errorf("Verify(RehashEvery -1) = nil error, want one")
	}
}

// TestVerifyProofFlipProperty flips a byte anywhere in a proven pack: the next deep run,
// though it only authenticates proven packs, reports exactly what a full check reports.
func TestVerifyProofFlipProperty(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ids, sizes := fx.packs(t)
	rapid.Check(t, func(rt *rapid.T) {
		id := rapid.SampledFrom(ids).Draw(rt, "pack")
		off := rapid.Int64Range(0, sizes[id]-1).Draw(rt, "offset")
		if p, err := fx.r.cache.loadProof(context.Background(), id); err != nil || p == nil {
			// The last case took its proof away: prove it again.
			if res := fastVerify(rt, fx.r); len(res.Findings) != 0 || res.BlobsRehashed == 0 {
				rt.Fatalf("Verify(deep) proving again: findings %+v, %d rehashed", res.Findings, res.BlobsRehashed)
			}
		}
		want := fx.wantFlipFinding(rt, id, off)
		flip(rt, fx.st, packKey(id), off)
		defer flip(rt, fx.st, packKey(id), off)
		res := fastVerify(rt, fx.r)
		if diff := cmp.Diff([]Finding{want}, res.Findings, ignoreReason); diff != "" {
			rt.Fatalf("Verify(deep) after flipping byte %d of proven pack %s (%d bytes) (-want +got):\n%s", off, id, sizes[id], diff)
		}
		if res.BlobsRehashed >= res.BlobsChecked {
			rt.Fatalf("Verify(deep) rehashed %d of %d blobs, want the proven packs only authenticated", res.BlobsRehashed, res.BlobsChecked)
		}
	})
	if res := fastVerify(t, fx.r); len(res.Findings) != 0 {
		t.Errorf("Verify(deep) with every byte back = %+v, want nothing", res.Findings)
	}
}

// TestVerifyProofRewrittenPack rewrites a proven pack under the same name, every blob
// sealed again with the repository's key, and one of them holding content that does not
// hash to its name: every seal opens, but the proof is not about these bytes, so the pack
// is fully checked and the blob reported.
func TestVerifyProofRewrittenPack(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	if res := fastVerify(t, fx.r); len(res.Findings) != 0 {
		t.Fatalf("first deep run found %+v", res.Findings)
	}
	// A blob whose content is random, so that other random content seals to as many bytes.
	var name string
	for _, n := range fx.only {
		if len(fx.plain[n]) == fixtureChunk {
			name = n
			break
		}
	}
	pack, _, _, err := fx.r.Locate(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := fx.r.readIndex(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fx.st.Get(ctx, packKey(pack))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idx.Entries {
		n := hex.EncodeToString(e.Name[:])
		plain := fx.plain[n]
		if n == name {
			plain = randomBytes(rand.Uint64(), len(plain))
		}
		sealed, err := fx.r.seal(nil, blobMagic, blobAD(n), plain)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(sealed)) != e.Length {
			t.Fatalf("blob %s seals to %d bytes again, was %d", n, len(sealed), e.Length)
		}
		copy(data[e.Offset:], sealed)
	}
	if err := fx.st.Put(ctx, packKey(pack), data, false); err != nil {
		t.Fatal(err)
	}

	res := fastVerify(t, fx.r)
	want := []Finding{{Kind: FindingCorruptBlob, Object: name, Pack: pack, Refs: fx.refs[name]}}
	if diff := cmp.Diff(want, res.Findings, ignoreReason); diff != "" {
		t.Errorf("Verify(deep) of a rewritten proven pack (-want +got):\n%s", diff)
	}
	if n := packBlobs(t, fx.r, pack); res.BlobsRehashed != n {
		t.Errorf("Verify(deep) of a rewritten proven pack rehashed %d blobs, want its %d", res.BlobsRehashed, n)
	}
	if p, err := fx.r.cache.loadProof(ctx, pack); err != nil || p != nil {
		t.Errorf("proof of the rewritten pack = %+v, %v, want none", p, err)
	}
}

// TestVerifyProofTampered: a proof whose digest is not the pack's is not trusted, and the
// full check that follows records the right one.
func TestVerifyProofTampered(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	fastVerify(t, fx.r)
	ids, _ := fx.packs(t)
	id := ids[0]
	p, err := fx.r.cache.loadProof(ctx, id)
	if err != nil || p == nil {
		t.Fatalf("proof of pack %s = %v, %v, want one", id, p, err)
	}
	forged := bytes.Clone(p.seal)
	forged[0] ^= 1
	if err := fx.r.cache.saveProof(ctx, id, forged, p.run); err != nil {
		t.Fatal(err)
	}
	res := fastVerify(t, fx.r)
	if n := packBlobs(t, fx.r, id); len(res.Findings) != 0 || res.BlobsRehashed != n {
		t.Errorf("Verify(deep) with a tampered proof: findings %+v, %d rehashed, want none, %d", res.Findings, res.BlobsRehashed, n)
	}
	if again, err := fx.r.cache.loadProof(ctx, id); err != nil || again == nil || !bytes.Equal(again.seal, p.seal) {
		t.Errorf("proof after the full check = %+v, %v, want the digest of the pack", again, err)
	}
	if res := fastVerify(t, fx.r); res.BlobsRehashed != 0 {
		t.Errorf("Verify(deep) after that rehashed %d blobs, want 0", res.BlobsRehashed)
	}
}

// TestVerifyProofLostCache: with the index cache lost, nothing is proven.
func TestVerifyProofLostCache(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	fastVerify(t, fx.r)
	r := reopenStorage(t, fx)
	res := fastVerify(t, r)
	if blobs := int64(storedBlobs(t, r)); len(res.Findings) != 0 || res.BlobsRehashed != blobs {
		t.Errorf("Verify(deep) with a new index cache: findings %+v, %d rehashed, want none, %d", res.Findings, res.BlobsRehashed, blobs)
	}
}

// TestVerifyProofRotation: each deep run fully checks the proven packs due, and within
// RehashEvery runs every pack has been fully checked again.
func TestVerifyProofRotation(t *testing.T) {
	t.Parallel()
	fx := newVerifyFixture(t, localStorage(t))
	ctx := t.Context()
	const every = 3
	opts := VerifyOptions{Deep: true, RehashEvery: every}
	if _, err := fx.r.Verify(ctx, opts); err != nil {
		t.Fatal(err)
	}
	ids, _ := fx.packs(t)
	for run := int64(2); run <= 1+every; run++ {
		var want int64
		for _, id := range ids {
			p, err := fx.r.cache.loadProof(ctx, id)
			if err != nil || p == nil {
				t.Fatalf("run %d: proof of pack %s = %v, %v", run, id, p, err)
			}
			if proofDue(id, p.run, run, every) {
				want += packBlobs(t, fx.r, id)
			}
		}
		res, err := fx.r.Verify(ctx, opts)
		if err != nil || len(res.Findings) != 0 || res.BlobsRehashed != want {
			t.Errorf("run %d: %d rehashed, findings %+v, %v, want %d, none", run, res.BlobsRehashed, res.Findings, err, want)
		}
	}
	for _, id := range ids {
		if p, err := fx.r.cache.loadProof(ctx, id); err != nil || p == nil || p.run < 2 {
			t.Errorf("pack %s: proof %+v, %v, want one made by a run after the first", id, p, err)
		}
	}
}

// TestProofDue: whenever a pack was proven, one of the next every runs is due, and the
// runs due are spread over the packs.
func TestProofDue(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		id := hex.EncodeToString(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(rt, "id"))
		every := rapid.IntRange(1, 50).Draw(rt, "every")
		proven := rapid.Int64Range(0, 1000).Draw(rt, "proven")
		due := 0
		for run := proven + 1; run <= proven+int64(every); run++ {
			if proofDue(id, proven, run, every) {
				due++
			}
		}
		if due == 0 {
			rt.Fatalf("pack %s proven in run %d: none of the next %d runs is due", id, proven, every)
		}
	})
	for _, tc := range []struct {
		id          string
		proven, run int64
		every       int
		want        bool
	}{
		{"00000005" + "000000000000000000000000", 4, 5, 10, true},  // its slot
		{"00000005" + "000000000000000000000000", 4, 6, 10, false}, // neither
		{"00000005" + "000000000000000000000000", 0, 10, 10, true}, // as old as every
		{"0000000a" + "000000000000000000000000", 9, 10, 10, true}, // slot 10 mod 10 = 0
	} {
		if got := proofDue(tc.id, tc.proven, tc.run, tc.every); got != tc.want {
			t.Errorf("proofDue(%s, %d, %d, %d) = %v, want %v", tc.id, tc.proven, tc.run, tc.every, got, tc.want)
		}
	}
}
