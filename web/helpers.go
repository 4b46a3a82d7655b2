package web

import (
	"fmt"
	"strings"
	"time"
)

// fieldVM describes one text input with its label, help and error.
type fieldVM struct {
	ID, Name, Label, Help, Value, Error, TestID, Autocomplete string
	Autofocus, Mono                                           bool
	MaxLength                                                 int
}

// describedBy lists the ids of a field's help and error, for aria-describedby.
func describedBy(f fieldVM) string {
	var ids []string
	if f.Help != "" {
		ids = append(ids, f.ID+"-help")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// focusField is the add-source field that gets focus: the first with an error,
// else the name.
func focusField(errs map[string]string) string {
	for _, k := range []string{"name", "dsn"} {
		if errs[k] != "" {
			return k
		}
	}
	if errs[""] != "" {
		return "dsn"
	}
	return "name"
}

// staleAfterOr is d, or DefaultStaleAfter if d is not positive.
func staleAfterOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultStaleAfter
	}
	return d
}

// noticeTone is the notice colour for a backup that ended in state s.
func noticeTone(s string) string {
	if s == "failed" {
		return "danger"
	}
	return "warn"
}

// attemptVerb says how a backup attempt ended: "failed", "was cancelled", …
func attemptVerb(s string) string {
	switch s {
	case "failed":
		return "failed"
	case "cancelled":
		return "was cancelled"
	case "interrupted":
		return "was interrupted"
	}
	return "ended as " + s
}

// plural picks the singular or plural noun for n.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sourceSuffix is " of NAME" for a job's title, or "" without a source.
func sourceSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " of " + name
}

// jobErrorHeadline is the headline of a job's error box.
func jobErrorHeadline(state string) string {
	switch state {
	case "failed":
		return "This job failed"
	case "interrupted":
		return "This job was interrupted"
	case "cancelled":
		return "This job was cancelled"
	}
	return "This job reported an error"
}

// staleText is the staleness threshold in words: whole hours as "24 h", else as
// Duration formats it.
func staleText(staleAfter time.Duration) string {
	d := staleAfterOr(staleAfter)
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return Duration(d)
}

// sizeText formats a backup's size; before a backup is complete an unknown (zero)
// size reads "—" rather than "0 B".
func sizeText(n int64, state string) string {
	if n == 0 && state != "complete" {
		return "—"
	}
	return Bytes(n)
}

// countText is sizeText for counts.
func countText(n int64, state string) string {
	if n == 0 && state != "complete" {
		return "—"
	}
	return Count(n)
}
