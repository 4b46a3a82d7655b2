package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

// mailbox is an SMTP server on 127.0.0.1 that keeps what it receives.
type mailbox struct {
	addr     string
	got      chan delivered
	user     string // when set, AUTH is required with user and pass
	pass     string
	rejectTo map[string]*gosmtp.SMTPError // RCPT answers by address
	cert     *x509.Certificate            // set when the server offers STARTTLS
}

// delivered is one message as the server saw it.
type delivered struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authUser string
}

type mailboxOpts struct {
	user, pass string
	starttls   bool
	rejectTo   map[string]*gosmtp.SMTPError
}

func newMailbox(t *testing.T, o mailboxOpts) *mailbox {
	t.Helper()
	mb := &mailbox{got: make(chan delivered, 10), user: o.user, pass: o.pass, rejectTo: o.rejectTo}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &mailSession{mb: mb, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ReadTimeout, s.WriteTimeout = guard, guard
	s.ErrorLog = log.New(io.Discard, "", 0)
	if o.starttls {
		cert, tlsCert := selfSigned(t)
		mb.cert = cert
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb.addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	return mb
}

func (mb *mailbox) next(t *testing.T) delivered {
	t.Helper()
	select {
	case d := <-mb.got:
		return d
	case <-time.After(guard):
		t.Fatal("the SMTP server received no message")
		return delivered{}
	}
}

type mailSession struct {
	mb   *mailbox
	conn *gosmtp.Conn
	user string
	from string
	to   []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.mb.user || pass != s.mb.pass {
			return gosmtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.mb.user != "" && s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if e := s.mb.rejectTo[to]; e != nil {
		return e
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.mb.got <- delivered{from: s.from, to: s.to, data: data, tls: isTLS, authUser: s.user}
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t *testing.T) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "backstop test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

// trusting makes ch, an email channel, trust the mailbox's certificate.
func trusting(ch Channel, mb *mailbox) Channel {
	pool := x509.NewCertPool()
	pool.AddCert(mb.cert)
	ch.(*email).tlsConfig = &tls.Config{RootCAs: pool}
	return ch
}

func TestEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		box      mailboxOpts
		tlsMode  string
		user     string
		wantTLS  bool
		wantAuth string
	}{
		{"plain, no auth", mailboxOpts{}, TLSNone, "", false, ""},
		{"auth in clear to localhost", mailboxOpts{user: "backstop", pass: "pw"}, TLSNone, "backstop", false, "backstop"},
		{"starttls offered and used, with auth", mailboxOpts{user: "backstop", pass: "pw", starttls: true}, "", "backstop", true, "backstop"},
		{"starttls not offered: plain", mailboxOpts{}, TLSStartTLS, "", false, ""},
		{"starttls offered, disabled", mailboxOpts{starttls: true}, TLSNone, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mb := newMailbox(t, tt.box)
			cfg := SMTPConfig{
				Addr: mb.addr,
				From: "Backstop <backstop@example.com>",
				To:   []string{"oncall@example.com", "Ops Team <ops@example.org>"},
				TLS:  tt.tlsMode,
			}
			if tt.user != "" {
				cfg.Username, cfg.Password = tt.user, "pw"
			}
			ch := NewEmail("oncall-mail", cfg)
			if tt.box.starttls {
				ch = trusting(ch, mb)
			}
			e := sampleEvent()
			if err := ch.Send(t.Context(), e); err != nil {
				t.Fatalf("Send() = %v, want nil", err)
			}
			got := mb.next(t)
			if got.tls != tt.wantTLS || got.authUser != tt.wantAuth {
				t.Errorf("session TLS %v, auth user %q; want %v, %q", got.tls, got.authUser, tt.wantTLS, tt.wantAuth)
			}
			if diff := cmp.Diff([]string{"oncall@example.com", "ops@example.org"}, got.to); got.from != "backstop@example.com" || diff != "" {
				t.Errorf("envelope from %q, to (-want +got):\n%s", got.from, diff)
			}
			checkMessage(t, got.data, e)
		})
	}
}

// checkMessage parses a received message and checks its headers and body.
func checkMessage(t *testing.T, data []byte, e Event) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	h := msg.Header
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "backstop@example.com" || from[0].Name != "Backstop" {
		t.Errorf("From = %q (%v), want Backstop <backstop@example.com>", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "oncall@example.com" || to[1].Address != "ops@example.org" || to[1].Name != "Ops Team" {
		t.Errorf("To = %q (%v), want both recipients", h.Get("To"), err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if want := "[Backstop] CRITICAL: " + e.Title; err != nil || subject != want {
		t.Errorf("Subject = %q (%v), want %q", subject, err, want)
	}
	if id := h.Get("Message-ID"); id != "<backstop."+e.ID+"@example.com>" {
		t.Errorf("Message-ID = %q, want <backstop.%s@example.com>", id, e.ID)
	}
	if ref := h.Get("References"); ref != "<backstop.alert.42@example.com>" {
		t.Errorf("References = %q, want <backstop.alert.42@example.com>", ref)
	}
	if date, err := h.Date(); err != nil || time.Since(date) > time.Hour || time.Until(date) > time.Hour {
		t.Errorf("Date = %q (%v), want about now", h.Get("Date"), err)
	}
	if got := h.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q, want auto-generated", got)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" || h.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("Content-Type %q, encoding %q; want quoted-printable UTF-8 text", ct, h.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body is not quoted-printable: %v", err)
	}
	for _, want := range []string{
		"What it means:\r\n" + e.Explanation,
		"What to do:\r\n" + e.Action,
		"Open the alert: " + e.URL,
		"Source:    orders-db",
		"Severity:  critical",
		"When:      2026-11-25 09:41:07 UTC",
		"  lag_seconds: 540",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body does not contain %q:\n%s", want, body)
		}
	}
}

func TestEmailHeadersAreSafe(t *testing.T) {
	t.Parallel()
	mb := newMailbox(t, mailboxOpts{})
	ch := NewEmail("m", SMTPConfig{Addr: mb.addr, From: "backstop@example.com", To: []string{"oncall@example.com"}, TLS: TLSNone})
	e := sampleEvent()
	e.Kind = KindAcknowledged
	e.Title = "Sauvegarde échouée sur « commandes » " + strings.Repeat("très longue ", 40) + "\r\nBcc: attacker@example.net"
	e.ID = "weird id\r\nX-Injected: 1"
	if err := ch.Send(t.Context(), e); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	got := mb.next(t)
	if diff := cmp.Diff([]string{"oncall@example.com"}, got.to); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Bcc") != "" || msg.Header.Get("X-Injected") != "" {
		t.Errorf("a header was injected: %v", msg.Header)
	}
	for i, line := range strings.Split(string(got.data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes, over SMTP's 998", i+1, len(line))
		}
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.HasPrefix(subject, "[Backstop] ACKNOWLEDGED (critical): Sauvegarde échouée sur « commandes » très longue") ||
		strings.ContainsAny(subject, "\r\n") {
		t.Errorf("Subject = %q (%v), want the acknowledged title on one line", subject, err)
	}
	if id := msg.Header.Get("Message-ID"); id != "<backstop.weird-id--X-Injected--1@example.com>" {
		t.Errorf("Message-ID = %q", id)
	}
	if got := msg.Header.Get("In-Reply-To"); got != "<backstop.alert.42@example.com>" {
		t.Errorf("In-Reply-To = %q, want the firing message's thread", got)
	}
}

func TestEmailFailures(t *testing.T) {
	t.Parallel()
	t.Run("wrong password is final", func(t *testing.T) {
		t.Parallel()
		mb := newMailbox(t, mailboxOpts{user: "backstop", pass: "right"})
		err := NewEmail("m", SMTPConfig{Addr: mb.addr, From: "b@example.com", To: []string{"o@example.com"}, Username: "backstop", Password: "wrong"}).
			Send(t.Context(), sampleEvent())
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 535 {
			t.Fatalf("Send() = %v, want SMTP 535", err)
		}
		if ok, _ := retryable(err); ok {
			t.Errorf("retryable(%v) = true, want false", err)
		}
	})
	t.Run("temporary rejection is retried", func(t *testing.T) {
		t.Parallel()
		mb := newMailbox(t, mailboxOpts{rejectTo: map[string]*gosmtp.SMTPError{
			"o@example.com": {Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"},
		}})
		err := NewEmail("m", SMTPConfig{Addr: mb.addr, From: "b@example.com", To: []string{"o@example.com"}, TLS: TLSNone}).
			Send(t.Context(), sampleEvent())
		if err == nil || !strings.Contains(err.Error(), "greylisted") {
			t.Fatalf("Send() = %v, want the 451 answer", err)
		}
		if ok, _ := retryable(err); !ok {
			t.Errorf("retryable(%v) = false, want true", err)
		}
	})
	t.Run("unknown certificate fails STARTTLS", func(t *testing.T) {
		t.Parallel()
		mb := newMailbox(t, mailboxOpts{starttls: true})
		err := NewEmail("m", SMTPConfig{Addr: mb.addr, From: "b@example.com", To: []string{"o@example.com"}}).
			Send(t.Context(), sampleEvent())
		if err == nil || !strings.Contains(err.Error(), "starttls") {
			t.Fatalf("Send() = %v, want a STARTTLS certificate error", err)
		}
		select {
		case d := <-mb.got:
			t.Errorf("a message went through despite the bad certificate: %q", d.data)
		default:
		}
	})
	t.Run("server hanging up is retried", func(t *testing.T) {
		t.Parallel()
		err := NewEmail("m", SMTPConfig{Addr: hangingUp(t), From: "b@example.com", To: []string{"o@example.com"}}).Send(t.Context(), sampleEvent())
		if ok, _ := retryable(err); err == nil || !ok {
			t.Errorf("Send() = %v, retryable %v; want a retryable network error", err, ok)
		}
	})
}

func TestEmailThroughDispatcher(t *testing.T) {
	t.Parallel()
	mb := newMailbox(t, mailboxOpts{})
	rs := newResults()
	d := NewDispatcher(nil, DispatchOptions{OnResult: rs.onResult},
		NewEmail("mail", SMTPConfig{Addr: mb.addr, From: "Backstop <backstop@example.com>", To: []string{"oncall@example.com", "Ops Team <ops@example.org>"}}))
	defer closeDispatcher(t, d)
	d.Notify(sampleEvent())
	if r := rs.next(t); r.err != nil || r.channel != "mail" {
		t.Fatalf("OnResult(%q, %d, %v), want mail delivered", r.channel, r.attempt, r.err)
	}
	checkMessage(t, mb.next(t).data, sampleEvent())
	if err := d.Test(t.Context(), "mail"); err != nil {
		t.Errorf("Test(mail) = %v", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(mb.next(t).data))
	if err != nil {
		t.Fatal(err)
	}
	if s := msg.Header.Get("Subject"); s != "[Backstop] TEST: Test notification from Backstop" {
		t.Errorf("test Subject = %q", s)
	}
}
