package static

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var names = []string{"app.css", "app.js", "charts.js", "favicon.svg", "htmx.min.js", "uplot.min.css", "uplot.min.js", "ws.js"}

func version(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

func TestPath(t *testing.T) {
	t.Parallel()
	for _, name := range names {
		want := "/static/" + name + "?v=" + version(t, name)
		if got := Path(name); got != want {
			t.Errorf("Path(%q) = %q, want %q", name, got, want)
		}
		if got := Path("/" + name); got != want {
			t.Errorf("Path(%q) = %q, want %q", "/"+name, got, want)
		}
	}
	if got, want := Path("missing.css"), "/static/missing.css"; got != want {
		t.Errorf("Path(missing) = %q, want %q", got, want)
	}
}

func TestPathConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	got := make([]string, 16)
	for i := range got {
		wg.Go(func() { got[i] = Path("app.css") })
	}
	wg.Wait()
	for i, g := range got {
		if g != got[0] || !strings.Contains(g, "?v=") {
			t.Errorf("Path #%d = %q, want %q", i, g, got[0])
		}
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)

	get := func(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
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

	types := map[string]*regexp.Regexp{
		"app.css":       regexp.MustCompile(`^text/css`),
		"app.js":        regexp.MustCompile(`^(text|application)/javascript`),
		"charts.js":     regexp.MustCompile(`^(text|application)/javascript`),
		"favicon.svg":   regexp.MustCompile(`^image/svg\+xml`),
		"htmx.min.js":   regexp.MustCompile(`^(text|application)/javascript`),
		"uplot.min.css": regexp.MustCompile(`^text/css`),
		"uplot.min.js":  regexp.MustCompile(`^(text|application)/javascript`),
		"ws.js":         regexp.MustCompile(`^(text|application)/javascript`),
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := get(t, http.MethodGet, Path(name), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", Path(name), resp.StatusCode)
			}
			if body != string(want) {
				t.Errorf("GET %s: body differs from the file", Path(name))
			}
			if got := resp.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("versioned Cache-Control = %q", got)
			}
			if ct := resp.Header.Get("Content-Type"); !types[name].MatchString(ct) {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			etag := resp.Header.Get("ETag")
			if etag != `"`+version(t, name)+`"` {
				t.Errorf("ETag = %q", etag)
			}

			resp, _ = get(t, http.MethodGet, "/static/"+name, nil)
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("unversioned Cache-Control = %q, want no-cache", got)
			}
			resp, _ = get(t, http.MethodGet, "/static/"+name+"?v=0000000000", nil)
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("stale-version Cache-Control = %q, want no-cache", got)
			}
			resp, _ = get(t, http.MethodGet, "/static/"+name, http.Header{"If-None-Match": {etag}})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation = %d, want 304", resp.StatusCode)
			}
			resp, body = get(t, http.MethodHead, Path(name), nil)
			if resp.StatusCode != http.StatusOK || body != "" {
				t.Errorf("HEAD = %d with %d bytes, want 200 and none", resp.StatusCode, len(body))
			}
		})
	}

	for _, path := range []string{"/static/missing.js", "/static/", "/app.css", "/static/../static.go", "/static/VENDORED.md"} {
		if resp, _ := get(t, http.MethodGet, path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	resp, _ := get(t, http.MethodPost, Path("app.css"), nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST = %d Allow %q, want 405 with Allow: GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
