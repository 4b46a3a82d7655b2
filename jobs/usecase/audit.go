package usecase

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
)

// AuditLog returns a page of the audit log, newest first.
func (s *Service) AuditLog(ctx context.Context, a Actor, f store.AuditFilter) ([]store.AuditEntry, error) {
	if err := Authorize(a, ReadAudit); err != nil {
		return nil, err
	}
	return s.store.AuditPage(ctx, f)
}

// AuditVerification is the result of checking the audit log.
type AuditVerification struct {
	// Chain is the walk of the catalog's chain.
	Chain store.AuditCheck
	// RepoHead is the head the repository held before this check (zero for none).
	RepoHead repository.AuditHead
	// HeadProblem says why the catalog does not match the repository's head; "" when it does.
	HeadProblem string
	// Written is the head written to the repository after a successful check.
	Written store.AuditHead
}

// OK reports whether the chain holds and matches the repository's head.
func (v AuditVerification) OK() bool { return v.Chain.Problem == nil && v.HeadProblem == "" }

// VerifyAudit checks the audit log's chain entry by entry and against the head stored in
// the repository, then, when both hold, writes the current head to the repository.
func (s *Service) VerifyAudit(ctx context.Context, a Actor) (AuditVerification, error) {
	if err := Authorize(a, ReadAudit); err != nil {
		return AuditVerification{}, err
	}
	var v AuditVerification
	var err error
	if v.Chain, err = s.store.CheckAuditChain(ctx); err != nil {
		return v, err
	}
	v.RepoHead, err = jobs.CheckAuditHead(ctx, s.store, s.repo)
	if he := (*jobs.AuditHeadError)(nil); errors.As(err, &he) {
		v.HeadProblem = he.Error()
	} else if err != nil {
		return v, err
	}
	if v.OK() {
		if v.Written, err = jobs.WriteAuditHead(ctx, s.store, s.repo, s.now()); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Audit export formats.
const (
	ExportCSV  = "csv"
	ExportJSON = "json"
)

// ExportAudit writes the entries f selects (paging aside), oldest first, to w as CSV or a
// JSON array, streaming. The export is itself audited first, with its filter.
func (s *Service) ExportAudit(ctx context.Context, a Actor, f store.AuditFilter, format string, w io.Writer) error {
	if err := Authorize(a, ExportAudit); err != nil {
		return err
	}
	if format != ExportCSV && format != ExportJSON {
		return &store.ValidationError{Field: "format", Message: fmt.Sprintf("%q is not csv or json", format)}
	}
	f.BeforeID, f.AfterID, f.Limit = 0, 0, 0
	s.audit(ctx, a, "audit.export", "", exportDetail(f, format))
	if format == ExportCSV {
		return exportCSV(ctx, s.store, f, w)
	}
	return exportJSON(ctx, s.store, f, w)
}

// exportDetail is an export's audit detail: its format and filter.
func exportDetail(f store.AuditFilter, format string) map[string]any {
	d := map[string]any{"format": format}
	for k, v := range map[string]string{"actor": f.Actor, "action_prefix": f.ActionPrefix, "target": f.Target} {
		if v != "" {
			d[k] = v
		}
	}
	if !f.From.IsZero() {
		d["from"] = f.From.UTC().Format(time.RFC3339)
	}
	if !f.To.IsZero() {
		d["to"] = f.To.UTC().Format(time.RFC3339)
	}
	return d
}

// AuditCSVHeader is the header row of a CSV export. Text that a spreadsheet would run as a
// formula (a user name typed at the sign-in page, say) is written with a leading apostrophe
// (report.CSVCell); the JSON export holds every value as stored.
var AuditCSVHeader = []string{"id", "at", "actor", "action", "target", "ip", "detail", "prev_hash", "hash"}

func exportCSV(ctx context.Context, st *store.Store, f store.AuditFilter, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(AuditCSVHeader); err != nil {
		return err
	}
	err := st.EachAuditEntry(ctx, f, func(e store.AuditEntry) error {
		row := []string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), e.Actor, e.Action,
			e.Target, e.IP, string(e.Detail), e.PrevHash, e.Hash}
		for i := range row {
			row[i] = report.CSVCell(row[i])
		}
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// AuditJSONEntry is one entry of a JSON export.
type AuditJSONEntry struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Target   string          `json:"target,omitempty"`
	IP       string          `json:"ip,omitempty"`
	Detail   json.RawMessage `json:"detail,omitempty"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

func exportJSON(ctx context.Context, st *store.Store, f store.AuditFilter, w io.Writer) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	sep := "\n"
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err := st.EachAuditEntry(ctx, f, func(e store.AuditEntry) error {
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		sep = ","
		return enc.Encode(AuditJSONEntry{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Target: e.Target, IP: e.IP,
			Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash})
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "]\n")
	return err
}

// ParsePeriod reads the bounds of a period as a person types them: a date (YYYY-MM-DD,
// UTC; a "to" date is included whole) or an RFC 3339 time; "" leaves a bound open.
func ParsePeriod(from, to string) (time.Time, time.Time, error) {
	f, err := parseBound("from", from, false)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	t, err := parseBound("to", to, true)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if !f.IsZero() && !t.IsZero() && !f.Before(t) {
		return time.Time{}, time.Time{}, &store.ValidationError{Field: "to", Message: "must be after from"}
	}
	return f, t, nil
}

func parseBound(field, s string, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &store.ValidationError{Field: field, Message: fmt.Sprintf("%q is not a date (2026-12-07) or a time (2026-12-07T05:00:00Z)", s)}
	}
	return t.UTC(), nil
}
