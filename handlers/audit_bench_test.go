package handlers_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// BenchmarkAuditPageAtScale measures GET /audit over a log of 1,000,000 entries (20
// actors, 12 actions, 10 sources, one entry every 30 s over the past year), with each of
// the page's filters and deep in its paging. The log is filled by one transaction; the
// page does not check hashes, so they are stand-ins here (store's BenchmarkAuditAtScale
// fills a real chain and measures its check).
//
//	go test ./handlers/ -run '^$' -bench AuditPageAtScale -benchtime 100x
func BenchmarkAuditPageAtScale(b *testing.B) {
	const n = 1_000_000
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dir := b.TempDir()
	catalog := filepath.Join(dir, "catalog.db")
	st, err := store.Open(ctx, catalog)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, err := repository.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, testUser, testPassword, store.RoleAdmin); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	end := fillAuditLog(b, catalog, n)
	b.Logf("%d audit entries written in %s", n, time.Since(start).Round(time.Second))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := jobs.NewHub()
	go hub.Run(ctx)
	svc := usecase.New(st, repo, usecase.Enqueuer(jobs.NewRunner(st, hub, log, jobs.Options{Workers: 1})),
		usecase.Paths{Home: dir, Repository: filepath.Join(dir, "repository"), RestoreRoot: filepath.Join(dir, "restores")}, log)
	fx := &scaleApp{srv: httptest.NewServer(handlers.New(st, svc, hub, log).Routes()), store: st}
	b.Cleanup(fx.srv.Close)
	c := fx.client(b)

	day := func(d time.Time) string { return d.Format("2006-01-02") }
	for _, page := range []struct{ name, query string }{
		{"newest", ""},
		{"deep-page", fmt.Sprintf("before=%d", n/2)},
		{"newer-page", fmt.Sprintf("after=%d", n/2)},
		{"who", "actor=user07"},
		{"what-prefix", "action=restore."},
		{"what-rare", "action=alert."},
		{"source", "source=db-3"},
		{"period-one-day", url.Values{"from": {day(end.AddDate(0, 0, -200))}, "to": {day(end.AddDate(0, 0, -200))}}.Encode()},
		{"who-what-source-period", url.Values{"actor": {"user05"}, "action": {"backup."}, "source": {"db-5"},
			"from": {day(end.AddDate(0, 0, -100))}, "to": {day(end.AddDate(0, 0, -70))}}.Encode()},
		{"who-what-deep", fmt.Sprintf("actor=user07&action=restore.&before=%d", n/2)},
	} {
		b.Run(page.name, func(b *testing.B) {
			path := "/audit?" + page.query
			fx.get(b, c, path) // warm
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				fx.get(b, c, path)
				ds = append(ds, time.Since(t0))
			}
			reportPercentiles(b, ds)
		})
	}
}

// fillAuditLog appends n entries to the catalog at path in one transaction.
func fillAuditLog(b *testing.B, path string, n int) time.Time {
	b.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	stmt, err := tx.Prepare(`INSERT INTO audit_log (at, actor, action, target, detail, ip, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	actions := []string{"user.login", "user.logout", "source.change", "policy.set", "backup.start", "backup.end",
		"restore.start", "restore.end", "verify.start", "verify.end", "alert.acknowledge", "backup.expire"}
	end := time.Now().UTC()
	start := end.Add(-time.Duration(n) * 30 * time.Second)
	hash := strings.Repeat("0", 64)
	for i := 1; i <= n; i++ {
		var target, ip any
		if i%11 != 0 {
			target = fmt.Sprintf("db-%d", i%10)
		}
		if i%3 == 0 {
			ip = "192.0.2.7"
		}
		_, err := stmt.Exec(start.Add(time.Duration(i)*30*time.Second).Format("2006-01-02T15:04:05.000000Z"), fmt.Sprintf("user%02d", i%20),
			actions[i%len(actions)], target, fmt.Sprintf(`{"job_id":%d,"state":"succeeded"}`, i), ip, hash, hash)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return end
}
