package handlers_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// The catalog of BenchmarkPagesAtScale: what issue 8 measures the overview and the
// restore page at.
const (
	scaleSources  = 10
	scaleBackups  = 10_000
	scaleSegments = 1_000_000
	scaleSegSize  = int64(16 << 20)
	scaleHistory  = 30 * 24 * time.Hour
)

// BenchmarkPagesAtScale measures GET /, GET /sources/{id}/restore and GET /sources/{id}
// over a catalog of 10 sources, 10,000 complete backups and 1,000,000 archived WAL
// segments (each one also in the repository, as an empty object: the window lists them),
// with a verification run, a drill and a day of lag samples per source. The windows are
// kept in the background as serve keeps them. Warm: every window computed, nothing
// changed. Cold: the request right after start-up (a new cache: the pages show
// "Computing…" until the background has computed each window), right after a new WAL
// segment of the first source is recorded, and right after a backup of it finishes.
//
//	go test ./handlers/ -run '^$' -bench PagesAtScale -benchtime 20x
func BenchmarkPagesAtScale(b *testing.B) {
	fx := scaleFixture(b)
	c := fx.client(b)
	srcPath := fmt.Sprintf("/sources/%d", fx.sources[0].ID)
	// measure requests path b.N times, each after prepare (not timed), and reports the
	// median and 95th percentile.
	measure := func(b *testing.B, path string, prepare func()) {
		var ds []time.Duration
		for b.Loop() {
			b.StopTimer()
			prepare()
			b.StartTimer()
			start := time.Now()
			fx.get(b, c, path)
			ds = append(ds, time.Since(start))
		}
		reportPercentiles(b, ds)
	}
	for _, page := range []struct{ name, path string }{
		{"overview", "/"},
		{"restore", srcPath + "/restore"},
		{"source", srcPath},
	} {
		b.Run(page.name+"/warm", func(b *testing.B) {
			fx.waitKnown(b, c)
			measure(b, page.path, func() {})
		})
		b.Run(page.name+"/cold-start", func(b *testing.B) {
			measure(b, page.path, func() { fx.restart(b) })
			fx.waitKnown(b, c)
		})
		b.Run(page.name+"/cold-wal", func(b *testing.B) {
			fx.waitKnown(b, c)
			measure(b, page.path, func() { fx.archiveSegment(b, fx.sources[0]) })
		})
		b.Run(page.name+"/cold-backup", func(b *testing.B) {
			fx.waitKnown(b, c)
			measure(b, page.path, func() { fx.finishBackup(b, fx.sources[0]) })
		})
	}
}

// reportPercentiles reports the median and the 95th percentile of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}

// scaleApp is a dashboard over the large catalog.
type scaleApp struct {
	srv     *httptest.Server
	store   *store.Store
	repo    *repository.Repo
	repoDir string
	sources []store.Source
	// next is the next segment number of each source, for archiveSegment; backups
	// counts the backups finishBackup recorded.
	next    map[int64]int64
	backups int
	mu      sync.Mutex

	// The dashboard that srv serves, and how to stop its windows' refresh.
	handler   atomic.Pointer[http.Handler]
	stopServe func()
	started   time.Time
}

// restart starts the dashboard afresh, as serve does after start-up: a new window cache,
// kept in the background, and the overview's charts read before the first request.
func (a *scaleApp) restart(b *testing.B) {
	b.Helper()
	if a.stopServe != nil {
		a.stopServe()
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := jobs.NewHub()
	go hub.Run(ctx)
	runner := jobs.NewRunner(a.store, hub, log, jobs.Options{Workers: 1})
	dir := filepath.Dir(a.repoDir)
	svc := usecase.New(a.store, a.repo, usecase.Enqueuer(runner), usecase.Paths{Home: dir, Repository: a.repoDir,
		RestoreRoot: filepath.Join(dir, "restores")}, log)
	svc.Windows().Keep()
	dash := handlers.New(a.store, svc, hub, log)
	var background sync.WaitGroup
	background.Go(func() { svc.Windows().Run(ctx, log) })
	if err := dash.Warm(ctx); err != nil {
		b.Fatal(err)
	}
	h := dash.Routes()
	a.handler.Store(&h)
	a.started = time.Now()
	a.stopServe = func() {
		cancel()
		background.Wait()
	}
}

// waitKnown waits until the overview shows every source's window, and logs how long
// after start-up that was, the first time.
func (a *scaleApp) waitKnown(b *testing.B, c *http.Client) {
	b.Helper()
	for {
		resp, err := c.Get(a.srv.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(page, []byte(`data-testid="window-computing"`)) {
			break
		}
		time.Sleep(time.Second)
	}
	if !a.started.IsZero() {
		b.Logf("every window known %s after start-up", time.Since(a.started).Round(100*time.Millisecond))
		a.started = time.Time{}
	}
}

func (a *scaleApp) client(b *testing.B) *http.Client {
	b.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(a.srv.URL+"/login", url.Values{"name": {testUser}, "password": {testPassword}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("POST /login = %d, want 303", resp.StatusCode)
	}
	return c
}

// get requests path and returns the size of the page.
func (a *scaleApp) get(b *testing.B, c *http.Client, path string) int64 {
	resp, err := c.Get(a.srv.URL + path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s = %d (%v), want 200", path, resp.StatusCode, err)
	}
	return n
}

// archiveSegment records the next WAL segment of src, in the repository and the catalog,
// as the archiver does.
func (a *scaleApp) archiveSegment(b *testing.B, src store.Source) {
	a.mu.Lock()
	segNo := a.next[src.ID]
	a.next[src.ID]++
	a.mu.Unlock()
	name := pgwal.SegmentName(1, uint64(segNo), scaleSegSize)
	if err := os.WriteFile(filepath.Join(a.repoDir, "wal", src.SystemIdentifier, name+".wal"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	_, err := a.store.RecordWAL(b.Context(), store.WALFileParams{SourceID: src.ID, Name: name, Kind: store.WALSegment, Timeline: 1,
		SegNo: segNo, StartLSN: lsnText(segNo * scaleSegSize), EndLSN: lsnText((segNo + 1) * scaleSegSize), Size: scaleSegSize,
		Commits: 10, FirstCommitAt: at.Add(-time.Second), LastCommitAt: at, Via: store.WALViaStream, ArchivedAt: at})
	if err != nil {
		b.Fatal(err)
	}
}

// finishBackup records a backup of src that starts in its newest segment and completes,
// as a backup job does.
func (a *scaleApp) finishBackup(b *testing.B, src store.Source) {
	a.mu.Lock()
	segNo := a.next[src.ID] - 1
	a.backups++
	n := a.backups
	a.mu.Unlock()
	ctx := b.Context()
	bk, err := a.store.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: fmt.Sprintf("%s-more-%d", src.Name, n),
		StartLSN: lsnText(segNo*scaleSegSize + 0x28), Timeline: 1, SystemIdentifier: src.SystemIdentifier})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.store.CompleteBackup(ctx, bk.ID, store.BackupCompletion{EndLSN: lsnText(segNo*scaleSegSize + 0x1000),
		Stats: store.BackupStats{SourceBytes: 40 << 30, BlockCount: 500_000, BlockCountNew: 10_000}}); err != nil {
		b.Fatal(err)
	}
}

func lsnText(lsn int64) string { return fmt.Sprintf("%X/%X", uint64(lsn)>>32, uint32(lsn)) }

// scaleFixture builds the catalog and repository and starts the dashboard over them.
func scaleFixture(b *testing.B) *scaleApp {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dir := b.TempDir()
	catalog := filepath.Join(dir, "catalog.db")
	st, err := store.Open(ctx, catalog)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repository")
	repo, err := repository.Init(repoDir, key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, testUser, testPassword, store.RoleAdmin); err != nil {
		b.Fatal(err)
	}
	fx := &scaleApp{store: st, repoDir: repoDir, next: map[int64]int64{}}
	for i := range scaleSources {
		src, err := st.CreateSource(ctx, store.SourceParams{Name: fmt.Sprintf("db-%02d", i+1),
			DSN: fmt.Sprintf("postgres://backstop@db%d.example:5432/postgres", i+1), SystemIdentifier: fmt.Sprintf("73%017d", i+1),
			PGVersion: 150004, Timeline: 1})
		if err != nil {
			b.Fatal(err)
		}
		fx.sources = append(fx.sources, src)
	}
	start := time.Now()
	now := time.Now().UTC()
	fillScaleCatalog(b, catalog, repoDir, fx.sources, now)
	for _, src := range fx.sources {
		fx.next[src.ID] = scaleSegments/scaleSources + 1
		scaleExtras(b, st, src, now)
	}
	b.Logf("catalog of %d backups and %d WAL segments built in %s", scaleBackups, scaleSegments, time.Since(start).Round(time.Second))

	fx.repo = repo
	fx.restart(b)
	b.Cleanup(func() { fx.stopServe() })
	fx.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*fx.handler.Load()).ServeHTTP(w, r)
	}))
	b.Cleanup(fx.srv.Close)
	return fx
}

// fillScaleCatalog writes the backups, WAL rows and lag samples with SQL in one
// transaction (the store's API records one WAL file per transaction), and an empty object
// in the repository for each WAL segment.
func fillScaleCatalog(b *testing.B, catalog, repoDir string, srcs []store.Source, now time.Time) {
	b.Helper()
	db, err := sql.Open("sqlite", catalog+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	walStmt, err := tx.Prepare(`INSERT INTO wal_files (source_id, name, kind, timeline, segno, start_lsn, end_lsn, size,
		stored_bytes, commits, first_commit_at, last_commit_at, via, archived_at)
		VALUES (?, ?, 'segment', 1, ?, ?, ?, ?, ?, 100, ?, ?, 'stream', ?)`)
	if err != nil {
		b.Fatal(err)
	}
	backupStmt, err := tx.Prepare(`INSERT INTO backups (source_id, repo_id, state, label, started_at, finished_at, start_lsn,
		end_lsn, timeline, pg_version, system_identifier, source_bytes, stored_bytes_new, stored_bytes_referenced, wal_bytes,
		file_count, block_count, block_count_new)
		VALUES (?, ?, 'complete', ?, ?, ?, ?, ?, 1, 150004, ?, ?, ?, ?, ?, 1874, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	sampleStmt, err := tx.Prepare(`INSERT INTO source_samples (source_id, at, lag_seconds, lag_bytes, wal_bytes) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
	segs := int64(scaleSegments / len(srcs))
	perBackup := segs / int64(scaleBackups/len(srcs))
	step := scaleHistory / time.Duration(segs)
	t0 := now.Add(-scaleHistory)
	var wg sync.WaitGroup
	files := make(chan string, 1024)
	for range 4 {
		wg.Go(func() {
			for p := range files {
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, src := range srcs {
		walDir := filepath.Join(repoDir, "wal", src.SystemIdentifier)
		if err := os.MkdirAll(walDir, 0o700); err != nil {
			b.Fatal(err)
		}
		for i := int64(1); i <= segs; i++ {
			end := t0.Add(time.Duration(i) * step)
			name := pgwal.SegmentName(1, uint64(i), scaleSegSize)
			files <- filepath.Join(walDir, name+".wal")
			if _, err := walStmt.Exec(src.ID, name, i, lsnText(i*scaleSegSize), lsnText((i+1)*scaleSegSize), scaleSegSize,
				scaleSegSize/4, ts(end.Add(-step+time.Second)), ts(end.Add(-time.Second)), ts(end)); err != nil {
				b.Fatal(err)
			}
			if i%perBackup == perBackup/2 {
				started := end.Add(-step / 2)
				n := i / perBackup
				blocks := int64(500_000)
				if _, err := backupStmt.Exec(src.ID, fmt.Sprintf("%s-%d", src.Name, n), fmt.Sprintf("backstop-%d", n),
					ts(started), ts(started.Add(time.Duration(40+n%30)*time.Second)), lsnText(i*scaleSegSize+0x28),
					lsnText(i*scaleSegSize+0x1000), src.SystemIdentifier, 40<<30+n<<20, int64(300+n%200)<<20, 12<<30,
					scaleSegSize, blocks, blocks/50+n%400); err != nil {
					b.Fatal(err)
				}
			}
		}
		for m := 24 * 60; m >= 0; m-- {
			if _, err := sampleStmt.Exec(src.ID, ts(now.Add(-time.Duration(m)*time.Minute)), float64(m%7)/3,
				int64(m%11)<<16, segs*scaleSegSize); err != nil {
				b.Fatal(err)
			}
		}
	}
	close(files)
	wg.Wait()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// scaleExtras gives src what the overview shows besides backups and WAL: the archiver's
// state, a verification run with a finding and two drills.
func scaleExtras(b *testing.B, st *store.Store, src store.Source, now time.Time) {
	b.Helper()
	ctx := b.Context()
	segs := int64(scaleSegments / scaleSources)
	caught := now
	if err := st.SaveArchiverState(ctx, store.ArchiverState{SourceID: src.ID, State: store.ArchiverStreaming, Since: now.Add(-time.Hour),
		FlushedLSN: lsnText((segs + 1) * scaleSegSize), ServerLSN: lsnText((segs+1)*scaleSegSize + 4096), BehindBytes: 4096,
		CaughtUpAt: &caught, SlotName: "backstop_" + src.Name}); err != nil {
		b.Fatal(err)
	}
	run, err := st.StartVerifyRun(ctx, src.ID, 0, false)
	if err != nil {
		b.Fatal(err)
	}
	run.PacksChecked, run.BytesRead = 40, 4<<30
	if _, err := st.FinishVerifyRun(ctx, run, nil, nil, ""); err != nil {
		b.Fatal(err)
	}
	for _, fail := range []string{"", "pg_amcheck: corrupted index"} {
		d, err := st.StartDrill(ctx, src.ID, 0, now.Add(-3*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		d.RTO, d.Error, d.Checks = 94*time.Second, fail, []string{"reached consistency", "pg_amcheck on every database"}
		if _, err := st.FinishDrill(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}
