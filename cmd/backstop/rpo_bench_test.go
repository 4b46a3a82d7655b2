package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// rpoLSN parses PostgreSQL's text form of an LSN ("0/3A000028").
func rpoLSN(s string) uint64 {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return h<<32 | l
}

// rpoObs is a poller's observation: at time At, the durable position was LSN
// (or the last archived segment name was Seg).
type rpoObs struct {
	At  time.Time
	LSN uint64
	Seg string
}

type rpoCommit struct {
	At  time.Time
	LSN uint64
	Seg string
}

type rpoPoller struct {
	mu   sync.Mutex
	obs  []rpoObs
	stop chan struct{}
	done chan struct{}
}

func startPoller(every time.Duration, f func() (rpoObs, bool)) *rpoPoller {
	p := &rpoPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var last rpoObs
		for {
			if o, ok := f(); ok && (o.LSN != last.LSN || o.Seg != last.Seg) {
				p.mu.Lock()
				p.obs = append(p.obs, o)
				p.mu.Unlock()
				last = o
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *rpoPoller) Stop() []rpoObs {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.obs)
}

// lags returns, for each commit, the seconds until an observation covered it,
// and the number of commits never covered.
func lags(commits []rpoCommit, obs []rpoObs, covers func(rpoCommit, rpoObs) bool) ([]float64, int) {
	var out []float64
	missing := 0
	for _, c := range commits {
		found := false
		for _, o := range obs {
			if covers(c, o) {
				out = append(out, math.Max(0, o.At.Sub(c.At).Seconds()))
				found = true
				break
			}
		}
		if !found {
			missing++
		}
	}
	return out, missing
}

func byLSN(c rpoCommit, o rpoObs) bool { return o.LSN >= c.LSN }
func bySeg(c rpoCommit, o rpoObs) bool { return o.Seg != "" && o.Seg >= c.Seg }

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(len(s)-1, i))]
}

// probe commits one row a second for d on dsn and records each commit's LSN.
func probe(b *testing.B, dsn string, d time.Duration) []rpoCommit {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS rpo_probe (id serial PRIMARY KEY, at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	var out []rpoCommit
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := conn.Exec(ctx, `INSERT INTO rpo_probe (at) VALUES (now())`); err != nil {
			b.Fatal(err)
		}
		at := time.Now()
		var lsn, seg string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())`).Scan(&lsn, &seg); err != nil {
			b.Fatal(err)
		}
		out = append(out, rpoCommit{At: at, LSN: rpoLSN(lsn), Seg: seg})
		time.Sleep(time.Second)
	}
	return out
}

func queryText(ctx context.Context, conn *pgx.Conn, sql string) (string, bool) {
	var s *string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil || s == nil {
		return "", false
	}
	return *s, true
}

func asUser(b *testing.B, user string, name string, args ...string) string {
	b.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", user, "--", name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// BenchmarkRPO measures how long after a commit the commit's WAL is durable outside the
// source: Backstop's streaming (slot confirmed_flush_lsn, and catalog rows) against
// pgBackRest's archive_command (pg_stat_archiver).
func BenchmarkRPO(b *testing.B) {
	ctx := context.Background()
	backstopBin := filepath.Join(b.TempDir(), "backstop")
	if out, err := exec.Command("go", "build", "-o", backstopBin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	// pgBackRest's config, repository, logs and locks, owned by postgres.
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
	archiveCmd := "pgbackrest --config=" + conf + " --stanza=bench archive-push %p"

	// Cluster A: Backstop's source. Cluster B: pgBackRest's, identical but archiving.
	ca := pgtest.Start(b)
	cb := pgtest.Start(b, pgtest.Setting("archive_mode", "on"), pgtest.Setting("archive_command", archiveCmd))
	dsnA, dsnB := ca.DSN("postgres"), cb.DSN("postgres")

	connB, err := pgx.Connect(ctx, dsnB)
	if err != nil {
		b.Fatal(err)
	}
	defer connB.Close(ctx)
	sock, _ := queryText(ctx, connB, `SHOW unix_socket_directories`)
	user, _ := queryText(ctx, connB, `SELECT current_user::text`)
	sock = strings.TrimSpace(strings.Split(sock, ",")[0])
	cfg := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=2
log-path=%s
lock-path=%s
spool-path=%s
log-level-console=warn
log-level-file=info
start-fast=y

[bench]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
pg1-user=%s
`, filepath.Join(pbr, "repo"), filepath.Join(pbr, "log"), filepath.Join(pbr, "lock"), filepath.Join(pbr, "spool"),
		cb.DataDir(), cb.Port(), sock, user)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", pbr).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v %s", err, out)
	}
	asUser(b, "postgres", "pgbackrest", "--config="+conf, "--stanza=bench", "stanza-create")

	pgbench := ca.Binaries().Path("pgbench")
	for _, dsn := range []string{dsnA, dsnB} {
		if out, err := exec.Command(pgbench, "-i", "-q", "-s", "5", dsn).CombinedOutput(); err != nil {
			b.Fatalf("pgbench -i: %v\n%s", err, out)
		}
	}
	asUser(b, "postgres", "pgbackrest", "--config="+conf, "--stanza=bench", "check")

	// Backstop: home, source, backup, serve.
	home := filepath.Join(b.TempDir(), "home")
	benchRun(b, backstopBin, "--home", home, "init")
	benchRun(b, backstopBin, "--home", home, "source", "add", "bench", dsnA)
	benchRun(b, backstopBin, "--home", home, "backup", "bench")
	serve := exec.Command(backstopBin, "--home", home, "serve", "--listen", "127.0.0.1:0")
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		serve.Process.Kill()
		serve.Wait()
		if b.Failed() {
			b.Logf("serve output:\n%s", serveOut.String())
		}
	}()
	cat, err := store.Open(ctx, filepath.Join(home, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	src, err := cat.SourceByName(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	connA, err := pgx.Connect(ctx, dsnA)
	if err != nil {
		b.Fatal(err)
	}
	defer connA.Close(ctx)
	// Wait for the slot to exist.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, ok := queryText(ctx, connA, `SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM pg_replication_slots WHERE slot_name LIKE 'backstop%' LIMIT 1`); ok {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no backstop slot after 30 s\n%s", serveOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	slotPoll := func() (rpoObs, bool) {
		s, ok := queryText(ctx, connA, `SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM pg_replication_slots WHERE slot_name LIKE 'backstop%' ORDER BY 1 DESC LIMIT 1`)
		return rpoObs{At: time.Now(), LSN: rpoLSN(s)}, ok
	}
	repoPoll := func() (rpoObs, bool) {
		files, err := cat.WALFiles(ctx, store.WALFilter{SourceID: src.ID})
		if err != nil {
			return rpoObs{}, false
		}
		var m uint64
		for _, f := range files {
			if f.Kind == store.WALHistory {
				continue
			}
			m = max(m, rpoLSN(f.EndLSN))
		}
		return rpoObs{At: time.Now(), LSN: m}, true
	}
	archPoll := func() (rpoObs, bool) {
		s, ok := queryText(ctx, connB, `SELECT last_archived_wal FROM pg_stat_archiver`)
		return rpoObs{At: time.Now(), Seg: s}, ok
	}

	report := func(prefix string, commits []rpoCommit, obs []rpoObs, covers func(rpoCommit, rpoObs) bool, runLen time.Duration) {
		xs, missing := lags(commits, obs, covers)
		b.ReportMetric(float64(len(commits)), prefix+"_commits")
		b.ReportMetric(float64(missing), prefix+"_not_archived")
		if len(xs) > 0 {
			b.ReportMetric(quantile(xs, 0.5), prefix+"_median_s")
			b.ReportMetric(quantile(xs, 0.99), prefix+"_p99_s")
			b.ReportMetric(quantile(xs, 1), prefix+"_max_s")
		}
		if len(commits) > 0 {
			last := ""
			if len(obs) > 0 {
				last = obs[len(obs)-1].Seg
			}
			b.Logf("%s: commits from %s/%X to %s/%X (%.1f MB of WAL); last observed archived segment %q", prefix,
				commits[0].Seg, commits[0].LSN, commits[len(commits)-1].Seg, commits[len(commits)-1].LSN,
				float64(commits[len(commits)-1].LSN-commits[0].LSN)/1e6, last)
		}
		b.Logf("%s: %d commits, %d covered, %d not covered within %s; median %.3f p99 %.3f max %.3f s",
			prefix, len(commits), len(xs), missing, runLen.Round(time.Second), quantile(xs, 0.5), quantile(xs, 0.99), quantile(xs, 1))
	}
	// Start pgBackRest's phases from a fresh, archived segment.
	switchB := func() {
		var seg string
		if err := connB.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
			if s, _ := queryText(ctx, connB, `SELECT last_archived_wal FROM pg_stat_archiver`); s >= seg {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Logf("pgBackRest: segment %s not archived after 60 s", seg)
	}

	b.ResetTimer()
	// Phase 1: light load, both clusters at once (one commit a second, ~20 s), then
	// 20 s more of polling.
	const light = 20 * time.Second
	const drain = 20 * time.Second
	switchB()
	{
		start := time.Now()
		sp := startPoller(20*time.Millisecond, slotPoll)
		rp := startPoller(100*time.Millisecond, repoPoll)
		ap := startPoller(100*time.Millisecond, archPoll)
		var ca, cb []rpoCommit
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); cb = probe(b, dsnB, light) }()
		ca = probe(b, dsnA, light)
		wg.Wait()
		time.Sleep(drain)
		runLen := time.Since(start)
		report("light_backstop_fsync_rpo", ca, sp.Stop(), byLSN, runLen)
		report("light_backstop_repo_rpo", ca, rp.Stop(), byLSN, runLen)
		report("light_pgbackrest_repo_rpo", cb, ap.Stop(), bySeg, runLen)
	}

	// Phase 2 and 3: pgbench -c 4 for 15 s, one cluster at a time (two CPUs), with the probe.
	const loadLen = 15 * time.Second
	loaded := func(dsn string) []rpoCommit {
		// The same starting point on both clusters: a checkpoint, so that both log full pages.
		pgtest.Exec(b, dsn, "CHECKPOINT")
		pb := exec.Command(pgbench, "-n", "-c", "4", "-T", strconv.Itoa(int(loadLen.Seconds())), dsn)
		var out bytes.Buffer
		pb.Stdout, pb.Stderr = &out, &out
		if err := pb.Start(); err != nil {
			b.Fatal(err)
		}
		commits := probe(b, dsn, loadLen)
		if err := pb.Wait(); err != nil {
			b.Fatalf("pgbench: %v\n%s", err, out.String())
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "tps") {
				b.Logf("pgbench %s: %s", dsn, l)
			}
		}
		return commits
	}
	{
		start := time.Now()
		sp := startPoller(20*time.Millisecond, slotPoll)
		rp := startPoller(100*time.Millisecond, repoPoll)
		commits := loaded(dsnA)
		time.Sleep(drain)
		runLen := time.Since(start)
		report("pgbench_backstop_fsync_rpo", commits, sp.Stop(), byLSN, runLen)
		report("pgbench_backstop_repo_rpo", commits, rp.Stop(), byLSN, runLen)
	}
	switchB()
	{
		start := time.Now()
		ap := startPoller(100*time.Millisecond, archPoll)
		commits := loaded(dsnB)
		time.Sleep(drain)
		runLen := time.Since(start)
		report("pgbench_pgbackrest_repo_rpo", commits, ap.Stop(), bySeg, runLen)
	}

	// Phase 4: pgBackRest with archive_timeout=60s, light load, 75 s of polling after.
	if os.Getenv("RPO_SKIP_TIMEOUT60") == "" {
		if _, err := connB.Exec(ctx, `ALTER SYSTEM SET archive_timeout = '60s'`); err != nil {
			b.Fatal(err)
		}
		if _, err := connB.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			b.Fatal(err)
		}
		switchB()
		start := time.Now()
		ap := startPoller(100*time.Millisecond, archPoll)
		commits := probe(b, dsnB, light)
		time.Sleep(75 * time.Second)
		runLen := time.Since(start)
		report("light_pgbackrest_timeout60_repo_rpo", commits, ap.Stop(), bySeg, runLen)
	}
	b.ReportMetric(0, "ns/op")
}

// rtoFreePort returns a free TCP port on 127.0.0.1.
func rtoFreePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPrimary waits until the server on port accepts connections and is out of recovery.
func waitPrimary(port int, limit time.Duration) error {
	ctx := context.Background()
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			var rec bool
			err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&rec)
			conn.Close(ctx)
			if err == nil && !rec {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("in recovery")
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not a primary after %s: %v", limit, last)
}

// BenchmarkRTO restores a pgbench (scale 50) cluster to a time ~30 s after its full
// backup, with Backstop and with pgBackRest, and reports the seconds from the request to
// a restored server that accepts connections and is out of recovery.
func BenchmarkRTO(b *testing.B) {
	ctx := context.Background()
	backstopBin := filepath.Join(b.TempDir(), "backstop")
	if out, err := exec.Command("go", "build", "-o", backstopBin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
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
	c := pgtest.Start(b, pgtest.Setting("archive_mode", "on"),
		pgtest.Setting("archive_command", "pgbackrest --config="+conf+" --stanza=bench archive-push %p"),
		pgtest.Setting("max_wal_size", "2GB"))
	dsn := c.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	sock, _ := queryText(ctx, conn, `SHOW unix_socket_directories`)
	sock = strings.TrimSpace(strings.Split(sock, ",")[0])
	cfg := fmt.Sprintf("[global]\nrepo1-path=%s\nrepo1-retention-full=2\nlog-path=%s\nlock-path=%s\nspool-path=%s\nlog-level-console=warn\nstart-fast=y\n\n[bench]\npg1-path=%s\npg1-port=%d\npg1-socket-path=%s\npg1-user=postgres\n",
		filepath.Join(pbr, "repo"), filepath.Join(pbr, "log"), filepath.Join(pbr, "lock"), filepath.Join(pbr, "spool"),
		c.DataDir(), c.Port(), sock)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "postgres:postgres", pbr).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v %s", err, out)
	}
	pgbr := func(args ...string) string {
		return asUser(b, "postgres", "pgbackrest", append([]string{"--config=" + conf, "--stanza=bench"}, args...)...)
	}
	pgbr("stanza-create")
	if out, err := exec.Command(c.Binaries().Path("pgbench"), "-i", "-q", "-s", "50", dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	pgtest.Exec(b, dsn, "CHECKPOINT")

	home := filepath.Join(b.TempDir(), "home")
	benchRun(b, backstopBin, "--home", home, "init")
	benchRun(b, backstopBin, "--home", home, "source", "add", "bench", dsn)
	serve := exec.Command(backstopBin, "--home", home, "serve", "--listen", "127.0.0.1:0")
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { serve.Process.Kill(); serve.Wait() }()
	d, _, _ := benchRun(b, backstopBin, "--home", home, "backup", "bench")
	b.Logf("backstop backup: %s", d)
	start := time.Now()
	pgbr("backup", "--type=full")
	b.Logf("pgbackrest backup: %s", time.Since(start))

	// ~30 s of light load after the backups; the target is a commit in the middle of it.
	commits := probe(b, dsn, 30*time.Second)
	var target time.Time
	if err := conn.QueryRow(ctx, `SELECT pg_xact_commit_timestamp(xmin) FROM rpo_probe ORDER BY id DESC OFFSET 3 LIMIT 1`).Scan(&target); err != nil {
		// commit timestamps are off: use the recorded time of a late commit
		target = commits[len(commits)-4].At
	}
	var targetID int64
	if err := conn.QueryRow(ctx, `SELECT max(id) FROM rpo_probe WHERE at <= $1`, target).Scan(&targetID); err != nil {
		b.Fatal(err)
	}
	// Let both archives hold the target: a WAL switch for pgBackRest, a few seconds for Backstop.
	var seg string
	if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if s, _ := queryText(ctx, conn, `SELECT last_archived_wal FROM pg_stat_archiver`); s >= seg {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(7 * time.Second)
	b.Logf("target %s (probe row %d)", target.Format(time.RFC3339Nano), targetID)

	stop := func(dir string) {
		exec.Command("runuser", "-u", "postgres", "--", c.Binaries().Path("pg_ctl"), "-D", dir, "stop", "-m", "immediate").Run()
	}
	check := func(name string, port int) {
		var n int64
		rdsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		rc, err := pgx.Connect(ctx, rdsn)
		if err != nil {
			b.Errorf("%s: %v", name, err)
			return
		}
		defer rc.Close(ctx)
		if err := rc.QueryRow(ctx, `SELECT max(id) FROM rpo_probe`).Scan(&n); err != nil {
			b.Errorf("%s: %v", name, err)
		}
		b.Logf("%s: restored max(id) = %d (target row %d)", name, n, targetID)
	}
	b.ResetTimer()

	// Backstop.
	bsDir := filepath.Join(b.TempDir(), "bs")
	if err := pgtest.Reachable(filepath.Dir(bsDir)); err != nil {
		b.Fatal(err)
	}
	bsPort := rtoFreePort(b)
	start = time.Now()
	cmdDur, _, out := benchRun(b, backstopBin, "--home", home, "restore", "--source", "bench", "--to", target.Format(time.RFC3339Nano),
		"--into", bsDir, "--start", "--port", strconv.Itoa(bsPort))
	if err := waitPrimary(bsPort, 5*time.Minute); err != nil {
		b.Fatalf("backstop restore: %v\n%s", err, out)
	}
	bsRTO := time.Since(start)
	defer stop(bsDir)
	check("backstop", bsPort)

	// pgBackRest.
	pbDir := filepath.Join(b.TempDir(), "pbr")
	if err := pgtest.Reachable(filepath.Dir(pbDir)); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(pbDir, 0o700); err != nil {
		b.Fatal(err)
	}
	exec.Command("chown", "postgres:postgres", pbDir).Run()
	pbPort := rtoFreePort(b)
	start = time.Now()
	pgbr("restore", "--type=time", "--target="+target.Format("2006-01-02 15:04:05.999999-07"),
		"--target-action=promote", "--pg1-path="+pbDir)
	restoreDur := time.Since(start)
	asUser(b, "postgres", c.Binaries().Path("pg_ctl"), "-D", pbDir, "-w", "-t", "300", "-l", filepath.Join(pbDir, "log.txt"),
		"-o", fmt.Sprintf("-p %d -c archive_mode=off", pbPort), "start")
	if err := waitPrimary(pbPort, 5*time.Minute); err != nil {
		b.Fatalf("pgbackrest restore: %v", err)
	}
	pbRTO := time.Since(start)
	defer stop(pbDir)
	check("pgbackrest", pbPort)
	b.StopTimer()

	b.Logf("backstop: restore command %s, primary after %s; pgbackrest: restore command %s, primary after %s",
		cmdDur, bsRTO, restoreDur, pbRTO)
	b.ReportMetric(bsRTO.Seconds(), "backstop_rto_s")
	b.ReportMetric(cmdDur.Seconds(), "backstop_restore_cmd_s")
	b.ReportMetric(pbRTO.Seconds(), "pgbackrest_rto_s")
	b.ReportMetric(restoreDur.Seconds(), "pgbackrest_restore_cmd_s")
	b.ReportMetric(0, "ns/op")
}
