package pg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/pg"
	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// TestStartDataDirIgnoresTheSourcesPaths: a data directory whose postgresql.conf names
// another data directory and a pid file elsewhere (as a copied source's may) starts on its
// own directory and writes no pid file outside it. Without the overrides the server would
// have run on the named directory: a restored copy on the live cluster's files.
func TestStartDataDirIgnoresTheSourcesPaths(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := pg.FindBinaries(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pgtest.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	other, err := pg.InitCluster(ctx, pg.ClusterOptions{Dir: filepath.Join(dir, "other"), Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	copy, err := pg.InitCluster(ctx, pg.ClusterOptions{Dir: filepath.Join(dir, "copy"), Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "shared.pid")
	conf, err := os.OpenFile(filepath.Join(copy.DataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conf, "data_directory = '%s'\nexternal_pid_file = '%s'\n", other.DataDir(), pidFile)
	conf.Close()

	c, err := pg.StartDataDir(ctx, pg.ServerOptions{Bin: bin, DataDir: copy.DataDir(), LogFile: filepath.Join(dir, "copylog", "copy.log"),
		SocketDir: filepath.Join(dir, "s")})
	if err != nil {
		t.Fatalf("StartDataDir() = %v", err)
	}
	defer c.Stop(context.Background(), "immediate")
	if _, err := os.Stat(filepath.Join(copy.DataDir(), "postmaster.pid")); err != nil {
		t.Errorf("the server did not run on its own directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other.DataDir(), "postmaster.pid")); err == nil {
		t.Errorf("the server ran on the directory its configuration named")
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("the server wrote the pid file its configuration named, outside its directory")
	}
}
