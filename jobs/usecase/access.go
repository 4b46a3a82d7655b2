package usecase

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/backstop/backstop/store"
)

// RestoreScope returns which sources a may restore: every one for an admin (whatever is
// stored for them) and for a user never limited, else those an admin chose. It says
// nothing of whether a's role may restore at all: see Can.
func (s *Service) RestoreScope(ctx context.Context, a Actor) (store.RestoreScope, error) {
	if a.Role == store.RoleAdmin {
		return store.RestoreScope{}, nil
	}
	u, err := s.store.UserByName(ctx, a.Name)
	if err != nil {
		return store.RestoreScope{}, err
	}
	return s.store.RestoreScope(ctx, u.ID)
}

// authorizeRestore returns a *ForbiddenError unless a may restore (start, or manage the
// instance of, with action) source src: their role must allow action, and src must be in
// their restore scope.
func (s *Service) authorizeRestore(ctx context.Context, a Actor, action Action, src store.Source) error {
	if err := Authorize(a, action); err != nil {
		return err
	}
	sc, err := s.RestoreScope(ctx, a)
	if err != nil {
		return err
	}
	if sc.Allows(src.ID) {
		return nil
	}
	return &ForbiddenError{Actor: a, Action: action, Reason: fmt.Sprintf(
		"your restores are limited to %s, and %s is not one of them. Ask an admin to add it on the Users page",
		s.sourceNames(ctx, sc.SourceIDs), src.Name)}
}

// sourceNames names sources for a message: "billing, orders", or "no source".
func (s *Service) sourceNames(ctx context.Context, ids []int64) string {
	if len(ids) == 0 {
		return "no source"
	}
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		if src, err := s.store.Source(ctx, id); err == nil {
			names = append(names, src.Name)
		}
	}
	return strings.Join(names, ", ")
}

// SetRestoreSources limits which sources a user may restore to the named ones, or, with
// all, lets them restore every source (present and future). Admins restore every source,
// so limiting one is refused: change their role first. Every name must be a source.
func (s *Service) SetRestoreSources(ctx context.Context, a Actor, name string, all bool, sources []string) (store.RestoreScope, error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return store.RestoreScope{}, err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return store.RestoreScope{}, err
	}
	if u.Role == store.RoleAdmin && !all {
		return store.RestoreScope{}, conflict("%s is an admin, and admins restore every source: make them an operator first", name)
	}
	sc := store.RestoreScope{Limited: !all}
	var names []string
	if !all {
		for _, n := range sources {
			src, err := s.store.SourceByName(ctx, strings.TrimSpace(n))
			if errors.Is(err, store.ErrNotFound) {
				return store.RestoreScope{}, &InputError{Fields: map[string]string{"sources": fmt.Sprintf("There is no source named %q.", n)}}
			}
			if err != nil {
				return store.RestoreScope{}, err
			}
			sc.SourceIDs = append(sc.SourceIDs, src.ID)
			names = append(names, src.Name)
		}
	}
	if err := s.store.SetRestoreScope(ctx, u.ID, sc); err != nil {
		return store.RestoreScope{}, err
	}
	detail := map[string]any{"all": all}
	if !all {
		detail["sources"] = names
	}
	s.audit(ctx, a, "user.restore_sources", u.Name, detail)
	return s.store.RestoreScope(ctx, u.ID)
}

// RestoreSources tells an admin which sources user name may restore: all, or the named ones
// (none: no source). An admin user restores every source.
func (s *Service) RestoreSources(ctx context.Context, a Actor, name string) (all bool, sources []string, err error) {
	if err := Authorize(a, ManageUsers); err != nil {
		return false, nil, err
	}
	u, err := s.userByName(ctx, name)
	if err != nil {
		return false, nil, err
	}
	if u.Role == store.RoleAdmin {
		return true, nil, nil
	}
	sc, err := s.store.RestoreScope(ctx, u.ID)
	if err != nil {
		return false, nil, err
	}
	for _, id := range sc.SourceIDs {
		src, err := s.store.Source(ctx, id)
		if err != nil {
			return false, nil, err
		}
		sources = append(sources, src.Name)
	}
	return !sc.Limited, sources, nil
}

// Sessions lists the unexpired sessions of user name, or of everyone when name is "".
// Anyone may list their own; listing another's, or everyone's, is for admins.
func (s *Service) Sessions(ctx context.Context, a Actor, name string) ([]store.SessionInfo, error) {
	if name != a.Name {
		if err := Authorize(a, ManageUsers); err != nil {
			return nil, err
		}
	} else if err := Authorize(a, View); err != nil {
		return nil, err
	}
	var id int64
	if name != "" {
		u, err := s.userByName(ctx, name)
		if err != nil {
			return nil, err
		}
		id = u.ID
	}
	return s.store.Sessions(ctx, id)
}

// RevokeSession ends the session whose token hashes to tokenHash, and returns it so that
// the caller can close its live connections. Anyone may end their own; ending another's is
// for admins.
func (s *Service) RevokeSession(ctx context.Context, a Actor, tokenHash string) (store.SessionInfo, error) {
	if err := Authorize(a, View); err != nil {
		return store.SessionInfo{}, err
	}
	si, err := s.store.SessionByHash(ctx, tokenHash)
	if errors.Is(err, store.ErrNotFound) && !Can(a.Role, ManageUsers) {
		// Whether another user's session exists is not for this actor to learn.
		return store.SessionInfo{}, &ForbiddenError{Actor: a, Action: ManageUsers}
	}
	if err != nil {
		return store.SessionInfo{}, err
	}
	if si.UserName != a.Name {
		if err := Authorize(a, ManageUsers); err != nil {
			return store.SessionInfo{}, err
		}
	}
	if err := s.store.DeleteSessionByHash(ctx, tokenHash); err != nil {
		return store.SessionInfo{}, err
	}
	s.audit(ctx, a, "user.session_revoke", si.UserName, map[string]any{"created_at": si.CreatedAt, "ip": si.IP,
		"user_agent": si.UserAgent})
	return si, nil
}

// RevokeOtherSessions ends every session of a but the one whose token hashes to keepHash
// ("sign out everywhere else"), and returns the hashes of those it ended.
func (s *Service) RevokeOtherSessions(ctx context.Context, a Actor, keepHash string) ([]string, error) {
	if err := Authorize(a, View); err != nil {
		return nil, err
	}
	u, err := s.userByName(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	ended, err := s.store.DeleteOtherSessions(ctx, u.ID, keepHash)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, a, "user.session_revoke", u.Name, map[string]any{"others": len(ended)})
	return ended, nil
}

// ChangePassword changes a's own password, given their current one, and ends their other
// sessions (keeping the one whose token hashes to keepHash). A wrong current password is
// an *InputError on "current"; a new one too short, a *store.ValidationError.
func (s *Service) ChangePassword(ctx context.Context, a Actor, current, password, keepHash string) error {
	if err := Authorize(a, View); err != nil {
		return err
	}
	u, err := s.userByName(ctx, a.Name)
	if err != nil {
		return err
	}
	if err := s.store.CheckPassword(ctx, u.ID, current); errors.Is(err, store.ErrBadCredentials) {
		return &InputError{Fields: map[string]string{"current": "The current password is wrong."}}
	} else if err != nil {
		return err
	}
	if err := s.store.SetPassword(ctx, u.ID, password, keepHash); err != nil {
		return err
	}
	s.audit(ctx, a, "user.password_change", u.Name, nil)
	return nil
}
