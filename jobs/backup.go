package jobs

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sync/errgroup"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// KindBackup is the kind of full backup jobs.
const KindBackup = "backup"

// BackupArgs are a backup job's arguments.
type BackupArgs struct {
	SourceID int64 `json:"source_id"`
}

// BackupResult is what a backup job records as its result.
type BackupResult struct {
	BackupID int64  `json:"backup_id"`
	RepoID   string `json:"repo_id"`
}

// BackupLockKey is the lock key that keeps backups of one source from running at once.
func BackupLockKey(sourceID int64) string { return fmt.Sprintf("backup:source:%d", sourceID) }

// BackupWorker takes full backups over the replication protocol into the repository.
type BackupWorker struct {
	store *store.Store
	repo  *repository.Repo
	// Parallel is how many blocks are hashed, compressed, sealed and written at once.
	Parallel int
}

// NewBackupWorker returns a worker writing into repo and recording in st.
func NewBackupWorker(st *store.Store, repo *repository.Repo) *BackupWorker {
	return &BackupWorker{store: st, repo: repo, Parallel: 4}
}

// Kind implements Worker.
func (w *BackupWorker) Kind() string { return KindBackup }

// Work implements Worker: one full backup of one source.
func (w *BackupWorker) Work(ctx context.Context, job *Job) error {
	var args BackupArgs
	if err := job.Args(&args); err != nil {
		return err
	}
	src, err := w.store.Source(ctx, args.SourceID)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	job.Phase(ctx, "checking source", 0)
	info, err := pg.CheckSource(ctx, src.DSN)
	if err != nil {
		return fmt.Errorf("backup: source %s: %w", src.Name, err)
	}
	if info.SystemID != src.SystemIdentifier {
		return fmt.Errorf("backup: source %s now reports system identifier %s, but it was registered with %s: "+
			"this is a different database cluster, so its backups cannot share a history; register it as a new source",
			src.Name, info.SystemID, src.SystemIdentifier)
	}
	job.Logf(ctx, LevelInfo, "checking source", "PostgreSQL %s, system identifier %s, timeline %d",
		info.ServerVersion, info.SystemID, info.Timeline)

	repoID, err := newRepoID(time.Now())
	if err != nil {
		return err
	}
	b, err := w.store.CreateBackup(ctx, store.BackupParams{
		SourceID:         src.ID,
		JobID:            job.ID,
		RepoID:           repoID,
		Label:            "backstop " + repoID,
		StartedAt:        time.Now().UTC(),
		PGVersion:        info.VersionNum,
		SystemIdentifier: info.SystemID,
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := job.SetResult(BackupResult{BackupID: b.ID, RepoID: repoID}); err != nil {
		return err
	}

	err = w.take(ctx, job, src, info, b)
	if err != nil {
		state := store.BackupFailed
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelRequested):
			state = store.BackupCancelled
		case ctx.Err() != nil:
			state = store.BackupInterrupted
		}
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if ferr := w.store.FailBackup(endCtx, b.ID, state, err.Error()); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}

// take streams the backup into the repository and records it as complete only once every
// object and the manifest are durable and the stream matched the server's own manifest.
func (w *BackupWorker) take(ctx context.Context, job *Job, src store.Source, info pg.SourceInfo, b store.Backup) error {
	// The session keeps pruning from collecting what this backup writes or reuses before
	// its manifest refers to it.
	sess, err := w.repo.Begin(ctx, "backup of "+src.Name)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer sess.End()
	bw := newBackupWriter(ctx, sess, w.repo.BlockSize(), job, w.Parallel)
	res, err := pg.BaseBackup(ctx, src.DSN, pg.BackupOptions{Label: b.Label, Fast: true, WAL: true}, bw)
	if werr := bw.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	job.Phase(ctx, "verifying", 0)
	if err := bw.verify(res.Manifest); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	job.Logf(ctx, LevelInfo, "verifying", "%d files match the server's backup manifest (sizes and CRC-32C); WAL %s to %s is included",
		len(res.Manifest.Files), res.StartLSN, res.EndLSN)

	job.Phase(ctx, "saving manifest", 0)
	if err := w.repo.Sync(ctx); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	finished := time.Now().UTC()
	m := &repository.Manifest{
		Format:           repository.ManifestFormat,
		BackupID:         b.RepoID,
		Label:            b.Label,
		SourceName:       src.Name,
		SystemIdentifier: info.SystemID,
		PGVersion:        info.VersionNum,
		Timeline:         uint32(res.Timeline),
		StartLSN:         res.StartLSN.String(),
		EndLSN:           res.EndLSN.String(),
		StartedAt:        b.StartedAt,
		FinishedAt:       finished,
		BlockSize:        w.repo.BlockSize(),
		Files:            bw.files(),
		Stats:            bw.stats.manifestStats(),
	}
	// The source's record, so that a rebuilt catalog finds the source of this backup;
	// written at every backup, it also reaches sources registered before records existed.
	if err := PutSourceRecord(ctx, w.repo, src, nil); err != nil {
		job.Logf(ctx, LevelWarn, "saving manifest", "the source's record could not be written into the repository: %v", err)
	}
	if _, err := sess.PutManifest(ctx, b.RepoID, m); err != nil {
		return fmt.Errorf("backup: %w", err)
	}

	st := &bw.stats
	files := make([]store.BackupFile, 0, len(m.Files))
	for _, f := range m.Files {
		files = append(files, store.BackupFile{Path: f.Path, Type: f.Type, Mode: int64(f.Mode), Size: f.Size, Blocks: f.BlockCount(m.BlockSize)})
	}
	err = w.store.CompleteBackup(ctx, b.ID, store.BackupCompletion{
		StartLSN:         res.StartLSN.String(),
		EndLSN:           res.EndLSN.String(),
		Timeline:         int64(res.Timeline),
		PGVersion:        info.VersionNum,
		SystemIdentifier: info.SystemID,
		Stats: store.BackupStats{
			SourceBytes:           st.sourceBytes.Load(),
			StoredBytesNew:        st.storedNew.Load(),
			StoredBytesReferenced: st.storedReferenced.Load(),
			WALBytes:              st.walBytes.Load(),
			WALStoredBytesNew:     st.walStoredNew.Load(),
			FileCount:             int64(len(files)),
			BlockCount:            st.blocks.Load(),
			BlockCountNew:         st.blocksNew.Load(),
		},
		Files: files,
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	job.Logf(ctx, LevelInfo, "saving manifest", "backup %d complete: %s of data, %s newly stored (%d of %d blocks new)",
		b.ID, humanize.IBytes(uint64(st.sourceBytes.Load())), humanize.IBytes(uint64(st.storedNew.Load())), st.blocksNew.Load(), st.blocks.Load())
	sampleStorage(ctx, job, w.store, w.repo)
	return nil
}

// sampleStorage records the repository's size, for the chart of storage over time; a
// failure is logged, not returned: the work is done.
func sampleStorage(ctx context.Context, job *Job, st *store.Store, repo *repository.Repo) {
	u, err := repo.Usage(ctx)
	if err == nil {
		err = st.RecordStorageSample(ctx, store.StorageSample{Packs: u.Packs, Bytes: u.Bytes, DeadBytes: u.DeadBytes})
	}
	if err != nil {
		job.Logf(ctx, LevelWarn, job.phase, "record the repository's size: %v", err)
	}
}

// newRepoID names a backup in the repository: sortable by time, unique by its random tail.
func newRepoID(t time.Time) (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("backup: id: %w", err)
	}
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]), nil
}

type backupStats struct {
	sourceBytes, walBytes   atomic.Int64
	storedNew, walStoredNew atomic.Int64
	storedReferenced        atomic.Int64
	blocks, blocksNew       atomic.Int64
}

func (s *backupStats) manifestStats() repository.Stats {
	return repository.Stats{
		SourceBytes:           s.sourceBytes.Load(),
		StoredBytesNew:        s.storedNew.Load(),
		StoredBytesReferenced: s.storedReferenced.Load(),
		Blocks:                s.blocks.Load(),
		BlocksNew:             s.blocksNew.Load(),
	}
}

// pageChunk is the block size of relation files: PostgreSQL changes 8 KiB pages
// scattered across its files, and a backup after such changes stores the chunks that
// hold a changed page. Two pages: one page would double the block maps of changed files,
// which are stored again whole.
const pageChunk = 16 << 10

// chunkSize returns the size of the blocks a file of the data directory is cut into.
func chunkSize(path string, blockSize int) int {
	for _, dir := range []string{"base/", "global/", "pg_tblspc/"} {
		if strings.HasPrefix(path, dir) {
			return pageChunk
		}
	}
	return blockSize
}

// backupWriter receives the BASE_BACKUP stream (pg.Handler) and turns each file into blocks
// stored in parallel, holding at most Parallel+1 parts of a file in memory whatever the
// file sizes. A file's block list is stored as a map blob as soon as its last block is
// stored, so that what the writer keeps per file is a name, not a list.
type backupWriter struct {
	sess      *repository.Session
	job       *Job
	blockSize int
	g         *errgroup.Group
	gctx      context.Context
	bufs      sync.Pool

	mu    sync.Mutex
	list  []*pendingFile
	crcs  map[string]uint32
	total int64
	done  int64
	stats backupStats
}

func newBackupWriter(ctx context.Context, sess *repository.Session, blockSize int, job *Job, parallel int) *backupWriter {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	return &backupWriter{
		sess: sess, job: job, blockSize: blockSize, g: g, gctx: gctx,
		bufs: sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }},
		crcs: make(map[string]uint32),
	}
}

// Start implements pg.Handler.
func (w *backupWriter) Start(ctx context.Context, s pg.BackupStart) error {
	w.total = s.TotalBytes
	w.job.Phase(ctx, "copying files", w.total)
	w.job.Logf(ctx, LevelInfo, "copying files", "backup started at %s on timeline %d, about %s to copy",
		s.StartLSN, s.Timeline, humanize.IBytes(uint64(s.TotalBytes)))
	return nil
}

// Progress implements pg.Handler. The bytes the writer itself has seen are reported instead.
func (w *backupWriter) Progress(context.Context, int64) {}

// pendingFile is a file whose blocks may still be on their way into the repository. The
// reader appends parts; each worker fills in its own part's names; whoever finishes last
// (the reader or a worker) stores the block list and sets finished.
type pendingFile struct {
	repository.File
	chunk     int
	isWAL     bool
	parts     []*filePart
	remaining atomic.Int64 // parts not yet stored, plus one while the reader is reading
	finished  atomic.Bool
}

// filePart is up to one read buffer of a file: one block, or several page chunks.
type filePart struct {
	names [][32]byte
}

// File implements pg.Handler: it splits a file into blocks and hands them to the workers.
func (w *backupWriter) File(ctx context.Context, e pg.Entry, r io.Reader) error {
	f := &pendingFile{File: repository.File{Path: e.Path, Mode: uint32(e.Mode.Perm()), Size: e.Size, ModTime: e.ModTime.UTC()}}
	switch e.Type {
	case pg.Dir:
		f.Type = "dir"
		f.finished.Store(true)
	case pg.Symlink:
		f.Type, f.LinkTarget = "symlink", e.LinkTarget
		f.finished.Store(true)
	default:
		f.Type = "file"
		if err := w.storeFile(ctx, f, r, true); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.list = append(w.list, f)
	w.mu.Unlock()
	return nil
}

// Manifest implements pg.Handler: the server's backup_manifest is kept as a file of the
// backup, since pg_verifybackup needs it in a restored directory.
func (w *backupWriter) Manifest(ctx context.Context, r io.Reader) error {
	f := &pendingFile{File: repository.File{Path: "backup_manifest", Type: "file", Mode: 0o600, ModTime: time.Now().UTC(), Size: -1}}
	if err := w.storeFile(ctx, f, r, false); err != nil {
		return err
	}
	w.mu.Lock()
	w.list = append(w.list, f)
	w.mu.Unlock()
	return nil
}

// storeFile reads r to its end in parts of the block size. A Size of -1 means unknown (the
// manifest).
func (w *backupWriter) storeFile(ctx context.Context, f *pendingFile, r io.Reader, counted bool) error {
	f.isWAL = strings.HasPrefix(f.Path, "pg_wal/")
	f.chunk = chunkSize(f.Path, w.blockSize)
	if f.chunk != w.blockSize {
		f.ChunkSize = f.chunk
	}
	f.remaining.Store(1)
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var size int64
	for {
		bp := w.bufs.Get().(*[]byte)
		n, err := io.ReadFull(r, *bp)
		if n == 0 {
			w.bufs.Put(bp)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			w.bufs.Put(bp)
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
		data := (*bp)[:n]
		crc.Write(data)
		size += int64(n)
		part := &filePart{}
		f.parts = append(f.parts, part)
		f.remaining.Add(1)
		if err := w.submit(f, part, bp, data); err != nil {
			return err
		}
		if counted {
			w.progress(ctx, int64(n))
		}
		if n < w.blockSize {
			break
		}
	}
	if f.Size >= 0 && size != f.Size {
		return fmt.Errorf("read %s: got %d bytes, the archive header said %d", f.Path, size, f.Size)
	}
	f.Size = size
	sum := crc.Sum32()
	f.CRC32C = &sum
	if counted {
		w.mu.Lock()
		w.crcs[f.Path] = sum
		w.mu.Unlock()
	}
	if f.remaining.Add(-1) == 0 {
		return w.finish(w.gctx, f)
	}
	return nil
}

// submit stores one part on a worker goroutine; it blocks while every worker is busy.
func (w *backupWriter) submit(f *pendingFile, part *filePart, bp *[]byte, data []byte) error {
	if err := w.gctx.Err(); err != nil {
		w.bufs.Put(bp)
		return context.Cause(w.gctx)
	}
	index := len(f.parts) - 1
	w.g.Go(func() error {
		defer w.bufs.Put(bp)
		chunks := make([][]byte, 0, (len(data)+f.chunk-1)/f.chunk)
		for off := 0; off < len(data); off += f.chunk {
			chunks = append(chunks, data[off:min(off+f.chunk, len(data))])
		}
		refs, written, err := w.sess.PutMany(w.gctx, chunks)
		if err != nil {
			return fmt.Errorf("store %s part %d: %w", f.Path, index, err)
		}
		part.names = make([][32]byte, len(refs))
		for i, ref := range refs {
			if _, err := hex.Decode(part.names[i][:], []byte(ref.Name)); err != nil {
				return err
			}
			w.count(ref, written[i], len(chunks[i]), f.isWAL)
		}
		if f.remaining.Add(-1) == 0 {
			return w.finish(w.gctx, f)
		}
		return nil
	})
	return nil
}

func (w *backupWriter) count(ref repository.ObjectRef, written bool, n int, isWAL bool) {
	st := &w.stats
	st.blocks.Add(1)
	st.storedReferenced.Add(ref.StoredSize)
	if isWAL {
		st.walBytes.Add(int64(n))
	}
	st.sourceBytes.Add(int64(n))
	if written {
		st.blocksNew.Add(1)
		st.storedNew.Add(ref.StoredSize)
		if isWAL {
			st.walStoredNew.Add(ref.StoredSize)
		}
	}
}

// finish records a file's block list once every part is stored: inline when short, as a
// map blob otherwise.
func (w *backupWriter) finish(ctx context.Context, f *pendingFile) error {
	var names [][32]byte
	for _, p := range f.parts {
		names = append(names, p.names...)
	}
	f.parts = nil
	if len(names) > repository.InlineBlocks {
		ref, written, err := w.sess.PutBlockMap(ctx, names)
		if err != nil {
			return fmt.Errorf("store the block map of %s: %w", f.Path, err)
		}
		f.Map = ref.Name
		w.stats.storedReferenced.Add(ref.StoredSize)
		if written {
			w.stats.storedNew.Add(ref.StoredSize)
		}
	} else {
		f.Blocks = make([]string, len(names))
		for i, n := range names {
			f.Blocks[i] = hex.EncodeToString(n[:])
		}
	}
	f.finished.Store(true)
	return nil
}

func (w *backupWriter) progress(ctx context.Context, n int64) {
	w.done += n
	if w.done > w.total {
		w.total = w.done
	}
	w.job.Progress(ctx, w.done, w.total)
}

// wait blocks until every submitted block is stored, returning the first error.
func (w *backupWriter) wait() error { return w.g.Wait() }

// files returns the backup's entries sorted by path, so that a directory precedes what it holds.
func (w *backupWriter) files() []repository.File {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]repository.File, len(w.list))
	for i, f := range w.list {
		out[i] = f.File
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// verify checks what was stored against the server's own backup manifest: every block of
// every file is in the repository, and every file's CRC-32C is the one the server computed
// as it read the file. (pg.BaseBackup has already checked names, sizes and the WAL segments.)
func (w *backupWriter) verify(sm pg.ServerManifest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.list {
		if !f.finished.Load() {
			return fmt.Errorf("verify: %s was never completely stored", f.Path)
		}
	}
	for _, mf := range sm.Files {
		if mf.ChecksumAlgorithm != "CRC32C" {
			continue
		}
		crc, ok := w.crcs[mf.Path]
		if !ok {
			return fmt.Errorf("verify: the server's manifest lists %s, but the stream did not carry it", mf.Path)
		}
		// PostgreSQL writes the CRC's bytes in the server's memory order: little-endian on
		// the machines it runs on today, big-endian on the rest.
		var le, be [4]byte
		binary.LittleEndian.PutUint32(le[:], crc)
		binary.BigEndian.PutUint32(be[:], crc)
		if got := strings.ToLower(mf.Checksum); got != hex.EncodeToString(le[:]) && got != hex.EncodeToString(be[:]) {
			return fmt.Errorf("verify: %s: the stream's CRC-32C %08x does not match the server's manifest (%s)", mf.Path, crc, mf.Checksum)
		}
	}
	return nil
}
