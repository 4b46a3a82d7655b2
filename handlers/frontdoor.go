package handlers

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TLSMode says how browsers reach the dashboard. It decides whether cookies are marked
// Secure and whether the X-Forwarded-For header is believed.
type TLSMode int

const (
	// PlainHTTP serves HTTP directly (the default, for 127.0.0.1): cookies are Secure only
	// on requests that did come over TLS, and X-Forwarded-For is ignored.
	PlainHTTP TLSMode = iota
	// DirectTLS serves HTTPS itself: every cookie is Secure.
	DirectTLS
	// BehindTLSProxy sits behind a reverse proxy that terminates TLS: every cookie is Secure,
	// and the client's address is the last X-Forwarded-For entry, the one the proxy added.
	BehindTLSProxy
)

// MaxFormBytes bounds a request body. Every form of the dashboard is a few hundred bytes; a
// larger body is a mistake or an attack, and reading it would hold memory and a connection.
const MaxFormBytes = 1 << 20

// guard is the front door's state: sign-in throttling, the open live connections and how
// clients reach us. It sits in the Handler as a value that works from its zero value, so
// that New need not change.
type guard struct {
	once     sync.Once
	throttle *throttle
	live     *liveConns
	// recheck is how often a live connection checks that its session still exists.
	recheck time.Duration
	mu      sync.Mutex
	mode    TLSMode
}

// sec returns the Handler's front-door state, set up on first use.
func (h *Handler) sec() *guard {
	g := &h.guard
	g.once.Do(func() {
		g.throttle = newThrottle(func() time.Time { return h.now() })
		g.live = newLiveConns()
		if g.recheck == 0 {
			g.recheck = 30 * time.Second
		}
	})
	return g
}

// SetTLSMode tells the handlers how browsers reach them; call it before serving.
func (h *Handler) SetTLSMode(m TLSMode) *Handler {
	g := h.sec()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = m
	return h
}

func (h *Handler) tlsMode() TLSMode {
	g := h.sec()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode
}

type addrKey struct{}

// frontDoor is the first middleware: it settles who the client is (its address), bounds
// the request body and marks cookies Secure when the browser reaches us over TLS.
func (h *Handler) frontDoor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := h.tlsMode()
		ip := peerIP(r)
		if mode == BehindTLSProxy {
			if fwd := lastForwardedFor(r.Header.Values("X-Forwarded-For")); fwd != "" {
				ip = fwd
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), addrKey{}, ip))
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
			// Handlers read forms with PostFormValue, which hides a parse error behind an
			// empty value: parse here, once, and refuse a form cut short by the limit.
			if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
				if err := r.ParseForm(); err != nil {
					if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
						http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
						return
					}
					http.Error(w, "malformed form", http.StatusBadRequest)
					return
				}
			}
		}
		if mode != PlainHTTP || r.TLS != nil {
			w = &secureCookies{ResponseWriter: w}
		}
		next.ServeHTTP(w, r)
	})
}

// lastForwardedFor returns the address that the proxy in front of us appended: entries to
// its left were sent by the client and prove nothing.
func lastForwardedFor(values []string) string {
	if len(values) == 0 {
		return ""
	}
	all := values[len(values)-1]
	if i := strings.LastIndexByte(all, ','); i >= 0 {
		all = all[i+1:]
	}
	ip := net.ParseIP(strings.TrimSpace(all))
	if ip == nil {
		return ""
	}
	return ip.String()
}

// peerIP is the address of the connection's other end.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// secureCookies adds the Secure attribute to every cookie of a response, so that no cookie
// (session, flash) set by any handler can travel over plain HTTP.
type secureCookies struct {
	http.ResponseWriter
	fixed bool
}

func (w *secureCookies) fix() {
	if w.fixed {
		return
	}
	w.fixed = true
	cs := w.Header()["Set-Cookie"]
	for i, c := range cs {
		if !hasSecure(c) {
			cs[i] = c + "; Secure"
		}
	}
}

func hasSecure(cookie string) bool {
	for _, attr := range strings.Split(cookie, ";")[1:] {
		if strings.EqualFold(strings.TrimSpace(attr), "Secure") {
			return true
		}
	}
	return false
}

func (w *secureCookies) WriteHeader(code int) {
	w.fix()
	w.ResponseWriter.WriteHeader(code)
}

func (w *secureCookies) Write(b []byte) (int, error) {
	w.fix()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *secureCookies) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through, for streamed downloads.
func (w *secureCookies) Flush() {
	w.fix()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes the connection through, for the websocket.
func (w *secureCookies) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := w.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}
