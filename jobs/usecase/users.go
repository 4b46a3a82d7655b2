package usecase

import (
	"context"
	"errors"

	"github.com/backstop/backstop/store"
)

// AddUser creates a user with a role.
func (s *Service) AddUser(ctx context.Context, a Actor, name, password string, role store.Role) (store.User, error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return store.User{}, err
	}
	u, err := s.store.CreateUser(ctx, name, password, role)
	if err != nil {
		return store.User{}, err
	}
	s.audit(ctx, a, "user.create", u.Name, map[string]any{"role": u.Role})
	return u, nil
}

// userByName loads a user for a change.
func (s *Service) userByName(ctx context.Context, name string) (store.User, error) {
	return s.store.UserByName(ctx, name)
}

// lastAdmin turns the store's refusal to leave no admin into a conflict for the person.
func lastAdmin(err error, name, what string) error {
	if errors.Is(err, store.ErrLastAdmin) {
		return conflict("%s is the last admin who can sign in: make another admin before you %s them", name, what)
	}
	return err
}

// SetRole changes a user's role.
func (s *Service) SetRole(ctx context.Context, a Actor, name string, role store.Role) (store.User, error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return store.User{}, err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return store.User{}, err
	}
	if err := store.ValidateRole(role); err != nil {
		return store.User{}, err
	}
	u, err = s.store.SetRole(ctx, u.ID, role)
	if err != nil {
		return store.User{}, lastAdmin(err, name, "demote")
	}
	s.audit(ctx, a, "user.role", u.Name, map[string]any{"role": role})
	return u, nil
}

// ResetPassword sets a new password for a user, as an admin, and signs them out
// everywhere. A user changes their own with ChangePassword, which asks for the current one.
func (s *Service) ResetPassword(ctx context.Context, a Actor, name, password string) error {
	if err := Authorize(a, ManageUsers); err != nil {
		return err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return err
	}
	if err := s.store.SetPassword(ctx, u.ID, password, ""); err != nil {
		return err
	}
	s.audit(ctx, a, "user.password_reset", u.Name, nil)
	return nil
}

// SetDisabled disables a user (they cannot sign in, and their sessions end) or enables
// them again.
func (s *Service) SetDisabled(ctx context.Context, a Actor, name string, disabled bool) (store.User, error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return store.User{}, err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return store.User{}, err
	}
	u, err = s.store.SetUserDisabled(ctx, u.ID, disabled)
	if err != nil {
		return store.User{}, lastAdmin(err, name, "disable")
	}
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	s.audit(ctx, a, action, u.Name, nil)
	return u, nil
}

// RemoveUser deletes a user and their sessions. The audit log keeps their name.
func (s *Service) RemoveUser(ctx context.Context, a Actor, name string) error {
	if err := Authorize(a, ManageUsers); err != nil {
		return err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return err
	}
	if err := s.store.DeleteUser(ctx, u.ID); err != nil {
		return lastAdmin(err, name, "remove")
	}
	s.audit(ctx, a, "user.remove", u.Name, nil)
	return nil
}

// Users lists every user, for an admin.
func (s *Service) Users(ctx context.Context, a Actor) ([]store.User, error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return nil, err
	}
	return s.store.Users(ctx)
}
