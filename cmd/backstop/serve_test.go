package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/backstop/backstop/store"
)

// startServer serves h with the given limits on a free port until the test ends.
func startServer(t *testing.T, h http.Handler, l serverLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h, l)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestSlowRequestBodyIsCutOff(t *testing.T) {
	t.Parallel()
	l := defaultLimits
	l.read = time.Second
	read := make(chan error, 1)
	addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		read <- err
	}), l)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n", addr)
	// One byte every 100 ms: the whole body would take 100 s.
	start := time.Now()
	for i := 0; i < 1000; i++ {
		if _, err := conn.Write([]byte("x")); err != nil {
			break
		}
		select {
		case err := <-read:
			if err == nil {
				t.Fatal("the handler read the whole slow body")
			}
			t.Logf("cut off after %v: %v", time.Since(start).Round(time.Millisecond), err)
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("a body sent a byte every 100 ms still held the connection after 10 s (ReadTimeout 1 s)")
		}
	}
}

// TestWebsocketOutlivesServerTimeouts checks what serve relies on: a hijacked websocket keeps
// working after ReadTimeout and WriteTimeout have passed, because net/http clears the
// connection's deadlines when it hands it over (server.go, hijackLocked); live.go then keeps
// its own deadlines per write and per pong.
func TestWebsocketOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	l := defaultLimits
	l.read, l.write = 300*time.Millisecond, 300*time.Millisecond
	upgrader := websocket.Upgrader{}
	for _, tt := range []struct {
		name         string
		ownDeadlines bool
	}{{"own deadlines", true}, {"no deadline", false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, err := upgrader.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer conn.Close()
				time.Sleep(time.Second) // past both timeouts
				if tt.ownDeadlines {
					conn.SetWriteDeadline(time.Now().Add(time.Second))
				}
				conn.WriteMessage(websocket.TextMessage, []byte("still here"))
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				conn.ReadMessage()
			}), l)
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "still here" {
				t.Errorf("message after the server's timeouts = %q, %v; want it delivered", msg, err)
			}
		})
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their paths and a pool
// that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "backstop test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// serveInProcess runs `backstop serve` with args in this process on a home with one user
// and returns the URL it serves.
func serveInProcess(t *testing.T, args ...string) (home, base string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	var out, errOut syncBuffer
	err := run(t.Context(), []string{"--home", home, "user", "add", "admin", "--password-stdin"},
		strings.NewReader("correct horse battery\n"), &out, &errOut)
	if err != nil {
		t.Fatalf("user add = %v\n%s", err, errOut.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var sout, serr syncBuffer
	go func() {
		done <- run(ctx, append([]string{"--home", home, "serve", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), &sout, &serr)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(sout.String()))
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Backstop is serving "); ok {
				return home, strings.TrimSuffix(u, "/")
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, serr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start\n%s", serr.String())
	return "", ""
}

// signIn posts the sign-in form and returns the response.
func signIn(t *testing.T, c *http.Client, base string, hdr http.Header) *http.Response {
	t.Helper()
	form := url.Values{"name": {"admin"}, "password": {"correct horse battery"}}
	req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func TestServeTLSMarksCookiesSecure(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	_, base := serveInProcess(t, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("serve --tls-cert serves %s, want https", base)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, CheckRedirect: noRedirects}
	resp := signIn(t, c, base, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login over TLS = %d, want 303", resp.StatusCode)
	}
	checkSecure(t, resp)
	// Plain HTTP to the TLS port is no way in.
	if r, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/login"); err == nil && r.StatusCode < 400 {
		t.Errorf("plain HTTP to the TLS port = %d, want a refusal", r.StatusCode)
	}
}

func TestServeBehindTLSProxy(t *testing.T) {
	t.Parallel()
	home, base := serveInProcess(t, "--behind-tls-proxy")
	c := &http.Client{CheckRedirect: noRedirects}
	resp := signIn(t, c, base, http.Header{"X-Forwarded-For": {"203.0.113.66, 198.51.100.7"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login = %d, want 303", resp.StatusCode)
	}
	checkSecure(t, resp)
	// Only sign-ins: serve's maintenance jobs record their ends too, at their own pace.
	es, err := openCatalog(t, home).AuditPage(t.Context(), store.AuditFilter{ActionPrefix: "user.", Limit: 1})
	if err != nil || len(es) != 1 || es[0].Action != "user.login" || es[0].IP != "198.51.100.7" {
		t.Errorf("audit of the sign-in = %+v, %v; want user.login from 198.51.100.7 (the proxy's entry)", es, err)
	}
}

func TestServeRefusesHalfATLSConfiguration(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	_, _, err := backstop(t, home, "serve", "--listen", "127.0.0.1:0", "--tls-cert", "cert.pem")
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("serve --tls-cert without --tls-key = %v, want a refusal naming --tls-key", err)
	}
}

func checkSecure(t *testing.T, resp *http.Response) {
	t.Helper()
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("sign-in set no cookie")
	}
	for _, ck := range cookies {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure", ck.Name)
		}
	}
}
