package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// WALSource is the archived file that provides a WAL file a recovering
// server may ask for.
type WALSource struct {
	// File is the repository's name for it: a segment, a partial piece
	// (SEGMENT.partial.END, see repository.PartialWALName) or a timeline
	// history file.
	File string
	// SegmentSize is the cluster's WAL segment size, to which a partial piece
	// is padded with zeros: PostgreSQL refuses a restored segment of another
	// size. It is required for a partial piece and ignored otherwise.
	SegmentSize int64
}

// WALSources maps the WAL files a recovering server may ask for to the
// archived files named in names (as repository.Repo.WALNames lists them): a
// complete segment and a history file serve themselves; a segment archived
// only in pieces is served from its newest piece, padded to segSize.
func WALSources(names []string, segSize int64) map[string]WALSource {
	files := make(map[string]WALSource, len(names))
	partial := make(map[string]string) // segment → newest piece
	for _, n := range names {
		seg, _, ok := strings.Cut(n, pgwal.PartialSuffix+".")
		if !ok {
			files[n] = WALSource{File: n}
			continue
		}
		// END has eight digits, so names compare as their ENDs do.
		if prev, found := partial[seg]; !found || prev < n {
			partial[seg] = n
		}
	}
	for seg, piece := range partial {
		if _, complete := files[seg]; !complete {
			files[seg] = WALSource{File: piece, SegmentSize: segSize}
		}
	}
	return files
}

// RestoreCommand returns a restore_command that runs `backstop wal-fetch`
// from the executable backstop against the WAL server listening on
// socketPath, quoted for the shell that runs it and for PostgreSQL's %
// escapes.
func RestoreCommand(backstop, socketPath string) string {
	quote := func(s string) string {
		s = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		return strings.ReplaceAll(s, "%", "%%")
	}
	return quote(backstop) + " wal-fetch --socket " + quote(socketPath) + " %f %p"
}

// WALServerStats counts what a WALServer did.
type WALServerStats struct {
	// Requests counts every request.
	Requests int64
	// Served counts the files sent whole, and Bytes their bytes (padding
	// included).
	Served int64
	Bytes  int64
	// NotFound counts the names asked for that the server does not provide:
	// PostgreSQL asks for files that do not exist, such as the next
	// timeline's history file or the segment after the last one.
	NotFound int64
	// Failed counts requests that failed on the server's side (a repository
	// error, such as a corrupt object) or while sending.
	Failed int64
	// LastError is the message of the last failure.
	LastError string
}

// WALServer serves archived WAL, verified, to a server recovering from a
// restored backup: its restore_command is `backstop wal-fetch`, which runs as
// the server's OS user and so can read neither the repository nor its key.
// The server listens on a Unix socket in a directory only that user (and
// root) can enter, and speaks HTTP: GET /wal/NAME answers 200 with the file,
// 404 for a name it does not provide, and 500 with a message for a
// repository error.
type WALServer struct {
	repo     *repository.Repo
	systemID string
	files    map[string]WALSource

	// OnFetch, if set, is called after each file is sent whole, from the
	// goroutine serving the request: it must return promptly.
	OnFetch func(name string, bytes int64)
	// TempDir holds the verified copy of a file while it is sent (unlinked
	// as soon as created); "" means the system's temporary directory.
	TempDir string

	started atomic.Bool
	ready   chan struct{}
	mu      sync.Mutex
	stats   WALServerStats
}

// NewWALServer returns a server for the archived WAL of system systemID in
// repo, providing for each name in files the archived file it maps to.
func NewWALServer(repo *repository.Repo, systemID string, files map[string]WALSource) *WALServer {
	return &WALServer{repo: repo, systemID: systemID, files: files, ready: make(chan struct{})}
}

// Ready is closed once Serve listens: start the recovering server after it. If
// Serve fails before listening, Ready is never closed: wait for Serve's result
// too.
func (s *WALServer) Ready() <-chan struct{} { return s.ready }

// Stats returns what the server did so far.
func (s *WALServer) Stats() WALServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// maxSocketPath is the longest path of a Unix socket Linux accepts.
const maxSocketPath = 107

// Serve creates socketPath's directory, which must not exist, with mode 0700
// and gives it and the socket to uid and gid (the recovering server's OS
// user; -1 keeps an ID), then serves WAL on the socket until ctx is done. It
// removes the directory when it returns, and returns nil after ctx is done.
// A server serves once.
func (s *WALServer) Serve(ctx context.Context, socketPath string, uid, gid int) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("serve WAL: already served")
	}
	if err := s.check(); err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	socketPath, err := filepath.Abs(socketPath)
	if err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	if len(socketPath) > maxSocketPath {
		return fmt.Errorf("serve WAL: socket path %s is %d bytes long, more than Unix sockets allow (%d): choose a shorter one",
			socketPath, len(socketPath), maxSocketPath)
	}
	dir := filepath.Dir(socketPath)
	// A directory we create cannot have been opened to others beforehand.
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("serve WAL: socket directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	if err := chown(dir, uid, gid); err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	l, err := net.Listen("unix", socketPath)
	if err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	defer l.Close()
	// Connecting takes write permission on the socket.
	if err := os.Chmod(socketPath, 0o600); err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}
	if err := chown(socketPath, uid, gid); err != nil {
		return fmt.Errorf("serve WAL: %w", err)
	}

	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests end with ctx: a repository read in progress stops.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	close(s.ready)
	select {
	case err := <-done:
		return fmt.Errorf("serve WAL: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-done
	return nil
}

// check validates the map of files before anything is served.
func (s *WALServer) check() error {
	for name, src := range s.files {
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return fmt.Errorf("invalid WAL file name %q", name)
		}
		if _, end, ok := strings.Cut(src.File, pgwal.PartialSuffix+"."); ok {
			n, err := strconv.ParseInt(end, 16, 64)
			if err != nil || pgwal.CheckSegmentSize(src.SegmentSize) != nil || n > src.SegmentSize {
				return fmt.Errorf("%s is served from partial piece %s, which needs the segment size to pad it to (got %d)",
					name, src.File, src.SegmentSize)
			}
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (s *WALServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *WALServerStats) { st.Requests++ })
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/wal/")
	src, found := s.files[name]
	if !ok || !found {
		s.count(func(st *WALServerStats) { st.NotFound++ })
		http.Error(w, "not archived: "+name, http.StatusNotFound)
		return
	}
	f, size, err := s.fetch(r.Context(), src)
	if err != nil {
		msg := fmt.Sprintf("%s: %v", name, err)
		s.count(func(st *WALServerStats) { st.Failed++; st.LastError = msg })
		http.Error(w, msg, http.StatusInternalServerError)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	n, err := io.Copy(w, f)
	if err != nil || n != size {
		msg := fmt.Sprintf("%s: sent %d of %d bytes: %v", name, n, size, err)
		s.count(func(st *WALServerStats) { st.Failed++; st.LastError = msg })
		return
	}
	s.count(func(st *WALServerStats) { st.Served++; st.Bytes += n })
	if s.OnFetch != nil {
		s.OnFetch(name, n)
	}
}

// fetch reads and verifies src whole into an unlinked temporary file, padded
// to the segment size for a partial piece, and returns it rewound with its
// size: nothing is sent before every block is verified.
func (s *WALServer) fetch(ctx context.Context, src WALSource) (*os.File, int64, error) {
	f, err := os.CreateTemp(s.TempDir, "backstop-wal-*")
	if err != nil {
		return nil, 0, err
	}
	// Unlinked at once: nothing is left behind, whatever happens.
	os.Remove(f.Name())
	err = s.repo.ReadWAL(ctx, s.systemID, src.File, f)
	if errors.Is(err, repository.ErrNotFound) {
		// Pruning deletes a piece once a longer piece or the whole segment is archived:
		// serve that instead. It begins with the same bytes.
		if next, ok := s.successor(ctx, src.File); ok {
			src.File = next
			if _, serr := f.Seek(0, io.SeekStart); serr != nil {
				f.Close()
				return nil, 0, serr
			}
			if terr := f.Truncate(0); terr != nil {
				f.Close()
				return nil, 0, terr
			}
			err = s.repo.ReadWAL(ctx, s.systemID, src.File, f)
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if strings.Contains(src.File, pgwal.PartialSuffix+".") && size < src.SegmentSize {
		// Extending a file fills it with zeros.
		if err := f.Truncate(src.SegmentSize); err != nil {
			f.Close()
			return nil, 0, err
		}
		size = src.SegmentSize
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// successor returns what replaced a partial piece that is no longer archived: the complete
// segment, else its newest piece, if that is longer.
func (s *WALServer) successor(ctx context.Context, piece string) (string, bool) {
	seg, end, ok := strings.Cut(piece, pgwal.PartialSuffix+".")
	if !ok {
		return "", false
	}
	names, err := s.repo.WALNames(ctx, s.systemID)
	if err != nil {
		return "", false
	}
	best := ""
	for _, n := range names {
		if n == seg {
			return n, true
		}
		// END has eight digits, so names compare as their ENDs do.
		if rest, ok := strings.CutPrefix(n, seg+pgwal.PartialSuffix+"."); ok && rest > end && n > best {
			best = n
		}
	}
	return best, best != ""
}

func (s *WALServer) count(fn func(*WALServerStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.stats)
}
