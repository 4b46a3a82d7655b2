package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store/repository"
)

// TestIntegrityCLI is on-call at a terminal: verify exits 0 on an intact repository and
// non-zero, listing the findings, once a pack is damaged; alerts lists what is open;
// a webhook channel is added (its signing key shown once), tested and removed.
func TestIntegrityCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	home := t.TempDir()
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "checked", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port()))
	mustBackstop(t, home, "backup", "checked")

	type result struct {
		State         string
		BytesRead     int64 `json:"bytes_read"`
		BlobsChecked  int64 `json:"blobs_checked"`
		BlobsRehashed int64 `json:"blobs_rehashed"`
		Findings      []struct{ Kind, Path, Reason string }
	}
	deep := func(args ...string) result {
		t.Helper()
		stdout, stderr, code := runBinary(t, home, append([]string{"verify", "--source", "checked", "--deep", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("verify --deep %v of an intact repository exited %d\n%s%s", args, code, stdout, stderr)
		}
		var res result
		decodeJSON(t, "verify --json", stdout, &res)
		return res
	}
	// The first deep run rehashes every blob; the next only authenticates them, as the
	// packs are proven; --rehash rehashes them all again.
	first := deep()
	if first.State != "clean" || len(first.Findings) != 0 || first.BytesRead == 0 || first.BlobsChecked == 0 || first.BlobsRehashed != first.BlobsChecked {
		t.Errorf("verify --deep = %+v, want clean after reading the packs and rehashing every blob", first)
	}
	// The second deep run fully checks again only the packs whose slot is 2 (of
	// repository.DefaultRehashEvery): the first 8 hex digits of their id modulo 8.
	allDue := true
	if err := homeStorage(t, home).List(ctx, "packs/", func(key string, _ int64) error {
		slot, err := strconv.ParseUint(key[strings.LastIndex(key, "/")+1:][:8], 16, 32)
		allDue = allDue && slot%repository.DefaultRehashEvery == 2
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if res := deep(); res.State != "clean" || res.BlobsChecked != first.BlobsChecked || (res.BlobsRehashed < res.BlobsChecked) != !allDue || res.BytesRead != first.BytesRead {
		t.Errorf("verify --deep again = %+v, want clean, every blob authenticated and (all packs due: %v) not all rehashed", res, allDue)
	}
	if res := deep("--rehash"); res.State != "clean" || res.BlobsRehashed != first.BlobsChecked {
		t.Errorf("verify --deep --rehash = %+v, want every blob rehashed", res)
	}
	if stdout, stderr, code := runBinary(t, home, "verify", "--source", "checked", "--rehash"); code == 0 || !strings.Contains(stderr, "deep") {
		t.Errorf("verify --rehash without --deep exited %d, want an error asking for --deep\n%s%s", code, stdout, stderr)
	}

	// Damage the largest pack: a byte in its middle belongs to some blob of the backup.
	st := homeStorage(t, home)
	var biggest string
	var size int64
	if err := st.List(ctx, "packs/", func(key string, n int64) error {
		if n > size {
			biggest, size = key, n
		}
		return nil
	}); err != nil || biggest == "" {
		t.Fatalf("list packs: %v (%q)", err, biggest)
	}
	data, err := st.Get(ctx, biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := st.Put(ctx, biggest, data, false); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runBinary(t, home, "verify", "--source", "checked", "--deep")
	if code == 0 || !strings.Contains(stdout, "corrupt") || !strings.Contains(stderr, "verification found problems") {
		t.Errorf("verify --deep after damaging %s exited %d, want non-zero with the findings\nstdout:\n%s\nstderr:\n%s", biggest, code, stdout, stderr)
	}

	if out := mustBackstop(t, home, "alerts"); !strings.Contains(out, "No open alerts") {
		t.Errorf("alerts (serve not running, nothing evaluated) = %q", out)
	}
	if _, _, err := backstop(t, home, "alerts", "ack", "999"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("alerts ack 999 = %v, want not found", err)
	}

	// A webhook channel: added with a generated key, tested against a local receiver.
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		if r.Header.Get(notify.SignatureHeader) == "" {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	if _, _, err := backstop(t, home, "channel", "add", "hook", "--webhook", "ftp://example.net/x"); err == nil || !strings.Contains(err.Error(), "http") {
		t.Errorf("channel add with an ftp URL = %v, want an error about the scheme", err)
	}
	var added struct {
		Name, Secret string
	}
	decodeJSON(t, "channel add --json", mustBackstop(t, home, "channel", "add", "hook", "--webhook", srv.URL, "--json"), &added)
	if added.Name != "hook" || len(added.Secret) < 32 {
		t.Errorf("channel add = %+v, want the generated signing key shown", added)
	}
	mustBackstop(t, home, "channel", "test", "hook")
	var payload notify.WebhookPayload
	if err := json.Unmarshal(got, &payload); err != nil || payload.Kind != notify.KindTest {
		t.Errorf("the receiver got %q (%v), want a test event", got, err)
	}
	if out := mustBackstop(t, home, "channel", "list"); !strings.Contains(out, "hook") || strings.Contains(out, added.Secret) {
		t.Errorf("channel list = %q, want the channel without its key", out)
	}
	mustBackstop(t, home, "channel", "remove", "hook")
	if _, _, err := backstop(t, home, "channel", "test", "hook"); err == nil {
		t.Errorf("channel test of a removed channel succeeded")
	}
}
