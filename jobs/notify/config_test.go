package notify

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fields returns the Field of every ConfigError joined in err.
func fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var ce *ConfigError
		if errors.As(err, &ce) && err == error(ce) {
			out = append(out, ce.Field)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	slices.Sort(out)
	return out
}

func TestValidate(t *testing.T) {
	t.Parallel()
	goodMail := SMTPConfig{Addr: "smtp.example.com:587", From: "Backstop <backstop@example.com>", To: []string{"oncall@example.com"}}
	withMail := func(mod func(*SMTPConfig)) SMTPConfig {
		c := goodMail
		c.To = slices.Clone(goodMail.To)
		mod(&c)
		return c
	}
	tests := []struct {
		name   string
		err    error
		fields []string // the ConfigError fields, sorted
		says   string   // a substring of the message
	}{
		{"webhook ok", ValidateWebhook("ops", "https://hooks.example.com/backstop?x=1", testSecret), nil, ""},
		{"webhook http ok", ValidateWebhook("ops", "http://127.0.0.1:9000/hook", testSecret), nil, ""},
		{"webhook ftp", ValidateWebhook("ops", "ftp://example.com/x", testSecret), []string{"url"}, `scheme "ftp" is not http or https`},
		{"webhook no scheme", ValidateWebhook("ops", "hooks.example.com/x", testSecret), []string{"url"}, "must start with http:// or https://"},
		{"webhook no host", ValidateWebhook("ops", "https:///x", testSecret), []string{"url"}, "has no host"},
		{"webhook javascript", ValidateWebhook("ops", "javascript:alert(1)", testSecret), []string{"url"}, "is not http or https"},
		{"webhook empty url", ValidateWebhook("ops", "", testSecret), []string{"url"}, "url: is required"},
		{"webhook short secret", ValidateWebhook("ops", "https://x.example", []byte("123")), []string{"secret"}, "at least 16 bytes, got 3"},
		{"webhook all wrong", ValidateWebhook("", "file:///etc/passwd", nil), []string{"name", "secret", "url"}, ""},
		{"slack ok", ValidateSlack("s", "https://hooks.slack.com/services/T/B/X"), nil, ""},
		{"slack bad url", ValidateSlack("s", "hooks.slack.com"), []string{"url"}, ""},
		{"name with newline", ValidateSlack("a\nb", "https://x.example"), []string{"name"}, "one line"},
		{"name too long", ValidateSlack(strings.Repeat("n", MaxNameLen+1), "https://x.example"), []string{"name"}, "longer than"},
		{"email ok", ValidateEmail("m", goodMail), nil, ""},
		{"email tls modes", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.TLS = TLSImplicit })), nil, ""},
		{"email no port", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.Addr = "smtp.example.com" })), []string{"addr"}, "not host:port"},
		{"email bad port", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.Addr = "smtp.example.com:smtp" })), []string{"addr"}, "port \"smtp\""},
		{"email bad from", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.From = "backstop" })), []string{"from"}, `from: "backstop" is not an email address`},
		{"email no to", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.To = nil })), []string{"to"}, "at least one address"},
		{"email bad to", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.To = append(c.To, "ops@") })), []string{"to"}, `address 2, "ops@"`},
		{"email user without password", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.Username = "u" })), []string{"password"}, "required when a username"},
		{"email password without user", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.Password = "p" })), []string{"username"}, ""},
		{"email bad tls", ValidateEmail("m", withMail(func(c *SMTPConfig) { c.TLS = "ssl" })), []string{"tls"}, `"ssl" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := fields(tt.err); !slices.Equal(got, tt.fields) {
				t.Errorf("error %v has fields %v, want %v", tt.err, got, tt.fields)
			}
			if tt.says != "" && (tt.err == nil || !strings.Contains(tt.err.Error(), tt.says)) {
				t.Errorf("error %v, want it to say %q", tt.err, tt.says)
			}
			if tt.err != nil && !strings.HasPrefix(tt.err.Error(), "notify: channel ") {
				t.Errorf("error %q does not start with the channel", tt.err)
			}
		})
	}
}

func TestValidateHidesURL(t *testing.T) {
	t.Parallel()
	err := ValidateSlack("s", "hooks.slack.com/services/T/B/sekrit")
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("ValidateSlack error %v repeats the URL", err)
	}
}
