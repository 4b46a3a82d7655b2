package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// TestCLIRepositoryOnS3: a home whose repository is in S3-compatible object storage (a real
// versitygw on 127.0.0.1) backs up, restores a backup into a directory verified by
// pg_verifybackup, and restores to the latest point in time with serve streaming WAL into
// the bucket; nothing of the repository is on local disk, and the credentials are not in
// the home.
func TestCLIRepositoryOnS3(t *testing.T) {
	// Not parallel: the credentials reach the commands through the environment.
	endpoint, access, secret, bucket := s3test.StartServer(t)
	c := pgtest.Start(t)
	dsn := c.DSN("postgres")
	home := filepath.Join(reachableDir(t), "home")
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)

	// A wrong endpoint is refused at init, and leaves no home behind it.
	_, stderr, code := runBinary(t, home, "init", "--repository", "s3://"+bucket+"/backstop", "--s3-endpoint", "http://127.0.0.1:1",
		"--s3-path-style")
	if code == 0 || !strings.Contains(stderr, "cannot reach") {
		t.Errorf("init with an unreachable endpoint = exit %d, %q; want it refused naming the endpoint", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "repository.json")); err == nil {
		t.Errorf("a refused init left repository.json")
	}

	out := mustBackstop(t, home, "init", "--repository", "s3://"+bucket+"/backstop", "--s3-endpoint", endpoint, "--s3-path-style")
	if !strings.Contains(out, "s3://"+bucket+"/backstop") {
		t.Errorf("init = %q, want the repository named by its URL", out)
	}
	if _, err := os.Stat(filepath.Join(home, "repository")); err == nil {
		t.Errorf("a repository directory was made in the home although the repository is in S3")
	}
	if b, err := os.ReadFile(filepath.Join(home, "repository.json")); err != nil || strings.Contains(string(b), secret) {
		t.Errorf("repository.json = %q, %v; want it present and without the secret", b, err)
	}

	mustBackstop(t, home, "source", "add", "shop", dsn)
	execSQL(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY)`, `INSERT INTO orders SELECT generate_series(1, 500)`)
	backupID := lastLine(mustBackstop(t, home, "backup", "shop"))

	// Every object is in the bucket.
	key, err := os.ReadFile(filepath.Join(home, "repository.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewS3(context.Background(), s3test.Config(endpoint, access, secret, bucket, "backstop"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := repository.DecodeKey(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.OpenStorage(context.Background(), st, k, repository.Options{})
	if err != nil {
		t.Fatalf("the bucket holds no repository: %v", err)
	}
	ids, err := repo.Manifests(context.Background())
	repo.Close()
	if err != nil || len(ids) != 1 {
		t.Errorf("manifests in the bucket = %v, %v; want the one backup", ids, err)
	}

	into := filepath.Join(reachableDir(t), "full")
	out = mustBackstop(t, home, "restore", "--backup", backupID, "--into", into, "--verify")
	if !strings.Contains(out, "verified by pg_verifybackup") {
		t.Errorf("restore --backup = %q, want it verified", out)
	}

	startServe(t, home)
	execSQL(t, dsn, `INSERT INTO orders SELECT generate_series(501, 600)`)
	waitRestorable(t, home)
	port := freePort(t)
	pitr := filepath.Join(reachableDir(t), "pitr")
	if _, stderr, code := runBinary(t, home, "restore", "--source", "shop", "--to", "latest", "--into", pitr,
		"--start", "--port", fmt.Sprint(port)); code != 0 {
		t.Fatalf("restore --to latest = exit %d: %s", code, stderr)
	}
	defer stopDataDir(c.Binaries().Path("pg_ctl"), pitr)
	if got := queryInt(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", port), `SELECT count(*) FROM orders`); got < 500 {
		t.Errorf("rows after restoring to latest = %d, want at least the 500 of the backup", got)
	}
}
