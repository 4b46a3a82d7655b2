package web

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// previewDir, when set, makes TestPreview write every sample page to that
// directory as NAME.html, with the static files beside them, for screenshots:
//
//	go test ./web/ -run TestPreview -web.preview=/tmp/backstop-preview
//	chromium --headless --screenshot=/tmp/x.png file:///tmp/backstop-preview/overview.html
var previewDir = flag.String("web.preview", "", "write the sample pages as HTML files to this `directory`")

// staticURL matches the cache-busted asset URLs in rendered pages.
var staticURL = regexp.MustCompile(`"/static/([^"?]+)(\?v=[0-9a-f]+)?"`)

func TestPreview(t *testing.T) {
	if *previewDir == "" {
		t.Skip("set -web.preview=DIR to write the sample pages")
	}
	dir := *previewDir
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"app.css", "app.js", "charts.js", "favicon.svg", "htmx.min.js", "uplot.min.css", "uplot.min.js", "ws.js"} {
		b, err := os.ReadFile(filepath.Join("..", "static", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "static", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range samplePages(sampleNow()) {
		out := staticURL.ReplaceAllString(render(t, p.c), `"static/$1"`)
		path := filepath.Join(dir, p.name+".html")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}
