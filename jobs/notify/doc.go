// Package notify tells people outside Backstop that an alert fired, was
// acknowledged or resolved: through a generic webhook (a signed JSON body), a
// Slack-compatible incoming webhook, or email over SMTP.
//
// A [Channel] delivers one [Event] once. A [Dispatcher] owns the channels: it
// gives each its own bounded queue and worker goroutine, retries with
// backoff, and never makes its caller wait, so a slow or failing channel
// delays neither the alerting engine nor the other channels. The package
// stores nothing: the caller keeps channel configurations (and their
// secrets, sealed) in its catalog, builds the channels with [NewWebhook],
// [NewSlack] and [NewEmail], and may record each delivery attempt through
// [DispatchOptions].OnResult.
//
// # Webhook body
//
// A webhook channel POSTs one JSON object per event, Content-Type
// application/json, UTF-8:
//
//	{
//	  "version":     1,                     // schema version; fields are only ever added within a version
//	  "id":          "alert-42-firing-1",   // unique per (alert, transition); the same on every retry
//	  "alert_id":    42,                    // 0 for a test event
//	  "kind":        "firing",              // "firing", "acknowledged", "resolved" or "test"
//	  "rule":        "wal-lag",
//	  "severity":    "critical",            // "critical", "warning" or "info"
//	  "source":      "orders-db",           // "" for an installation-wide alert
//	  "title":       "WAL archiving is 9 min behind on orders-db",
//	  "explanation": "What it means, in plain words.",
//	  "action":      "What to do about it.",
//	  "evidence":    {"lag_seconds": "540"}, // always an object, possibly empty; values are strings
//	  "at":          "2026-11-25T09:41:07Z", // when the transition happened, RFC 3339, UTC
//	  "url":         "https://backstop.example/alerts/42" // "" when unknown
//	}
//
// Each request carries three headers:
//
//	X-Backstop-Signature: sha256=<lower-case hex HMAC-SHA256 of the exact body bytes, keyed with the channel's secret>
//	X-Backstop-Timestamp: <Unix seconds when this attempt was sent>
//	X-Backstop-Event-Id:  <the body's "id">
//
// A receiver reads the raw body, checks the signature with [VerifySignature]
// (or its own constant-time HMAC comparison) before parsing it, and answers
// 2xx. The signature covers the body only; the timestamp header is
// informational. To refuse replays a receiver remembers the ids it has seen:
// a retried delivery has the same id and the same body. Answers 5xx and 429
// are retried (429's Retry-After is honoured); any other non-2xx answer,
// redirects included, is final.
package notify
