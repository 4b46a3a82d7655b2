package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// auditScale is how many entries the audit benchmarks fill the log with.
const auditScale = 1_000_000

// auditActions are the actions of the filled log, spread evenly.
var auditActions = []string{"user.login", "user.logout", "source.change", "policy.set", "backup.start", "backup.end",
	"restore.start", "restore.end", "verify.start", "verify.end", "alert.acknowledge", "backup.expire"}

// FillAudit appends n chained entries to the log at path in one transaction, as fast as
// SQLite takes them: 20 actors, 12 actions, 10 sources, one entry every 30 s ending now.
func FillAudit(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	stmt, err := tx.Prepare(`INSERT INTO audit_log (id, at, actor, action, target, detail, ip, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Duration(n) * 30 * time.Second)
	prev := AuditGenesis
	for i := 1; i <= n; i++ {
		r := auditRecord{id: int64(i), at: formatTime(start.Add(time.Duration(i) * 30 * time.Second)),
			actor: fmt.Sprintf("user%02d", i%20), action: auditActions[i%len(auditActions)], prev: prev}
		if i%11 != 0 {
			r.target = fmt.Sprintf("db-%d", i%10)
		}
		if i%3 == 0 {
			r.ip = "192.0.2.7"
		}
		r.detail = sql.NullString{String: fmt.Sprintf(`{"job_id":%d,"state":"succeeded"}`, i), Valid: true}
		h := r.hash()
		if _, err := stmt.Exec(r.id, r.at, r.actor, r.action, nullIfZero(r.target), r.detail, nullIfZero(r.ip), r.prev, h); err != nil {
			tb.Fatal(err)
		}
		prev = h
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkAuditAtScale measures, over a log of 1,000,000 chained entries, the check of
// the whole chain (`backstop audit verify`) and the audit page's query for a page of 51
// entries under each filter.
//
//	go test ./store/ -run '^$' -bench AuditAtScale -benchtime 50x
func BenchmarkAuditAtScale(b *testing.B) {
	path := filepath.Join(b.TempDir(), "catalog.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	FillAudit(b, path, auditScale)
	b.Logf("filled %d entries in %s", auditScale, time.Since(start).Round(time.Millisecond))

	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			c, err := s.CheckAuditChain(b.Context())
			if err != nil || c.Problem != nil || c.Entries != auditScale {
				b.Fatalf("CheckAuditChain() = %+v, %v", c, err)
			}
		}
	})
	last := time.Now().UTC()
	for _, f := range []struct {
		name string
		f    AuditFilter
	}{
		{"newest", AuditFilter{}},
		{"deep-page", AuditFilter{BeforeID: auditScale / 2}},
		{"actor", AuditFilter{Actor: "user07"}},
		{"action-prefix", AuditFilter{ActionPrefix: "restore."}},
		{"rare-action", AuditFilter{ActionPrefix: "alert."}},
		{"source", AuditFilter{Target: "db-3"}},
		{"period-month-ago", AuditFilter{From: last.AddDate(0, -1, 0), To: last.AddDate(0, -1, 1)}},
		{"period-200-days-ago", AuditFilter{From: last.AddDate(0, 0, -200), To: last.AddDate(0, 0, -199)}},
		{"all-filters", AuditFilter{Actor: "user04", ActionPrefix: "backup.", Target: "db-4", From: last.AddDate(0, 0, -100), To: last.AddDate(0, 0, -70)}},
		{"no-match", AuditFilter{Actor: "nobody"}},
	} {
		b.Run("page/"+f.name, func(b *testing.B) {
			f.f.Limit = 51
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.AuditPage(b.Context(), f.f); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			reportPercentiles(b, ds)
		})
	}
}

// reportPercentiles reports the median and the 95th percentile of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	b.Helper()
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}
