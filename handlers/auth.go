package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

const (
	sessionCookie = "backstop_session"
	flashCookie   = "backstop_flash"
)

type ctxKey int

const (
	userKey ctxKey = iota
	sessionKey
)

// sessionFrom returns the session of a request that passed requireSession.
func sessionFrom(ctx context.Context) (store.Session, bool) {
	s, ok := ctx.Value(sessionKey).(store.Session)
	return s, ok
}

// userFrom returns the signed-in user of a request that passed requireSession.
func userFrom(ctx context.Context) (store.User, bool) {
	u, ok := ctx.Value(userKey).(store.User)
	return u, ok
}

// requireSession lets a request through only with a valid session; others are sent to the
// login page (pages) or refused (htmx requests and the websocket), and nothing is done.
func (h *Handler) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err == nil {
			sess, u, err := h.store.SessionByToken(r.Context(), c.Value)
			if err == nil {
				if h.now().Sub(sess.LastSeenAt) > time.Minute {
					if err := h.store.TouchSession(r.Context(), c.Value, h.sessionTTL); err != nil {
						h.log.Warn("touch session", "err", err, "request_id", requestID(r))
					}
				}
				ctx := context.WithValue(context.WithValue(r.Context(), userKey, u), sessionKey, sess)
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			if !errors.Is(err, store.ErrNotFound) {
				h.serveError(w, r, err)
				return
			}
		}
		if r.Method != http.MethodGet || r.Header.Get("HX-Request") == "true" || r.URL.Path == "/ws" {
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	})
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request) error {
	return render(w, r, http.StatusOK, web.LoginPage(web.LoginVM{Next: safeNext(r.URL.Query().Get("next"))}))
}

// failedLoginWindow is the period over which failed sign-ins of one account from one
// address are counted into a single audit entry.
const failedLoginWindow = 15 * time.Minute

// maxAuditedName is the longest sign-in name a failed sign-in's audit entry records, in
// bytes: user names are at most 63, and a made-up name of megabytes must not grow the
// catalog by as much at each attempt.
const maxAuditedName = 128

// auditedName is a typed sign-in name as the audit log records it: valid UTF-8, cut to
// maxAuditedName bytes at a character boundary, with "…" when it was cut.
func auditedName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if len(name) <= maxAuditedName {
		return name
	}
	cut := maxAuditedName
	for !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…"
}

// login signs a user in. Attempts for an account or from an address that failed too often
// lately are refused before the password is checked (see throttle), so that guessing costs
// the guesser time and us no bcrypt comparison.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	next := safeNext(r.PostFormValue("next"))
	ip := clientIP(r)
	throttle := h.sec().throttle
	if wait := throttle.wait(accountKey(name), addressKey(ip)); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return render(w, r, http.StatusTooManyRequests, web.LoginPage(web.LoginVM{Name: name, Next: next,
			Error: fmt.Sprintf("Too many failed sign-ins; try again in %d s.", secs)}))
	}
	u, err := h.store.Authenticate(r.Context(), name, r.PostFormValue("password"))
	if errors.Is(err, store.ErrBadCredentials) {
		throttle.fail(name, ip)
		e := store.AuditEntry{Actor: actor(r.Context()), Action: "user.login_failed", Target: auditedName(name), IP: ip}
		if err := h.store.AuditCounted(r.Context(), e, failedLoginWindow); err != nil {
			h.log.Error("audit", "action", e.Action, "err", err, "request_id", requestID(r))
		}
		return render(w, r, http.StatusUnauthorized, web.LoginPage(web.LoginVM{Name: name, Next: next,
			Error: "Wrong user name or password."}))
	}
	if err != nil {
		return err
	}
	throttle.succeed(name)
	token, _, err := h.store.CreateSession(r.Context(), u.ID, h.sessionTTL, h.sessionMaxAge, r.UserAgent(), clientIP(r))
	if err != nil {
		return err
	}
	// Secure is added by frontDoor whenever the browser reaches us over TLS.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode})
	r = r.WithContext(context.WithValue(r.Context(), userKey, u))
	h.audit(r, "user.login", u.Name, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// logout ends the session and closes its live connections, which would otherwise go on
// streaming to a tab that signed out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.store.DeleteSession(r.Context(), c.Value); err != nil {
			return err
		}
	}
	if sess, ok := sessionFrom(r.Context()); ok {
		h.sec().live.closeSession(sess.TokenHash)
	}
	h.audit(r, "user.logout", actor(r.Context()), "")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login redirect on this site. Browsers strip tabs and newlines from a
// URL and read a backslash as a slash, so "/\t/evil.example/" or "/\\evil.example" would
// leave the site: rather than guess every such trick, the target is parsed and rebuilt from
// its path and query alone, and refused unless that path is plainly local.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 {
		return "/"
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || p == "/login" || strings.HasPrefix(p, "/login/") {
		return "/"
	}
	out := p
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

// setFlash leaves a one-time message for the page the client is redirected to.
func setFlash(w http.ResponseWriter, kind web.FlashKind, message string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(string(kind) + ":" + message),
		Path: "/", MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// takeFlash returns and clears the one-time message, if any.
func takeFlash(w http.ResponseWriter, r *http.Request) web.Flash {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return web.Flash{}
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	v, err := url.QueryUnescape(c.Value)
	if err != nil {
		return web.Flash{}
	}
	kind, msg, ok := strings.Cut(v, ":")
	if !ok || (kind != string(web.FlashSuccess) && kind != string(web.FlashError)) {
		return web.Flash{}
	}
	return web.Flash{Kind: web.FlashKind(kind), Message: msg}
}

// clientIP is the client's address as frontDoor settled it: the peer, or behind a
// configured TLS proxy the address that proxy reported.
func clientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(addrKey{}).(string); ok {
		return ip
	}
	return peerIP(r)
}
