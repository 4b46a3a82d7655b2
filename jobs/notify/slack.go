package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

type slack struct {
	name   string
	url    string
	client *http.Client
	err    error // invalid configuration, returned by every Send
}

// NewSlack returns a channel that posts each event to a Slack-compatible
// incoming webhook (Slack, Mattermost, Rocket.Chat and others that take
// {"text": ..., "blocks": [...]}). The URL is a secret: errors show only its
// scheme and host. A nil client means one of the package's own (proxy from
// the environment, no redirects followed). An invalid configuration (see
// [ValidateSlack]) is not retried: every Send returns the validation error.
func NewSlack(name, url string, client *http.Client) Channel {
	return &slack{name: name, url: url, client: orDefaultClient(client), err: ValidateSlack(name, url)}
}

// ValidateSlack checks a Slack channel's configuration: a name and an
// absolute http or https URL. The error names every bad field (see
// [ConfigError]).
func ValidateSlack(name, url string) error {
	return errors.Join(validateName(name), validateURL(name, "url", url))
}

func (s *slack) Name() string { return s.name }

func (s *slack) Send(ctx context.Context, e Event) error {
	if s.err != nil {
		return Permanent(s.err)
	}
	body, err := json.Marshal(slackMessage(e))
	if err != nil {
		return Permanent(fmt.Errorf("slack %q: encode: %w", s.name, err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if err := post(ctx, s.client, s.url, body, h); err != nil {
		return fmt.Errorf("slack %q: %w", s.name, err)
	}
	return nil
}

type slackPayload struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"` // "plain_text" or "mrkdwn"
	Text string `json:"text"`
}

// Slack's limits on text lengths, in characters.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
)

// slackMessage lays an event out as Block Kit blocks, with a plain "text"
// for notifications and clients that do not show blocks. No emoji: the
// severity is a word.
func slackMessage(e Event) slackPayload {
	mrkdwn := func(s string, n int) *slackText { return &slackText{Type: "mrkdwn", Text: truncate(s, n)} }
	field := func(label, value string) slackText {
		return slackText{Type: "mrkdwn", Text: truncate("*"+label+"*\n"+slackEscape(oneLine(value)), slackFieldMax)}
	}
	p := slackPayload{
		Text: headline(e) + " (" + sourceLabel(e) + ")",
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: truncate(headline(e), slackHeaderMax)}},
			{Type: "section", Fields: []slackText{
				field("Source", sourceLabel(e)),
				field("Severity", orDefault(e.Severity, "unknown")),
				field("Status", orDefault(e.Kind, KindFiring)),
				field("Rule", orDefault(e.Rule, "none")),
			}},
		},
	}
	if e.Explanation != "" {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section", Text: mrkdwn("*What it means*\n"+slackEscape(e.Explanation), slackSectionMax)})
	}
	if e.Action != "" {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section", Text: mrkdwn("*What to do*\n"+slackEscape(e.Action), slackSectionMax)})
	}
	if lines := evidenceLines(e.Evidence); len(lines) > 0 {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section", Text: mrkdwn("*Evidence*\n"+slackEscape(strings.Join(lines, "\n")), slackSectionMax)})
	}
	if e.URL != "" {
		p.Blocks = append(p.Blocks, slackBlock{Type: "section", Text: mrkdwn("<"+slackLinkEscape(e.URL)+"|Open the alert in Backstop>", slackSectionMax)})
		p.Text += " " + e.URL
	}
	ctx := "Backstop"
	if !e.At.IsZero() {
		ctx += " · " + e.At.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if e.ID != "" {
		ctx += " · event " + slackEscape(oneLine(e.ID))
	}
	p.Blocks = append(p.Blocks, slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: truncate(ctx, slackFieldMax)}}})
	return p
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to
// as control sequences, so that outside text cannot make links or mentions.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackLinkEscape escapes a URL for use inside <url|label>.
func slackLinkEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C").Replace(oneLine(s))
}
