package web

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"
)

// withNavAlerts renders c with an open-alert count in the navigation, as the handlers do.
func withNavAlerts(c templ.Component, vm NavAlertsVM) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		return c.Render(WithNavAlerts(ctx, vm), w)
	})
}

// sampleAlerts are open alerts as the catalog orders them (worst first, then oldest),
// then resolved ones, newest first.
func sampleAlerts(now time.Time) (open, resolved []AlertVM) {
	ackedAt := now.Add(-6 * time.Minute)
	open = []AlertVM{
		{ID: 31, Rule: "archiver-stopped", Severity: "critical", State: "firing", SourceID: 2, SourceName: "billing",
			Title:       "billing: WAL archiving stopped 12 min ago",
			Explanation: "WAL archiving stopped 12 min ago: the server closed the replication connection (FATAL: terminating connection due to administrator command).",
			Action:      "Check that the source is running and reachable; the archiver retries every 10 s.",
			Evidence:    []EvidenceVM{{"cause", "connection"}, {"stopped since", UTC(now.Add(-12 * time.Minute))}},
			FirstAt:     now.Add(-11 * time.Minute), LastSeenAt: now.Add(-4 * time.Second)},
		{ID: 29, Rule: "wal-gap", Severity: "critical", State: "acknowledged", SourceID: 1, SourceName: "orders-db",
			Title:       "orders-db: WAL is missing from 0/3A000000 to 0/3B000000",
			Explanation: "WAL is missing from 0/3A000000 to 0/3B000000 (segment 00000001000000000000003A): nothing can be restored between 09:12:04 and 09:14:51 UTC.",
			Action:      "Start a backup now: restores from it on are whole again.",
			Evidence:    []EvidenceVM{{"from", "0/3A000000"}, {"segment", "00000001000000000000003A"}, {"to", "0/3B000000"}},
			FirstAt:     now.Add(-3 * time.Hour), LastSeenAt: now.Add(-9 * time.Second),
			AckedBy: "sam.oncall", AckedAt: ackedAt, AckComment: "Backup 19 is running; I will resolve once it completes."},
		{ID: 33, Rule: "drill-stale", Severity: "warning", State: "firing", SourceID: 3, SourceName: "analytics-warehouse",
			Title:       "analytics-warehouse: No restore drill has passed yet",
			Explanation: "No restore drill has passed yet: how long a restore takes is not proven.",
			Action:      "Run a drill.", FirstAt: now.Add(-2 * time.Minute), LastSeenAt: now.Add(-2 * time.Second)},
	}
	resolvedAt := now.Add(-40 * time.Minute)
	handAt := now.Add(-26 * time.Hour)
	resolved = []AlertVM{
		{ID: 30, Rule: "wal-lag", Severity: "warning", State: "resolved", SourceID: 1, SourceName: "orders-db",
			Title: "orders-db: WAL archiving is 2 min (48 MiB) behind the server", FirstAt: now.Add(-52 * time.Minute),
			LastSeenAt: resolvedAt, ResolvedBy: ResolvedByItself, ResolvedAt: resolvedAt, ResolveComment: "the condition cleared"},
		{ID: 24, Rule: "disk-full", Severity: "critical", State: "resolved",
			Title: "Backstop itself: the repository's disk is 96 % full", FirstAt: now.Add(-30 * time.Hour),
			LastSeenAt: handAt, ResolvedBy: "ana.operator", ResolvedAt: handAt, ResolveComment: "Moved old restores off the disk."},
	}
	return open, resolved
}

func sampleChannels(now time.Time) ChannelsVM {
	return ChannelsVM{Now: now, Webhook: ChannelFormVM{Errors: map[string]string{}}, Slack: ChannelFormVM{Errors: map[string]string{}},
		Email: ChannelFormVM{Errors: map[string]string{}},
		Channels: []ChannelVM{
			{Name: "ops-pager", Kind: "webhook", MinSeverity: "critical", Enabled: true, CreatedAt: now.Add(-20 * 24 * time.Hour),
				Deliveries: []DeliveryVM{
					{At: now.Add(-11 * time.Minute), Event: "firing", AlertID: 31, Attempt: 1},
					{At: now.Add(-3 * time.Hour), Event: "firing", AlertID: 29, Attempt: 3},
					{At: now.Add(-3*time.Hour - 30*time.Second), Event: "firing", AlertID: 29, Attempt: 2,
						Error: `webhook "ops-pager": 502 Bad Gateway: upstream timed out`},
				}},
			{Name: "dba-mail", Kind: "email", MinSeverity: "warning", Enabled: true, CreatedAt: now.Add(-3 * 24 * time.Hour)},
			{Name: "team-slack", Kind: "slack", MinSeverity: "info", Enabled: false, CreatedAt: now.Add(-90 * 24 * time.Hour),
				Deliveries: []DeliveryVM{{At: now.Add(-2 * 24 * time.Hour), Event: "test", Attempt: 1,
					Error: `slack "team-slack": Post "https://hooks.slack.com/…": dial tcp: lookup hooks.slack.com: no such host`}}},
		}}
}

// alertSamplePages are the on-call page (alerts open, none open, a later history
// page), one alert's page open and resolved, and the notification settings (channels,
// none, a form with errors, a webhook just added).
func alertSamplePages(now time.Time) []page {
	open, resolved := sampleAlerts(now)
	nav := NavAlertsVM{Critical: 2, Warning: 1}
	chErr := sampleChannels(now)
	chErr.Email = ChannelFormVM{Name: "dba mail", Addr: "smtp.example.com", From: "backstop", To: "dba@example.com",
		Errors: map[string]string{
			"addr": `"smtp.example.com" is not host:port, e.g. smtp.example.com:587.`,
			"from": `"backstop" is not an email address: mail: missing '@' or angle-addr.`,
			"smtp": "The server refused the connection.",
		}}
	created := sampleChannels(now)
	created.Created, created.CreatedSecret = "ops-pager", "3f9a1c07d2e84b5aa61e0c9b7d43f2e18c5b6a09e7d1f4c2b8a3e6d05f9c1b7a"
	return []page{
		{"alerts", withNavAlerts(layout("Alerts", NavAlerts, AlertsPage(AlertsVM{Now: now, Open: open, History: resolved,
			Older: 24, Version: "5e1f0c2a9b7d3e48"})), nav)},
		{"alerts-empty", withNavAlerts(layout("Alerts", NavAlerts, AlertsPage(AlertsVM{Now: now, History: resolved,
			Version: "0c1d"})), NavAlertsVM{})},
		{"alerts-older", layout("Alerts", NavAlerts, AlertsPage(AlertsVM{Now: now, Before: 12, Version: "77"}))},
		{"alert", withNavAlerts(layout("Alert 29", NavAlerts, AlertPage(AlertPageVM{Now: now, Alert: open[1]})), nav)},
		{"alert-resolved", layout("Alert 24", NavAlerts, AlertPage(AlertPageVM{Now: now, Alert: resolved[1]}))},
		{"channels", withNavAlerts(layout("Notifications", NavSettings, ChannelsPage(sampleChannels(now))), nav)},
		{"channels-empty", layout("Notifications", NavSettings, ChannelsPage(ChannelsVM{Now: now,
			Webhook: ChannelFormVM{Errors: map[string]string{}}, Slack: ChannelFormVM{Errors: map[string]string{}},
			Email: ChannelFormVM{Errors: map[string]string{}}}))},
		{"channels-errors", layout("Notifications", NavSettings, ChannelsPage(chErr))},
		{"channels-created", layout("Notifications", NavSettings, ChannelsPage(created))},
	}
}

func alertPages(t *testing.T) map[string]doc {
	t.Helper()
	out := map[string]doc{}
	for _, p := range alertSamplePages(sampleNow()) {
		out[p.name] = parse(t, p.c)
	}
	return out
}

func TestAlertsPage(t *testing.T) {
	t.Parallel()
	d := alertPages(t)["alerts"]
	cards := d.testIDs("alert-card")
	var order []string
	for _, c := range cards {
		id, _ := attr(c, "data-alert-id")
		sev, _ := attr(c, "data-severity")
		order = append(order, id+":"+sev)
	}
	if got := strings.Join(order, " "); got != "31:critical 29:critical 33:warning" {
		t.Errorf("cards = %q, want the catalog's order kept", got)
	}
	sev := d.testIDs("alert-severity")[0]
	if c, _ := attr(sev, "class"); !strings.Contains(c, "badge--danger") || text(sev) != "Critical" {
		t.Errorf("severity badge = %q %q, want the colour and the word", c, text(sev))
	}
	d.contains("What to do", "Check that the source is running", "Stopped since", "firing since",
		"Acknowledged by", "sam.oncall", "“Backup 19 is running; I will resolve once it completes.”",
		"Cleared by itself", "Moved old restores off the disk.", "Backstop itself")
	if n := len(d.testIDs("alert-ack")); n != 2 {
		t.Errorf("Acknowledge buttons = %d, want one per firing alert (2)", n)
	}
	if n := len(d.testIDs("alert-resolve")); n != 3 {
		t.Errorf("Resolve buttons = %d, want one per open alert (3)", n)
	}
	live := d.one("alerts-live")
	if got, _ := attr(live, "hx-get"); got != "/alerts?fragment=live&v=5e1f0c2a9b7d3e48" {
		t.Errorf("live part polls %q", got)
	}
	for _, in := range d.testIDs("alert-comment") {
		if _, ok := attr(in, "hx-preserve"); !ok {
			t.Errorf("comment box %v is not hx-preserve: the refresh would wipe what is typed", in.Attr)
		}
	}
	if got, _ := attr(d.one("alerts-older"), "href"); got != "/alerts?before=24" {
		t.Errorf("Older link = %q", got)
	}
	nav := d.one("nav-alerts")
	if text(nav) != ": 3 open alerts, worst critical" {
		t.Errorf("navigation count reads %q", text(nav))
	}
	if c, _ := attr(nav, "class"); !strings.Contains(c, "nav-count--danger") {
		t.Errorf("navigation count class = %q, want the critical colour", c)
	}
	if got, _ := attr(nav, "hx-get"); got != "/alerts/count" {
		t.Errorf("navigation count polls %q", got)
	}

	empty := alertPages(t)["alerts-empty"]
	empty.contains("No open alerts")
	if got, _ := attr(empty.one("nav-alerts"), "data-count"); got != "0" {
		t.Errorf("count with nothing open = %q", got)
	}
	older := alertPages(t)["alerts-older"]
	older.contains("No older resolved alerts.", "← Newest")
	if got, _ := attr(older.one("alerts-live"), "hx-get"); got != "/alerts?before=12&fragment=live&v=77" {
		t.Errorf("an older page polls %q", got)
	}
}

// TestAlertCardAfterAction: the card an action answers with keeps the comment box out of
// hx-preserve (what was sent is cleared), and says why an action was refused.
func TestAlertCardAfterAction(t *testing.T) {
	t.Parallel()
	open, _ := sampleAlerts(sampleNow())
	d := parseFragment(t, AlertCard(open[0], sampleNow(), AlertNoteVM{Error: true, Message: "Alert 31 is resolved (by ana): only a firing alert can be acknowledged."}))
	if _, ok := attr(d.one("alert-comment"), "hx-preserve"); ok {
		t.Error("the answered card's comment box is hx-preserve")
	}
	note := d.one("alert-note")
	if r, _ := attr(note, "role"); r != "alert" || !strings.Contains(text(note), "only a firing alert") {
		t.Errorf("note = %q role %q", text(note), r)
	}
	if got, _ := attr(d.one("alert-ack"), "hx-target"); got != "#alert-31" {
		t.Errorf("Acknowledge swaps %q", got)
	}
}

// TestAlertPagesHideControls: for a role that may not handle alerts or manage channels,
// no form but Send test where allowed.
func TestAlertPagesHideControls(t *testing.T) {
	t.Parallel()
	now := sampleNow()
	open, _ := sampleAlerts(now)
	for name, c := range map[string]templ.Component{
		"alerts":   AlertsPage(AlertsVM{Now: now, Open: open}),
		"alert":    AlertPage(AlertPageVM{Now: now, Alert: open[0]}),
		"channels": ChannelsPage(sampleChannels(now)),
	} {
		for _, allowed := range []Allowed{{}, {CanTestChannel: true}} {
			var b strings.Builder
			if err := c.Render(WithAllowed(context.Background(), allowed), &b); err != nil {
				t.Fatal(err)
			}
			var forms []string
			for _, f := range parseString(t, b.String()).all(tag("form")) {
				a, _ := attr(f, "action")
				forms = append(forms, a)
			}
			want := 0
			if name == "channels" && allowed[CanTestChannel] {
				want = 3
			}
			if len(forms) != want {
				t.Errorf("%s with %v has forms %v, want %d", name, allowed, forms, want)
			}
			for _, f := range forms {
				if !strings.HasSuffix(f, "/test") {
					t.Errorf("%s with %v has form %s", name, allowed, f)
				}
			}
		}
	}
}

func parseString(t *testing.T, src string) doc {
	t.Helper()
	return parse(t, templ.Raw(src))
}

func TestChannelsPage(t *testing.T) {
	t.Parallel()
	pages := alertPages(t)
	d := pages["channels"]
	d.contains("critical alerts only", "warning and critical alerts", "Alert fired", "(attempt 3)", "Delivered", "Failed",
		"502 Bad Gateway", "disabled", "Nothing sent yet.")
	if got, _ := attr(d.all(hasAttr("data-testid", "channel-test"))[0].Parent, "action"); got != "/settings/notifications/ops-pager/test" {
		t.Errorf("Send test posts to %q", got)
	}
	for _, kind := range []string{"webhook", "slack", "email"} {
		d.one("channel-form-" + kind)
	}

	e := pages["channels-errors"]
	e.contains("The server refused the connection.")
	for _, id := range []string{"email-addr", "email-from"} {
		in := e.byID(id)
		if v, _ := attr(in, "aria-invalid"); v != "true" {
			t.Errorf("%s is not marked invalid", id)
		}
		e.one("field-error-" + id)
	}
	if _, ok := attr(e.byID("email-addr"), "autofocus"); !ok {
		t.Error("the first field in error has no focus")
	}
	if n := len(e.all(hasAttr("autofocus", ""))); n != 1 {
		t.Errorf("autofocus fields = %d, want 1", n)
	}
	if v, _ := attr(e.byID("email-to"), "value"); v != "dba@example.com" {
		t.Errorf("To is not refilled: %q", v)
	}

	c := pages["channels-created"]
	secret := c.one("channel-secret")
	if !strings.Contains(text(secret), "3f9a1c07d2e84b5a") {
		t.Errorf("created page shows %q, want the secret", text(secret))
	}
	if len(c.all(hasAttr("data-copy", ""))) == 0 {
		t.Error("the secret has no copy button")
	}
}

func TestChannelURL(t *testing.T) {
	t.Parallel()
	if got := channelURL("ops/pager x", "remove"); got != "/settings/notifications/ops%2Fpager%20x/remove" {
		t.Errorf("channelURL = %q", got)
	}
}
