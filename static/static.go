// Package static holds Backstop's browser assets: the hand-written stylesheet and
// scripts, and the vendored htmx with its websocket extension and the uPlot chart
// library (see VENDORED.md). The files are embedded in the binary, so the server
// loads nothing from the internet, and are served with cache-busted URLs so that
// browsers may cache them for a year.
package static

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Prefix is the URL path under which Handler serves the assets.
const Prefix = "/static/"

//go:embed app.css app.js charts.js favicon.svg htmx.min.js uplot.min.css uplot.min.js ws.js
var files embed.FS

// types fixes the content types of the assets, rather than depend on the
// host's MIME tables.
var types = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// asset is one embedded file with its content hash.
type asset struct {
	body []byte
	// version is the first 10 hex digits of the SHA-256 of body.
	version string
	ctype   string
}

// assets hashes every embedded file once, on first use; sync.OnceValue makes
// the first call safe when several requests race to it.
var assets = sync.OnceValue(func() map[string]asset {
	m := make(map[string]asset)
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := types[path.Ext(name)]
		if !ok {
			ctype = mime.TypeByExtension(path.Ext(name))
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		m[name] = asset{body: body, version: hex.EncodeToString(sum[:])[:10], ctype: ctype}
		return nil
	})
	if err != nil {
		// The files are compiled into the binary: failing to read them is a
		// build defect, not a runtime condition.
		panic("static: reading embedded files: " + err.Error())
	}
	return m
})

// Path returns the cache-busted URL of the asset name, for example
// "/static/app.css?v=3f2a9c0d1e". The version is the first 10 hex digits of the
// SHA-256 of the file, so it changes whenever the file does. An unknown name
// yields its plain, unversioned URL, which Handler answers with 404.
func Path(name string) string {
	name = strings.TrimPrefix(name, "/")
	a, ok := assets()[name]
	if !ok {
		return Prefix + name
	}
	return Prefix + name + "?v=" + a.version
}

// Handler serves the embedded assets at Prefix + name; mount it with the full
// path intact, e.g. r.Handle("/static/*", static.Handler()) in chi. A request
// whose v parameter matches the current version (every URL made by Path) is
// cached by browsers for a year as immutable; any other request is served with
// an ETag and must be revalidated, so a stale or unversioned URL never pins an
// old file. Only GET and HEAD are allowed.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	a, found := assets()[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
