package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// retentionDays is how many daily backups BenchmarkRetention keeps.
const retentionDays = 14

// retentionLoad is the steady load of each day: pgbench's default transaction, this many
// per client, two clients (6,000 transactions).
var retentionLoad = []string{"-n", "-t", "3000", "-c", "2"}

// BenchmarkRetention measures what 14 days of a source's history cost to keep, against
// pgBackRest, and how long expiring half of it takes, on local disk and in S3 (versitygw
// on 127.0.0.1). One run (-benchtime 1x) of one pgbench (scale 50) cluster:
//
//  1. Backstop streams the cluster's WAL with `backstop serve`, into two homes at once:
//     one with its repository on local disk, one in S3 (a serve process each; the
//     sources are named differently, so each has its own replication slot). Both have
//     the policy `--window 14d --schedule none`. pgBackRest (zst level 3, two processes,
//     as in BenchmarkRepositoryFormat) archives the same WAL by archive_command, with
//     time-based retention of 14 days.
//  2. Each of 14 "days": one row updated on 1 % of pgbench_accounts' pages chosen at
//     random, then `pgbench -n -t 3000 -c 2`; then a full backup into each Backstop home
//     and a pgBackRest backup (the first --type=full, then --type=incr: each incremental
//     stores the files changed since the backup before, so the chain is one full and 13
//     increments). Real days cannot pass: the 14 backups are taken back to back, so the
//     14-day window holds all of them for both tools and neither expires anything; the
//     sizes are what 14 days of this history cost to keep.
//  3. After each day, once both tools have archived all WAL written so far: the
//     repository sizes (the sum of the file sizes below <home>/repository; the bucket's
//     objects; pgBackRest's repository, backup/ and archive/). At the end, where
//     Backstop's bytes go (packs/, index/, manifests; the WAL's share) and the ratio of
//     the repositories, whose target is at most 0.5.
//  4. Expiry of half the history: the policy's window set to the time since the 8th
//     backup finished, with --min-keep 1, so that backups 1 to 7 and the WAL before the
//     8th go; `backstop expire --dry-run --json`, then `backstop expire --json`, timed,
//     on each home in turn while serve keeps streaming. Pruning marks only packs older
//     than its grace period (1 h) and deletes them a delay (15 min) after the mark, so
//     right after expiry the repository has lost only the manifests; what the hourly
//     prune frees later is measured last, with serve stopped, by a prune in this process
//     with neither grace nor delay.
//
// The daily backups are measured as they come: the benchmark does not wait for the
// machine to be idle before them (14 times up to five minutes), only before the expiry.
// Autovacuum is off, so that nothing but the day's load changes the cluster between the
// tools' backups.
func BenchmarkRetention(b *testing.B) {
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
	// Time-based retention of 14 days: every full of the last 14 days is kept, with the
	// increments and the archived WAL that depend on it, as Backstop's 14-day window.
	cfg := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full-type=time
repo1-retention-full=%d
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
`, pbrRepo, retentionDays, filepath.Join(pbr, "log"), filepath.Join(pbr, "lock"), filepath.Join(pbr, "spool"), c.DataDir(), c.Port(), sock)
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
	if out, err := exec.Command(bin.Path("pgbench"), "-i", "-q", "-s", benchScale, dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	b.Logf("pgbench -i -s %s: %s", benchScale, time.Since(start).Round(time.Second))
	asUser(b, "postgres", "pgbackrest", pgbrArgs("check")...)
	var dataBytes, pages int64
	if err := conn.QueryRow(ctx, `SELECT pg_database_size('postgres'),
		pg_relation_size('pgbench_accounts') / current_setting('block_size')::int`).Scan(&dataBytes, &pages); err != nil {
		b.Fatal(err)
	}

	r := formatRunner{b: b, roots: []int{os.Getpid(), formatPostmaster(b, c.DataDir())}}
	endpoint, access, secret, bucket := s3test.StartServer(b)
	s3Env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	local := &retentionHome{b: b, r: r, bin: backstopBin, source: "bench", dir: filepath.Join(b.TempDir(), "home")}
	inS3 := &retentionHome{b: b, r: r, bin: backstopBin, source: "bench-s3", dir: filepath.Join(b.TempDir(), "s3home"), env: s3Env}
	local.size = func() int64 { _, n := formatDirSize(b, local.repoDir()); return n }
	inS3.size = func() int64 { return formatBucket(b, endpoint, access, secret, bucket).bytes }
	homes := []*retentionHome{local, inS3}
	local.cli("init")
	inS3.cli("init", "--repository", "s3://"+bucket+"/backstop", "--s3-endpoint", endpoint, "--s3-path-style")
	for _, h := range homes {
		h.cli("source", "add", h.source, dsn)
		h.cli("policy", "set", "--source", h.source, "--window", fmt.Sprintf("%dd", retentionDays), "--schedule", "none")
		h.open(ctx)
		defer h.close()
	}
	for _, h := range homes {
		h.serve()
	}
	retentionSlots(b, conn, len(homes))

	// caughtUp waits until pgBackRest and both homes have archived every WAL segment
	// written so far.
	caughtUp := func() {
		b.Helper()
		retentionArchived(b, conn)
		var lsn string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
			b.Fatal(err)
		}
		for _, h := range homes {
			h.waitWAL(ctx, rpoLSN(lsn))
		}
	}
	pbInfo := func() []formatPBRBackup {
		b.Helper()
		var info []struct {
			Backup []formatPBRBackup `json:"backup"`
		}
		out := asUser(b, "postgres", "pgbackrest", pgbrArgs("info", "--output=json")...)
		if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
			b.Fatalf("pgbackrest info: %v\n%s", err, out)
		}
		return info[0].Backup
	}
	caughtUp()
	startWAL := retentionWAL(b, conn)

	b.ResetTimer()

	// 1-3. Fourteen days of changes, load and backups.
	var days []retentionDay
	for day := 1; day <= retentionDays; day++ {
		var d retentionDay
		wal := retentionWAL(b, conn)
		d.updated = retentionChange(b, conn, pages)
		start := time.Now()
		if out, err := exec.Command(bin.Path("pgbench"), append(slices.Clone(retentionLoad), dsn)...).CombinedOutput(); err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out)
		}
		d.load = time.Since(start)

		retentionArchived(b, conn)
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
		for _, h := range homes {
			m := h.run("backup", h.source, "--json")
			d.backups = append(d.backups, m)
			d.stats = append(d.stats, formatDecodeBackup(b, m.Stdout))
		}
		typ := "--type=incr"
		if day == 1 {
			typ = "--type=full"
		}
		d.pb = r.runAs("postgres", "pgbackrest", pgbrArgs("backup", typ)...)
		d.wal = retentionWAL(b, conn) - wal

		caughtUp()
		for _, h := range homes {
			d.sizes = append(d.sizes, h.size())
		}
		_, d.pbBackup = formatDirSize(b, filepath.Join(pbrRepo, "backup"))
		_, d.pbArchive = formatDirSize(b, filepath.Join(pbrRepo, "archive"))
		days = append(days, d)
		b.Logf("day %2d: %d rows updated, pgbench %s, %s of WAL; backstop %.1f s (%s new: %s data, %s WAL; %d of %d blocks new), S3 %.1f s; pgbackrest %s %.1f s; "+
			"repository: backstop %s, S3 %s, pgbackrest %s (backup/ %s, archive/ %s), ratio %.3f",
			day, d.updated, d.load.Round(100*time.Millisecond), mb(d.wal),
			d.backups[0].Wall.Seconds(), mb(d.stats[0].StoredBytesNew), mb(d.stats[0].StoredBytesNew-d.stats[0].WALStoredBytesNew), mb(d.stats[0].WALStoredBytesNew),
			d.stats[0].BlocksNew, d.stats[0].Blocks, d.backups[1].Wall.Seconds(), strings.TrimPrefix(typ, "--type="), d.pb.Wall.Seconds(),
			mb(d.sizes[0]), mb(d.sizes[1]), mb(d.pbBackup+d.pbArchive), mb(d.pbBackup), mb(d.pbArchive),
			float64(d.sizes[0])/float64(d.pbBackup+d.pbArchive))
	}
	walTotal := retentionWAL(b, conn) - startWAL
	pbBackups := pbInfo()
	if len(pbBackups) != retentionDays || pbBackups[0].Type != "full" || pbBackups[len(pbBackups)-1].Type != "incr" {
		b.Fatalf("pgbackrest info: %d backups, want %d (one full, then incrementals): nothing may expire", len(pbBackups), retentionDays)
	}
	last := days[len(days)-1]
	pbTotal := last.pbBackup + last.pbArchive
	bsTotal := last.sizes[0]
	parts := local.parts()
	share := local.share(ctx)

	// 4. Expiry of half the history, on local disk, then in S3.
	for _, h := range homes {
		r.waitQuiet()
		h.expireHalf()
	}
	b.StopTimer()

	// What the hourly prune frees later: serve stopped, a prune with neither grace nor delay.
	b.Setenv("AWS_ACCESS_KEY_ID", access)
	b.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	for _, h := range homes {
		h.stopServe()
		h.pruneNow(ctx)
	}

	// Report.
	b.ReportMetric(float64(dataBytes)/1e6, "data_MB")
	b.ReportMetric(float64(walTotal)/1e6, "wal_written_MB")
	b.ReportMetric(float64(bsTotal)/1e6, "backstop_repo_MB")
	b.ReportMetric(float64(last.sizes[1])/1e6, "backstop_s3_repo_MB")
	b.ReportMetric(float64(pbTotal)/1e6, "pgbackrest_repo_MB")
	b.ReportMetric(float64(bsTotal)/float64(pbTotal), "ratio_repo_backstop/pgbackrest")
	b.ReportMetric(float64(share.walStored)/1e6, "backstop_wal_MB")
	b.ReportMetric(float64(share.piecesStored)/1e6, "backstop_wal_pieces_MB")
	b.ReportMetric(local.prune.Wall.Seconds(), "backstop_later_prune_s")
	b.ReportMetric(inS3.prune.Wall.Seconds(), "backstop_s3_later_prune_s")
	b.ReportMetric(float64(last.pbArchive)/1e6, "pgbackrest_archive_MB")
	b.ReportMetric(local.expiry.Wall.Seconds(), "backstop_expire_s")
	b.ReportMetric(inS3.expiry.Wall.Seconds(), "backstop_s3_expire_s")
	b.ReportMetric(float64(local.sizeAfter)/1e6, "backstop_repo_after_expire_MB")
	b.ReportMetric(float64(local.sizePruned)/1e6, "backstop_repo_after_prune_MB")
	b.ReportMetric(float64(inS3.sizePruned)/1e6, "backstop_s3_repo_after_prune_MB")
	b.ReportMetric(0, "ns/op") // one run of many measurements; the metrics above are the result

	var t strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&t, format+"\n", args...) }
	line("pgbench scale %s: database %s, pgbench_accounts %d pages; each day %d rows updated on as many pages, then pgbench %s",
		benchScale, mb(dataBytes), pages, pages/100, strings.Join(retentionLoad, " "))
	line("%d days, %s of WAL written", retentionDays, mb(walTotal))
	line("day  WAL written  backstop: backup  new data   new WAL  blocks new  repository | S3: backup  bucket    | pgbackrest: backup     backup/    archive/   total     | ratio")
	for i, d := range days {
		pbType := "incr"
		if i == 0 {
			pbType = "full"
		}
		line("%3d  %10s  %15.1f s %9s %9s %9.1f %% %12s | %8.1f s %10s | %12s %5.1f s %10s %10s %10s | %5.3f", i+1, mb(d.wal),
			d.backups[0].Wall.Seconds(), mb(d.stats[0].StoredBytesNew-d.stats[0].WALStoredBytesNew), mb(d.stats[0].WALStoredBytesNew),
			100*float64(d.stats[0].BlocksNew)/float64(d.stats[0].Blocks), mb(d.sizes[0]),
			d.backups[1].Wall.Seconds(), mb(d.sizes[1]),
			pbType, d.pb.Wall.Seconds(), mb(d.pbBackup), mb(d.pbArchive), mb(d.pbBackup+d.pbArchive),
			float64(d.sizes[0])/float64(d.pbBackup+d.pbArchive))
	}
	line("After %d days", retentionDays)
	line("  backstop %s/repository: %s (%s)", local.dir, mb(bsTotal), parts)
	stored := share.backupData + share.backupWAL + share.walStored + share.piecesStored
	line("    stored by backups: %s data + %s WAL; by WAL streaming: %s in %d files (%s), and %s in %d pieces of segments being written, superseded since;",
		mb(share.backupData), mb(share.backupWAL), mb(share.walStored), share.walFiles, share.walKinds, mb(share.piecesStored), share.pieces)
	line("    together %s; the rest of packs/ (%s) is the packs' own indexes and blocks written again (block maps, concurrent writers)",
		mb(stored), mb(share.packs-stored))
	line("  backstop in S3: %s", mb(last.sizes[1]))
	line("  pgbackrest: %s (backup/ %s, archive/ %s)", mb(pbTotal), mb(last.pbBackup), mb(last.pbArchive))
	line("  backstop / pgbackrest: %.3f (target at most 0.5); without the superseded pieces, which pruning collects: %.3f",
		float64(bsTotal)/float64(pbTotal), float64(bsTotal-share.piecesStored)/float64(pbTotal))
	line("  backups alone (backstop data / pgbackrest backup/): %.3f; WAL alone (segments / archive/): %.3f, with the pieces: %.3f",
		float64(share.backupData)/float64(last.pbBackup), float64(share.backupWAL+share.walStored)/float64(last.pbArchive),
		float64(share.backupWAL+share.walStored+share.piecesStored)/float64(last.pbArchive))
	line("Expiry of backups 1-7 (window = time since backup 8 finished, --min-keep 1), serve streaming")
	for _, h := range homes {
		where := "local"
		if h.env != nil {
			where = "S3"
		}
		line("  %-5s dry run: %s", where, h.dryRun.Summary)
		p := h.result.Prune
		line("  %-5s backstop expire %6.2f s (CPU %.2f s, RSS %.0f MiB, others %.1f s): %d backups and %d WAL files (%s) expired; "+
			"prune: %d manifests and %d WAL files deleted (%d superseded pieces), %d packs marked, %d repacked, %d deleted (%s); repository %s -> %s",
			where, h.expiry.Wall.Seconds(), h.expiry.CPU.Seconds(), mib(h.expiry.MaxRSS), (h.expiry.Other + h.expiry.Steal).Seconds(),
			h.result.Sources[0].Backups, h.result.Sources[0].WALFiles, mb(h.result.Sources[0].WALBytes),
			p.BackupsDeleted, p.WALDeleted, p.PiecesDeleted, p.PacksMarked, p.PacksRepacked, p.PacksDeleted, mb(p.BytesDeleted),
			mb(h.sizeBefore), mb(h.sizeAfter))
		q := h.pruned
		line("  %-5s later prune (no grace, no delay, serve stopped) %6.2f s (CPU %.1f s, others %.1f s): %d packs marked, %d repacked, %d deleted (%s); repository %s",
			where, h.prune.Wall.Seconds(), h.prune.CPU.Seconds(), (h.prune.Other + h.prune.Steal).Seconds(),
			q.PacksMarked, q.PacksRepacked, q.PacksDeleted, mb(q.BytesDeleted), mb(h.sizePruned))
	}
	line("  pgbackrest: the 14 backups are one full and its 13 increments; none can expire before the full does")
	b.Logf("retention benchmark\n%s", t.String())
}

// retentionDay is what one day of BenchmarkRetention measured.
type retentionDay struct {
	updated int64
	load    time.Duration
	// wal is the WAL the cluster wrote that day, in bytes.
	wal int64
	// backups and stats are Backstop's backups, local then S3; pb pgBackRest's.
	backups []formatMeasure
	stats   []formatBackup
	pb      formatMeasure
	// sizes are the Backstop repositories' sizes at the end of the day, local then S3;
	// pbBackup and pbArchive pgBackRest's backup/ and archive/.
	sizes               []int64
	pbBackup, pbArchive int64
}

// retentionChange updates one row on 1 % of pgbench_accounts' pages, chosen at random,
// as BenchmarkRepositoryFormat does, and returns the number of rows updated.
func retentionChange(b *testing.B, conn *pgx.Conn, pages int64) int64 {
	b.Helper()
	tag, err := conn.Exec(context.Background(), `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (
		SELECT min(aid) FROM pgbench_accounts GROUP BY (ctid::text::point)[0] ORDER BY random() LIMIT $1)`, pages/100)
	if err != nil {
		b.Fatal(err)
	}
	return tag.RowsAffected()
}

// retentionArchived waits until the WAL written so far is archived by the cluster's
// archive_command: until no segment up to the one just completed waits in
// archive_status as .ready. (formatArchived compares pg_stat_archiver's
// last_archived_wal with the segment, which never holds when the last file archived is
// a backup history file: after a pgBackRest backup it is named after the backup's start
// segment, below the segment its stop completed, and archived after it.)
func retentionArchived(b *testing.B, conn *pgx.Conn) {
	b.Helper()
	ctx := context.Background()
	var seg string
	if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var waiting int
		var failed *string
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_ls_archive_statusdir()
			WHERE name LIKE '%.ready' AND left(name, 24) <= $1), (SELECT last_failed_wal FROM pg_stat_archiver)`, seg).Scan(&waiting, &failed); err != nil {
			b.Fatal(err)
		}
		if waiting == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("segment %s not archived after 10 minutes (%d files up to it waiting, last failed %v)", seg, waiting, deref(failed))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retentionWAL returns the WAL the cluster has generated since its statistics were
// reset, in bytes: the records alone, not the rest of the segments WAL switches skip.
func retentionWAL(b *testing.B, conn *pgx.Conn) int64 {
	b.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT wal_bytes::bigint FROM pg_stat_wal`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// retentionSlots waits until n Backstop replication slots stream.
func retentionSlots(b *testing.B, conn *pgx.Conn, n int) {
	b.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		var active int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'backstop%' AND active`).Scan(&active); err != nil {
			b.Fatal(err)
		}
		if active >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d backstop slots streaming after a minute", active, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retentionHome is one Backstop home of BenchmarkRetention, with its serve process and
// what its expiry measured.
type retentionHome struct {
	b      *testing.B
	r      formatRunner
	bin    string
	source string
	dir    string
	// env is added to every command's environment (the S3 credentials).
	env []string
	// size returns the repository's size in bytes.
	size func() int64

	cat      *store.Store
	sourceID int64
	serveCmd *exec.Cmd
	serveLog *os.File

	dryRun                retentionPlan
	expiry                formatMeasure
	result                jobs.ExpireResult
	sizeBefore, sizeAfter int64
	pruned                repository.PruneResult
	prune                 formatMeasure
	sizePruned            int64

	// pieces are the stored sizes of the pieces of growing segments WAL streaming
	// archived, by catalog ID, seen by watchPieces until serve stops.
	piecesMu  sync.Mutex
	pieces    map[int64]int64
	stopWatch chan struct{}
	watchDone chan struct{}
}

// retentionPlan is the part of `backstop expire --dry-run --json` the benchmark reports.
type retentionPlan struct {
	Summary string            `json:"summary"`
	Expired []json.RawMessage `json:"expired"`
	WAL     struct {
		Files int   `json:"files"`
		Bytes int64 `json:"bytes"`
	} `json:"wal"`
}

func (h *retentionHome) repoDir() string { return filepath.Join(h.dir, "repository") }

func (h *retentionHome) args(args []string) []string {
	return append([]string{"--home", h.dir}, args...)
}

// cli runs a backstop command in the home and returns its standard output.
func (h *retentionHome) cli(args ...string) []byte {
	h.b.Helper()
	cmd := exec.Command(h.bin, h.args(args)...)
	cmd.Env = append(os.Environ(), h.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		h.b.Fatalf("backstop %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// run runs a backstop command in the home and measures it.
func (h *retentionHome) run(args ...string) formatMeasure {
	h.b.Helper()
	return h.r.run(h.env, h.bin, h.args(args)...)
}

// open opens the home's catalog, to read what WAL streaming archived.
func (h *retentionHome) open(ctx context.Context) {
	h.b.Helper()
	cat, err := store.Open(ctx, filepath.Join(h.dir, "catalog.db"))
	if err != nil {
		h.b.Fatal(err)
	}
	h.cat = cat
	src, err := cat.SourceByName(ctx, h.source)
	if err != nil {
		h.b.Fatal(err)
	}
	h.sourceID = src.ID
}

func (h *retentionHome) close() {
	h.stopServe()
	if h.cat != nil {
		h.cat.Close()
	}
}

// serve starts `backstop serve` on the home, its output in a file below the home.
func (h *retentionHome) serve() {
	h.b.Helper()
	f, err := os.Create(filepath.Join(h.dir, "serve.log"))
	if err != nil {
		h.b.Fatal(err)
	}
	h.serveLog = f
	h.serveCmd = exec.Command(h.bin, h.args([]string{"serve", "--listen", "127.0.0.1:0"})...)
	h.serveCmd.Env = append(os.Environ(), h.env...)
	h.serveCmd.Stdout, h.serveCmd.Stderr = f, f
	if err := h.serveCmd.Start(); err != nil {
		h.b.Fatal(err)
	}
	h.pieces = map[int64]int64{}
	h.stopWatch, h.watchDone = make(chan struct{}), make(chan struct{})
	go h.watchPieces()
}

// watchPieces records, every second until stopWatch closes, the pieces of growing
// segments the catalog lists: the catalog forgets a piece once its segment is archived
// whole, and pruning deletes it, so their cost is seen only while they exist.
func (h *retentionHome) watchPieces() {
	defer close(h.watchDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		files, err := h.cat.WALFiles(context.Background(), store.WALFilter{SourceID: h.sourceID, Kinds: []store.WALKind{store.WALPartial}})
		if err == nil {
			h.piecesMu.Lock()
			for _, f := range files {
				h.pieces[f.ID] = f.StoredBytes
			}
			h.piecesMu.Unlock()
		}
		select {
		case <-h.stopWatch:
			return
		case <-t.C:
		}
	}
}

// stopServe interrupts serve, which shuts down in order, and waits for it (killing it
// after 30 s).
func (h *retentionHome) stopServe() {
	if h.serveCmd == nil {
		return
	}
	cmd := h.serveCmd
	h.serveCmd = nil
	close(h.stopWatch)
	<-h.watchDone
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			h.b.Logf("serve %s: %v", h.dir, err)
		}
	case <-time.After(30 * time.Second):
		h.b.Logf("serve %s did not stop within 30 s; killed", h.dir)
		cmd.Process.Kill()
		<-done
	}
	h.serveLog.Close()
	if h.b.Failed() {
		if out, err := os.ReadFile(h.serveLog.Name()); err == nil {
			h.b.Logf("serve %s output (last 4 KiB):\n%s", h.dir, out[max(0, len(out)-4096):])
		}
	}
}

// waitWAL waits until the home's archived WAL reaches lsn.
func (h *retentionHome) waitWAL(ctx context.Context, lsn uint64) {
	h.b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		files, err := h.cat.WALFiles(ctx, store.WALFilter{SourceID: h.sourceID})
		if err != nil {
			h.b.Fatal(err)
		}
		var end uint64
		for _, f := range files {
			if f.Kind != store.WALHistory {
				end = max(end, rpoLSN(f.EndLSN))
			}
		}
		if end >= lsn {
			return
		}
		if time.Now().After(deadline) {
			h.b.Fatalf("%s: WAL archived to %X after 2 minutes, want %X", h.dir, end, lsn)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// retentionShare is where a Backstop repository's stored bytes came from, as the catalog
// records what each backup and each archived WAL file added.
type retentionShare struct {
	backupData, backupWAL int64
	walStored             int64
	walFiles              int
	walKinds              string
	// piecesStored is what the pieces of growing segments stored; pieces their number.
	piecesStored int64
	pieces       int
	// packs is the size of the repository's packs/.
	packs int64
}

func (h *retentionHome) share(ctx context.Context) retentionShare {
	h.b.Helper()
	var s retentionShare
	var listed []formatBackup
	if err := json.Unmarshal(h.cli("backup", "list", "--json"), &listed); err != nil {
		h.b.Fatalf("backup list --json: %v", err)
	}
	for _, x := range listed {
		s.backupData += x.StoredBytesNew - x.WALStoredBytesNew
		s.backupWAL += x.WALStoredBytesNew
	}
	files, err := h.cat.WALFiles(ctx, store.WALFilter{SourceID: h.sourceID})
	if err != nil {
		h.b.Fatal(err)
	}
	kinds := map[store.WALKind]int{}
	for _, f := range files {
		s.walStored += f.StoredBytes
		kinds[f.Kind]++
	}
	s.walFiles = len(files)
	s.walKinds = fmt.Sprintf("%d segments, %d partial pieces, %d history", kinds[store.WALSegment], kinds[store.WALPartial], kinds[store.WALHistory])
	h.piecesMu.Lock()
	for id, n := range h.pieces {
		if !slices.ContainsFunc(files, func(f store.WALFile) bool { return f.ID == id }) {
			s.piecesStored += n
			s.pieces++
		}
	}
	h.piecesMu.Unlock()
	_, s.packs = formatDirSize(h.b, filepath.Join(h.repoDir(), "packs"))
	return s
}

// parts sizes the local repository's top-level entries: "packs/ 123.4 MB, index/ …".
func (h *retentionHome) parts() string {
	h.b.Helper()
	entries, err := os.ReadDir(h.repoDir())
	if err != nil {
		h.b.Fatal(err)
	}
	var out []string
	var rest int64
	for _, e := range entries {
		if !e.IsDir() {
			fi, err := e.Info()
			if err != nil {
				h.b.Fatal(err)
			}
			rest += fi.Size()
			continue
		}
		files, n := formatDirSize(h.b, filepath.Join(h.repoDir(), e.Name()))
		out = append(out, fmt.Sprintf("%s/ %s in %d files", e.Name(), mb(n), files))
	}
	return strings.Join(append(out, fmt.Sprintf("files at the top %d bytes", rest)), ", ")
}

// retentionListed is the part of a backup in `backstop backup list --json` that
// expireHalf reads.
type retentionListed struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"`
	FinishedAt *time.Time `json:"finished_at"`
}

// expireHalf sets the window to the time since the 8th backup finished, so that the
// backups before it and their WAL go, previews the expiry and runs it, measured.
func (h *retentionHome) expireHalf() {
	h.b.Helper()
	var listed []retentionListed
	if err := json.Unmarshal(h.cli("backup", "list", "--json"), &listed); err != nil {
		h.b.Fatalf("backup list --json: %v", err)
	}
	slices.SortFunc(listed, func(x, y retentionListed) int { return int(x.ID - y.ID) })
	const keepFrom = retentionDays/2 + 1 // the 8th of 14
	if len(listed) != retentionDays || listed[keepFrom-1].FinishedAt == nil || listed[keepFrom-1].State != string(store.BackupComplete) {
		h.b.Fatalf("%s: %d backups, want %d complete", h.dir, len(listed), retentionDays)
	}
	// Rounded up to the second: the window starts just before the 8th backup finished,
	// after it was consistent (the day's load had ended before it began), and well
	// before the 9th was.
	window := time.Since(*listed[keepFrom-1].FinishedAt).Truncate(time.Second) + time.Second
	h.cli("policy", "set", "--source", h.source, "--window", window.String(), "--min-keep", "1")
	if err := json.Unmarshal(h.cli("expire", "--source", h.source, "--dry-run", "--json"), &h.dryRun); err != nil {
		h.b.Fatalf("expire --dry-run --json: %v", err)
	}
	h.b.Logf("%s: window %s; dry run: %d backups and %d WAL files (%s) would go: %s",
		h.dir, window, len(h.dryRun.Expired), h.dryRun.WAL.Files, mb(h.dryRun.WAL.Bytes), h.dryRun.Summary)
	h.sizeBefore = h.size()
	h.expiry = h.run("expire", "--source", h.source, "--json")
	h.sizeAfter = h.size()
	if err := json.Unmarshal(h.expiry.Stdout, &h.result); err != nil || len(h.result.Sources) != 1 || h.result.Prune == nil {
		h.b.Fatalf("expire --json: %v: %s", err, h.expiry.Stdout)
	}
	h.b.Logf("%s: backstop expire --json (%.2f s): %s", h.dir, h.expiry.Wall.Seconds(), bytes.TrimSpace(h.expiry.Stdout))
}

// pruneNow prunes the home's repository in this process with neither grace nor delay,
// as serve's hourly prune will once the packs are old enough: serve must be stopped.
func (h *retentionHome) pruneNow(ctx context.Context) {
	h.b.Helper()
	hm, err := openHome(ctx, h.dir, false)
	if err != nil {
		h.b.Fatal(err)
	}
	defer hm.Close()
	meter := cpuMeter{roots: h.r.roots}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	meter.start()
	start := time.Now()
	h.pruned, err = hm.repo.Prune(ctx, repository.PruneOptions{Grace: -1, Delay: -1})
	h.prune.Wall = time.Since(start)
	h.prune.Other, h.prune.Steal = meter.stop()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	h.prune.CPU = time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	if err != nil {
		h.b.Fatalf("%s: prune: %v", h.dir, err)
	}
	h.sizePruned = h.size()
}
