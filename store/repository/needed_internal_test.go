package repository

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"

	"pgregory.net/rapid"
)

// neededBeforeSQL is neededSQL as it was before the EXISTS rewrite (issue 8): the
// oracle that the rewrite keeps the same answers, and the "before" of BenchmarkNeeded.
const neededBeforeSQL = `
SELECT COUNT(*), COALESCE(SUM(b.len), 0) FROM blobs b
WHERE b.pack = ?1 AND b.name IN (SELECT name FROM refs)
  AND NOT EXISTS (
    SELECT 1 FROM blobs o JOIN packs op ON op.id = o.pack
    WHERE o.name = b.name AND o.pack <> ?1 AND op.dead = 0
      AND NOT EXISTS (SELECT 1 FROM bad WHERE bad.pack = o.pack AND bad.name = o.name))`

// neededCache is an index cache with its refs table on conn, filled by the test.
type neededCache struct {
	r    *Repo
	conn *sql.Conn
}

func newNeededCache(t tb, dir string) *neededCache {
	t.Helper()
	ctx := context.Background()
	r := pruneRepo(t, dir)
	conn, err := r.cache.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The empty repository refers to nothing: collectRefs makes the refs table, empty.
	if err := r.collectRefs(ctx, conn); err != nil {
		t.Fatal(err)
	}
	return &neededCache{r: r, conn: conn}
}

func (c *neededCache) close() {
	c.conn.Close()
	c.r.Close()
}

func (c *neededCache) exec(t tb, query string, args ...any) {
	t.Helper()
	if _, err := c.conn.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestNeededKeepsWhatIsReferencedWithoutGoodCopy pins down which blobs make a pack needed
// (kept by prune) over random caches: a blob of the pack that a manifest or WAL file
// refers to and that has no other copy in a pack without a tombstone and not marked bad.
// The answer is checked against that rule written in Go and against the query as it was
// before the rewrite.
func TestNeededKeepsWhatIsReferencedWithoutGoodCopy(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "needed-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		c := newNeededCache(rt, dir)
		defer c.close()

		packs := rapid.IntRange(1, 5).Draw(rt, "packs")
		dead := map[string]bool{}
		for p := range packs {
			id := fmt.Sprintf("p%d", p)
			dead[id] = rapid.Bool().Draw(rt, "dead "+id)
			c.exec(rt, `INSERT INTO packs (id, created, bytes, dead) VALUES (?, 0, 1000, ?)`, id, dead[id])
		}
		type copyKey struct{ name, pack string }
		copies := map[copyKey]int64{} // → len
		bad := map[copyKey]bool{}
		for p := range packs {
			id := fmt.Sprintf("p%d", p)
			for n := range 6 {
				name := fmt.Sprintf("blob%d", n)
				if !rapid.Bool().Draw(rt, name+" in "+id) {
					continue
				}
				k := copyKey{name, id}
				copies[k] = int64(10 + n + 100*p)
				c.exec(rt, `INSERT INTO blobs (name, pack, off, len, size) VALUES (?, ?, 0, ?, 1)`, []byte(name), id, copies[k])
				if rapid.IntRange(0, 3).Draw(rt, "bad "+name+" in "+id) == 0 {
					bad[k] = true
					c.exec(rt, `INSERT INTO bad (pack, name) VALUES (?, ?)`, id, []byte(name))
				}
			}
		}
		refs := map[string]bool{}
		for n := range 6 {
			name := fmt.Sprintf("blob%d", n)
			if refs[name] = rapid.Bool().Draw(rt, "refers to "+name); refs[name] {
				c.exec(rt, `INSERT INTO refs (name) VALUES (?)`, []byte(name))
			}
		}

		for p := range packs {
			id := fmt.Sprintf("p%d", p)
			var wantN, wantBytes int64
			for k, l := range copies {
				if k.pack != id || !refs[k.name] {
					continue
				}
				goodElsewhere := false
				for o := range copies {
					if o.name == k.name && o.pack != id && !dead[o.pack] && !bad[o] {
						goodElsewhere = true
					}
				}
				if !goodElsewhere {
					wantN, wantBytes = wantN+1, wantBytes+l
				}
			}
			n, bytes, err := c.r.needed(ctx, c.conn, id)
			if err != nil {
				rt.Fatal(err)
			}
			if n != wantN || bytes != wantBytes {
				rt.Fatalf("needed(%s) = %d blobs, %d bytes, want %d, %d", id, n, bytes, wantN, wantBytes)
			}
			var beforeN, beforeBytes int64
			if err := c.conn.QueryRowContext(ctx, neededBeforeSQL, id).Scan(&beforeN, &beforeBytes); err != nil {
				rt.Fatal(err)
			}
			if n != beforeN || bytes != beforeBytes {
				rt.Fatalf("needed(%s) = %d blobs, %d bytes; the query before the rewrite said %d, %d", id, n, bytes, beforeN, beforeBytes)
			}
		}
	})
}

// BenchmarkNeeded asks, as prune does for every pack, what of each pack is needed, over a
// cache of 200 packs of 250 blobs each (50,000 blobs, every other one referred to): the
// query as prune runs it ("exists") and as it was before issue 8 ("in").
//
//	go test ./store/repository/ -run '^$' -bench Needed
func BenchmarkNeeded(b *testing.B) {
	const packs, perPack = 200, 250
	ctx := context.Background()
	c := newNeededCache(b, b.TempDir())
	defer c.close()
	c.exec(b, `BEGIN`)
	for p := range packs {
		id := fmt.Sprintf("p%04d", p)
		c.exec(b, `INSERT INTO packs (id, created, bytes) VALUES (?, 0, 1000000)`, id)
		for n := range perPack {
			name := fmt.Appendf(nil, "%032d", p*perPack+n)
			c.exec(b, `INSERT INTO blobs (name, pack, off, len, size) VALUES (?, ?, ?, 4000, 8192)`, name, id, n*4000)
			if n%2 == 0 {
				c.exec(b, `INSERT INTO refs (name) VALUES (?)`, name)
			}
		}
	}
	c.exec(b, `COMMIT`)
	c.exec(b, `ANALYZE`)
	for _, q := range []struct{ name, sql string }{{"exists", neededSQL}, {"in", neededBeforeSQL}} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				for p := range packs {
					var n, bytes int64
					if err := c.conn.QueryRowContext(ctx, q.sql, fmt.Sprintf("p%04d", p)).Scan(&n, &bytes); err != nil {
						b.Fatal(err)
					}
					if n != perPack/2 {
						b.Fatalf("pack %d: %d blobs needed, want %d", p, n, perPack/2)
					}
				}
			}
		})
	}
}
