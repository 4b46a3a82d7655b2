package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store"
)

// TestCLISourceLifecycle: a source's connection string can be changed (only to the same
// cluster), a second registration of one cluster is warned about, and removing a source
// drops its replication slot while its backups stay listed. On the old code none of this
// could be done: the slot kept WAL on the server forever.
func TestCLISourceLifecycle(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	other := pgtest.Start(t)
	dsn := c.DSN("postgres")
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", dsn)
	_, stderr, err := backstop(t, home, "source", "add", "shop-again", dsn)
	if err != nil || !strings.Contains(stderr, "is also registered as shop") {
		t.Errorf("second registration of one cluster: err %v, stderr %q; want a warning naming shop", err, stderr)
	}
	mustBackstop(t, home, "backup", "shop")

	// Same cluster, other connection string: accepted.
	changed := strings.Replace(dsn, "127.0.0.1", "localhost", 1)
	if out := mustBackstop(t, home, "source", "change", "shop", changed); !strings.Contains(out, "now connects with") {
		t.Errorf("source change = %q", out)
	}
	// Another cluster: refused, and nothing saved.
	_, stderr, code := runBinary(t, home, "source", "change", "shop", other.DSN("postgres"))
	if code == 0 || !strings.Contains(stderr, "reaches system") {
		t.Errorf("source change to another cluster = exit %d, %q; want a refusal naming the systems", code, stderr)
	}
	var listed []struct{ Name, DSN string }
	decodeJSON(t, "source list", mustBackstop(t, home, "source", "list", "--json"), &listed)
	for _, l := range listed {
		if l.Name == "shop" && l.DSN != changed {
			t.Errorf("DSN after a refused change = %q, want %q", l.DSN, changed)
		}
	}
	st := openCatalog(t, home)

	// Removing: the slot goes, the backup stays.
	mustBackstop(t, home, "backup", "shop") // a backup creates the slot if archiving has not yet
	execSQL(t, dsn, `SELECT pg_create_physical_replication_slot('backstop_shop') WHERE NOT EXISTS
		(SELECT 1 FROM pg_replication_slots WHERE slot_name = 'backstop_shop')`)
	out := mustBackstop(t, home, "source", "remove", "shop")
	if !strings.Contains(out, "slot was dropped") || !strings.Contains(out, "kept") {
		t.Errorf("source remove = %q", out)
	}
	if n := queryInt(t, dsn, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_shop'`); n != 0 {
		t.Errorf("slot backstop_shop still on the server after remove")
	}
	if out := mustBackstop(t, home, "backup", "list"); strings.Count(out, "complete") != 2 {
		t.Errorf("backup list after remove = %q, want both backups kept", out)
	}
	_, stderr, code = runBinary(t, home, "backup", "shop")
	if code == 0 || !strings.Contains(stderr, "was removed") {
		t.Errorf("backup of a removed source = exit %d, %q; want a refusal", code, stderr)
	}
	// A source with nothing in the catalog goes entirely.
	mustBackstop(t, home, "source", "remove", "shop-again")
	if _, err := st.SourceByName(context.Background(), "shop-again"); err == nil {
		t.Errorf("shop-again still in the catalog after remove")
	}
}

// TestCLIUsers: users can be listed, given another role, disabled (they can no longer sign
// in) and removed; the last admin cannot be demoted, disabled or removed.
func TestCLIUsers(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "user", "add", "root-admin", "--role", "admin")
	mustBackstop(t, home, "user", "add", "carol", "--role", "auditor")
	for _, args := range [][]string{{"set-role", "root-admin", "operator"}, {"disable", "root-admin"}, {"remove", "root-admin"}} {
		_, stderr, code := runBinary(t, home, append([]string{"user"}, args...)...)
		if code == 0 || !strings.Contains(stderr, "last admin") {
			t.Errorf("user %v = exit %d, %q; want the last admin kept", args, code, stderr)
		}
	}
	mustBackstop(t, home, "user", "set-role", "carol", "oncall")
	out := mustBackstop(t, home, "user", "passwd", "carol")
	if !strings.Contains(out, "Password (shown once)") {
		t.Errorf("user passwd = %q", out)
	}
	mustBackstop(t, home, "user", "disable", "carol")
	st := openCatalog(t, home)
	ctx := context.Background()
	u, err := st.UserByName(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != store.RoleOnCall || u.DisabledAt == nil {
		t.Errorf("carol = %s, disabled %v; want oncall and disabled", u.Role, u.DisabledAt)
	}
	mustBackstop(t, home, "user", "remove", "carol")
	if out := mustBackstop(t, home, "user", "list"); strings.Contains(out, "carol") || !strings.Contains(out, "root-admin") {
		t.Errorf("user list = %q", out)
	}
}

// TestCLIUserRestoreSources: an operator's restores are limited to named sources and shown
// in the list; an unknown source or limiting an admin is refused and changes nothing;
// "all" lifts the limit, "none" leaves no source.
func TestCLIUserRestoreSources(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "user", "add", "root-admin", "--role", "admin")
	mustBackstop(t, home, "user", "add", "olga", "--role", "operator")
	st := openCatalog(t, home)
	ctx := context.Background()
	for i, name := range []string{"orders", "billing"} {
		if _, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://x@127.0.0.1:1/postgres",
			SystemIdentifier: "732000000000000000" + string(rune('1'+i)), PGVersion: 150004}); err != nil {
			t.Fatal(err)
		}
	}
	restores := func() string {
		t.Helper()
		var users []struct {
			Name           string
			RestoreAll     bool     `json:"restore_all"`
			RestoreSources []string `json:"restore_sources"`
		}
		decodeJSON(t, "user list", mustBackstop(t, home, "user", "list", "--json"), &users)
		for _, u := range users {
			if u.Name == "olga" {
				return restoreWords(u.RestoreAll, u.RestoreSources)
			}
		}
		t.Fatal("olga is not listed")
		return ""
	}
	if got := restores(); got != "every source" {
		t.Errorf("a new operator restores %q, want every source", got)
	}
	if out := mustBackstop(t, home, "user", "set-sources", "olga", "--restore", "billing,orders"); !strings.Contains(out, "olga may now restore billing, orders") {
		t.Errorf("set-sources = %q", out)
	}
	if got := restores(); got != "orders, billing" {
		t.Errorf("after set-sources, olga restores %q", got)
	}
	if out := mustBackstop(t, home, "user", "list"); !strings.Contains(out, "orders, billing") {
		t.Errorf("user list does not show olga's sources: %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"olga", "--restore", "billing,nosuch"}, `no source named "nosuch"`},
		{[]string{"root-admin", "--restore", "billing"}, "admins restore every source"},
		{[]string{"olga"}, "needs --restore"},
	} {
		_, stderr, code := runBinary(t, home, append([]string{"user", "set-sources"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("user set-sources %v = exit %d, %q; want a refusal saying %q", tc.args, code, stderr, tc.want)
		}
	}
	if got := restores(); got != "orders, billing" {
		t.Errorf("refused changes changed olga's sources to %q", got)
	}
	mustBackstop(t, home, "user", "set-sources", "olga", "--restore", "none")
	if got := restores(); got != "no source" {
		t.Errorf("after --restore none, olga restores %q", got)
	}
	mustBackstop(t, home, "user", "set-sources", "olga", "--restore", "all")
	if got := restores(); got != "every source" {
		t.Errorf("after --restore all, olga restores %q", got)
	}
}
