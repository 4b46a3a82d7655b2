package notify

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSlackPayload(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, nil)
	ch := NewSlack("oncall-slack", rc.URL+"/services/T000/B000/XXXX", nil)
	if err := ch.Send(t.Context(), sampleEvent()); err != nil {
		t.Fatalf("Send() = %v, want nil", err)
	}
	got := rc.next(t)
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	var want any
	if err := json.Unmarshal([]byte(`{
	  "text": "CRITICAL: WAL archiving is 9 min behind on orders-db (orders-db) https://backstop.example/alerts/42",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL: WAL archiving is 9 min behind on orders-db"}},
	    {"type": "section", "fields": [
	      {"type": "mrkdwn", "text": "*Source*\norders-db"},
	      {"type": "mrkdwn", "text": "*Severity*\ncritical"},
	      {"type": "mrkdwn", "text": "*Status*\nfiring"},
	      {"type": "mrkdwn", "text": "*Rule*\nwal-lag"}
	    ]},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "*What it means*\nThe newest WAL in the repository is 9 minutes old, so a restore now would lose up to 9 minutes of commits."}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "*What to do*\nCheck the source's replication slot and the archiver's log on the Sources page."}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "*Evidence*\nlag_bytes: 83886080\nlag_seconds: 540"}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "<https://backstop.example/alerts/42|Open the alert in Backstop>"}},
	    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Backstop · 2026-11-25 09:41:07 UTC · event alert-42-firing-1"}]}
	  ]
	}`), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("Slack payload mismatch (-want +got):\n%s", diff)
	}
}

func TestSlackMessage(t *testing.T) {
	t.Parallel()
	t.Run("outside text cannot make links or mentions", func(t *testing.T) {
		e := sampleEvent()
		e.Explanation = "table <!channel> & <https://evil.example|click>"
		p := slackMessage(e)
		text := p.Blocks[2].Text.Text
		if strings.ContainsAny(strings.TrimPrefix(text, "*What it means*\n"), "<>") || !strings.Contains(text, "&lt;!channel&gt; &amp;") {
			t.Errorf("explanation block = %q, want <, > and & escaped", text)
		}
	})
	t.Run("installation-wide, resolved, no link", func(t *testing.T) {
		e := sampleEvent()
		e.Source, e.Kind, e.URL, e.Evidence = "", KindResolved, "", nil
		p := slackMessage(e)
		if h := p.Blocks[0].Text.Text; h != "RESOLVED (critical): WAL archiving is 9 min behind on orders-db" {
			t.Errorf("header = %q", h)
		}
		if f := p.Blocks[1].Fields[0].Text; f != "*Source*\ninstallation-wide" {
			t.Errorf("source field = %q", f)
		}
		for _, b := range p.Blocks {
			if b.Text != nil && strings.Contains(b.Text.Text, "Open the alert") {
				t.Errorf("a block links to the alert without a URL: %q", b.Text.Text)
			}
		}
	})
	t.Run("long title fits Slack's header limit", func(t *testing.T) {
		e := sampleEvent()
		e.Title = strings.Repeat("é", 400)
		if n := len([]rune(slackMessage(e).Blocks[0].Text.Text)); n > slackHeaderMax {
			t.Errorf("header is %d characters, want at most %d", n, slackHeaderMax)
		}
	})
}
