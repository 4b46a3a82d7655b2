package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage"
)

// killRows rows of 512 hexadecimal characters make about 200 MB of table.
const killRows = 360_000

// countPacks returns how many packs the home's repository holds.
func countPacks(t *testing.T, home string) int {
	t.Helper()
	n := 0
	err := homeStorage(t, home).List(context.Background(), "packs/", func(string, int64) error {
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// homeStorage opens where a home's repository is, as the commands do.
func homeStorage(t *testing.T, dir string) storage.Storage {
	t.Helper()
	st, err := (&home{dir: dir}).openStorage(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// backupProcess is a running `backstop backup NAME`.
type backupProcess struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{} // closed once the process has ended and been waited for
	waitErr        error
}

// wait waits for the process to end.
func (p *backupProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("backstop backup did not end within a minute")
		return nil
	}
}

// startBackupProcess starts `backstop backup NAME` and waits until it is copying: the job
// row, read from the catalog as another process would, is in phase "copying files", and
// the repository holds at least minNew packs more than before (a backup of data already
// stored adds next to none). It returns the process and the job.
func startBackupProcess(t *testing.T, home, name string, st *store.Store, sourceID int64, minNew int) (*backupProcess, store.Job) {
	t.Helper()
	before := countPacks(t, home)
	p := &backupProcess{cmd: command(t, home, "backup", name), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		job, err := st.ActiveJobByLock(ctx, jobs.BackupLockKey(sourceID))
		if err == nil && job.Owner.PID == p.cmd.Process.Pid && job.Phase == "copying files" && countPacks(t, home) >= before+minNew {
			return p, job
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ActiveJobByLock() = %v", err)
		}
		select {
		case <-p.exited:
			t.Fatalf("backstop backup %s ended before it was seen copying (too little data?)\nstdout:\n%s\nstderr:\n%s", name, &p.stdout, &p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			<-p.exited
			t.Fatalf("backstop backup %s showed no progress within a minute\nstderr:\n%s", name, &p.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jobBackup returns the backup that job took.
func jobBackup(t *testing.T, st *store.Store, job store.Job) store.Backup {
	t.Helper()
	bs, err := st.Backups(context.Background(), store.BackupFilter{SourceID: job.SourceID})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.JobID == job.ID {
			return b
		}
	}
	t.Fatalf("job %d has no backup", job.ID)
	return store.Backup{}
}

// openRepo opens a home's repository with its key file.
func openRepo(t *testing.T, home string) *repository.Repo {
	t.Helper()
	keyText, err := os.ReadFile(filepath.Join(home, "repository.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.DecodeKey(strings.TrimSpace(string(keyText)))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.OpenStorage(context.Background(), homeStorage(t, home), key, repository.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

// listStates returns the state of every backup by ID, as `backstop backup list --json` shows it.
func listStates(t *testing.T, home string) map[int64]string {
	t.Helper()
	stdout, stderr, code := runBinary(t, home, "backup", "list", "--json")
	if code != 0 {
		t.Fatalf("backstop backup list --json exited %d: %s", code, stderr)
	}
	var list []struct {
		ID    int64  `json:"id"`
		State string `json:"state"`
	}
	decodeJSON(t, "backup list --json", stdout, &list)
	out := make(map[int64]string, len(list))
	for _, b := range list {
		out[b.ID] = b.State
	}
	return out
}

// TestCLIBackupKilled kills `backstop backup` with SIGKILL in the middle of copying: no
// process is left to record the end, so the job stays running in the catalog until the
// next command sweeps it; then it is interrupted, its backup too, and never complete.
func TestCLIBackupKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.Start(t)
	dsn := c.DSN("")
	execSQL(t, dsn,
		`CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO big SELECT g, encode(sha512(g::text::bytea), 'hex') || encode(sha512((-g)::text::bytea), 'hex')
			|| encode(sha512((g + 0.5)::text::bytea), 'hex') || encode(sha512((g - 0.5)::text::bytea), 'hex')
			FROM generate_series(1, %d) g`, killRows),
		`CHECKPOINT`)
	t.Logf("table size: %d MB", queryInt(t, dsn, `SELECT pg_total_relation_size('big')`)>>20)

	home := filepath.Join(t.TempDir(), "home")
	if _, stderr, code := runBinary(t, home, "init"); code != 0 {
		t.Fatalf("backstop init exited %d: %s", code, stderr)
	}
	stdout, stderr, code := runBinary(t, home, "source", "add", "big", dsn)
	if code != 0 {
		t.Fatalf("backstop source add exited %d: %s", code, stderr)
	}
	sourceID := lastID(t, "source add", stdout)
	st := openCatalog(t, home)
	repo := openRepo(t, home)

	// SIGKILL in the middle of copying.
	proc, killed := startBackupProcess(t, home, "big", st, sourceID, 1)
	cmd := proc.cmd
	t.Logf("killing pid %d with %d packs in the repository", cmd.Process.Pid, countPacks(t, home))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	proc.wait(t)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("backstop backup ended with %v, want killed by SIGKILL", cmd.ProcessState)
	}

	// Nothing has swept yet: the catalog still says running.
	job, err := st.Job(ctx, killed.ID)
	if err != nil || job.State != store.JobRunning {
		t.Errorf("Job(%d) after SIGKILL = %s, %v, want still running until a command sweeps", killed.ID, job.State, err)
	}
	kb := jobBackup(t, st, killed)
	if kb.State != store.BackupRunning {
		t.Errorf("killed job's backup = %s, want still running until a command sweeps", kb.State)
	}
	// Every command sweeps before it reads: `backup list` shows the truth.
	if got := listStates(t, home)[kb.ID]; got != string(store.BackupInterrupted) {
		t.Errorf("backup list --json shows killed backup %d as %q, want %q", kb.ID, got, store.BackupInterrupted)
	}
	job, err = st.Job(ctx, killed.ID)
	if err != nil || job.State != store.JobInterrupted || job.FinishedAt == nil ||
		!strings.Contains(job.Error, fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("Job(%d) after backup list = %s, finished %v, error %q, %v; want interrupted, naming pid %d",
			killed.ID, job.State, job.FinishedAt, job.Error, err, cmd.Process.Pid)
	}

	// What the killed backup stored is collected by pruning once its lock is stale: no
	// manifest refers to it.
	keyText, err := os.ReadFile(filepath.Join(home, "repository.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.DecodeKey(string(keyText))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	pruner, err := repository.OpenStorage(ctx, homeStorage(t, home), key, repository.Options{StaleAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pruner.Close()
	packs := countPacks(t, home)
	res, err := pruner.Prune(ctx, repository.PruneOptions{Grace: -1, Delay: -1})
	if err != nil || res.PacksDeleted != packs || countPacks(t, home) != 0 {
		t.Errorf("Prune after the killed backup = %+v, %v, %d packs left; want all %d packs deleted", res, err, countPacks(t, home), packs)
	}

	// The next backup succeeds.
	stdout, stderr, code = runBinary(t, home, "backup", "big")
	if code != 0 {
		t.Fatalf("backstop backup after SIGKILL exited %d:\n%s", code, stderr)
	}
	nextID := lastID(t, "backup after SIGKILL", stdout)
	next, err := st.Backup(ctx, nextID)
	if err != nil || next.State != store.BackupComplete || next.ID == kb.ID {
		t.Fatalf("Backup(%d) printed by the next backup = %s, %v, want a new complete backup", nextID, next.State, err)
	}
	if kb = jobBackup(t, st, killed); kb.State != store.BackupInterrupted || kb.FinishedAt == nil {
		t.Errorf("killed job's backup after the sweep = %s, finished %v, want interrupted", kb.State, kb.FinishedAt)
	}
	if _, err := repo.Manifest(ctx, kb.RepoID); !errors.Is(err, repository.ErrNotFound) {
		t.Errorf("repository Manifest(%s) of the killed backup = %v, want repository.ErrNotFound", kb.RepoID, err)
	}
	if _, err := repo.Manifest(ctx, next.RepoID); err != nil {
		t.Errorf("repository Manifest(%s) of the next backup = %v", next.RepoID, err)
	}
	// Pruning again deletes nothing the next backup needs.
	if res, err := pruner.Prune(ctx, repository.PruneOptions{Grace: -1, Delay: -1}); err != nil || res.PacksDeleted != 0 {
		t.Errorf("Prune after the next backup = %+v, %v, want nothing deleted", res, err)
	}
	nm, err := pruner.Manifest(ctx, next.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nm.Files {
		names, err := pruner.FileBlocks(ctx, &nm.Files[i], nm.BlockSize)
		if err == nil {
			err = pruner.ReadBlobs(ctx, names, repository.ReadOptions{}, func(int, []byte) error { return nil })
		}
		if err != nil {
			t.Fatalf("after the prune, %s of the next backup: %v", nm.Files[i].Path, err)
		}
	}

	want := map[int64]string{kb.ID: "interrupted", next.ID: "complete"}
	if got := listStates(t, home); got[kb.ID] != want[kb.ID] || got[next.ID] != want[next.ID] {
		t.Errorf("backup list --json states = %v, want %v", got, want)
	}

	// The source is fine: it accepts connections, holds its data, and runs no backup.
	if n := queryInt(t, dsn, `SELECT count(*) FROM big`); n != killRows {
		t.Errorf("source holds %d rows after the kill, want %d", n, killRows)
	}
	deadline := time.Now().Add(30 * time.Second)
	for queryInt(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the source still runs a WAL sender 30 s after the backups")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := queryInt(t, dsn, `SELECT count(*) FROM pg_replication_slots`); n != 0 {
		t.Errorf("source has %d replication slots left, want 0", n)
	}

	t.Run("sigint", func(t *testing.T) {
		// Ctrl-C: the process stops the job itself and records it interrupted on its way out,
		// so the catalog is right at once, without a sweep.
		proc, job := startBackupProcess(t, home, "big", st, sourceID, 0)
		cmd, stderr := proc.cmd, &proc.stderr
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err := proc.wait(t)
		t.Logf("backstop backup after SIGINT: %v\n%s", err, lastLine(stderr.String()))
		if cmd.ProcessState.ExitCode() != 1 {
			t.Errorf("backstop backup exit code after SIGINT = %d, want 1", cmd.ProcessState.ExitCode())
		}
		if !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("backstop backup stderr after SIGINT = %q, want it to say the backup was interrupted", stderr)
		}
		got, err := st.Job(ctx, job.ID)
		if err != nil || got.State != store.JobInterrupted {
			t.Errorf("Job(%d) after SIGINT = %s (%q), %v, want interrupted", job.ID, got.State, got.Error, err)
		}
		if b := jobBackup(t, st, job); b.State != store.BackupInterrupted {
			t.Errorf("backup after SIGINT = %s, want interrupted", b.State)
		}
	})
}
