package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs/notify"
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

	var res struct {
		State     string
		BytesRead int64 `json:"bytes_read"`
		Findings  []struct{ Kind, Path, Reason string }
	}
	stdout, stderr, code := runBinary(t, home, "verify", "--source", "checked", "--deep", "--json")
	if code != 0 {
		t.Fatalf("verify --deep of an intact repository exited %d\n%s%s", code, stdout, stderr)
	}
	decodeJSON(t, "verify --json", stdout, &res)
	if res.State != "clean" || len(res.Findings) != 0 || res.BytesRead == 0 {
		t.Errorf("verify --deep = %+v, want clean after reading the packs", res)
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
	stdout, stderr, code = runBinary(t, home, "verify", "--source", "checked", "--deep")
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
