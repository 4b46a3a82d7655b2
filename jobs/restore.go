package jobs

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
	"golang.org/x/sync/errgroup"

	"github.com/backstop/backstop/jobs/dest"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindRestore is the kind of jobs that restore a full backup into a directory.
const KindRestore = "restore"

// RestoreArgs are a restore job's arguments.
type RestoreArgs struct {
	BackupID int64  `json:"backup_id"`
	Into     string `json:"into"`
	// Owner is the OS user the restored files belong to; "" keeps the current user. A data
	// directory must belong to the user that runs the server.
	Owner string `json:"owner,omitempty"`
	// Verify runs pg_verifybackup on the result when the binary is installed.
	Verify bool `json:"verify"`
	// Marker is the token written into the directory the job claims (dest.ClaimDir); only
	// a directory carrying it is ever removed.
	Marker string `json:"marker"`
}

// RestoreResult is what a restore job records as its result.
type RestoreResult struct {
	Into     string `json:"into"`
	Files    int    `json:"files"`
	Bytes    int64  `json:"bytes"`
	Verified bool   `json:"verified"`
}

// RestoreLockKey keeps two restores from writing into one directory at once (dir must be
// absolute and clean).
func RestoreLockKey(dir string) string { return "restore:dir:" + dir }

// RestoreWorker writes a full backup out as a startable data directory.
type RestoreWorker struct {
	store *store.Store
	repo  *repository.Repo
	// Parallel is how many blocks are read, opened and written at once.
	Parallel int
}

// NewRestoreWorker returns a worker reading from repo.
func NewRestoreWorker(st *store.Store, repo *repository.Repo) *RestoreWorker {
	return &RestoreWorker{store: st, repo: repo, Parallel: 4}
}

// Kind implements Worker.
func (w *RestoreWorker) Kind() string { return KindRestore }

// ErrNotEmpty is returned when a restore target directory already holds something.
var ErrNotEmpty = errors.New("target directory is not empty")

// Work implements Worker.
func (w *RestoreWorker) Work(ctx context.Context, job *Job) (err error) {
	var args RestoreArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	if args.Marker == "" {
		args.Marker = dest.NewToken()
	}
	var claim *dest.Claim
	defer func() {
		if err != nil && claim != nil {
			// A failed restore leaves nothing that could be taken for a good one, and
			// removes only what it created.
			if rerr := dest.Remove(args.Into, args.Marker, claim.Created()); rerr != nil {
				job.Logf(context.WithoutCancel(ctx), LevelWarn, "", "left %s in place: %v", args.Into, rerr)
			}
		}
	}()
	b, err := w.store.Backup(ctx, args.BackupID)
	if err != nil {
		return fmt.Errorf("restore: backup %d: %w", args.BackupID, err)
	}
	if b.State != store.BackupComplete {
		return fmt.Errorf("restore: backup %d is %s, not complete: only complete backups can be restored", b.ID, b.State)
	}
	job.Phase(ctx, "reading manifest", 0)
	m, err := w.repo.Manifest(ctx, b.RepoID)
	if err != nil {
		return fmt.Errorf("restore: backup %d: %w", b.ID, err)
	}
	if m.SystemIdentifier != b.SystemIdentifier {
		return fmt.Errorf("restore: backup %d: the repository's manifest %s belongs to system %s, the catalog says %s",
			b.ID, b.RepoID, m.SystemIdentifier, b.SystemIdentifier)
	}
	uid, gid, err := lookupOwner(args.Owner)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	if claim, err = claimFor(args.Into, args.Marker, fmt.Sprintf("job %d", job.ID), m, uid, gid); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	job.Phase(ctx, "writing files", total)
	err = RestoreFiles(ctx, w.repo, m, args.Into, RestoreOptions{
		Parallel: w.Parallel, UID: uid, GID: gid,
		Progress: func(done int64) { job.Progress(ctx, done, total) },
	})
	if err != nil {
		return err
	}
	job.Logf(ctx, LevelInfo, "writing files", "wrote %d files, %s, into %s", len(m.Files), humanize.IBytes(uint64(total)), args.Into)
	res := RestoreResult{Into: args.Into, Files: len(m.Files), Bytes: total}
	defer func() {
		if err == nil {
			err = handOver(args.Into, uid, gid)
		}
	}()
	if args.Verify {
		job.Phase(ctx, "verifying", 0)
		bin, err := pg.FindBinaries(ctx, m.PGVersion/10000)
		if err != nil {
			job.Logf(ctx, LevelWarn, "verifying", "not verified with pg_verifybackup: %v", err)
		} else {
			if err := pg.VerifyBackup(ctx, bin, args.Into, append(verifyIgnores(m), dest.MarkerName)...); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			res.Verified = true
			job.Logf(ctx, LevelInfo, "verifying", "pg_verifybackup: every file and the WAL match the server's backup manifest")
		}
	}
	return job.SetResult(res)
}

// lookupOwner resolves an OS user name to the IDs to give restored files; -1 keeps them.
func lookupOwner(name string) (uid, gid int, err error) {
	if name == "" {
		return -1, -1, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %q: %w", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// RestoreOptions tune RestoreFiles.
type RestoreOptions struct {
	Parallel int
	UID, GID int              // owner of what is written; -1 keeps the current user's
	Progress func(done int64) // called with bytes written so far; may be nil
}

// RestoreFiles writes every file of a backup's manifest into dir, which the caller has
// claimed with dest.ClaimDir: it exists and holds nothing but the claim's marker. Each block
// is authenticated and its hash checked as it is read. On failure the caller removes what
// was written, through dest.Remove, so that no half-restored directory can be mistaken for
// a good one; the error names the file and the object. Entries below dir get opts' owner;
// dir itself keeps Backstop's until the caller hands it over (handOver), so that nobody
// else can swap an entry for a link while Backstop, as root, writes there.
func RestoreFiles(ctx context.Context, repo *repository.Repo, m *repository.Manifest, dir string, opts RestoreOptions) (err error) {
	if err := checkClaimed(dir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if opts.Parallel < 1 {
		opts.Parallel = 4
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	var done atomic.Int64
	var progressMu sync.Mutex
	report := func(n int) {
		d := done.Add(int64(n))
		if opts.Progress != nil && progressMu.TryLock() {
			opts.Progress(d)
			progressMu.Unlock()
		}
	}
	for _, f := range m.Files {
		if err := gctx.Err(); err != nil {
			break
		}
		if err := restoreEntry(gctx, g, repo, m.BlockSize, dir, f, opts, report); err != nil {
			g.Wait()
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restore: %w", context.Cause(ctx))
	}
	if err := allowInPlaceTablespaces(dir, m, opts.UID, opts.GID); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := syncTree(dir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(done.Load())
	}
	return nil
}

// restoreEntry creates one entry; a regular file's blocks are fetched and written on g.
func restoreEntry(ctx context.Context, g *errgroup.Group, repo *repository.Repo, blockSize int, dir string, f repository.File, opts RestoreOptions, report func(int)) error {
	if err := repository.ValidatePath(f.Path); err != nil {
		return err
	}
	if f.Path == dest.MarkerName {
		// The marker of the restore this backup was taken from: it names another restore,
		// and this one's own marker is already in place.
		return nil
	}
	if skip, err := restoredEntry(f); skip || err != nil {
		return err
	}
	target := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	switch f.Type {
	case "dir":
		if err := os.Mkdir(target, fs.FileMode(f.Mode)&fs.ModePerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if opts.UID < 0 && opts.GID < 0 {
			return nil
		}
		return os.Lchown(target, opts.UID, opts.GID)
	case "symlink":
		if err := os.Symlink(f.LinkTarget, target); err != nil {
			return err
		}
		return os.Lchown(target, opts.UID, opts.GID)
	case "file":
	default:
		return fmt.Errorf("%s: unknown entry type %q", f.Path, f.Type)
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(f.Mode)&fs.ModePerm)
	if err != nil {
		return err
	}
	// A file left open by a failed block is closed by os.File's cleanup; its directory is
	// removed as the restore fails. The open file is chowned, never a path that could be
	// swapped.
	if opts.UID >= 0 || opts.GID >= 0 {
		if err := out.Chown(opts.UID, opts.GID); err != nil {
			out.Close()
			return err
		}
	}
	g.Go(func() error {
		if err := restoreFile(ctx, repo, blockSize, out, &f, report); err != nil {
			out.Close()
			return err
		}
		return closeFile(out, f)
	})
	return nil
}

// restoreFile writes a file's blocks in order, checking each block's size and, as it
// goes, the file's CRC-32C against the one recorded at backup time: a restore finds a
// damaged file as it writes it, not in a second pass.
func restoreFile(ctx context.Context, repo *repository.Repo, blockSize int, out *os.File, f *repository.File, report func(int)) error {
	names, err := repo.FileBlocks(ctx, f, blockSize)
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	chunk := int64(f.Chunk(blockSize))
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var written int64
	// Each block's seal is checked as it is read, and the file's CRC-32C at its end, so
	// recomputing every block's keyed hash would check the same bytes a third time.
	opts := repository.ReadOptions{SkipNameCheck: f.CRC32C != nil}
	err = repo.ReadBlobs(ctx, names, opts, func(i int, data []byte) error {
		want := min(chunk, f.Size-int64(i)*chunk)
		if int64(len(data)) != want {
			return fmt.Errorf("file %s, block %d: object %s holds %d bytes, want %d", f.Path, i, names[i], len(data), want)
		}
		if _, err := out.WriteAt(data, int64(i)*chunk); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		crc.Write(data)
		written += int64(len(data))
		report(len(data))
		return nil
	})
	if err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if written != f.Size {
		return fmt.Errorf("file %s: wrote %d bytes, the manifest says %d", f.Path, written, f.Size)
	}
	if f.CRC32C != nil && crc.Sum32() != *f.CRC32C {
		return fmt.Errorf("file %s: restored content has CRC-32C %08x, the backup recorded %08x", f.Path, crc.Sum32(), *f.CRC32C)
	}
	return nil
}

// closeFile makes a restored file durable and gives it its recorded modification time.
func closeFile(out *os.File, f repository.File) error {
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("file %s: %w", f.Path, err)
	}
	if !f.ModTime.IsZero() {
		if err := os.Chtimes(out.Name(), f.ModTime, f.ModTime); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	return nil
}

// claimFor claims dir for a restore of m (dest.ClaimDir) and records the top-level names
// the restore will write, so that a directory that existed before loses only those.
func claimFor(dir, token, restore string, m *repository.Manifest, uid, gid int) (*dest.Claim, error) {
	// The directory stays Backstop's (0700) while it is written; handOver gives it to the
	// server's OS user at the end.
	// The rules are checked again at the moment of the claim: the request was checked
	// when it was made, and a live cluster may have appeared there since.
	if err := dest.CheckDir(dir, dest.LiveClusters()); err != nil {
		return nil, err
	}
	c, err := dest.ClaimDir(dir, token, restore, -1, -1)
	if err != nil {
		return nil, err
	}
	names := []string{"log", "pg_wal", "recovery.signal", "standby.signal", "postgresql.auto.conf", "tablespace_map"}
	for _, f := range m.Files {
		names = append(names, f.Path)
	}
	if err := c.Record(names...); err != nil {
		dest.Remove(dir, token, c.Created())
		return nil, err
	}
	return c, nil
}

// checkClaimed makes sure dir exists, is a directory, and holds nothing but a claim's marker.
func checkClaimed(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() != dest.MarkerName {
			return fmt.Errorf("%w: %s holds %s; restore into an empty or new directory", ErrNotEmpty, dir, e.Name())
		}
	}
	return nil
}

// handOver gives a restored data directory to the OS user that runs its server, once
// Backstop has finished writing into it.
func handOver(dir string, uid, gid int) error {
	if err := chown(dir, uid, gid); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

func chown(p string, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	return os.Chown(p, uid, gid)
}

// syncTree fsyncs every directory below and including dir, so the new entries are durable.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
