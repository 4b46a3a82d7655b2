package web

import "time"

// sampleSessions are three signed-in browsers of two users; the first is the reader's.
func sampleSessions(now time.Time) []SessionRow {
	return []SessionRow{
		{ID: "a1", User: "ana.operator", CreatedAt: now.Add(-3 * time.Hour), LastSeenAt: now.Add(-20 * time.Second),
			ExpiresAt: now.Add(12 * time.Hour), AbsoluteExpiresAt: now.Add(7*24*time.Hour - 3*time.Hour), IP: "192.0.2.10",
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", Current: true},
		{ID: "a2", User: "ana.operator", CreatedAt: now.Add(-2 * 24 * time.Hour), LastSeenAt: now.Add(-5 * time.Hour),
			ExpiresAt: now.Add(7 * time.Hour), AbsoluteExpiresAt: now.Add(5 * 24 * time.Hour), IP: "2001:db8::17",
			UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Safari/604.1"},
		{ID: "b1", User: "bob", CreatedAt: now.Add(-40 * time.Minute), LastSeenAt: now.Add(-2 * time.Minute),
			ExpiresAt: now.Add(12 * time.Hour), AbsoluteExpiresAt: now.Add(7*24*time.Hour - 40*time.Minute), IP: "192.0.2.44",
			UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Firefox/133.0"},
	}
}

func accessSamplePages(now time.Time) []page {
	login := now.Add(-3 * time.Hour)
	users := UsersVM{Now: now, Self: "root", SourceNames: []string{"orders-db", "billing", "inventory"},
		Rows: []UserRow{
			{Name: "ana.operator", Role: "operator", CreatedAt: now.Add(-90 * 24 * time.Hour), LastLoginAt: &login,
				MayRestore: true, RestoreSources: []string{"orders-db", "billing"}},
			{Name: "bob", Role: "oncall", CreatedAt: now.Add(-30 * 24 * time.Hour), LastLoginAt: &login, RestoreAll: true},
			{Name: "carol", Role: "auditor", CreatedAt: now.Add(-7 * 24 * time.Hour), RestoreAll: true, Disabled: true},
			{Name: "root", Role: "admin", CreatedAt: now.Add(-120 * 24 * time.Hour), LastLoginAt: &login, RestoreAll: true},
		},
		Sessions: sampleSessions(now), Form: UserFormVM{Role: "operator", Errors: map[string]string{}}}
	return []page{
		{"users", layout("Users", NavUsers, UsersPage(users))},
		{"account", layout("Your account", NavAccount, AccountPage(AccountVM{Now: now, Name: "ana.operator", Role: "operator",
			Sessions: sampleSessions(now)[:2], Errors: map[string]string{}}))},
		{"account-errors", layout("Your account", NavAccount, AccountPage(AccountVM{Now: now, Name: "ana.operator", Role: "operator",
			Sessions: sampleSessions(now)[:1], Errors: map[string]string{"current": "The current password is wrong."}}))},
	}
}
