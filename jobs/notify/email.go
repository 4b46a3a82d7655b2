package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SMTP transport security, the values of [SMTPConfig].TLS.
const (
	TLSStartTLS = "starttls" // upgrade with STARTTLS when the server offers it (the default)
	TLSNone     = "none"     // never encrypt; credentials are then refused except to localhost
	TLSImplicit = "tls"      // TLS from the first byte, usually port 465
)

// SMTPConfig is where and how an email channel sends.
type SMTPConfig struct {
	Addr     string   // host:port of the submission server, e.g. "smtp.example.com:587"
	From     string   // one address, with or without a display name: "Backstop <backstop@example.com>"
	To       []string // one or more addresses
	Username string   // when set, authenticate (PLAIN, or LOGIN when only that is offered)
	Password string
	TLS      string // TLSStartTLS (default when empty), TLSNone or TLSImplicit
}

type email struct {
	name string
	cfg  SMTPConfig
	host string // Addr's host: the TLS server name and the auth host
	from *mail.Address
	to   []*mail.Address
	helo string
	err  error // invalid configuration, returned by every Send

	tlsConfig *tls.Config // nil outside tests: the system roots and host verification
}

// NewEmail returns a channel that sends each event as a plain-text email
// with the subject "[Backstop] CRITICAL: <title>" (or "RESOLVED (critical):
// …" and so on). Messages about one alert share a References header, so
// mail clients thread them. Credentials are sent only over TLS, or in clear
// to localhost. An invalid configuration (see [ValidateEmail]) is not
// retried: every Send returns the validation error.
//
// Sending uses the standard library's net/smtp: it has STARTTLS, AUTH
// PLAIN with a refusal to send it in clear, and dot-stuffing, and adds no
// dependency to the binary.
func NewEmail(name string, cfg SMTPConfig) Channel {
	cfg.To = slices.Clone(cfg.To)
	m := &email{name: name, cfg: cfg, helo: heloName(), err: ValidateEmail(name, cfg)}
	if m.err == nil {
		m.host, _, _ = net.SplitHostPort(cfg.Addr)
		m.from, _ = mail.ParseAddress(cfg.From)
		for _, a := range cfg.To {
			addr, _ := mail.ParseAddress(a)
			m.to = append(m.to, addr)
		}
	}
	return m
}

// ValidateEmail checks an email channel's configuration: a name, a
// host:port, From and every To parsed by net/mail, a password with a
// username and the other way round, and a known TLS mode. The error names
// every bad field (see [ConfigError]).
func ValidateEmail(name string, cfg SMTPConfig) error {
	bad := func(field, problem string) error {
		return &ConfigError{Channel: name, Field: field, Problem: problem}
	}
	errs := []error{validateName(name)}
	if host, port, err := net.SplitHostPort(cfg.Addr); err != nil || host == "" || port == "" {
		errs = append(errs, bad("addr", fmt.Sprintf("%q is not host:port, e.g. smtp.example.com:587", cfg.Addr)))
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, bad("addr", fmt.Sprintf("port %q is not a number from 1 to 65535", port)))
	}
	if cfg.From == "" {
		errs = append(errs, bad("from", "is required"))
	} else if _, err := mail.ParseAddress(cfg.From); err != nil {
		errs = append(errs, bad("from", fmt.Sprintf("%q is not an email address: %v", cfg.From, err)))
	}
	if len(cfg.To) == 0 {
		errs = append(errs, bad("to", "needs at least one address"))
	}
	for i, a := range cfg.To {
		if _, err := mail.ParseAddress(a); err != nil {
			errs = append(errs, bad("to", fmt.Sprintf("address %d, %q, is not an email address: %v", i+1, a, err)))
		}
	}
	if cfg.Username != "" && cfg.Password == "" {
		errs = append(errs, bad("password", "is required when a username is given"))
	}
	if cfg.Username == "" && cfg.Password != "" {
		errs = append(errs, bad("username", "is required when a password is given"))
	}
	switch cfg.TLS {
	case "", TLSStartTLS, TLSNone, TLSImplicit:
	default:
		errs = append(errs, bad("tls", fmt.Sprintf("%q is not one of %q, %q, %q", cfg.TLS, TLSStartTLS, TLSNone, TLSImplicit)))
	}
	return errors.Join(errs...)
}

func (m *email) Name() string { return m.name }

func (m *email) Send(ctx context.Context, e Event) error {
	if m.err != nil {
		return Permanent(m.err)
	}
	if err := m.deliver(ctx, m.message(e, time.Now())); err != nil {
		return fmt.Errorf("email %q: %w", m.name, err)
	}
	return nil
}

// deliver runs one SMTP session. Replies from the server come back as
// *textproto.Error: 4xx is retried, 5xx is not.
func (m *email) deliver(ctx context.Context, msg []byte) (err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return err
	}
	// Close the connection when ctx ends, whatever the session is waiting for.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if m.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, m.tlsClientConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(m.helo); err != nil {
		return fmt.Errorf("ehlo: %w", err)
	}
	if m.cfg.TLS == TLSStartTLS || m.cfg.TLS == "" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(m.tlsClientConfig()); err != nil {
				return fmt.Errorf("starttls: %w", err)
			}
		}
	}
	if m.cfg.Username != "" {
		if err := m.auth(c); err != nil {
			return err
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	for _, to := range m.to {
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("rcpt to %s: %w", to.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (m *email) auth(c *smtp.Client) error {
	if _, encrypted := c.TLSConnectionState(); !encrypted && !isLocalhost(m.host) {
		return Permanent(errors.New("refusing to send the password unencrypted: the server offered no STARTTLS " +
			`(use tls "tls" for a server that speaks TLS from the start, usually port 465)`))
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return Permanent(errors.New("a username is configured but the server offers no AUTH"))
	}
	var a smtp.Auth
	switch offered := strings.Fields(strings.ToUpper(mechs)); {
	case slices.Contains(offered, "PLAIN"):
		a = smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.host)
	case slices.Contains(offered, "LOGIN"):
		a = &loginAuth{username: m.cfg.Username, password: m.cfg.Password}
	default:
		return Permanent(fmt.Errorf("the server offers AUTH %s, neither PLAIN nor LOGIN", mechs))
	}
	if err := c.Auth(a); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

func (m *email) tlsClientConfig() *tls.Config {
	if m.tlsConfig != nil {
		cfg := m.tlsConfig.Clone()
		cfg.ServerName = m.host
		return cfg
	}
	return &tls.Config{ServerName: m.host, MinVersion: tls.VersionTLS12}
}

// isLocalhost is net/smtp's rule for where PLAIN may go in clear.
func isLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// loginAuth is the LOGIN mechanism, which some servers offer instead of
// PLAIN. It is only used over TLS or to localhost (checked by the caller).
type loginAuth struct{ username, password string }

func (a *loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(fromServer))) {
	case "username:", "user name", "username":
		return []byte(a.username), nil
	case "password:", "password":
		return []byte(a.password), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge %q", fromServer)
}

// message renders the whole RFC 5322 message, CRLF line ends, 7-bit clean.
func (m *email) message(e Event, now time.Time) []byte {
	domain := "backstop.invalid"
	if i := strings.LastIndexByte(m.from.Address, '@'); i >= 0 {
		domain = m.from.Address[i+1:]
	}
	id := e.ID
	if id == "" {
		id = newEventID("")
	}
	to := make([]string, len(m.to))
	for i, a := range m.to {
		to[i] = a.String()
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", m.from.String())
	header("To", strings.Join(to, ",\r\n "))
	header("Subject", encodeHeader("[Backstop] "+truncate(headline(e), 200)))
	header("Date", now.Format(time.RFC1123Z))
	// Stable across retries, so that a retried delivery is recognised.
	header("Message-ID", "<backstop."+msgIDPart(id)+"@"+domain+">")
	if e.AlertID != 0 {
		ref := "<backstop.alert." + strconv.FormatInt(e.AlertID, 10) + "@" + domain + ">"
		header("References", ref)
		if e.Kind != KindFiring {
			header("In-Reply-To", ref)
		}
	}
	header("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies
	header("X-Backstop-Event-Id", msgIDPart(id))
	header("X-Backstop-Severity", msgIDPart(orDefault(e.Severity, "unknown")))
	header("X-Backstop-Kind", msgIDPart(orDefault(e.Kind, KindFiring)))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(plainBody(e, id)))
	_ = qp.Close()
	return b.Bytes()
}

// plainBody is the text a person reads, with "\n" line ends.
func plainBody(e Event, id string) string {
	var b strings.Builder
	b.WriteString(headline(e) + "\n\n")
	row := func(k, v string) { fmt.Fprintf(&b, "%-10s %s\n", k+":", oneLine(v)) }
	row("Status", orDefault(e.Kind, KindFiring))
	row("Severity", orDefault(e.Severity, "unknown"))
	row("Source", sourceLabel(e))
	if e.Rule != "" {
		row("Rule", e.Rule)
	}
	if !e.At.IsZero() {
		row("When", e.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	para := func(title, text string) {
		if text = strings.TrimSpace(normalizeNewlines(text)); text != "" {
			b.WriteString("\n" + title + "\n" + text + "\n")
		}
	}
	para("What it means:", e.Explanation)
	para("What to do:", e.Action)
	if lines := evidenceLines(e.Evidence); len(lines) > 0 {
		b.WriteString("\nEvidence:\n")
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	if e.URL != "" {
		b.WriteString("\nOpen the alert: " + oneLine(e.URL) + "\n")
	}
	b.WriteString("\n-- \nSent by Backstop. Event " + oneLine(id) + ".\n")
	return b.String()
}

func normalizeNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// encodeHeader makes s one safe header value: control characters folded
// away, non-ASCII as RFC 2047 encoded words, folded between words so that
// no line passes the 998-byte limit.
func encodeHeader(s string) string {
	enc := mime.BEncoding.Encode("utf-8", oneLine(s))
	if enc == s {
		// Plain ASCII: Encode leaves it as it is.
		return enc
	}
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

// msgIDPart keeps the characters that may appear anywhere in a dot-atom
// (a Message-ID's left part, a header without encoding) and replaces the
// others, dots included, with "-".
func msgIDPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_+=", r):
			return r
		}
		return '-'
	}, s)
}

func heloName() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, " \t\r\n") {
		return "localhost"
	}
	return h
}
