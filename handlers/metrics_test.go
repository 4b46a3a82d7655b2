package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// setupMetrics starts the dashboard as serve does for /metrics: a metrics token in the
// home and the collector over the catalog. It returns the app and the token file.
func setupMetrics(t *testing.T) (*app, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, testUser, testPassword, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSource(ctx, store.SourceParams{Name: "orders", DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000011", PGVersion: 150004}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := jobs.NewHub()
	go hub.Run(ctx)
	svc := usecase.New(st, repo, nil, usecase.Paths{Home: dir, Repository: filepath.Join(dir, "repository"),
		RestoreRoot: filepath.Join(dir, "restores")}, log)
	tokenFile, err := svc.MetricsTokenPath()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := jobs.MetricsRegistry(jobs.NewMetrics(st, jobs.NewWindowCache(st, repo), log))
	if err != nil {
		t.Fatal(err)
	}
	routes := handlers.New(st, svc, hub, log).SetMetrics(reg).Routes()
	srv := httptest.NewServer(routes)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		st.Close()
	})
	return &app{srv: srv, routes: routes, store: st}, tokenFile
}

// getMetrics reads /metrics with c, sending authorization if it is not "".
func getMetrics(t *testing.T, a *app, c *http.Client, authorization string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// checkScrape parses body with Prometheus' text parser and checks a few series are there.
func checkScrape(t *testing.T, body string) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	if mf := fams["backstop_alerts_open"]; mf == nil || len(mf.GetMetric()) != 3 {
		t.Errorf("backstop_alerts_open = %v, want a series per severity", mf)
	}
	var up bool
	for _, m := range fams["backstop_wal_archiver_up"].GetMetric() {
		for _, lp := range m.GetLabel() {
			up = up || lp.GetName() == "source" && lp.GetValue() == "orders" && m.GetGauge().GetValue() == 0
		}
	}
	if !up {
		t.Errorf(`backstop_wal_archiver_up{source="orders"} 0 is missing`)
	}
	if fams["go_goroutines"] == nil {
		t.Errorf("go_goroutines is missing")
	}
}

func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	a, tokenFile := setupMetrics(t)
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 || len(token) < 32 {
		t.Fatalf("token file %s: mode %v, %d characters (err %v); want 0600 and a long random token", tokenFile, fi.Mode(), len(token), err)
	}

	refused := []struct{ name, authorization string }{
		{"without credentials", ""},
		{"with a wrong token", "Bearer " + token + "x"},
		{"with the token as basic credentials", "Basic " + token},
		{"with an empty bearer token", "Bearer "},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := getMetrics(t, a, a.client(t), tt.authorization)
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET /metrics %s = %d (WWW-Authenticate %q), want 401 asking for a bearer token",
					tt.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, "backstop_") {
				t.Errorf("GET /metrics %s shows metrics", tt.name)
			}
		})
	}

	t.Run("with the token", func(t *testing.T) {
		for _, scheme := range []string{"Bearer ", "bearer "} {
			resp, body := getMetrics(t, a, a.client(t), scheme+token)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("GET /metrics with %q and the token = %d %q, want 200 text/plain", scheme, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			checkScrape(t, body)
		}
	})

	t.Run("with a session", func(t *testing.T) {
		c := a.client(t)
		a.login(t, c)
		resp, body := getMetrics(t, a, c, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics signed in = %d, want 200", resp.StatusCode)
		}
		checkScrape(t, body)
		// A wrong token is refused even with a session: presented credentials must hold.
		if resp, _ := getMetrics(t, a, c, "Bearer wrong-token-wrong-token"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics signed in with a wrong token = %d, want 401", resp.StatusCode)
		}
	})

	t.Run("token replaced", func(t *testing.T) {
		t.Cleanup(func() { os.WriteFile(tokenFile, []byte(token+"\n"), 0o600) })
		fresh := "a-new-token-of-enough-length"
		if err := os.WriteFile(tokenFile, []byte(fresh+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if resp, _ := getMetrics(t, a, a.client(t), "Bearer "+token); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics with the old token = %d, want 401", resp.StatusCode)
		}
		if resp, _ := getMetrics(t, a, a.client(t), "Bearer "+fresh); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /metrics with the new token = %d, want 200", resp.StatusCode)
		}
		if err := os.WriteFile(tokenFile, []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if resp, _ := getMetrics(t, a, a.client(t), "Bearer short"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics with a 5-character token file = %d, want 401: too short to trust", resp.StatusCode)
		}
	})
}
