package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// formatScale is the pgbench scale of BenchmarkRepositoryFormat's cluster (about 1.5 GiB).
const formatScale = "100"

// BenchmarkRepositoryFormat measures the repository format on one pgbench (scale 100)
// cluster, once (-benchtime 1x), against pg_basebackup and pgBackRest (zstd level 3 for
// all three; pgBackRest with two processes and its archive_command on the cluster):
//
//  1. a full backup into a fresh local repository: wall time and peak RSS;
//  2. a restore of that backup into an empty directory on the same disk;
//  3. a second backup after one row was updated on 1 % of pgbench_accounts' pages chosen
//     at random: what it adds to the repository, against pgBackRest's incremental;
//  4. the same full backup into S3 (versitygw on 127.0.0.1): time, objects written, RSS.
//
// Before each measurement the cluster's WAL is archived, a CHECKPOINT runs and the
// page cache is written back (sync), so that no measurement pays for the previous one,
// and the benchmark waits (up to five minutes) for the rest of the machine to be idle;
// each row reports the CPU time others used meanwhile, so a shared machine shows.
// Peak RSS is reported twice: the largest single process (wait4's ru_maxrss, which is
// what /usr/bin/time -v reports) and the peak of the summed RSS of the command's process
// tree, sampled every 50 ms (pgBackRest runs a main process and process-max workers).
func BenchmarkRepositoryFormat(b *testing.B) {
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		b.Skip("pgbackrest is not installed (apt-get install -y pgbackrest; make bench installs it)")
	}
	ctx := context.Background()
	backstopBin := filepath.Join(b.TempDir(), "backstop")
	if out, err := exec.Command("go", "build", "-o", backstopBin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	// pgBackRest's configuration, repository, logs and locks, owned by postgres.
	pbr := filepath.Join(b.TempDir(), "pgbackrest")
	for _, d := range []string{"repo", "log", "lock", "spool"} {
		if err := os.MkdirAll(filepath.Join(pbr, d), 0o750); err != nil {
			b.Fatal(err)
		}
	}
	if err := pgtest.Reachable(pbr); err != nil {
		b.Fatal(err)
	}
	conf := filepath.Join(pbr, "pgbackrest.conf")
	pbrRepo := filepath.Join(pbr, "repo")

	// Autovacuum off: nothing but the benchmark's own UPDATE changes the cluster between
	// Backstop's second backup and pgBackRest's incremental.
	c := pgtest.Start(b, pgtest.Setting("shared_buffers", "128MB"), pgtest.Setting("max_wal_size", "2GB"),
		pgtest.Setting("autovacuum", "off"), pgtest.Setting("archive_mode", "on"),
		pgtest.Setting("archive_command", "pgbackrest --config="+conf+" --stanza=bench archive-push %p"))
	bin := c.Binaries()
	dsn := c.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	sock, _ := queryText(ctx, conn, `SHOW unix_socket_directories`)
	sock = strings.TrimSpace(strings.Split(sock, ",")[0])
	cfg := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=2
log-path=%s
lock-path=%s
spool-path=%s
log-level-console=warn
start-fast=y
compress-type=zst
compress-level=3
process-max=2

[bench]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
pg1-user=postgres
`, pbrRepo, filepath.Join(pbr, "log"), filepath.Join(pbr, "lock"), filepath.Join(pbr, "spool"), c.DataDir(), c.Port(), sock)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", pbr).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v %s", err, out)
	}
	pgbrArgs := func(args ...string) []string {
		return append([]string{"--config=" + conf, "--stanza=bench"}, args...)
	}
	asUser(b, "postgres", "pgbackrest", pgbrArgs("stanza-create")...)

	start := time.Now()
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", formatScale, dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	b.Logf("pgbench -i -s %s: %s", formatScale, time.Since(start).Round(time.Second))
	asUser(b, "postgres", "pgbackrest", pgbrArgs("check")...)

	// prepare brings the cluster and the machine to the same state before each
	// measurement: every WAL segment archived, a checkpoint, dirty pages written back.
	r := formatRunner{b: b, roots: []int{os.Getpid(), formatPostmaster(b, c.DataDir())}}
	prepare := func() {
		b.Helper()
		formatArchived(b, conn)
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		r.waitQuiet()
	}
	pbInfo := func() formatPBRBackup {
		b.Helper()
		var info []struct {
			Backup []formatPBRBackup `json:"backup"`
		}
		out := asUser(b, "postgres", "pgbackrest", pgbrArgs("info", "--output=json")...)
		if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 || len(info[0].Backup) == 0 {
			b.Fatalf("pgbackrest info: %v\n%s", err, out)
		}
		return info[0].Backup[len(info[0].Backup)-1]
	}
	var dataBytes int64
	if err := conn.QueryRow(ctx, `SELECT pg_database_size('postgres')`).Scan(&dataBytes); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()

	// 1. Full backups.
	home := filepath.Join(b.TempDir(), "home")
	benchRun(b, backstopBin, "--home", home, "init")
	benchRun(b, backstopBin, "--home", home, "source", "add", "bench", dsn)
	repoDir := filepath.Join(home, "repository")
	initFiles, initBytes := formatDirSize(b, repoDir)

	prepare()
	bsFull := r.run(nil, backstopBin, "--home", home, "backup", "bench", "--json")
	full := formatDecodeBackup(b, bsFull.Stdout)
	fullFiles, fullBytes := formatDirSize(b, repoDir)

	prepare()
	pgbbDir := filepath.Join(b.TempDir(), "basebackup")
	pgbb := r.run(nil, bin.Path("pg_basebackup"), "-d", dsn, "-D", pgbbDir, "-Ft", "-X", "fetch",
		"--checkpoint=fast", "--compress=client-zstd:3")
	_, pgbbBytes := formatDirSize(b, pgbbDir)
	os.RemoveAll(pgbbDir)

	prepare()
	pbFull := r.runAs("postgres", "pgbackrest", pgbrArgs("backup", "--type=full")...)
	pbFullInfo := pbInfo()

	// 4. The same full backup into S3, with the data unchanged.
	endpoint, access, secret, bucket := s3test.StartServer(b)
	s3Env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	s3Home := filepath.Join(b.TempDir(), "s3home")
	r.run(s3Env, backstopBin, "--home", s3Home, "init", "--repository", "s3://"+bucket+"/backstop",
		"--s3-endpoint", endpoint, "--s3-path-style")
	r.run(s3Env, backstopBin, "--home", s3Home, "source", "add", "bench", dsn)
	s3Init := formatBucket(b, endpoint, access, secret, bucket)
	prepare()
	bsS3 := r.run(s3Env, backstopBin, "--home", s3Home, "backup", "bench", "--json")
	s3Full := formatDecodeBackup(b, bsS3.Stdout)
	s3After := formatBucket(b, endpoint, access, secret, bucket)

	// 2. Restores into an empty directory on the same disk.
	restoreRoot := filepath.Join(b.TempDir(), "restores")
	if err := os.Mkdir(restoreRoot, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := pgtest.Reachable(restoreRoot); err != nil {
		b.Fatal(err)
	}
	id := strconv.FormatInt(full.ID, 10)
	bsDir := filepath.Join(restoreRoot, "backstop")
	prepare()
	bsRestore := r.run(nil, backstopBin, "--home", home, "restore", "--backup", id, "--into", bsDir)
	restoredFiles, restoredBytes := formatDirSize(b, bsDir)
	// What --verify adds: pg_verifybackup alone, reading the directory back.
	prepare()
	pgVerify := r.run(nil, bin.Path("pg_verifybackup"), "--quiet", "--ignore=backstop-restore.json", bsDir)
	os.RemoveAll(bsDir)

	pbDir := filepath.Join(restoreRoot, "pgbackrest")
	if err := os.Mkdir(pbDir, 0o700); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "postgres:postgres", pbDir).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v %s", err, out)
	}
	prepare()
	pbRestore := r.runAs("postgres", "pgbackrest", pgbrArgs("restore", "--process-max=2", "--pg1-path="+pbDir)...)
	pbRestoredFiles, pbRestoredBytes := formatDirSize(b, pbDir)
	os.RemoveAll(pbDir)

	bsVerifyDir := filepath.Join(restoreRoot, "backstop-verify")
	prepare()
	bsVerify := r.run(nil, backstopBin, "--home", home, "restore", "--backup", id, "--into", bsVerifyDir, "--verify", "--json")
	var verified struct {
		Verified bool `json:"verified"`
	}
	if err := json.Unmarshal(bsVerify.Stdout, &verified); err != nil || !verified.Verified {
		b.Fatalf("restore --verify --json = %v, %s; want it verified by pg_verifybackup", err, bsVerify.Stdout)
	}
	os.RemoveAll(bsVerifyDir)

	// 3. One row updated on 1 % of pgbench_accounts' pages, chosen at random; then a
	// second backup with each tool.
	var pages int64
	if err := conn.QueryRow(ctx, `SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int`).Scan(&pages); err != nil {
		b.Fatal(err)
	}
	tag, err := conn.Exec(ctx, `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (
		SELECT min(aid) FROM pgbench_accounts GROUP BY (ctid::text::point)[0] ORDER BY random() LIMIT $1)`, pages/100)
	if err != nil {
		b.Fatal(err)
	}
	updated := tag.RowsAffected()
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}

	prepare()
	bsIncr := r.run(nil, backstopBin, "--home", home, "backup", "bench", "--json")
	incr := formatDecodeBackup(b, bsIncr.Stdout)
	incrFiles, incrBytes := formatDirSize(b, repoDir)

	prepare()
	_, pbRepoBefore := formatDirSize(b, pbrRepo)
	_, pbBackupBefore := formatDirSize(b, filepath.Join(pbrRepo, "backup"))
	pbIncr := r.runAs("postgres", "pgbackrest", pgbrArgs("backup", "--type=incr")...)
	_, pbRepoAfter := formatDirSize(b, pbrRepo)
	_, pbBackupAfter := formatDirSize(b, filepath.Join(pbrRepo, "backup"))
	pbIncrInfo := pbInfo()
	b.StopTimer()

	if pbIncrInfo.Type != "incr" || pbFullInfo.Type != "full" {
		b.Fatalf("pgbackrest info: last backups are %s and %s, want full and incr", pbFullInfo.Label, pbIncrInfo.Label)
	}

	// Report.
	fullData := full.StoredBytesNew - full.WALStoredBytesNew
	incrData := incr.StoredBytesNew - incr.WALStoredBytesNew
	s3Objects := s3After.keys - s3Init.keys
	b.ReportMetric(float64(dataBytes)/1e6, "data_MB")
	b.ReportMetric(bsFull.Wall.Seconds(), "backstop_full_s")
	b.ReportMetric(pgbb.Wall.Seconds(), "pg_basebackup_full_s")
	b.ReportMetric(pbFull.Wall.Seconds(), "pgbackrest_full_s")
	b.ReportMetric(bsS3.Wall.Seconds(), "backstop_s3_full_s")
	b.ReportMetric(mib(bsFull.MaxRSS), "backstop_full_RSS_MiB")
	b.ReportMetric(mib(pgbb.MaxRSS), "pg_basebackup_full_RSS_MiB")
	b.ReportMetric(mib(pbFull.MaxRSS), "pgbackrest_full_RSS_MiB")
	b.ReportMetric(mib(pbFull.TreeRSS), "pgbackrest_full_tree_RSS_MiB")
	b.ReportMetric(mib(bsS3.MaxRSS), "backstop_s3_full_RSS_MiB")
	b.ReportMetric(float64(fullData)/1e6, "backstop_full_stored_MB")
	b.ReportMetric(float64(pgbbBytes)/1e6, "pg_basebackup_full_stored_MB")
	b.ReportMetric(float64(pbFullInfo.Info.Repository.Size)/1e6, "pgbackrest_full_stored_MB")
	b.ReportMetric(float64(s3Objects), "backstop_s3_objects")
	b.ReportMetric(bsRestore.Wall.Seconds(), "backstop_restore_s")
	b.ReportMetric(pbRestore.Wall.Seconds(), "pgbackrest_restore_s")
	b.ReportMetric(bsVerify.Wall.Seconds(), "backstop_restore_verify_s")
	b.ReportMetric(pgVerify.Wall.Seconds(), "pg_verifybackup_s")
	b.ReportMetric(mib(bsRestore.MaxRSS), "backstop_restore_RSS_MiB")
	b.ReportMetric(mib(pbRestore.TreeRSS), "pgbackrest_restore_tree_RSS_MiB")
	b.ReportMetric(bsIncr.Wall.Seconds(), "backstop_incr_s")
	b.ReportMetric(pbIncr.Wall.Seconds(), "pgbackrest_incr_s")
	b.ReportMetric(float64(incrData)/1e6, "backstop_incr_stored_MB")
	b.ReportMetric(100*float64(incrData)/float64(fullData), "backstop_incr_pct_of_full")
	b.ReportMetric(float64(pbIncrInfo.Info.Repository.Delta)/1e6, "pgbackrest_incr_stored_MB")
	b.ReportMetric(bsFull.Wall.Seconds()/pgbb.Wall.Seconds(), "ratio_full_backstop/pg_basebackup")
	b.ReportMetric(bsFull.Wall.Seconds()/pbFull.Wall.Seconds(), "ratio_full_backstop/pgbackrest")
	b.ReportMetric(bsRestore.Wall.Seconds()/pbRestore.Wall.Seconds(), "ratio_restore_backstop/pgbackrest")
	b.ReportMetric(float64(incrData)/float64(pbIncrInfo.Info.Repository.Delta), "ratio_incr_bytes_backstop/pgbackrest")
	b.ReportMetric(bsS3.Wall.Seconds()/bsFull.Wall.Seconds(), "ratio_full_s3/local")
	b.ReportMetric(0, "ns/op") // one run of many measurements; the metrics above are the result

	var t strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&t, format+"\n", args...) }
	row := func(what string, m formatMeasure, note string) {
		line("  %-48s %6.1f s  CPU %5.1f s  RSS %4.0f MiB (tree %4.0f MiB)  others %4.1f s  %s", what, m.Wall.Seconds(), m.CPU.Seconds(),
			mib(m.MaxRSS), mib(m.TreeRSS), (m.Other + m.Steal).Seconds(), note)
	}
	line("pgbench scale %s: database %s, pgbench_accounts %d pages", formatScale, mb(dataBytes), pages)
	line("CPU: user+sys of the command and its children (not the server's); RSS: largest process of the command's tree")
	line("(wait4 ru_maxrss, as /usr/bin/time -v reports it); tree: peak of the tree's summed RSS, sampled every 50 ms;")
	line("others: CPU time of the rest of the machine meanwhile (other processes, kernel threads, steal): the machine is shared")
	line("1. Full backup")
	row("backstop backup (local)", bsFull, fmt.Sprintf("stored %s new (%s data + %s WAL of %s), source %s, %d blocks; repository +%s in %d files",
		mb(full.StoredBytesNew), mb(fullData), mb(full.WALStoredBytesNew), mb(full.WALBytes), mb(full.SourceBytes), full.Blocks,
		mb(fullBytes-initBytes), fullFiles-initFiles))
	row("pg_basebackup -Ft -X fetch client-zstd:3", pgbb, "output "+mb(pgbbBytes))
	row("pgbackrest backup --type=full (zst 3, 2 procs)", pbFull, fmt.Sprintf("size %s, repository %s",
		mb(pbFullInfo.Info.Size), mb(pbFullInfo.Info.Repository.Size)))
	line("2. Restore into an empty directory")
	row("backstop restore --backup", bsRestore, fmt.Sprintf("%d files, %s", restoredFiles, mb(restoredBytes)))
	row("pgbackrest restore --process-max=2", pbRestore, fmt.Sprintf("%d files, %s", pbRestoredFiles, mb(pbRestoredBytes)))
	row("backstop restore --backup --verify", bsVerify, "with pg_verifybackup")
	row("pg_verifybackup alone, on the first restore", pgVerify, "")
	line("3. One row updated on %d of %d pages of pgbench_accounts (%d rows), then a second backup", pages/100, pages, updated)
	row("backstop backup (same repository)", bsIncr, fmt.Sprintf("stored %s new data (%.2f %% of the full's %s) + %s WAL; %d of %d blocks new; repository +%s in %d files",
		mb(incrData), 100*float64(incrData)/float64(fullData), mb(fullData), mb(incr.WALStoredBytesNew), incr.BlocksNew, incr.Blocks,
		mb(incrBytes-fullBytes), incrFiles-fullFiles))
	row("pgbackrest backup --type=incr", pbIncr, fmt.Sprintf("info: size %s, delta %s, repository delta %s; backup/ +%s, repository +%s (with archived WAL)",
		mb(pbIncrInfo.Info.Size), mb(pbIncrInfo.Info.Delta), mb(pbIncrInfo.Info.Repository.Delta),
		mb(pbBackupAfter-pbBackupBefore), mb(pbRepoAfter-pbRepoBefore)))
	line("4. Full backup into S3 (versitygw on 127.0.0.1)")
	row("backstop backup (S3)", bsS3, fmt.Sprintf("stored %s new; %d objects written (%s; %d after init), %s",
		mb(s3Full.StoredBytesNew), s3Objects, s3After.sub(s3Init), s3Init.keys, mb(s3After.bytes-s3Init.bytes)))
	line("Ratios")
	line("  backstop / pg_basebackup full time      %6.2f", bsFull.Wall.Seconds()/pgbb.Wall.Seconds())
	line("  backstop / pgbackrest full time         %6.2f", bsFull.Wall.Seconds()/pbFull.Wall.Seconds())
	line("  backstop / pgbackrest restore time      %6.2f", bsRestore.Wall.Seconds()/pbRestore.Wall.Seconds())
	line("  backstop / pgbackrest incr stored bytes %6.4f", float64(incrData)/float64(pbIncrInfo.Info.Repository.Delta))
	line("  S3 / local full time                    %6.2f", bsS3.Wall.Seconds()/bsFull.Wall.Seconds())
	b.Logf("backstop backup --json, full: %s", bytes.TrimSpace(bsFull.Stdout))
	b.Logf("backstop backup --json, after the change: %s", bytes.TrimSpace(bsIncr.Stdout))
	b.Logf("repository format benchmark\n%s", t.String())
}

// formatPBRBackup is one backup of `pgbackrest info --output=json`.
type formatPBRBackup struct {
	Label string `json:"label"`
	Type  string `json:"type"`
	Info  struct {
		Size       int64 `json:"size"`
		Delta      int64 `json:"delta"`
		Repository struct {
			Size  int64 `json:"size"`
			Delta int64 `json:"delta"`
		} `json:"repository"`
	} `json:"info"`
}

// formatBackup is what `backstop backup --json` prints.
type formatBackup struct {
	ID                int64 `json:"id"`
	SourceBytes       int64 `json:"source_bytes"`
	StoredBytesNew    int64 `json:"stored_bytes_new"`
	WALBytes          int64 `json:"wal_bytes"`
	WALStoredBytesNew int64 `json:"wal_stored_bytes_new"`
	Blocks            int64 `json:"blocks"`
	BlocksNew         int64 `json:"blocks_new"`
}

func formatDecodeBackup(b *testing.B, stdout []byte) formatBackup {
	b.Helper()
	var fb formatBackup
	if err := json.Unmarshal(stdout, &fb); err != nil || fb.ID == 0 {
		b.Fatalf("backup --json: %v: %s", err, stdout)
	}
	return fb
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// formatArchived waits until the WAL written so far is archived by the cluster's
// archive_command.
func formatArchived(b *testing.B, conn *pgx.Conn) {
	b.Helper()
	ctx := context.Background()
	var seg string
	// pg_walfile_name of the switch's end names the segment just completed (or, with no
	// WAL since the last switch, the one before the current).
	if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var last, failed *string
		if err := conn.QueryRow(ctx, `SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver`).Scan(&last, &failed); err != nil {
			b.Fatal(err)
		}
		if last != nil && *last >= seg {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("segment %s not archived after 10 minutes (last archived %v, last failed %v)", seg, deref(last), deref(failed))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// formatMeasure is one command's wall time, peak RSS and output.
type formatMeasure struct {
	Wall time.Duration
	// CPU is the user and system time of the process and the descendants it waited for.
	CPU time.Duration
	// MaxRSS is the peak RSS of the largest process of the tree: wait4's ru_maxrss covers
	// the child and the descendants it waited for, as /usr/bin/time -v reports it.
	MaxRSS int64
	// TreeRSS is the peak of the summed RSS of the process and its descendants, sampled.
	TreeRSS int64
	// Other is the CPU time used by the rest of the machine meanwhile (neither the
	// command nor the cluster nor the test), and Steal what the hypervisor took.
	Other, Steal time.Duration
	Stdout       []byte
}

// formatRunner runs and measures the benchmark's commands.
type formatRunner struct {
	b *testing.B
	// roots are the benchmark's processes: the test's own, whose tree holds the
	// commands and versitygw, and the cluster's postmaster.
	roots []int
}

// waitQuiet waits, up to five minutes, for three seconds in a row in which the rest of
// the machine used less than a tenth of a CPU: the machine may be shared with other work.
func (r formatRunner) waitQuiet() {
	r.b.Helper()
	const limit = 5 * time.Minute
	start := time.Now()
	quiet := 0
	for quiet < 3 {
		if time.Since(start) > limit {
			r.b.Logf("the machine was not quiet within %s; measuring anyway (see the others column)", limit)
			return
		}
		m := cpuMeter{roots: r.roots}
		m.start()
		time.Sleep(time.Second)
		other, steal := m.stop()
		if other+steal < 100*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		r.b.Logf("waited %s for the rest of the machine to be quiet", d.Round(time.Second))
	}
}

// runAs runs name as the OS user through runuser; the RSS covers runuser's tree.
func (r formatRunner) runAs(user, name string, args ...string) formatMeasure {
	r.b.Helper()
	return r.run(nil, "runuser", append([]string{"-u", user, "--", name}, args...)...)
}

// run runs a command with env added to the environment, failing the benchmark on error,
// and measures it.
func (r formatRunner) run(env []string, name string, args ...string) formatMeasure {
	b := r.b
	b.Helper()
	meter := cpuMeter{roots: r.roots}
	meter.start()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	sampler := sampleTreeRSS(cmd.Process.Pid, 50*time.Millisecond)
	err := cmd.Wait()
	wall := time.Since(start)
	tree := sampler.stop()
	other, steal := meter.stop()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	m := formatMeasure{Wall: wall, TreeRSS: tree, Stdout: stdout.Bytes(), Other: other, Steal: steal,
		CPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
	}
	m.TreeRSS = max(m.TreeRSS, m.MaxRSS) // a process shorter than the sampling interval
	return m
}

// treeSampler samples the summed RSS of a process tree until stopped.
type treeSampler struct {
	mu   sync.Mutex
	peak int64
	quit chan struct{}
	done chan struct{}
}

func sampleTreeRSS(pid int, every time.Duration) *treeSampler {
	s := &treeSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n := treeRSS(pid)
			s.mu.Lock()
			s.peak = max(s.peak, n)
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in bytes.
func (s *treeSampler) stop() int64 {
	close(s.quit)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// procs is a snapshot of /proc: each process's children, and its stat fields from the
// state on (after "pid (comm) ", which may hold spaces and parentheses).
type procs struct {
	children map[int][]int
	stat     map[int][]string
}

func readProcs() procs {
	p := procs{children: map[int][]int{}, stat: map[int][]string{}}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return p
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 15 {
			continue
		}
		p.stat[pid] = f
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			p.children[ppid] = append(p.children[ppid], pid)
		}
	}
	return p
}

// tree returns the roots and their descendants, each once.
func (p procs) tree(roots ...int) []int {
	var out []int
	seen := map[int]bool{}
	for todo := slices.Clone(roots); len(todo) > 0; {
		pid := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], p.children[pid]...)
		if !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	return out
}

// cpuTicks returns the CPU time of the processes, with that of the children they
// waited for, in clock ticks.
func (p procs) cpuTicks(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		f := p.stat[pid]
		if f == nil {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			sum += n
		}
	}
	return sum
}

// treeRSS returns the summed resident set size of pid and its descendants, from /proc.
func treeRSS(root int) int64 {
	var sum int64
	page := int64(os.Getpagesize())
	for _, pid := range readProcs().tree(root) {
		statm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "statm"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(statm)); len(f) >= 2 {
			if n, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				sum += n * page
			}
		}
	}
	return sum
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuMeter tells what else ran on the machine during a measurement: the CPU time of
// every process and kernel thread but the benchmark's own (this process's tree and the
// cluster's), and the time the hypervisor took from the machine (steal).
type cpuMeter struct {
	roots             []int
	busy, steal, ours int64
}

func (m *cpuMeter) read() (busy, steal, ours int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	p := readProcs()
	return n(1) + n(2) + n(3) + n(6) + n(7), n(8), p.cpuTicks(p.tree(m.roots...))
}

func (m *cpuMeter) start() { m.busy, m.steal, m.ours = m.read() }

// stop returns the CPU time others used, and the steal, since start.
func (m *cpuMeter) stop() (other, steal time.Duration) {
	busy, st, ours := m.read()
	o := max(0, (busy-m.busy)-(ours-m.ours))
	return time.Duration(o) * clockTick, time.Duration(st-m.steal) * clockTick
}

// formatPostmaster returns the PID of the postmaster of the cluster in dataDir.
func formatPostmaster(b *testing.B, dataDir string) int {
	b.Helper()
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		b.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// formatDirSize returns the number of regular files below dir and their summed sizes.
func formatDirSize(b *testing.B, dir string) (files, size int64) {
	b.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += fi.Size()
		return nil
	})
	if err != nil {
		b.Fatalf("size of %s: %v", dir, err)
	}
	return files, size
}

// formatObjects counts a bucket's objects, in all and by their directory below the
// repository's prefix.
type formatObjects struct {
	keys, bytes int64
	byDir       map[string]int64
}

// sub describes, by directory, the objects of o that were not in before.
func (o formatObjects) sub(before formatObjects) string {
	var parts []string
	for d, n := range o.byDir {
		if n -= before.byDir[d]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", d, n))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func formatBucket(b *testing.B, endpoint, access, secret, bucket string) formatObjects {
	b.Helper()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		UsePathStyle: true,
	})
	o := formatObjects{byDir: map[string]int64{}}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			b.Fatalf("list bucket %s: %v", bucket, err)
		}
		for _, obj := range page.Contents {
			o.keys++
			o.bytes += aws.ToInt64(obj.Size)
			// prefix/dir/...: counted by dir.
			_, rest, _ := strings.Cut(aws.ToString(obj.Key), "/")
			if dir, _, ok := strings.Cut(rest, "/"); ok {
				rest = dir + "/"
			}
			o.byDir[rest]++
		}
	}
	return o
}
