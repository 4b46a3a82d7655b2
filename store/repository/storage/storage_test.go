package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/backstop/backstop/store/repository/storage"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// backends make an empty storage for one test. The S3 one shares a server between the
// tests of the package and gives each its own prefix.
var backends = []struct {
	name string
	new  func(t *testing.T) storage.Storage
}{
	{"Local", func(t *testing.T) storage.Storage {
		s, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"S3", func(t *testing.T) storage.Storage {
		srv := sharedS3(t)
		// Unique also across -count runs, which share the server.
		prefix := fmt.Sprintf("tests/%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), prefixes.Add(1))
		s, err := storage.NewS3(t.Context(), s3test.Config(srv.Endpoint, srv.Access, srv.Secret, srv.Bucket, prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// conformance is what every Storage does.
var conformance = []struct {
	name string
	test func(t *testing.T, s storage.Storage)
}{
	{"RoundTrip", testRoundTrip},
	{"GetRange", testGetRange},
	{"Size", testSize},
	{"Missing", testMissing},
	{"IfAbsentExisting", testIfAbsentExisting},
	{"Replace", testReplace},
	{"IfAbsentRace", testIfAbsentRace},
	{"List", testList},
	{"Delete", testDelete},
	{"InvalidKeys", testInvalidKeys},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.test(t, b.new(t))
				})
			}
		})
	}
}

var (
	prefixes atomic.Int64
	s3Once   sync.Once
	s3Shared *s3test.Server
	s3Err    error
)

// sharedS3 starts the package's S3 server on first use; TestMain stops it.
func sharedS3(t *testing.T) *s3test.Server {
	t.Helper()
	s3Once.Do(func() { s3Shared, s3Err = s3test.NewServer() })
	if s3Err != nil {
		t.Fatalf("s3test: %v", s3Err)
	}
	return s3Shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if s3Shared != nil {
		if err := s3Shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "s3test:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func put(t *testing.T, s storage.Storage, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, data, false); err != nil {
		t.Fatalf("Put(%q) = %v", key, err)
	}
}

func wantContent(t *testing.T, s storage.Storage, key string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q) = %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q) = %q, want %q", key, got, want)
	}
}

func testRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	objects := map[string][]byte{
		"a":           []byte("top level"),
		"dir/sub/obj": []byte("nested"),
		"empty":       {},
		"big":         big,
	}
	for k, v := range objects {
		if err := s.Put(ctx, k, v, true); err != nil {
			t.Fatalf("Put(%q, ifAbsent) = %v", k, err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync() = %v", err)
	}
	for k, v := range objects {
		wantContent(t, s, k, v)
	}
	if s.String() == "" {
		t.Errorf("String() is empty")
	}
}

func testGetRange(t *testing.T, s storage.Storage) {
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte(i)
	}
	put(t, s, "r/obj", data)
	for _, r := range []struct {
		name           string
		offset, length int64
	}{
		{"start", 0, 10},
		{"middle", 40, 20},
		{"end", 90, 10},
		{"whole", 0, 100},
		{"one byte", 99, 1},
	} {
		got, err := s.GetRange(t.Context(), "r/obj", r.offset, r.length)
		if err != nil {
			t.Errorf("%s: GetRange(%d, %d) = %v", r.name, r.offset, r.length, err)
			continue
		}
		if want := data[r.offset : r.offset+r.length]; !bytes.Equal(got, want) {
			t.Errorf("%s: GetRange(%d, %d) = %v, want %v", r.name, r.offset, r.length, got, want)
		}
	}
	if got, err := s.GetRange(t.Context(), "r/obj", 50, 0); err != nil || len(got) != 0 {
		t.Errorf("GetRange(50, 0) = %v, %v, want no bytes", got, err)
	}
	// A range that runs past the end is an error, not a short read; so is a negative one.
	for _, r := range [][2]int64{{95, 10}, {100, 1}, {200, 1}, {-1, 2}, {10, -1}} {
		if got, err := s.GetRange(t.Context(), "r/obj", r[0], r[1]); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("GetRange(%d, %d) of 100 bytes = %d bytes, %v; want an error other than ErrNotExist", r[0], r[1], len(got), err)
		}
	}
}

func testSize(t *testing.T, s storage.Storage) {
	for k, n := range map[string]int{"s/zero": 0, "s/one": 1, "s/more": 12345} {
		put(t, s, k, bytes.Repeat([]byte{'x'}, n))
		got, err := s.Size(t.Context(), k)
		if err != nil || got != int64(n) {
			t.Errorf("Size(%q) = %d, %v, want %d", k, got, err, n)
		}
	}
}

func testMissing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	put(t, s, "m/present", []byte("x"))
	for _, key := range []string{"m/absent", "absent", "m/present2", "nodir/absent"} {
		if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Get(%q) = %v, want ErrNotExist", key, err)
		}
		if _, err := s.GetRange(ctx, key, 0, 1); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("GetRange(%q, 0, 1) = %v, want ErrNotExist", key, err)
		}
		if _, err := s.Size(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Size(%q) = %v, want ErrNotExist", key, err)
		}
	}
}

func testIfAbsentExisting(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	if err := s.Put(ctx, "lock", []byte("first"), true); err != nil {
		t.Fatalf("Put(lock, first, ifAbsent) = %v", err)
	}
	if err := s.Put(ctx, "lock", []byte("second"), true); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Put(lock, second, ifAbsent) over an object = %v, want ErrExists", err)
	}
	if err := s.Put(ctx, "lock", []byte("first"), true); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Put(lock, first, ifAbsent) over the same bytes = %v, want ErrExists", err)
	}
	wantContent(t, s, "lock", []byte("first"))
}

func testReplace(t *testing.T, s storage.Storage) {
	put(t, s, "x/obj", []byte("old content, longer"))
	put(t, s, "x/obj", []byte("new"))
	wantContent(t, s, "x/obj", []byte("new"))
	if n, err := s.Size(t.Context(), "x/obj"); err != nil || n != 3 {
		t.Errorf("Size(x/obj) = %d, %v, want 3", n, err)
	}
}

func testIfAbsentRace(t *testing.T, s storage.Storage) {
	const writers = 16
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			errs[i] = s.Put(t.Context(), "race/lock", fmt.Appendf(nil, "writer %d", i), true)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrExists):
			t.Errorf("writer %d: Put(ifAbsent) = %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won")
	}
	wantContent(t, s, "race/lock", fmt.Appendf(nil, "writer %d", winner))
}

func list(t *testing.T, s storage.Storage, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.List(t.Context(), prefix, func(key string, size int64) error {
		if _, dup := got[key]; dup {
			t.Errorf("List(%q) gave %q twice", prefix, key)
		}
		got[key] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q) = %v", prefix, err)
	}
	return got
}

func testList(t *testing.T, s storage.Storage) {
	all := map[string]int64{
		"ab/1":       1,
		"ab/2/x":     22,
		"ab/2/y":     0,
		"abc/1":      333,
		"abc/d/e/f":  4,
		"b":          5,
		"bb/ab/zzzz": 6,
	}
	for k, n := range all {
		put(t, s, k, bytes.Repeat([]byte{'z'}, int(n)))
	}
	pick := func(keys ...string) map[string]int64 {
		m := map[string]int64{}
		for _, k := range keys {
			m[k] = all[k]
		}
		return m
	}
	for _, tc := range []struct {
		prefix string
		want   map[string]int64
	}{
		{"", all},
		{"ab/", pick("ab/1", "ab/2/x", "ab/2/y")},
		{"abc/", pick("abc/1", "abc/d/e/f")},
		{"ab", pick("ab/1", "ab/2/x", "ab/2/y", "abc/1", "abc/d/e/f")},
		{"ab/2/", pick("ab/2/x", "ab/2/y")},
		{"ab/2/x", pick("ab/2/x")},
		{"abc/d/e/", pick("abc/d/e/f")},
		{"b", pick("b", "bb/ab/zzzz")},
		{"c", pick()},
		{"nothing/here/", pick()},
	} {
		if diff := cmp.Diff(tc.want, list(t, s, tc.prefix)); diff != "" {
			t.Errorf("List(%q) (-want +got):\n%s", tc.prefix, diff)
		}
		var keys []string
		if err := storage.Keys(t.Context(), s, tc.prefix, func(key string) error {
			keys = append(keys, key)
			return nil
		}); err != nil {
			t.Fatalf("Keys(%q) = %v", tc.prefix, err)
		}
		if diff := cmp.Diff(slices.Sorted(maps.Keys(tc.want)), slices.Sorted(slices.Values(keys)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Keys(%q) (-want +got):\n%s", tc.prefix, diff)
		}
	}

	// An error from fn stops the listing and comes back.
	stop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "", func(string, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with fn failing: %d calls, %v; want 1 call, the error of fn", calls, err)
	}
}

func testDelete(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	put(t, s, "d/obj", []byte("x"))
	put(t, s, "d/other", []byte("y"))
	if err := s.Delete(ctx, "d/obj"); err != nil {
		t.Fatalf("Delete(d/obj) = %v", err)
	}
	if _, err := s.Get(ctx, "d/obj"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get(d/obj) after Delete = %v, want ErrNotExist", err)
	}
	if got := list(t, s, "d/"); !maps.Equal(got, map[string]int64{"d/other": 1}) {
		t.Errorf("List(d/) after Delete = %v, want only d/other", got)
	}
	for _, key := range []string{"d/obj", "d/never", "nodir/never"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing object = %v, want nil", key, err)
		}
	}
	// The key can be written again, also conditionally.
	if err := s.Put(ctx, "d/obj", []byte("again"), true); err != nil {
		t.Errorf("Put(d/obj, ifAbsent) after Delete = %v", err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Errorf("Sync() = %v", err)
	}
}

func testInvalidKeys(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, key := range []string{"", "/a", "a/", "a//b", "./a", "a/./b", "a/../b", "..", "../a", ".", "a\\b", "a\x00b", ".tmp-x", "a/.tmp-x-123"} {
		check := func(op string, err error) {
			if err == nil || errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrExists) {
				t.Errorf("%s(%q) = %v, want an invalid key error", op, key, err)
			}
		}
		check("Put", s.Put(ctx, key, []byte("x"), false))
		check("Put ifAbsent", s.Put(ctx, key, []byte("x"), true))
		_, err := s.Get(ctx, key)
		check("Get", err)
		_, err = s.GetRange(ctx, key, 0, 1)
		check("GetRange", err)
		_, err = s.Size(ctx, key)
		check("Size", err)
		check("Delete", s.Delete(ctx, key))
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("List() after refused Puts = %v, want nothing", got)
	}
}

func TestS3Prefixes(t *testing.T) {
	t.Parallel()
	srv := sharedS3(t)
	open := func(prefix string) *storage.S3 {
		s, err := storage.NewS3(t.Context(), s3test.Config(srv.Endpoint, srv.Access, srv.Secret, srv.Bucket, prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	top := fmt.Sprintf("prefixes%d", prefixes.Add(1))
	p, pq, nested := open(top+"/p"), open(top+"/pq"), open(top+"/p2/deeper")
	put(t, p, "k", []byte("p"))
	put(t, pq, "k", []byte("pq"))
	put(t, nested, "k", []byte("nested"))
	wantContent(t, p, "k", []byte("p"))
	wantContent(t, pq, "k", []byte("pq"))
	if diff := cmp.Diff(map[string]int64{"k": 1}, list(t, p, "")); diff != "" {
		t.Errorf("List() in %s/p (-want +got):\n%s", top, diff)
	}
	if got, want := p.String(), "s3://"+srv.Bucket+"/"+top+"/p"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	whole := open("")
	if got, want := whole.String(), "s3://"+srv.Bucket; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	wantContent(t, whole, top+"/p2/deeper/k", []byte("nested"))
}

// TestS3PutIfAbsentLostAnswer: the answer to a conditional Put that wrote the object is
// lost, the SDK retries, and the retry finds the object. The Put succeeded all the same.
func TestS3PutIfAbsentLostAnswer(t *testing.T) {
	t.Parallel()
	srv := sharedS3(t)
	upstream, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the Host header: the request is signed for the proxy's address.
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream)
		r.Out.Host = r.In.Host
	}}
	var lost, lostCode atomic.Int64 // conditional PUTs seen; what the server said to the first
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" && strings.Contains(r.URL.Path, "/lost/") &&
			lost.Add(1) == 1 {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			lostCode.Store(int64(rec.Code))
			w.WriteHeader(http.StatusServiceUnavailable) // retryable
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	prefix := fmt.Sprintf("lost%d", prefixes.Add(1))
	s, err := storage.NewS3(t.Context(), s3test.Config(front.URL, srv.Access, srv.Secret, srv.Bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "lost/lock", []byte("mine"), true); err != nil {
		t.Errorf("Put(ifAbsent) whose first answer was lost = %v, want nil", err)
	}
	if n, code := lost.Load(), lostCode.Load(); n != 2 || code != http.StatusOK {
		t.Errorf("%d conditional PUTs reached the proxy, the first answered %d; want 2 (one lost answer, one retry), 200", n, code)
	}
	// Other bytes are still ErrExists, retried or not.
	lost.Store(0)
	if err := s.Put(t.Context(), "lost/lock", []byte("theirs"), true); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Put(ifAbsent) of other bytes = %v, want ErrExists", err)
	}
	if n, code := lost.Load(), lostCode.Load(); n != 2 || code != http.StatusPreconditionFailed {
		t.Errorf("%d conditional PUTs reached the proxy, the first answered %d; want 2, 412", n, code)
	}
	wantContent(t, s, "lost/lock", []byte("mine"))
}

func TestNewS3Errors(t *testing.T) {
	t.Parallel()
	srv := sharedS3(t)
	good := s3test.Config(srv.Endpoint, srv.Access, srv.Secret, srv.Bucket, "")
	if _, err := storage.NewS3(t.Context(), good); err != nil {
		t.Fatalf("NewS3(good config) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*storage.S3Config)
		want   string
	}{
		{"no such bucket", func(c *storage.S3Config) { c.Bucket = "no-such-bucket" }, "does not exist"},
		{"wrong secret", func(c *storage.S3Config) { c.SecretKey = "wrong" }, "credentials are wrong"},
		{"unknown access key", func(c *storage.S3Config) { c.AccessKey = "nobody" }, "credentials are wrong"},
		{"nothing listening", func(c *storage.S3Config) { c.Endpoint = "http://127.0.0.1:1" }, "cannot reach http://127.0.0.1:1"},
		{"half the credentials", func(c *storage.S3Config) { c.SecretKey = "" }, "both an access key and a secret key"},
		{"no bucket", func(c *storage.S3Config) { c.Bucket = "" }, "no bucket"},
		{"bad prefix", func(c *storage.S3Config) { c.Prefix = "a//b" }, "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tc.change(&cfg)
			_, err := storage.NewS3(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewS3() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestParseS3URL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want storage.S3Config
	}{
		{"s3://bucket", storage.S3Config{Bucket: "bucket"}},
		{"s3://bucket/", storage.S3Config{Bucket: "bucket"}},
		{"s3://bucket/some/prefix", storage.S3Config{Bucket: "bucket", Prefix: "some/prefix"}},
		{"s3://bucket/some/prefix/", storage.S3Config{Bucket: "bucket", Prefix: "some/prefix"}},
		{"s3://my.bucket-1/p", storage.S3Config{Bucket: "my.bucket-1", Prefix: "p"}},
	} {
		got, err := storage.ParseS3URL(tc.in)
		if err != nil {
			t.Errorf("ParseS3URL(%q) = %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseS3URL(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, in := range []string{
		"", "bucket/prefix", "s3:bucket", "s3:///prefix", "http://bucket/p", "S4://bucket",
		"s3://bucket/a//b", "s3://bucket//a", "s3://bucket/a//", "s3://bucket/a/../b", "s3://bucket/./a", "s3://user@bucket/p",
		"s3://bucket:9000/p", "s3://bucket/p?region=x", "s3://bucket/p#frag", "s3://bucket/a\\b",
	} {
		if got, err := storage.ParseS3URL(in); err == nil {
			t.Errorf("ParseS3URL(%q) = %+v, want an error", in, got)
		}
	}
}

func FuzzParseS3URL(f *testing.F) {
	for _, s := range []string{"s3://bucket", "s3://bucket/some/prefix/", "s3://b/a//b", "s3://b/%2e%2e/x", "s3://b/p?x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := storage.ParseS3URL(s)
		if err != nil {
			return
		}
		if cfg.Bucket == "" || strings.ContainsAny(cfg.Bucket, "/") {
			t.Errorf("ParseS3URL(%q) gave bucket %q", s, cfg.Bucket)
		}
		if cfg.Prefix != "" && (storage.CheckKey(cfg.Prefix) != nil || path.Clean(cfg.Prefix) != cfg.Prefix) {
			t.Errorf("ParseS3URL(%q) gave prefix %q", s, cfg.Prefix)
		}
	})
}
