package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// showAccount is the signed-in user's own page: password and sessions.
func (h *Handler) showAccount(w http.ResponseWriter, r *http.Request) error {
	vm, err := h.accountVM(r)
	if err != nil {
		return err
	}
	return h.page(w, r, "Your account", web.NavAccount, web.AccountPage(vm))
}

func (h *Handler) accountVM(r *http.Request) (web.AccountVM, error) {
	a := actorOf(r)
	ss, err := h.svc.Sessions(r.Context(), a, a.Name)
	if err != nil {
		return web.AccountVM{}, err
	}
	return web.AccountVM{Now: h.now(), Name: a.Name, Role: string(a.Role), Sessions: sessionRows(r, ss),
		Errors: map[string]string{}}, nil
}

// sessionRows turns sessions into table rows, marking the request's own.
func sessionRows(r *http.Request, ss []store.SessionInfo) []web.SessionRow {
	cur, _ := sessionFrom(r.Context())
	rows := make([]web.SessionRow, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, web.SessionRow{ID: s.TokenHash, User: s.UserName, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt,
			ExpiresAt: s.ExpiresAt, AbsoluteExpiresAt: s.AbsoluteExpiresAt, IP: s.IP, UserAgent: s.UserAgent,
			Current: s.TokenHash == cur.TokenHash})
	}
	return rows
}

// changeOwnPassword changes the signed-in user's password, given the current one; their
// other sessions end, with their open pages. A wrong current password counts as a failed
// sign-in of the account (see throttle): a stolen session must not guess the password
// faster than the sign-in page lets anyone.
func (h *Handler) changeOwnPassword(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	cur, _ := sessionFrom(r.Context())
	throttle, ip := h.sec().throttle, clientIP(r)
	status := http.StatusUnprocessableEntity
	var err error
	if wait := throttle.wait(accountKey(a.Name), addressKey(ip)); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		status = http.StatusTooManyRequests
		err = &usecase.InputError{Fields: map[string]string{"current": fmt.Sprintf("Too many wrong passwords; try again in %d s.", secs)}}
	} else {
		err = h.svc.ChangePassword(r.Context(), a, r.PostFormValue("current"), r.PostFormValue("password"), cur.TokenHash)
		if ie := (*usecase.InputError)(nil); errors.As(err, &ie) && ie.Fields["current"] != "" {
			throttle.fail(a.Name, ip)
		}
	}
	var ie *usecase.InputError
	var ve *store.ValidationError
	if errors.As(err, &ie) || errors.As(err, &ve) {
		vm, verr := h.accountVM(r)
		if verr != nil {
			return verr
		}
		if ie != nil {
			vm.Errors = ie.Fields
		} else {
			vm.Errors["password"] = usecase.Sentence("The new password " + ve.Message)
		}
		return h.pageStatus(w, r, status, "Your account", web.NavAccount, web.AccountPage(vm))
	}
	if err != nil {
		return err
	}
	throttle.succeed(a.Name)
	h.sec().live.closeUser(a.Name, cur.TokenHash)
	setFlash(w, web.FlashSuccess, "Your password was changed; your other browsers were signed out.")
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}

// revokeSession signs out one session (one's own, or as an admin anyone's) and closes its
// open pages.
func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	si, err := h.svc.RevokeSession(r.Context(), a, chi.URLParam(r, "sessionID"))
	if err != nil {
		return err
	}
	h.sec().live.closeSession(si.TokenHash)
	back := "/account"
	if si.UserName != a.Name {
		back = "/users"
	}
	setFlash(w, web.FlashSuccess, "A session of "+si.UserName+" was signed out.")
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// revokeOtherSessions signs out every session of the signed-in user but this one.
func (h *Handler) revokeOtherSessions(w http.ResponseWriter, r *http.Request) error {
	a := actorOf(r)
	cur, _ := sessionFrom(r.Context())
	ended, err := h.svc.RevokeOtherSessions(r.Context(), a, cur.TokenHash)
	if err != nil {
		return err
	}
	for _, s := range ended {
		h.sec().live.closeSession(s)
	}
	setFlash(w, web.FlashSuccess, "Every other browser was signed out.")
	http.Redirect(w, r, "/account", http.StatusSeeOther)
	return nil
}
