package report

import (
	"bytes"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Formats are the formats a report is rendered in.
var Formats = []string{"pdf", "csv", "json"}

// ContentType returns the media type of a report format.
func ContentType(format string) string {
	switch format {
	case "pdf":
		return "application/pdf"
	case "csv":
		return "text/csv; charset=utf-8"
	}
	return "application/json"
}

// Render returns r in format (pdf, csv or json), signed with key.
func Render(r Report, format string, key ed25519.PrivateKey) ([]byte, error) {
	switch format {
	case "json":
		return renderJSON(r, key)
	case "csv":
		payload, err := renderCSV(r)
		if err != nil {
			return nil, err
		}
		return signTrailer(key, "csv", "#", payload), nil
	case "pdf":
		payload, err := renderPDF(r, Fingerprint(key.Public().(ed25519.PublicKey)))
		if err != nil {
			return nil, err
		}
		return signTrailer(key, "pdf", "%", payload), nil
	}
	return nil, fmt.Errorf("report format %q: want pdf, csv or json", format)
}

// Signature is the signature member of a JSON report.
type Signature struct {
	Algorithm   string `json:"algorithm"`
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"fingerprint"`
	Value       string `json:"value"`
}

// reportJSON is the report member of a JSON report, as signed.
func reportJSON(r Report) ([]byte, error) {
	return json.MarshalIndent(r, "  ", "  ")
}

// envelope is a JSON report's bytes: {"report": …, "signature": …}, in exactly this layout.
func envelope(report []byte, sig Signature) []byte {
	s, _ := json.Marshal(sig)
	var b bytes.Buffer
	b.WriteString("{\n  \"report\": ")
	b.Write(report)
	b.WriteString(",\n  \"signature\": ")
	b.Write(s)
	b.WriteString("\n}\n")
	return b.Bytes()
}

func renderJSON(r Report, key ed25519.PrivateKey) ([]byte, error) {
	body, err := reportJSON(r)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(key, message("json", body))
	return envelope(body, Signature{Algorithm: "Ed25519", PublicKey: b64.EncodeToString(pub), Fingerprint: Fingerprint(pub),
		Value: b64.EncodeToString(sig)}), nil
}

// csvColumns are the columns of each kind of CSV row, after the first column that names
// the kind. A "columns" row before the first row of each kind repeats them.
var csvColumns = []struct {
	kind string
	cols []string
}{
	{"report", []string{"format", "generated_at", "from", "to"}},
	{"summary", []string{"sources", "backups", "backups_complete", "backup_bytes", "verify_runs", "findings", "drills",
		"drills_passed", "alerts", "restores", "provable_seconds", "measured_seconds", "coverage", "windows_held"}},
	{"source", []string{"source", "system_identifier", "window_seconds", "drill_max_age_seconds", "rpo_seconds",
		"window_from", "window_to", "window_held"}},
	{"window_gap", []string{"source", "from", "to", "reason"}},
	{"day", []string{"source", "date", "measured_seconds", "provable_seconds", "share"}},
	{"day_gap", []string{"source", "date", "from", "to", "seconds", "reason"}},
	{"backup", []string{"source", "id", "repo_id", "state", "started_at", "finished_at", "duration_seconds", "source_bytes",
		"stored_bytes_new", "start_lsn", "end_lsn", "timeline", "manifest_sha256", "verify_state", "verified_at"}},
	{"verify_run", []string{"source", "id", "deep", "state", "started_at", "finished_at", "packs_checked", "bytes_read", "findings"}},
	{"finding", []string{"source", "run_id", "kind", "object", "backup_id", "path", "reason"}},
	{"drill", []string{"source", "id", "state", "target_at", "started_at", "finished_at", "rto_seconds", "error"}},
	{"alert", []string{"source", "id", "rule", "severity", "state", "title", "first_at", "acked_at", "resolved_at",
		"seconds_to_acknowledge", "seconds_to_resolve"}},
	{"restore", []string{"source", "id", "target", "backup_id", "state", "created_at"}},
}

// csvRows returns r's rows by kind.
func csvRows(r Report) map[string][][]string {
	rows := map[string][][]string{}
	add := func(kind string, v ...string) {
		for i := range v {
			v[i] = CSVCell(v[i])
		}
		rows[kind] = append(rows[kind], v)
	}
	add("report", r.Format, ts(r.GeneratedAt), ts(r.From), ts(r.To))
	s := r.Summary
	add("summary", strconv.Itoa(len(s.Sources)), itoa(s.Backups), itoa(s.BackupsComplete), i64(s.BackupBytes), itoa(s.VerifyRuns),
		itoa(s.Findings), itoa(s.Drills), itoa(s.DrillsPassed), itoa(s.Alerts), itoa(s.Restores), i64(s.ProvableSeconds),
		i64(s.MeasuredSeconds), ftoa(s.Coverage), itoa(s.WindowsHeld))
	for _, src := range r.Sources {
		n := src.Name
		add("source", n, src.SystemIdentifier, i64(src.Policy.WindowSeconds), i64(src.Policy.DrillMaxAgeSeconds),
			i64(src.Policy.RPOSeconds), ts(src.Window.From), ts(src.Window.To), strconv.FormatBool(src.Window.Held))
		for _, g := range src.Window.Gaps {
			add("window_gap", n, ts(g.From), ts(g.To), g.Reason)
		}
		for _, d := range src.Days {
			add("day", n, d.Date, i64(d.MeasuredSeconds), i64(d.ProvableSeconds), ftoa(d.Share))
			for _, g := range d.Gaps {
				add("day_gap", n, d.Date, ts(g.From), ts(g.To), i64(g.Seconds()), g.Reason)
			}
		}
		for _, b := range src.Backups {
			add("backup", n, i64(b.ID), b.RepoID, b.State, ts(b.StartedAt), tsp(b.FinishedAt), i64(b.DurationSeconds),
				i64(b.SourceBytes), i64(b.StoredBytesNew), b.StartLSN, b.EndLSN, i64(b.Timeline), b.ManifestSHA256, b.VerifyState,
				tsp(b.VerifiedAt))
		}
		for _, v := range src.VerifyRuns {
			add("verify_run", n, i64(v.ID), strconv.FormatBool(v.Deep), v.State, ts(v.StartedAt), tsp(v.FinishedAt), i64(v.Packs),
				i64(v.Bytes), itoa(len(v.Findings)))
			for _, f := range v.Findings {
				add("finding", n, i64(v.ID), f.Kind, f.Object, i64(f.BackupID), f.Path, f.Reason)
			}
		}
		for _, d := range src.Drills {
			add("drill", n, i64(d.ID), d.State, ts(d.TargetAt), ts(d.StartedAt), tsp(d.FinishedAt), ftoa(d.RTOSeconds), d.Error)
		}
		for _, a := range src.Alerts {
			add("alert", n, i64(a.ID), a.Rule, a.Severity, a.State, a.Title, ts(a.FirstAt), tsp(a.AckedAt), tsp(a.ResolvedAt),
				i64p(a.SecondsToAcknowledge), i64p(a.SecondsToResolve))
		}
		for _, x := range src.Restores {
			add("restore", n, i64(x.ID), x.Target, i64(x.BackupID), x.State, ts(x.CreatedAt))
		}
	}
	return rows
}

// renderCSV writes r as CSV: every row starts with its kind, each kind's rows follow a
// "columns" row naming their columns.
func renderCSV(r Report) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	rows := csvRows(r)
	for _, k := range csvColumns {
		if err := w.Write(append([]string{"columns", k.kind}, k.cols...)); err != nil {
			return nil, err
		}
		for _, row := range rows[k.kind] {
			if err := w.Write(append([]string{k.kind}, row...)); err != nil {
				return nil, err
			}
		}
	}
	w.Flush()
	return b.Bytes(), w.Error()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func tsp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return ts(*t)
}

func itoa(n int) string     { return strconv.Itoa(n) }
func i64(n int64) string    { return strconv.FormatInt(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func i64p(n *int64) string {
	if n == nil {
		return ""
	}
	return i64(*n)
}
