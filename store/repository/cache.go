package repository

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the cache's database driver

	"github.com/backstop/backstop/store/repository/storage"
)

// The index cache is a local SQLite file holding what the repository's index objects,
// tombstones and bad-object markers say, so that a dedupe check or a block's location is
// a lookup on the local disk and memory stays flat however large the repository grows.
// It is only a cache: everything in it is read back from the repository by refresh, and
// a missing or damaged file is rebuilt.
//
//	packs  one row per pack whose index object was loaded; dead when it has a tombstone
//	blobs  one row per stored copy of a blob: (name, pack) → offset, length, size
//	bad    copies marked bad: lookups skip them, so the next writer stores a good copy
//	proofs packs whose every blob Verify fully checked, tied to their stored bytes
//	       (proof.go): the only rows not read back from the repository; losing them
//	       means the next deep verification checks everything fully again
//	counters  the number of deep verifications this cache has seen
const cacheSchema = `
CREATE TABLE IF NOT EXISTS packs (
	id      TEXT PRIMARY KEY,
	created INTEGER NOT NULL,
	bytes   INTEGER NOT NULL,
	dead    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
	name BLOB NOT NULL,
	pack TEXT NOT NULL,
	off  INTEGER NOT NULL,
	len  INTEGER NOT NULL,
	size INTEGER NOT NULL,
	PRIMARY KEY (name, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs (pack);
CREATE TABLE IF NOT EXISTS bad (
	pack   TEXT NOT NULL,
	name   BLOB NOT NULL,
	PRIMARY KEY (pack, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proofs (
	pack TEXT PRIMARY KEY,
	seal BLOB NOT NULL,
	run  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
	name TEXT PRIMARY KEY,
	n    INTEGER NOT NULL
) WITHOUT ROWID;
`

// cache is a repository's local index cache.
type cache struct {
	db   *sql.DB
	path string
	temp string // a directory to remove at close, for a cache without a home

	refreshMu sync.Mutex
	refreshed time.Time // when refresh last completed

	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt // prepared statements by text: parsing costs more than a lookup
}

// location is where one copy of a blob is stored.
type location struct {
	Pack   string
	Offset int64
	Length int64 // sealed bytes in the pack
	Size   int64 // plaintext bytes
}

// openCache opens (creating) the cache of repository id in dir; with dir "" it lives in
// a temporary directory removed by close.
func openCache(ctx context.Context, dir, id string) (*cache, error) {
	temp := ""
	if dir == "" {
		d, err := os.MkdirTemp("", "backstop-cache-")
		if err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		dir, temp = d, d
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	path := filepath.Join(dir, "index-"+id+".db")
	// Created first so that SQLite's files take its mode: the cache is Backstop's alone.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	c, err := openCacheFile(ctx, path)
	if err != nil {
		// It is only a cache: start again from the repository.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		c, err = openCacheFile(ctx, path)
	}
	if err != nil {
		if temp != "" {
			os.RemoveAll(temp)
		}
		return nil, err
	}
	c.temp = temp
	return c, nil
}

func openCacheFile(ctx context.Context, path string) (*cache, error) {
	params := url.Values{
		// mmap: lookups read the file's pages in place instead of a read call each.
		"_pragma":  {"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(OFF)", "mmap_size(1073741824)"},
		"_txlock":  {"immediate"},
		"_time_fo": {"unix"},
	}
	db, err := sql.Open("sqlite", path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("index cache %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, cacheSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("index cache %s: %w", path, err)
	}
	return &cache{db: db, path: path, stmts: map[string]*sql.Stmt{}}, nil
}

func (c *cache) close() error {
	for _, st := range c.stmts {
		st.Close()
	}
	err := c.db.Close()
	if c.temp != "" {
		os.RemoveAll(c.temp)
	}
	return err
}

// stmt returns the prepared statement for query.
func (c *cache) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	c.stmtMu.Lock()
	defer c.stmtMu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

// lookup returns a good copy of the named blob for a writer: in a pack without a
// tombstone, not marked bad.
func (c *cache) lookup(ctx context.Context, name []byte) (location, bool, error) {
	var sum [32]byte
	copy(sum[:], name)
	found, err := c.lookupMany(ctx, [][32]byte{sum})
	l, ok := found[sum]
	return l, ok, err
}

// lookupBatch is how many names one lookup query asks for.
const lookupBatch = 64

// lookupMany returns a good copy of each of the named blobs that has one (see lookup).
func (c *cache) lookupMany(ctx context.Context, names [][32]byte) (map[[32]byte]location, error) {
	return c.best(ctx, names, "p.dead = 0", "p.created")
}

// readable returns, for each named blob, the copy a reader tries first: not marked bad,
// in a pack without a tombstone if there is one, the newest.
func (c *cache) readable(ctx context.Context, names [][32]byte) (map[[32]byte]location, error) {
	return c.best(ctx, names, "1", "p.dead DESC, p.created")
}

// best runs the lookup of names among the copies that are not marked bad and satisfy
// where; of several, the last in order wins.
func (c *cache) best(ctx context.Context, names [][32]byte, where, order string) (map[[32]byte]location, error) {
	out := make(map[[32]byte]location, len(names))
	for len(names) > 0 {
		batch := names[:min(len(names), lookupBatch)]
		names = names[len(batch):]
		query := `
SELECT b.name, b.pack, b.off, b.len, b.size FROM blobs b JOIN packs p ON p.id = b.pack
WHERE b.name IN (?` + strings.Repeat(",?", len(batch)-1) + `) AND ` + where + `
  AND NOT EXISTS (SELECT 1 FROM bad WHERE bad.pack = b.pack AND bad.name = b.name)
ORDER BY ` + order
		st, err := c.stmt(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		args := make([]any, len(batch))
		for i := range batch {
			args[i] = batch[i][:]
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		for rows.Next() {
			var name []byte
			var l location
			if err := rows.Scan(&name, &l.Pack, &l.Offset, &l.Length, &l.Size); err != nil {
				rows.Close()
				return nil, fmt.Errorf("index cache: %w", err)
			}
			var sum [32]byte
			copy(sum[:], name)
			out[sum] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
	}
	return out, nil
}

// locations returns every copy of the named blob, best first: packs without a
// tombstone, newest first, then those with one (still readable until pruning deletes
// them), and last the copies marked bad (a read still proves or disproves them: the seal
// and the name are checked).
func (c *cache) locations(ctx context.Context, name []byte) ([]location, error) {
	rows, err := c.db.QueryContext(ctx, `
SELECT b.pack, b.off, b.len, b.size FROM blobs b JOIN packs p ON p.id = b.pack
WHERE b.name = ?
ORDER BY EXISTS (SELECT 1 FROM bad WHERE bad.pack = b.pack AND bad.name = b.name), p.dead, p.created DESC`, name)
	if err != nil {
		return nil, fmt.Errorf("index cache: %w", err)
	}
	defer rows.Close()
	var out []location
	for rows.Next() {
		var l location
		if err := rows.Scan(&l.Pack, &l.Offset, &l.Length, &l.Size); err != nil {
			return nil, fmt.Errorf("index cache: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// addPack records a pack's index.
func (c *cache) addPack(ctx context.Context, idx *packIndex) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	defer tx.Rollback()
	if err := insertPack(ctx, tx, idx); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

func insertPack(ctx context.Context, tx *sql.Tx, idx *packIndex) error {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO packs (id, created, bytes) VALUES (?, ?, ?)`,
		idx.Pack, idx.Created.UnixNano(), idx.Bytes); err != nil {
		return err
	}
	// Many rows a statement: a pack holds a thousand blobs and more.
	const rows = 64
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for entries := idx.Entries; len(entries) > 0; {
		batch := entries[:min(len(entries), rows)]
		entries = entries[len(batch):]
		query := `INSERT OR IGNORE INTO blobs (name, pack, off, len, size) VALUES (?, ?, ?, ?, ?)` + strings.Repeat(`, (?, ?, ?, ?, ?)`, len(batch)-1)
		args := make([]any, 0, 5*len(batch))
		for _, e := range batch {
			args = append(args, e.Name[:], idx.Pack, e.Offset, e.Length, e.Size)
		}
		if len(batch) == rows {
			if full == nil {
				var err error
				if full, err = tx.PrepareContext(ctx, query); err != nil {
					return err
				}
			}
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return err
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
	}
	return nil
}

// refreshOnMiss refreshes the cache for a reader that did not find a blob, unless it was
// refreshed within the last second: a restore missing many blobs lists the repository
// once, not once per blob.
func (c *cache) refreshOnMiss(ctx context.Context, r *Repo) error {
	c.refreshMu.Lock()
	recent := time.Since(c.refreshed) < time.Second
	c.refreshMu.Unlock()
	if recent {
		return nil
	}
	return c.refresh(ctx, r)
}

// refresh makes the cache say what the repository says now: the index object of every
// pack (loading those it has not seen, forgetting those deleted), the tombstones and the
// bad-object markers. Three listings, plus one read per new index object.
func (c *cache) refresh(ctx context.Context, r *Repo) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	listed := map[string]bool{}
	err := storage.Keys(ctx, r.st, indexDir, func(key string) error {
		if id, ok := packIDOfKey(key, indexDir); ok {
			listed[id] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("refresh index: %w", err)
	}
	known := map[string]bool{}
	rows, err := c.db.QueryContext(ctx, `SELECT id FROM packs`)
	if err != nil {
		return fmt.Errorf("refresh index: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("refresh index: %w", err)
		}
		known[id] = true
	}
	rows.Close()
	for id := range known {
		if listed[id] || r.pendingPack(id) {
			continue
		}
		// Not listed: deleted, or stored (by this process or another sharing the cache)
		// after the listing. Ask before forgetting.
		if _, err := r.st.Size(ctx, indexKey(id)); err == nil {
			continue
		} else if !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("refresh index: %w", err)
		}
		if err := c.forgetPack(ctx, id); err != nil {
			return err
		}
	}
	for id := range listed {
		if known[id] {
			continue
		}
		idx, err := r.readIndex(ctx, id)
		if err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) || errors.Is(err, ErrNotFound) {
				// A damaged index object hides its pack from dedupe; verification reports it,
				// and the pack's own trailer still describes it.
				continue
			}
			return fmt.Errorf("refresh index: %w", err)
		}
		if err := c.addPack(ctx, idx); err != nil {
			return err
		}
	}
	dead, err := r.tombstones(ctx)
	if err != nil {
		return fmt.Errorf("refresh index: %w", err)
	}
	if err := c.setDead(ctx, dead); err != nil {
		return err
	}
	bad, err := r.badMarks(ctx)
	if err != nil {
		return fmt.Errorf("refresh index: %w", err)
	}
	if err := c.setBad(ctx, bad); err != nil {
		return err
	}
	c.refreshed = time.Now()
	return nil
}

func (c *cache) forgetPack(ctx context.Context, id string) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM blobs WHERE pack = ?`, `DELETE FROM bad WHERE pack = ?`, `DELETE FROM proofs WHERE pack = ?`, `DELETE FROM packs WHERE id = ?`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("index cache: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

func (c *cache) setDead(ctx context.Context, dead map[string]tombstone) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE packs SET dead = 0 WHERE dead = 1`); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	for id := range dead {
		if _, err := tx.ExecContext(ctx, `UPDATE packs SET dead = 1 WHERE id = ?`, id); err != nil {
			return fmt.Errorf("index cache: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

func (c *cache) setBad(ctx context.Context, bad []BadObject) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM bad`); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	for _, b := range bad {
		name, err := hex.DecodeString(b.Name)
		if err != nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO bad (pack, name) VALUES (?, ?)`, b.Pack, name); err != nil {
			return fmt.Errorf("index cache: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index cache: %w", err)
	}
	return nil
}

// packIDOfKey returns the pack id of a key below dir ("packs/" or "index/").
func packIDOfKey(key, dir string) (string, bool) {
	rest, ok := strings.CutPrefix(key, dir)
	if !ok {
		return "", false
	}
	_, id, ok := strings.Cut(rest, "/")
	if !ok || !validPackID(id) {
		return "", false
	}
	return id, true
}

// Usage is the size of a repository's packs, as its index cache knows them.
type Usage struct {
	Packs int64
	Bytes int64
	// DeadBytes is what packs with a tombstone hold: a later prune deletes them.
	DeadBytes int64
}

// Usage returns the size of the repository's packs (index and other small objects
// aside), as of the cache's last refresh.
func (r *Repo) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	err := r.cache.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(bytes), 0),
		coalesce(sum(CASE WHEN dead <> 0 THEN bytes ELSE 0 END), 0) FROM packs`).Scan(&u.Packs, &u.Bytes, &u.DeadBytes)
	if err != nil {
		return Usage{}, fmt.Errorf("repository usage: %w", err)
	}
	return u, nil
}
