package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// reportRequest reads the period and sources of a report from a request's query:
// from and to are days (2006-01-02), both included. A day that does not parse is left
// zero, for the use case to refuse once it has authorized the request.
func reportRequest(r *http.Request) usecase.ReportRequest {
	q := r.URL.Query()
	req := usecase.ReportRequest{Sources: q["source"]}
	req.From, _ = time.Parse(time.DateOnly, q.Get("from"))
	req.To, _ = time.Parse(time.DateOnly, q.Get("to"))
	return req
}

// reportQuery is req as a query string, for links that download the same report.
func reportQuery(req usecase.ReportRequest) string {
	v := url.Values{"from": {req.From.Format(time.DateOnly)}, "to": {req.To.Format(time.DateOnly)}}
	for _, s := range req.Sources {
		v.Add("source", s)
	}
	return v.Encode()
}

// showReports is the Reports page; with a period in the query it shows its preview.
func (h *Handler) showReports(w http.ResponseWriter, r *http.Request) error {
	ctx, a := r.Context(), actorOf(r)
	srcs, err := h.svc.ReportSources(ctx, a)
	if err != nil {
		return err
	}
	_, fp, err := h.svc.ReportPublicKey(ctx, a)
	if err != nil {
		return err
	}
	today := h.now().UTC().Truncate(24 * time.Hour)
	vm := web.ReportsVM{From: today.AddDate(0, 0, -30).Format(time.DateOnly), To: today.Format(time.DateOnly),
		Selected: map[string]bool{}, Fingerprint: fp}
	for _, s := range srcs {
		vm.Sources = append(vm.Sources, s.Name)
	}
	if r.URL.Query().Has("from") {
		vm.From, vm.To = r.URL.Query().Get("from"), r.URL.Query().Get("to")
		for _, s := range r.URL.Query()["source"] {
			vm.Selected[s] = true
		}
		p, err := h.reportPreview(r)
		var ve *store.ValidationError
		switch {
		case errors.As(err, &ve):
			vm.Error = ve.Error()
		case err != nil:
			return err
		default:
			vm.Preview = &p
		}
	}
	return h.page(w, r, "Reports", web.NavReports, web.ReportsPage(vm))
}

// previewReport is the preview fragment htmx swaps into the Reports page.
func (h *Handler) previewReport(w http.ResponseWriter, r *http.Request) error {
	p, err := h.reportPreview(r)
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, web.ReportPreview(p))
}

// reportPreview builds the report a request asks for, as the page shows it.
func (h *Handler) reportPreview(r *http.Request) (web.ReportPreviewVM, error) {
	req := reportRequest(r)
	rep, err := h.svc.BuildReport(r.Context(), actorOf(r), req)
	if err != nil {
		return web.ReportPreviewVM{}, err
	}
	return previewOf(rep, reportQuery(req)), nil
}

func previewOf(rep report.Report, query string) web.ReportPreviewVM {
	s := rep.Summary
	p := web.ReportPreviewVM{From: rep.From.Format(time.DateOnly), To: rep.To.Add(-time.Second).Format(time.DateOnly),
		GeneratedAt: rep.GeneratedAt, Query: query, Backups: s.Backups, BackupsComplete: s.BackupsComplete, VerifyRuns: s.VerifyRuns,
		Findings: s.Findings, Drills: s.Drills, DrillsPassed: s.DrillsPassed, Alerts: s.Alerts, Restores: s.Restores,
		ProvableSeconds: s.ProvableSeconds, MeasuredSecs: s.MeasuredSeconds, WindowsHeld: s.WindowsHeld}
	gaps := func(gs []report.Gap) []web.ReportGapVM {
		var out []web.ReportGapVM
		for _, g := range gs {
			out = append(out, web.ReportGapVM{From: g.From, To: g.To, Reason: g.Reason})
		}
		return out
	}
	for _, src := range rep.Sources {
		sv := web.ReportSourceVM{Name: src.Name, WindowHeld: src.Window.Held, WindowFrom: src.Window.From, WindowTo: src.Window.To,
			WindowGaps: gaps(src.Window.Gaps)}
		for _, d := range src.Days {
			start, _ := time.Parse(time.DateOnly, d.Date)
			sv.Days = append(sv.Days, web.ReportDayVM{Date: d.Date, Start: start, ProvableSeconds: d.ProvableSeconds,
				MeasuredSecs: d.MeasuredSeconds, Gaps: gaps(d.Gaps)})
			sv.ProvableSeconds += d.ProvableSeconds
			sv.MeasuredSecs += d.MeasuredSeconds
		}
		p.Sources = append(p.Sources, sv)
	}
	return p
}

// downloadReport sends the report a request asks for as a signed file.
func (h *Handler) downloadReport(w http.ResponseWriter, r *http.Request) error {
	req := reportRequest(r)
	format := r.URL.Query().Get("format")
	data, err := h.svc.DownloadReport(r.Context(), actorOf(r), req, format)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("backstop-report-%s-to-%s.%s", req.From.Format(time.DateOnly), req.To.Format(time.DateOnly), format)
	w.Header().Set("Content-Type", report.ContentType(format))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(data)
	return err
}

// showReportKey sends the public key that signs reports (PEM).
func (h *Handler) showReportKey(w http.ResponseWriter, r *http.Request) error {
	pem, _, err := h.svc.ReportPublicKey(r.Context(), actorOf(r))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="backstop-report-key.pub"`)
	_, err = w.Write(pem)
	return err
}
