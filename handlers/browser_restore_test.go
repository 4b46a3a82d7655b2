package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// pitrApp is a running dashboard whose runner also takes point-in-time restores, with
// the repository the archiver writes to.
type pitrApp struct {
	app
	repo *repository.Repo
}

// setupPITR is setup with a PITR worker (running the backstop binary at backstop) and a
// restore root the postgres user can reach.
func setupPITR(t *testing.T, backstop string) *pitrApp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, testUser, testPassword, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	hub := jobs.NewHub()
	go hub.Run(ctx)
	runner := jobs.NewRunner(st, hub, log, jobs.Options{Workers: 1},
		jobs.NewBackupWorker(st, repo), jobs.NewRestoreWorker(st, repo), jobs.NewPITRWorker(st, repo, backstop))
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restoreRoot := reachable(t)
	svc := usecase.New(st, repo, usecase.Enqueuer(runner), usecase.Paths{RestoreRoot: restoreRoot}, log)
	srv := httptest.NewServer(handlers.New(st, svc, hub, log).Routes())
	t.Cleanup(func() {
		srv.Close()
		runner.Stop()
		cancel()
		repo.Close()
		st.Close()
	})
	return &pitrApp{app: app{srv: srv, store: st, runner: runner}, repo: repo}
}

// reachable returns a new directory that the postgres user can enter.
func reachable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildBackstop builds the backstop binary, which restore_command runs, where the
// postgres user can run it.
func buildBackstop(t *testing.T) string {
	t.Helper()
	path := filepath.Join(reachable(t), "backstop")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/backstop/backstop/cmd/backstop").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// stopInstance stops the instance running on the data directory dir.
func stopInstance(t *testing.T, bin pg.Binaries, dir string) {
	t.Helper()
	args := []string{bin.Path("pg_ctl"), "-D", dir, "stop", "-m", "immediate", "-w"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Errorf("stop the restored instance: %v\n%s", err, out)
	}
}

// setTimeInput sets the restore page's datetime-local input as a user's edit does
// (typing into it depends on the locale), firing input and change.
const setTimeInput = `((v) => {
  const el = document.querySelector('[data-testid="restore-time-input"]');
  el.focus();
  el.value = v;
  el.dispatchEvent(new Event('input', {bubbles: true}));
  el.dispatchEvent(new Event('change', {bubbles: true}));
  return el.value;
})(%q)`

// TestBrowserRestoreFlow is the point-in-time restore an operator clicks through: with a
// backup and streamed WAL, choose a second on the restore page, start the restore, watch
// the job succeed, and connect to the new instance it names, which holds exactly the
// rows committed at or before that second.
func TestBrowserRestoreFlow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := setupPITR(t, buildBackstop(t))
	cl := pgtest.Start(t, pgtest.Setting("track_commit_timestamp", "on"))
	dsn := cl.DSN("postgres")
	pgtest.Exec(t, dsn, `CREATE TABLE ticks (id bigint PRIMARY KEY)`)
	src, err := jobs.RegisterSource(ctx, a.store, "orders", dsn)
	if err != nil {
		t.Fatal(err)
	}
	job, err := a.runner.Run(ctx, jobs.Params{Kind: jobs.KindBackup, SourceID: src.ID, LockKey: jobs.BackupLockKey(src.ID),
		Args: jobs.BackupArgs{SourceID: src.ID}, RequestedBy: "test"})
	if err != nil || job.State != store.JobSucceeded {
		t.Fatalf("backup: %v (state %s)", err, job.State)
	}
	arch := jobs.NewArchiver(a.store, a.repo, t.TempDir(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	arch.PartialEvery = 100 * time.Millisecond
	archDone := make(chan struct{})
	go func() { defer close(archDone); arch.Run(ctx, src) }()
	defer func() { cancel(); <-archDone }()

	// 40 rows, one a transaction, over about 2.4 seconds.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for id := 1; id <= 40; id++ {
		if _, err := conn.Exec(ctx, `INSERT INTO ticks (id) VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	type stamp struct {
		id int64
		at time.Time
	}
	rows, err := conn.Query(ctx, `SELECT id, pg_xact_commit_timestamp(xmin) FROM ticks ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	stamps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stamp, error) {
		var s stamp
		return s, r.Scan(&s.id, &s.at)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The target: the whole second after the 10th commit, as the page's input takes it.
	target := stamps[9].at.UTC().Truncate(time.Second).Add(time.Second)
	var want []int64
	for _, s := range stamps {
		if !s.at.After(target) {
			want = append(want, s.id)
		}
	}
	if len(want) < 10 || len(want) == len(stamps) {
		t.Fatalf("target %s does not fall between commits (%d of %d rows before it)", target, len(want), len(stamps))
	}
	last := stamps[len(stamps)-1].at
	deadline := time.Now().Add(time.Minute)
	for {
		in, err := jobs.LoadWindowInput(ctx, a.store, a.repo, src)
		if err != nil {
			t.Fatal(err)
		}
		w := jobs.ComputeWindow(in)
		if !w.Latest.Before(last) {
			t.Logf("window %s; target %s, expecting rows 1..%d", w, target.Format(time.RFC3339), len(want))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive's window %s does not reach the last commit %s", w, last)
		}
		time.Sleep(50 * time.Millisecond)
	}

	bctx, consoleProblems := browser(t)
	bctx, bcancel := context.WithTimeout(bctx, 3*time.Minute)
	defer bcancel()
	err = chromedp.Do(bctx,
		chromedp.Navigate(a.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), testUser),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="source-card"]`)),
		chromedp.Navigate(fmt.Sprintf("%s/sources/%d/restore", a.srv.URL, src.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="restore-window"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="restore-target-time"]`)),
	)
	if err != nil {
		t.Fatalf("sign in and open the restore page: %v", err)
	}
	value := target.Format("2006-01-02T15:04:05")
	got, err := chromedp.Run(bctx, chromedp.Evaluate[string](fmt.Sprintf(setTimeInput, value)))
	if err != nil || !strings.HasPrefix(got, strings.TrimSuffix(value, ":00")) {
		t.Fatalf("time input = %q (%v), want %s", got, err, value)
	}
	port := freePort(t)
	err = chromedp.Do(bctx,
		// The plan follows the target in the background.
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="restore-plan"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="restore-port"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="restore-port"]`), strconv.Itoa(port)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="restore-confirm"]`), src.Name),
		chromedp.Click(chromedp.CSS(`[data-testid="restore-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="job-state"]`)),
	)
	if err != nil {
		t.Fatalf("start the restore: %v", err)
	}
	loc, _ := chromedp.Run(bctx, chromedp.Location())
	if !strings.Contains(loc, "/jobs/") {
		body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`main`)))
		t.Fatalf("after Restore the browser is at %s, want a job page:\n%s", loc, body)
	}
	state, err := chromedp.Run(bctx, chromedp.Poll[string](
		`(() => { const s = document.querySelector('[data-testid="job-state"]'); const t = s && s.textContent.trim().toLowerCase();
		  return t && !t.includes('queued') && !t.includes('running') ? t : null })()`,
		chromedp.WithPollingTimeout(2*time.Minute)))
	if err != nil {
		t.Fatalf("waiting for the restore job to end: %v", err)
	}

	// Whatever the outcome, stop the instance the job started.
	restores, err := a.store.Restores(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range restores {
		if r.Port != 0 {
			defer stopInstance(t, cl.Binaries(), r.DataDir)
		}
	}
	if !strings.Contains(state, "succeeded") {
		ev, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`[data-testid="job-events"]`)))
		t.Fatalf("job state = %q, want succeeded; events:\n%s", state, ev)
	}
	// The connection string arrives live, with the job's end, on the page opened before.
	const dsnText = `(() => { const c = document.querySelector('[data-testid="restore-dsn"] .mono code'); return c && c.textContent.trim() || null })()`
	restoredDSN, err := chromedp.Run(bctx, chromedp.Poll[string](dsnText, chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("the job page did not show the connection string live: %v", err)
	}
	if !strings.Contains(restoredDSN, strconv.Itoa(port)) {
		t.Errorf("connection string %q does not name port %d", restoredDSN, port)
	}
	rconn, err := pgx.Connect(ctx, restoredDSN)
	if err != nil {
		t.Fatalf("connect to the restored instance at %q: %v", restoredDSN, err)
	}
	rrows, err := rconn.Query(ctx, `SELECT id FROM ticks ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rrows, pgx.RowTo[int64])
	rconn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, want) {
		res := "?"
		if len(restores) > 0 {
			if j, err := a.store.Job(ctx, restores[0].JobID); err == nil {
				var r jobs.PITRResult
				_ = json.Unmarshal(j.Result, &r)
				res = r.StopLine
			}
		}
		t.Errorf("restored rows %v, want %v (target %s, stop line %q)", ids, want, value, res)
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(p, "\n"))
	}
}
