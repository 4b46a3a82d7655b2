package usecase

import (
	"fmt"
	"slices"

	"github.com/backstop/backstop/store"
)

// Actor is who asks for an operation: a signed-in user, or the OS user behind a CLI
// command.
type Actor struct {
	Name string
	Role store.Role
	// IP is the client address of a dashboard request; "" on the CLI.
	IP string
}

// CLIActor is the person behind a CLI command: whoever can read Backstop's home directory
// and repository key can do everything, so the CLI acts as an admin.
func CLIActor(osUser string) Actor { return Actor{Name: "cli:" + osUser, Role: store.RoleAdmin} }

// Action is something a person may or may not do.
type Action string

// Actions. Every operation of the Service checks one of these before it reads or writes
// anything else.
const (
	View           Action = "view"           // read any page, list or live update
	ReadMetrics    Action = "metrics.read"   // read /metrics (Prometheus)
	AddSource      Action = "source.add"     // register a database (creates a slot on it)
	ChangeSource   Action = "source.change"  // change a source's connection string
	RemoveSource   Action = "source.remove"  // stop archiving, drop the slot
	StartBackup    Action = "backup.start"   // take a full backup now
	StartRestore   Action = "restore.start"  // restore to a point in time or a backup
	ManageInstance Action = "restore.manage" // stop, start or delete a restored instance
	CancelJob      Action = "job.cancel"     // cancel a queued or running job
	SetPolicy      Action = "policy.set"     // change a source's schedule and retention policy
	Expire         Action = "expire.run"     // apply a retention policy now (deletes backups and WAL)
	PinBackup      Action = "backup.pin"     // pin or unpin a backup (legal hold)
	HandleAlerts   Action = "alert.handle"   // acknowledge or resolve an alert
	StartDrill     Action = "drill.start"    // run a restore drill into a sandbox
	StartVerify    Action = "verify.start"   // verify a source's backups and WAL
	ManageChannels Action = "channel.manage" // add or remove notification channels
	TestChannel    Action = "channel.test"   // send a test notification
	ManageUsers    Action = "user.manage"    // add, change or remove users
	ReadAudit      Action = "audit.read"     // read the audit log and check its chain
	ExportAudit    Action = "audit.export"   // download the audit log (itself audited)
	ReadReports    Action = "report.read"    // preview and download signed verification reports
)

// permissions is the whole authorization policy: the roles allowed each action.
var permissions = map[Action][]store.Role{
	View:           store.Roles,
	ReadMetrics:    store.Roles,
	AddSource:      {store.RoleAdmin, store.RoleOperator},
	ChangeSource:   {store.RoleAdmin, store.RoleOperator},
	RemoveSource:   {store.RoleAdmin, store.RoleOperator},
	StartBackup:    {store.RoleAdmin, store.RoleOperator},
	StartRestore:   {store.RoleAdmin, store.RoleOperator},
	ManageInstance: {store.RoleAdmin, store.RoleOperator},
	CancelJob:      {store.RoleAdmin, store.RoleOperator},
	SetPolicy:      {store.RoleAdmin, store.RoleOperator},
	Expire:         {store.RoleAdmin, store.RoleOperator},
	PinBackup:      {store.RoleAdmin, store.RoleOperator},
	HandleAlerts:   {store.RoleAdmin, store.RoleOperator, store.RoleOnCall},
	StartDrill:     {store.RoleAdmin, store.RoleOperator, store.RoleOnCall},
	StartVerify:    {store.RoleAdmin, store.RoleOperator, store.RoleOnCall},
	ManageChannels: {store.RoleAdmin},
	TestChannel:    {store.RoleAdmin, store.RoleOperator, store.RoleOnCall},
	ManageUsers:    {store.RoleAdmin},
	// The audit log names who did what from where: for the auditor and the admin only.
	ReadAudit:   {store.RoleAdmin, store.RoleAuditor},
	ExportAudit: {store.RoleAdmin, store.RoleAuditor},
	// Reports are evidence for audits: auditors read them, admins and operators show
	// them; on-call has the alerts instead.
	ReadReports: {store.RoleAdmin, store.RoleOperator, store.RoleAuditor},
}

// Actions lists every action, for pages and tests that show or check them all.
func Actions() []Action {
	out := make([]Action, 0, len(permissions))
	for a := range permissions {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Can reports whether role may do action. An unknown action is refused.
func Can(role store.Role, action Action) bool {
	return slices.Contains(permissions[action], role)
}

// ForbiddenError is returned, before anything is read or written, when an actor's role does
// not allow an action.
type ForbiddenError struct {
	Actor  Actor
	Action Action
	// Reason says why, when the role alone does not (a restore of a source outside the
	// user's restore scope); "" when the role may not do the action at all.
	Reason string
}

func (e *ForbiddenError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s) may not %s: %s", e.Actor.Name, e.Actor.Role, e.Action, e.Reason)
	}
	return fmt.Sprintf("%s (%s) may not %s", e.Actor.Name, e.Actor.Role, e.Action)
}

// Authorize returns a *ForbiddenError unless a may do action.
func Authorize(a Actor, action Action) error {
	if !Can(a.Role, action) {
		return &ForbiddenError{Actor: a, Action: action}
	}
	return nil
}
