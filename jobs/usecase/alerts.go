package usecase

import (
	"context"
	"errors"
	"fmt"

	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/store"
)

// Alerts returns the alerts f selects.
func (s *Service) Alerts(ctx context.Context, a Actor, f store.AlertFilter) ([]store.Alert, error) {
	if err := Authorize(a, View); err != nil {
		return nil, err
	}
	return s.store.Alerts(ctx, f)
}

// AcknowledgeAlert records that the actor is on firing alert id. An alert not firing is
// a *ConflictError saying what it is.
func (s *Service) AcknowledgeAlert(ctx context.Context, a Actor, id int64, comment string) (store.Alert, error) {
	if err := Authorize(a, HandleAlerts); err != nil {
		return store.Alert{}, err
	}
	al, err := s.store.AcknowledgeAlert(ctx, id, a.Name, comment)
	if errors.Is(err, store.ErrConflict) {
		cur, _ := s.store.Alert(ctx, id)
		return store.Alert{}, conflict("alert %d is %s%s: only a firing alert can be acknowledged", id, cur.State, byWhom(cur))
	}
	if err != nil {
		return store.Alert{}, err
	}
	s.audit(ctx, a, "alert.acknowledge", fmt.Sprintf("alert %d", id), map[string]any{"rule": al.Rule, "title": al.Title, "comment": comment})
	if s.notifier != nil {
		s.notifier.Alert(al, notify.KindAcknowledged)
	}
	return al, nil
}

// ResolveAlert closes open alert id by hand. If its condition still holds, the next
// evaluation opens a new alert.
func (s *Service) ResolveAlert(ctx context.Context, a Actor, id int64, comment string) (store.Alert, error) {
	if err := Authorize(a, HandleAlerts); err != nil {
		return store.Alert{}, err
	}
	al, err := s.store.ResolveAlert(ctx, id, a.Name, comment)
	if errors.Is(err, store.ErrConflict) {
		return store.Alert{}, conflict("alert %d is already resolved", id)
	}
	if err != nil {
		return store.Alert{}, err
	}
	s.audit(ctx, a, "alert.resolve", fmt.Sprintf("alert %d", id), map[string]any{"rule": al.Rule, "title": al.Title, "comment": comment})
	if s.notifier != nil {
		s.notifier.Alert(al, notify.KindResolved)
	}
	return al, nil
}

func byWhom(a store.Alert) string {
	switch {
	case a.State == store.AlertAcknowledged && a.AckedBy != "":
		return " (by " + a.AckedBy + ")"
	case a.State == store.AlertResolved && a.ResolvedBy != "":
		return " (by " + a.ResolvedBy + ")"
	}
	return ""
}
