package web

import "context"

// Allowed is what the signed-in user may do, by action name. Handlers fill it in from the
// use-case layer's policy; components only read it, to leave out controls the user may not
// use (the server refuses them anyway).
type Allowed map[string]bool

// The actions components ask about; the names are the use-case layer's.
const (
	CanAddSource      = "source.add"
	CanChangeSource   = "source.change"
	CanRemoveSource   = "source.remove"
	CanStartBackup    = "backup.start"
	CanStartRestore   = "restore.start"
	CanManageInstance = "restore.manage"
	CanCancelJob      = "job.cancel"
	CanManageUsers    = "user.manage"
	CanReadAudit      = "audit.read"
	CanExportAudit    = "audit.export"
)

type allowedKey struct{}

// restoreScopeKey carries the sources the user may restore, for a user whose restores are
// limited per source.
type restoreScopeKey struct{}

// WithRestoreScope returns ctx saying that its user may restore only the given sources
// (none: no source). Without it, a user whose role may restore may restore every source.
func WithRestoreScope(ctx context.Context, sourceIDs []int64) context.Context {
	m := make(map[int64]bool, len(sourceIDs))
	for _, id := range sourceIDs {
		m[id] = true
	}
	return context.WithValue(ctx, restoreScopeKey{}, m)
}

// canRestore reports whether the user rendering ctx may restore source sourceID (and manage
// its restored instances) with action: their role allows it, and the source is in their
// restore scope.
func canRestore(ctx context.Context, action string, sourceID int64) bool {
	if !can(ctx, action) {
		return false
	}
	m, limited := ctx.Value(restoreScopeKey{}).(map[int64]bool)
	return !limited || m[sourceID]
}

// WithAllowed returns ctx carrying what its user may do.
func WithAllowed(ctx context.Context, a Allowed) context.Context {
	return context.WithValue(ctx, allowedKey{}, a)
}

// can reports whether the user rendering ctx may do action. Without an Allowed in ctx (a
// component rendered on its own, as in previews) every control shows.
func can(ctx context.Context, action string) bool {
	a, ok := ctx.Value(allowedKey{}).(Allowed)
	return !ok || a[action]
}

// restoreFormMethod is post for a user who may restore the source; for others the restore
// form only previews plans, so it is a plain GET.
func restoreFormMethod(ctx context.Context, sourceID int64) string {
	if canRestore(ctx, CanStartRestore, sourceID) {
		return "post"
	}
	return "get"
}
