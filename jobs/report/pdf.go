package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"github.com/dustin/go-humanize"
)

// pdfHeader is the line after the PDF's %%EOF that carries the report's period and
// summary for `backstop report verify` (covered by the signature like the rest).
const pdfHeader = "%backstop-report "

// pdfMeta is what pdfHeader carries.
type pdfMeta struct {
	Format      string    `json:"format"`
	GeneratedAt time.Time `json:"generated_at"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Summary     Summary   `json:"summary"`
}

// pdfDoc writes the report's pages: a summary page, then one table after another.
type pdfDoc struct {
	*fpdf.Fpdf
	tr func(string) string
}

// renderPDF writes r as a PDF, then the pdfHeader line. fingerprint names the key that
// signs it, printed on the summary page.
func renderPDF(r Report, fingerprint string) ([]byte, error) {
	d := pdfDoc{Fpdf: fpdf.New("L", "mm", "A4", "")}
	d.tr = d.UnicodeTranslatorFromDescriptor("")
	d.SetCreationDate(r.GeneratedAt)
	d.SetModificationDate(r.GeneratedAt)
	d.SetCatalogSort(true)
	d.SetTitle("Backstop verification report", true)
	d.SetCreator("Backstop", true)
	d.SetAutoPageBreak(true, 12)
	d.SetFooterFunc(func() {
		d.SetY(-10)
		d.SetFont("Helvetica", "", 7)
		d.CellFormat(0, 4, d.tr(fmt.Sprintf("Backstop verification report %s to %s - page %d", day(r.From), lastDay(r.To), d.PageNo())),
			"", 0, "C", false, 0, "")
	})

	d.summaryPage(r, fingerprint)
	for _, src := range r.Sources {
		d.sourceTables(src)
	}

	var b bytes.Buffer
	if err := d.Output(&b); err != nil {
		return nil, fmt.Errorf("report pdf: %w", err)
	}
	meta, err := json.Marshal(pdfMeta{Format: r.Format, GeneratedAt: r.GeneratedAt, From: r.From, To: r.To, Summary: r.Summary})
	if err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString(pdfHeader)
	b.Write(meta)
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func (d pdfDoc) heading(size float64, text string) {
	d.SetFont("Helvetica", "B", size)
	d.CellFormat(0, size*0.55, d.tr(text), "", 1, "L", false, 0, "")
	d.Ln(1)
}

func (d pdfDoc) line(text string) {
	d.SetFont("Helvetica", "", 10)
	d.MultiCell(0, 5, d.tr(text), "", "L", false)
}

func (d pdfDoc) summaryPage(r Report, fingerprint string) {
	s := r.Summary
	d.AddPage()
	d.heading(18, "Backstop verification report")
	d.line(fmt.Sprintf("Period: %s to %s (UTC, %s included)", day(r.From), lastDay(r.To), lastDay(r.To)))
	d.line("Generated: " + clock(r.GeneratedAt))
	d.line("Sources: " + strings.Join(s.Sources, ", "))
	d.line("Signed with the installation's Ed25519 key " + fingerprint + "; check with: backstop report verify FILE")
	d.Ln(3)
	d.heading(12, "Summary")
	d.table([]string{"What", "Figure"}, []float64{90, 90}, [][]string{
		{"Backups taken", fmt.Sprintf("%d (%d complete, %s read)", s.Backups, s.BackupsComplete, humanize.IBytes(uint64(max(s.BackupBytes, 0))))},
		{"Verification runs", fmt.Sprintf("%d (%d findings)", s.VerifyRuns, s.Findings)},
		{"Restore drills", fmt.Sprintf("%d (%d passed)", s.Drills, s.DrillsPassed)},
		{"Alerts", fmt.Sprintf("%d", s.Alerts)},
		{"Restores", fmt.Sprintf("%d", s.Restores)},
		{"Provably restorable", fmt.Sprintf("%s of the time measured", percent(s.Coverage))},
		{"Policy windows held", fmt.Sprintf("%d of %d sources", s.WindowsHeld, len(s.Sources))},
	})
	d.Ln(3)
	d.heading(12, "Sources")
	rows := [][]string{}
	for _, src := range r.Sources {
		var prov, meas int64
		for _, x := range src.Days {
			prov, meas = prov+x.ProvableSeconds, meas+x.MeasuredSeconds
		}
		held := "yes"
		if !src.Window.Held {
			held = fmt.Sprintf("no: %d gaps", len(src.Window.Gaps))
		}
		rows = append(rows, []string{src.Name, itoa(len(src.Backups)), itoa(len(src.VerifyRuns)), itoa(len(src.Drills)),
			itoa(len(src.Alerts)), itoa(len(src.Restores)), percent(share(prov, meas)), held})
	}
	d.table([]string{"Source", "Backups", "Verifications", "Drills", "Alerts", "Restores", "Provably restorable", "Policy window held"},
		[]float64{55, 22, 28, 20, 20, 22, 40, 50}, rows)
}

func (d pdfDoc) sourceTables(src Source) {
	d.AddPage()
	d.heading(14, "Source "+src.Name)
	d.line(fmt.Sprintf("System identifier %s; policy: recovery window %s, drills at most %s old, RPO %s.", src.SystemIdentifier,
		duration(time.Duration(src.Policy.WindowSeconds)*time.Second), duration(time.Duration(src.Policy.DrillMaxAgeSeconds)*time.Second),
		duration(time.Duration(src.Policy.RPOSeconds)*time.Second)))
	if src.Window.From.Equal(src.Window.To) {
		d.line("The policy sets no recovery window for this source.")
	} else if src.Window.Held {
		d.line(fmt.Sprintf("Every second of the policy window, %s to %s, was restorable.", clock(src.Window.From), clock(src.Window.To)))
	} else {
		d.line(fmt.Sprintf("The policy window, %s to %s, was NOT restorable throughout:", clock(src.Window.From), clock(src.Window.To)))
		d.gapTable(src.Window.Gaps)
	}
	d.Ln(2)

	d.heading(11, "Recoverability scorecard (share of each UTC day provably restorable)")
	var rows [][]string
	for _, x := range src.Days {
		var why []string
		for _, g := range x.Gaps {
			why = append(why, fmt.Sprintf("%s-%s %s", g.From.Format("15:04:05"), endClock(g.To), g.Reason))
		}
		rows = append(rows, []string{x.Date, percent(x.Share), strings.Join(why, "\n")})
	}
	d.table([]string{"Day", "Provable", "Gaps and why"}, []float64{25, 20, 232}, rows)

	rows = nil
	for _, b := range src.Backups {
		hash := b.ManifestSHA256
		if len(hash) > 16 {
			hash = hash[:16] + "..."
		}
		rows = append(rows, []string{i64(b.ID), b.RepoID, b.State, clock(b.StartedAt), secs(b.DurationSeconds),
			humanize.IBytes(uint64(max(b.SourceBytes, 0))), b.StartLSN, b.EndLSN, b.VerifyState, hash})
	}
	d.section("Backups", []string{"ID", "Repository ID", "State", "Started", "Took", "Size", "Start LSN", "End LSN", "Verified", "Manifest SHA-256"},
		[]float64{12, 48, 18, 42, 16, 20, 25, 25, 18, 53}, rows)

	rows = nil
	for _, v := range src.VerifyRuns {
		kind := "routine"
		if v.Deep {
			kind = "deep"
		}
		var fs []string
		for _, f := range v.Findings {
			fs = append(fs, f.Kind+" "+f.Object+": "+f.Reason)
		}
		rows = append(rows, []string{i64(v.ID), kind, v.State, clock(v.StartedAt), i64(v.Packs), humanize.IBytes(uint64(max(v.Bytes, 0))),
			strings.Join(fs, "\n")})
	}
	d.section("Verification runs and findings", []string{"ID", "Kind", "Result", "Started", "Packs", "Read", "Findings"},
		[]float64{12, 18, 20, 42, 16, 20, 149}, rows)

	rows = nil
	for _, x := range src.Drills {
		rto := "-"
		if x.State == "passed" {
			rto = fmt.Sprintf("%.1f s", x.RTOSeconds)
		}
		rows = append(rows, []string{i64(x.ID), x.State, clock(x.TargetAt), clock(x.StartedAt), rto, x.Error})
	}
	d.section("Restore drills", []string{"ID", "Result", "Second proved", "Started", "RTO", "Error"},
		[]float64{12, 20, 42, 42, 22, 139}, rows)

	rows = nil
	for _, a := range src.Alerts {
		rows = append(rows, []string{i64(a.ID), a.Severity, a.Title, clock(a.FirstAt), secsp(a.SecondsToAcknowledge), secsp(a.SecondsToResolve), a.State})
	}
	d.section("Alerts", []string{"ID", "Severity", "Alert", "Raised", "To acknowledge", "To resolve", "State"},
		[]float64{12, 18, 110, 42, 30, 30, 35}, rows)

	rows = nil
	for _, x := range src.Restores {
		rows = append(rows, []string{i64(x.ID), x.Target, i64(x.BackupID), x.State, clock(x.CreatedAt)})
	}
	d.section("Restores", []string{"ID", "Target", "Backup", "State", "Requested"}, []float64{12, 130, 20, 30, 42}, rows)
}

func (d pdfDoc) gapTable(gaps []Gap) {
	var rows [][]string
	for _, g := range gaps {
		rows = append(rows, []string{clock(g.From), clock(g.To), g.Reason})
	}
	d.table([]string{"From", "To", "Why"}, []float64{42, 42, 193}, rows)
}

// section writes a titled table, or says there is nothing.
func (d pdfDoc) section(title string, head []string, widths []float64, rows [][]string) {
	d.Ln(3)
	// Keep the title with the table's head and first row.
	if _, pageH := d.GetPageSize(); d.GetY()+25 > pageH-12 {
		d.AddPage()
	}
	d.heading(11, fmt.Sprintf("%s (%d)", title, len(rows)))
	if len(rows) == 0 {
		d.line("None in the period.")
		return
	}
	d.table(head, widths, rows)
}

// table writes rows under head, wrapping long cells and repeating head on a new page.
func (d pdfDoc) table(head []string, widths []float64, rows [][]string) {
	const lh = 4.0
	_, pageH := d.GetPageSize()
	_, _, _, bottom := d.GetMargins()
	var row func(cells []string, bold bool)
	row = func(cells []string, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		d.SetFont("Helvetica", style, 8)
		lines := make([][]string, len(cells))
		n := 1
		for i, c := range cells {
			for _, part := range strings.Split(d.tr(c), "\n") {
				lines[i] = append(lines[i], d.SplitText(part, widths[i]-2)...)
			}
			n = max(n, len(lines[i]))
		}
		h := float64(n)*lh + 1
		if d.GetY()+h > pageH-bottom-2 {
			d.AddPage()
			if !bold {
				row(head, true)
				d.SetFont("Helvetica", "", 8)
			}
		}
		x, y := d.GetXY()
		for i := range cells {
			if bold {
				d.SetFillColor(225, 230, 236)
				d.Rect(x, y, widths[i], h, "FD")
			} else {
				d.Rect(x, y, widths[i], h, "D")
			}
			for j, l := range lines[i] {
				d.SetXY(x+1, y+0.5+float64(j)*lh)
				d.CellFormat(widths[i]-2, lh, l, "", 0, "L", false, 0, "")
			}
			x += widths[i]
		}
		left, _, _, _ := d.GetMargins()
		d.SetXY(left, y+h)
	}
	row(head, true)
	for _, r := range rows {
		row(r, false)
	}
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// lastDay is the last day of a period that ends at to.
func lastDay(to time.Time) string { return to.Add(-time.Second).UTC().Format(time.DateOnly) }

// endClock is the end of a stretch within a day: "24:00:00" at midnight.
func endClock(t time.Time) string {
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return "24:00:00"
	}
	return t.Format("15:04:05")
}

func percent(f float64) string { return fmt.Sprintf("%.2f%%", f*100) }

func secs(n int64) string { return (time.Duration(n) * time.Second).String() }

func secsp(n *int64) string {
	if n == nil {
		return "-"
	}
	return secs(*n)
}
