package handlers

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// showSourceEdit is a source's settings: its connection string, and removal.
func (h *Handler) showSourceEdit(w http.ResponseWriter, r *http.Request) error {
	vm, err := h.sourceEditVM(r, sourceFrom(r))
	if err != nil {
		return err
	}
	return h.page(w, r, "Settings of "+vm.Name, web.NavSources, web.SourceEditPage(vm))
}

func (h *Handler) sourceEditVM(r *http.Request, s store.Source) (web.SourceEditVM, error) {
	n, err := h.store.Backups(r.Context(), store.BackupFilter{SourceID: s.ID, Limit: 100000})
	if err != nil {
		return web.SourceEditVM{}, err
	}
	return web.SourceEditVM{ID: s.ID, Name: s.Name, MaskedDSN: usecase.MaskDSN(s.DSN), Slot: jobs.SlotName(s),
		Backups: len(n), Errors: map[string]string{}}, nil
}

// changeSource saves a new connection string after the use case checked it.
func (h *Handler) changeSource(w http.ResponseWriter, r *http.Request) error {
	s := sourceFrom(r)
	dsn := strings.TrimSpace(r.PostFormValue("dsn"))
	vm, err := h.sourceEditVM(r, s)
	if err != nil {
		return err
	}
	{
		_, err = h.svc.ChangeSource(r.Context(), actorOf(r), s.ID, dsn)
		var ve *store.ValidationError
		var ce *usecase.CheckError
		switch {
		case errors.As(err, &ve):
			vm.Errors["dsn"] = usecase.Sentence(ve.Message)
		case errors.As(err, &ce):
			vm.Errors["dsn"], vm.Hint = ce.Message, ce.Hint
		case err != nil:
			return err
		default:
			setFlash(w, web.FlashSuccess, fmt.Sprintf("Source %s now connects with %s.", s.Name, usecase.MaskDSN(dsn)))
			http.Redirect(w, r, fmt.Sprintf("/sources/%d", s.ID), http.StatusSeeOther)
			return nil
		}
	}
	// The password stays out of the refilled form.
	vm.DSN = usecase.MaskDSN(dsn)
	return h.pageStatus(w, r, http.StatusUnprocessableEntity, "Settings of "+s.Name, web.NavSources, web.SourceEditPage(vm))
}

// removeSource stops archiving a source and drops its slot; its backups are kept.
func (h *Handler) removeSource(w http.ResponseWriter, r *http.Request) error {
	s := sourceFrom(r)
	res, err := h.svc.RemoveSource(r.Context(), actorOf(r), s.ID)
	var ce *usecase.ConflictError
	if errors.As(err, &ce) {
		setFlash(w, web.FlashError, usecase.Sentence(ce.Message))
		http.Redirect(w, r, fmt.Sprintf("/sources/%d", s.ID), http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("Source %s removed; its replication slot was dropped.", s.Name)
	if !res.SlotDropped {
		msg = fmt.Sprintf("Source %s removed, but %s.", s.Name, res.SlotNote)
	}
	if !res.Deleted {
		msg += " Its backups and WAL are kept and stay restorable."
	}
	setFlash(w, web.FlashSuccess, msg)
	http.Redirect(w, r, "/sources", http.StatusSeeOther)
	return nil
}

// showUsers is the user administration page (admins only: the use case refuses others).
func (h *Handler) showUsers(w http.ResponseWriter, r *http.Request) error {
	vm, err := h.usersVM(r)
	if err != nil {
		return err
	}
	return h.page(w, r, "Users", web.NavUsers, web.UsersPage(vm))
}

func (h *Handler) usersVM(r *http.Request) (web.UsersVM, error) {
	a := actorOf(r)
	us, err := h.svc.Users(r.Context(), a)
	if err != nil {
		return web.UsersVM{}, err
	}
	vm := web.UsersVM{Now: h.now(), Self: a.Name, Form: web.UserFormVM{Role: string(store.RoleOperator), Errors: map[string]string{}}}
	srcs, err := h.store.Sources(r.Context())
	if err != nil {
		return web.UsersVM{}, err
	}
	for _, src := range srcs {
		vm.SourceNames = append(vm.SourceNames, src.Name)
	}
	for _, u := range us {
		all, sources, err := h.svc.RestoreSources(r.Context(), a, u.Name)
		if err != nil {
			return web.UsersVM{}, err
		}
		vm.Rows = append(vm.Rows, web.UserRow{Name: u.Name, Role: string(u.Role), CreatedAt: u.CreatedAt,
			LastLoginAt: u.LastLoginAt, Disabled: u.DisabledAt != nil, MayRestore: usecase.Can(u.Role, usecase.StartRestore),
			RestoreAll: all, RestoreSources: sources})
	}
	ss, err := h.svc.Sessions(r.Context(), a, "")
	if err != nil {
		return web.UsersVM{}, err
	}
	vm.Sessions = sessionRows(r, ss)
	return vm, nil
}

// addUser creates a user with a generated password, shown once on the page it returns.
func (h *Handler) addUser(w http.ResponseWriter, r *http.Request) error {
	name, role := strings.TrimSpace(r.PostFormValue("name")), store.Role(r.PostFormValue("role"))
	password := rand.Text()
	_, err := h.svc.AddUser(r.Context(), actorOf(r), name, password, role)
	var ve *store.ValidationError
	if err != nil && !errors.As(err, &ve) {
		return err
	}
	vm, verr := h.usersVM(r)
	if verr != nil {
		return verr
	}
	if ve != nil {
		vm.Form = web.UserFormVM{Name: name, Role: string(role), Errors: map[string]string{ve.Field: usecase.Sentence(ve.Message)}}
		if ve.Field != "name" {
			vm.Form.Errors["name"] = usecase.Sentence(ve.Field + " " + ve.Message)
		}
		return h.pageStatus(w, r, http.StatusUnprocessableEntity, "Users", web.NavUsers, web.UsersPage(vm))
	}
	vm.Created, vm.CreatedPassword = name, password
	return h.page(w, r, "Users", web.NavUsers, web.UsersPage(vm))
}

// changeUser applies one admin action to a user and returns to the list.
func (h *Handler) changeUser(action string) appHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx, a, name := r.Context(), actorOf(r), chi.URLParam(r, "userName")
		var err error
		var msg string
		switch action {
		case "role":
			role := store.Role(r.PostFormValue("role"))
			_, err = h.svc.SetRole(ctx, a, name, role)
			msg = fmt.Sprintf("%s is now %s.", name, role)
		case "password":
			password := rand.Text()
			err = h.svc.ResetPassword(ctx, a, name, password)
			msg = fmt.Sprintf("New password of %s, shown once: %s", name, password)
		case "sources":
			if err = r.ParseForm(); err == nil {
				all := r.PostForm.Get("all") == "on"
				_, err = h.svc.SetRestoreSources(ctx, a, name, all, r.PostForm["source"])
				msg = fmt.Sprintf("%s may now restore %s.", name, scopeWords(all, r.PostForm["source"]))
			}
		case "disable", "enable":
			_, err = h.svc.SetDisabled(ctx, a, name, action == "disable")
			msg = fmt.Sprintf("%s is %sd.", name, action)
		case "remove":
			err = h.svc.RemoveUser(ctx, a, name)
			msg = fmt.Sprintf("%s was removed.", name)
		}
		var ce *usecase.ConflictError
		var ve *store.ValidationError
		var ie *usecase.InputError
		switch {
		case errors.As(err, &ce):
			setFlash(w, web.FlashError, usecase.Sentence(ce.Message))
		case errors.As(err, &ie):
			setFlash(w, web.FlashError, ie.Error())
		case errors.As(err, &ve):
			setFlash(w, web.FlashError, usecase.Sentence(ve.Field+" "+ve.Message))
		case err != nil:
			return err
		default:
			if action == "disable" || action == "remove" || action == "password" {
				// Their sessions are gone from the catalog; their open tabs stop now.
				h.sec().live.closeUser(name, "")
			}
			setFlash(w, web.FlashSuccess, msg)
		}
		http.Redirect(w, r, "/users", http.StatusSeeOther)
		return nil
	}
}

// scopeWords says which sources a restore scope names, for a message.
func scopeWords(all bool, sources []string) string {
	switch {
	case all:
		return "every source"
	case len(sources) == 0:
		return "no source"
	}
	return strings.Join(sources, ", ")
}
