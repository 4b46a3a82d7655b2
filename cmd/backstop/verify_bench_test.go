package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// verifyScale is the pgbench scale of BenchmarkVerify's cluster (about 800 MB).
const verifyScale = "50"

// BenchmarkVerify measures a deep verification of a repository against `pgbackrest
// verify` of pgBackRest's repository of the same cluster, once (-benchtime 1x), on one
// pgbench (scale 50) cluster:
//
//  1. The cluster is loaded (pgbench -i) while archive_command discards WAL; then
//     pgBackRest's archive-push (zst level 3, two processes, as in
//     BenchmarkRepositoryFormat) becomes the archive_command. So each repository holds
//     one full backup of the same data and the WAL from around the backups, not the
//     WAL of the load, which Backstop never saw.
//  2. One full backup by each: `backstop backup` into a fresh home, and `pgbackrest
//     backup --type=full`.
//  3. Backstop's first deep run, which finds no pack proven and so rehashes every blob,
//     is timed once (cold when it can be). Then each tool verifies its repository with a
//     cold page cache, when the benchmark may drop it (as root: sync, then 3 written to
//     /proc/sys/vm/drop_caches before each run); then warm: once untimed, then three
//     rounds in turn, of which the median is reported. Without root only the warm runs
//     are measured. Backstop runs twice each time: `backstop verify --source bench
//     --deep --json` (the packs proven: every blob authenticated, those of the packs due
//     in the rotation also rehashed) and the same with --rehash (every blob rehashed,
//     the work of a first run). Each must find nothing; its throughput is the bytes_read
//     it reports by the wall time. `pgbackrest verify` must report "status: ok"; its
//     throughput is its repository's size (the summed file sizes below backup/ and
//     archive/) by the wall time. The repositories differ in size, so the time per byte
//     of the database, the same for both, is reported too. `backstop source list`, which
//     opens the home as verify does, is timed alongside: Backstop's fixed cost.
//
// What each checks, so that the comparison is honest:
//   - Backstop reads every pack whole: every blob is authenticated (its
//     XChaCha20-Poly1305 seal, bound to its name) and decrypted; decompressed and its
//     keyed hash (HMAC-SHA256) recomputed and compared with its name in a first run,
//     with --rehash, and for the packs not proven or due in the rotation; each pack's header and
//     sealed trailer index are checked against its index object. Then every manifest
//     and archived WAL file of the source is opened and every blob it refers to must
//     have a good copy in the index; and the archived WAL must be continuous across
//     the restorable window.
//   - pgBackRest 2.45 reads every file of every backup and compares the SHA-1 and size
//     of the bytes as stored (compressed) with the repository checksum ("rck") and size
//     its manifest records: it does not decompress backup files (it would, comparing
//     the content's SHA-1, only for files without an rck; the benchmark counts them).
//     It reads every archived WAL segment, decompresses it and compares its SHA-1 with
//     the one in its name; it checks archive.info and backup.info against their
//     copies, and that the WAL each backup needs to be consistent is in the archive.
//     So for backup files it hashes the repository's bytes, where Backstop opens,
//     decompresses and hashes the database's: about twenty times as many here.
//
// Before each run, as in BenchmarkRepositoryFormat, the benchmark waits (up to five
// minutes) for the rest of the machine to be idle and reports the CPU time others used
// meanwhile; CPU time and peak RSS are each command's, with its children.
func BenchmarkVerify(b *testing.B) {
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

	// archive_command is "true" while pgbench loads the cluster: its WAL is discarded.
	c := pgtest.Start(b, pgtest.Setting("shared_buffers", "128MB"), pgtest.Setting("max_wal_size", "2GB"),
		pgtest.Setting("autovacuum", "off"), pgtest.Setting("archive_mode", "on"),
		pgtest.Setting("archive_command", "true"))
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

	start := time.Now()
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", verifyScale, dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	b.Logf("pgbench -i -s %s: %s", verifyScale, time.Since(start).Round(time.Second))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
	formatArchived(b, conn)
	archiveCommand := "pgbackrest --config=" + conf + " --stanza=bench archive-push %p"
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET archive_command = '"+strings.ReplaceAll(archiveCommand, "'", "''")+"'"); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		b.Fatal(err)
	}
	asUser(b, "postgres", "pgbackrest", pgbrArgs("stanza-create")...)
	asUser(b, "postgres", "pgbackrest", pgbrArgs("check")...)

	var dataBytes int64
	if err := conn.QueryRow(ctx, `SELECT pg_database_size('postgres')`).Scan(&dataBytes); err != nil {
		b.Fatal(err)
	}
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

	// One full backup by each tool.
	home := filepath.Join(b.TempDir(), "home")
	benchRun(b, backstopBin, "--home", home, "init")
	benchRun(b, backstopBin, "--home", home, "source", "add", "bench", dsn)
	repoDir := filepath.Join(home, "repository")
	prepare()
	bsBackup := r.run(nil, backstopBin, "--home", home, "backup", "bench", "--json")
	full := formatDecodeBackup(b, bsBackup.Stdout)
	prepare()
	pbBackup := r.runAs("postgres", "pgbackrest", pgbrArgs("backup", "--type=full")...)
	formatArchived(b, conn)

	bsFiles, bsBytes := formatDirSize(b, repoDir)
	pbBackupFiles, pbBackupBytes := formatDirSize(b, filepath.Join(pbrRepo, "backup"))
	pbArchiveFiles, pbArchiveBytes := formatDirSize(b, filepath.Join(pbrRepo, "archive"))
	pbManifestFiles, pbManifestRck := verifyPBRChecksums(b, filepath.Join(pbrRepo, "backup", "bench"))
	pbBytes := pbBackupBytes + pbArchiveBytes

	// Each tool's verification, and Backstop's start (`backstop source list` opens the
	// home as verify does: the catalog, the repository's key and the index cache), run
	// cold once when the page cache can be dropped, then warm: once untimed, then
	// verifyRounds times in turn, of which the median is reported.
	verify := func(args ...string) formatMeasure {
		b.Helper()
		m := r.run(nil, backstopBin, append([]string{"--home", home, "verify", "--source", "bench", "--deep", "--json"}, args...)...)
		var res jobs.VerifyResult
		if err := json.Unmarshal(m.Stdout, &res); err != nil {
			b.Fatalf("backstop verify --json: %v: %s", err, m.Stdout)
		}
		if res.State != store.VerifyClean || len(res.Findings) != 0 || !res.Deep || res.PacksChecked != res.PacksTotal || res.BytesRead == 0 {
			b.Fatalf("backstop verify --deep --json = %s; want a clean deep run that read every pack", bytes.TrimSpace(m.Stdout))
		}
		return m
	}
	deep := func() formatMeasure { return verify() }
	rehash := func() formatMeasure { return verify("--rehash") }
	pgbr := func() formatMeasure {
		b.Helper()
		m := r.runAs("postgres", "pgbackrest", pgbrArgs("verify", "--output=text", "--verbose")...)
		if !bytes.Contains(m.Stdout, []byte("status: ok")) {
			b.Fatalf("pgbackrest verify = %s; want status: ok", m.Stdout)
		}
		return m
	}
	startup := func() formatMeasure {
		b.Helper()
		return r.run(nil, backstopBin, "--home", home, "source", "list", "--json")
	}
	tools := []func() formatMeasure{deep, pgbr, startup, rehash}

	cacheNote := "sync and /proc/sys/vm/drop_caches before each run"
	canDrop := true
	if err := verifyDropCaches(); err != nil {
		canDrop, cacheNote = false, "not measured: "+err.Error()
	}

	b.ResetTimer()
	// The first deep run finds no pack proven: it rehashes every blob.
	if canDrop {
		if err := verifyDropCaches(); err != nil {
			b.Fatal(err)
		}
	}
	r.waitQuiet()
	first := deep()
	var cold []formatMeasure
	if canDrop {
		for _, run := range tools {
			if err := verifyDropCaches(); err != nil {
				b.Fatal(err)
			}
			r.waitQuiet()
			cold = append(cold, run())
		}
	}
	for _, run := range tools {
		run() // into the page cache
	}
	r.waitQuiet()
	warmRuns := make([][]formatMeasure, len(tools))
	for range verifyRounds {
		for i, run := range tools {
			warmRuns[i] = append(warmRuns[i], run())
		}
	}
	b.StopTimer()
	warm := make([]formatMeasure, len(tools))
	for i, runs := range warmRuns {
		warm[i] = verifyMedian(runs)
	}

	// Report.
	var bsRes jobs.VerifyResult
	if err := json.Unmarshal(warm[0].Stdout, &bsRes); err != nil {
		b.Fatal(err)
	}
	bsRead := bsRes.BytesRead
	rehashed := func(m formatMeasure) string {
		var res jobs.VerifyResult
		if err := json.Unmarshal(m.Stdout, &res); err != nil {
			b.Fatal(err)
		}
		return fmt.Sprintf("%d of %d blobs rehashed", res.BlobsRehashed, res.BlobsChecked)
	}
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	b.ReportMetric(float64(dataBytes)/1e6, "data_MB")
	b.ReportMetric(float64(bsBytes)/1e6, "backstop_repo_MB")
	b.ReportMetric(float64(bsRead)/1e6, "backstop_read_MB")
	b.ReportMetric(float64(pbBytes)/1e6, "pgbackrest_repo_MB")
	report := func(pass string, ms []formatMeasure) {
		bs, pb, st, rh := ms[0], ms[1], ms[2], ms[3]
		bsRate, pbRate := mbps(bsRead, bs.Wall), mbps(pbBytes, pb.Wall)
		b.ReportMetric(rh.Wall.Seconds(), "backstop_rehash_"+pass+"_s")
		b.ReportMetric(mbps(bsRead, rh.Wall)/pbRate, "ratio_rehash_"+pass+"_MB/s_backstop/pgbackrest")
		b.ReportMetric(bs.Wall.Seconds(), "backstop_"+pass+"_s")
		b.ReportMetric(pb.Wall.Seconds(), "pgbackrest_"+pass+"_s")
		b.ReportMetric(st.Wall.Seconds(), "backstop_start_"+pass+"_s")
		b.ReportMetric(bsRate, "backstop_"+pass+"_MB/s")
		b.ReportMetric(pbRate, "pgbackrest_"+pass+"_MB/s")
		b.ReportMetric(bs.CPU.Seconds(), "backstop_"+pass+"_CPU_s")
		b.ReportMetric(pb.CPU.Seconds(), "pgbackrest_"+pass+"_CPU_s")
		b.ReportMetric(mib(bs.MaxRSS), "backstop_"+pass+"_RSS_MiB")
		b.ReportMetric(mib(pb.TreeRSS), "pgbackrest_"+pass+"_tree_RSS_MiB")
		b.ReportMetric(bsRate/pbRate, "ratio_"+pass+"_MB/s_backstop/pgbackrest")
		b.ReportMetric(pb.Wall.Seconds()/bs.Wall.Seconds(), "ratio_"+pass+"_time_pgbackrest/backstop")
	}
	b.ReportMetric(first.Wall.Seconds(), "backstop_first_s")
	if cold != nil {
		report("cold", cold)
	}
	report("warm", warm)
	b.ReportMetric(0, "ns/op") // one run of many measurements; the metrics above are the result

	var t strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&t, format+"\n", args...) }
	row := func(what string, m formatMeasure, read int64) {
		rate := ""
		if read > 0 {
			rate = fmt.Sprintf("%6.1f MB/s read  %6.1f MB/s of database", mbps(read, m.Wall), mbps(dataBytes, m.Wall))
		}
		line("  %-36s %5.2f s  %-40s CPU %5.2f s  RSS %4.0f MiB (tree %4.0f MiB)  others %4.1f s",
			what, m.Wall.Seconds(), rate, m.CPU.Seconds(), mib(m.MaxRSS), mib(m.TreeRSS), (m.Other + m.Steal).Seconds())
	}
	section := func(title string, ms []formatMeasure) {
		bs, pb, st, rh := ms[0], ms[1], ms[2], ms[3]
		line("%s", title)
		row("backstop verify --deep (proven)", bs, bsRead)
		row("backstop verify --deep --rehash", rh, bsRead)
		row("pgbackrest verify (process-max 2)", pb, pbBytes)
		row("backstop source list (start alone)", st, 0)
		line("  --deep: %s; --deep --rehash: %s", rehashed(bs), rehashed(rh))
		line("  ratio of MB/s read (backstop/pgbackrest): --deep %.2f, --deep --rehash %.2f; of wall time (pgbackrest/backstop) %.2f, %.2f",
			mbps(bsRead, bs.Wall)/mbps(pbBytes, pb.Wall), mbps(bsRead, rh.Wall)/mbps(pbBytes, pb.Wall),
			pb.Wall.Seconds()/bs.Wall.Seconds(), pb.Wall.Seconds()/rh.Wall.Seconds())
	}
	line("pgbench scale %s: database %s", verifyScale, mb(dataBytes))
	line("backstop backup: %.1f s; repository %s in %d files (%s new: %s data, %s WAL of %s)", bsBackup.Wall.Seconds(), mb(bsBytes), bsFiles,
		mb(full.StoredBytesNew), mb(full.StoredBytesNew-full.WALStoredBytesNew), mb(full.WALStoredBytesNew), mb(full.WALBytes))
	line("pgbackrest backup --type=full: %.1f s; repository %s: backup/ %s in %d files, archive/ %s in %d files", pbBackup.Wall.Seconds(),
		mb(pbBytes), mb(pbBackupBytes), pbBackupFiles, mb(pbArchiveBytes), pbArchiveFiles)
	line("backstop verify read %s of %d packs (the backup's plaintext: %s)", mb(bsRead), bsRes.PacksChecked, mb(full.SourceBytes))
	line("pgbackrest's manifest records a repository checksum (rck) for %d of its %d files", pbManifestRck, pbManifestFiles)
	line("CPU: user+sys of the command and its children; RSS: largest process (tree: summed, sampled every 50 ms);")
	line("others: CPU time of the rest of the machine meanwhile (the machine is shared)")
	first0 := "warm page cache"
	if canDrop {
		first0 = "cold page cache"
	}
	line("First deep run (no pack proven yet; %s)", first0)
	row("backstop verify --deep (first)", first, bsRead)
	line("  %s", rehashed(first))
	if cold != nil {
		section("Cold page cache ("+cacheNote+")", cold)
	} else {
		line("Cold page cache: %s", cacheNote)
	}
	section(fmt.Sprintf("Warm page cache (median of %d rounds)", verifyRounds), warm)
	for i, name := range []string{"backstop verify --deep", "pgbackrest verify", "backstop source list", "backstop verify --deep --rehash"} {
		var ws []string
		for _, m := range warmRuns[i] {
			ws = append(ws, fmt.Sprintf("%.2f s", m.Wall.Seconds()))
		}
		line("  %s, each warm round: %s", name, strings.Join(ws, ", "))
	}
	line("What each checks")
	line("  backstop: every pack read whole; every blob authenticated (XChaCha20-Poly1305) and decrypted; decompressed and its HMAC-SHA256")
	line("    name recomputed unless its pack was proven so before, these very seals (with --rehash: every blob; each proven pack once in 8")
	line("    deep runs); packs' headers and trailer indexes against the index objects; every manifest's and archived WAL file's references")
	line("    have a good copy; the archived WAL is continuous across the window")
	line("  pgbackrest: every backup file read, the SHA-1 and size of its stored (compressed) bytes compared with the manifest's rck")
	line("    (decompressed only without one); every WAL segment read, decompressed, its SHA-1 compared with its name; archive.info and")
	line("    backup.info against their copies; each backup's WAL present")
	b.Logf("backstop backup --json: %s", bytes.TrimSpace(bsBackup.Stdout))
	b.Logf("backstop verify --deep --json: %s", bytes.TrimSpace(warm[0].Stdout))
	b.Logf("pgbackrest verify --output=text --verbose:\n%s", bytes.TrimSpace(warm[1].Stdout))
	b.Logf("verify benchmark\n%s", t.String())
}

// verifyRounds is how many times BenchmarkVerify runs each tool on a warm page cache.
const verifyRounds = 3

// verifyMedian returns the run of median wall time.
func verifyMedian(runs []formatMeasure) formatMeasure {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b formatMeasure) int { return cmp.Compare(a.Wall, b.Wall) })
	return s[len(s)/2]
}

// verifyPBRChecksums counts the files of the pgBackRest backups below dir (a stanza's
// backup directory) and those whose manifest entry holds a repository checksum ("rck"),
// which `pgbackrest verify` compares with the stored bytes instead of decompressing them.
func verifyPBRChecksums(b *testing.B, dir string) (files, withRck int) {
	b.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var manifests []string
	for _, e := range entries {
		if e.IsDir() { // not the "latest" symbolic link
			if m := filepath.Join(dir, e.Name(), "backup.manifest"); verifyExists(m) {
				manifests = append(manifests, m)
			}
		}
	}
	if len(manifests) == 0 {
		b.Fatalf("no pgbackrest manifest below %s", dir)
	}
	for _, m := range manifests {
		text, err := os.ReadFile(m)
		if err != nil {
			b.Fatal(err)
		}
		section := ""
		for l := range strings.Lines(string(text)) {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "[") {
				section = l
				continue
			}
			if section != "[target:file]" || l == "" {
				continue
			}
			files++
			if strings.Contains(l, `"rck":`) {
				withRck++
			}
		}
	}
	return files, withRck
}

func verifyExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// verifyDropCaches writes dirty pages back and drops the page cache, dentries and
// inodes, so that the next read comes from the disk. It needs root.
func verifyDropCaches() error {
	if os.Geteuid() != 0 {
		return errors.New("dropping the page cache needs root")
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop the page cache: %w", err)
	}
	return nil
}
