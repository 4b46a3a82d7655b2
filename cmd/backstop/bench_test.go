package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// benchScale is the pgbench scale of the benchmark's cluster (about 750 MiB at 50).
const benchScale = "50"

// BenchmarkFullBackup takes a full backup of a pgbench cluster with the backstop binary and
// with pg_basebackup (tar, client-side zstd level 3, WAL fetched), alternating, and reports
// each one's throughput and peak RSS. Each Backstop run writes into a fresh repository, so
// every block is hashed, compressed, encrypted and written; a last run into the same
// repository reports the speed of a backup of an unchanged cluster (every block deduplicated).
func BenchmarkFullBackup(b *testing.B) {
	cl := pgtest.Start(b, pgtest.Setting("shared_buffers", "128MB"), pgtest.Setting("max_wal_size", "2GB"))
	bin := cl.Binaries()
	dsn := cl.DSN("postgres")
	ctx := context.Background()
	if out, err := exec.CommandContext(ctx, bin.Path("pgbench"), "-i", "-q", "-s", benchScale, dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	pgtest.Exec(b, dsn, "CHECKPOINT")

	backstop := filepath.Join(b.TempDir(), "backstop")
	if out, err := exec.Command("go", "build", "-o", backstop, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	var bsTime, pgTime time.Duration
	var bsRSS, pgRSS int64
	var dataBytes int64
	var home string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		home = filepath.Join(b.TempDir(), "home")
		benchRun(b, backstop, "--home", home, "init")
		benchRun(b, backstop, "--home", home, "source", "add", "bench", dsn)
		out := filepath.Join(b.TempDir(), "basebackup")
		b.StartTimer()

		d, rss, stdout := benchRun(b, backstop, "--home", home, "backup", "bench", "--json")
		bsTime += d
		bsRSS = max(bsRSS, rss)
		var res struct {
			SourceBytes int64 `json:"source_bytes"`
		}
		if err := json.Unmarshal(stdout, &res); err != nil {
			b.Fatalf("backup --json: %v: %s", err, stdout)
		}
		dataBytes = res.SourceBytes

		d, rss, _ = benchRun(b, bin.Path("pg_basebackup"), "-d", dsn, "-D", out, "-Ft", "-X", "fetch",
			"--checkpoint=fast", "--compress=client-zstd:3")
		pgTime += d
		pgRSS = max(pgRSS, rss)
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
	b.StopTimer()
	repeat, _, _ := benchRun(b, backstop, "--home", home, "backup", "bench", "--json")

	n := float64(b.N)
	mb := float64(dataBytes) / 1e6
	bsMBps := mb / (bsTime.Seconds() / n)
	pgMBps := mb / (pgTime.Seconds() / n)
	b.ReportMetric(mb, "data_MB")
	b.ReportMetric(bsMBps, "backstop_MB/s")
	b.ReportMetric(pgMBps, "pg_basebackup_MB/s")
	b.ReportMetric(bsMBps/pgMBps, "speed_ratio")
	b.ReportMetric(mb/repeat.Seconds(), "backstop_unchanged_MB/s")
	b.ReportMetric(float64(bsRSS)/(1<<20), "backstop_peak_RSS_MiB")
	b.ReportMetric(float64(pgRSS)/(1<<20), "pg_basebackup_peak_RSS_MiB")
	b.ReportMetric(0, "ns/op") // the per-op time mixes both tools; the rates above are the result
}

// benchRun runs a command, failing the benchmark on error, and returns its wall time, its
// peak resident set size in bytes, and its standard output.
func benchRun(b *testing.B, name string, args ...string) (time.Duration, int64, []byte) {
	b.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // kilobytes on Linux
	}
	return d, rss, stdout.Bytes()
}
