package report

import (
	"bytes"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Verified is what Verify found in a report that holds.
type Verified struct {
	// Format is pdf, csv or json.
	Format string
	// PublicKey signed the report; compare its Fingerprint with the installation's.
	PublicKey   ed25519.PublicKey
	Fingerprint string
	GeneratedAt time.Time
	From, To    time.Time
	Summary     Summary
}

// Verify checks a signed report file: that its signature is whole and matches its
// content, that the content reads as a report and holds together (totals match rows), and,
// with trusted set, that trusted signed it. It needs nothing but the file.
func Verify(data []byte, trusted ed25519.PublicKey) (Verified, error) {
	var v Verified
	var err error
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")):
		v, err = verifyPDF(data)
	case bytes.HasPrefix(data, []byte("{")):
		v, err = verifyJSON(data)
	case bytes.HasPrefix(data, []byte("columns,report,")):
		v, err = verifyCSV(data)
	default:
		return Verified{}, errors.New("not a Backstop report: it is neither a PDF, nor a JSON or CSV report")
	}
	if err != nil {
		return Verified{}, fmt.Errorf("%s report: %w", v.Format, err)
	}
	v.Fingerprint = Fingerprint(v.PublicKey)
	if trusted != nil && !v.PublicKey.Equal(trusted) {
		return v, fmt.Errorf("%s report: signed by key %s, not by the given key %s", v.Format, v.Fingerprint, Fingerprint(trusted))
	}
	return v, nil
}

func verifyJSON(data []byte) (Verified, error) {
	v := Verified{Format: "json"}
	var env struct {
		Report    json.RawMessage `json:"report"`
		Signature Signature       `json:"signature"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return v, fmt.Errorf("does not read as a signed report: %w", err)
	}
	pub, err1 := b64.DecodeString(env.Signature.PublicKey)
	sig, err2 := b64.DecodeString(env.Signature.Value)
	if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize ||
		env.Signature.Algorithm != "Ed25519" || env.Signature.Fingerprint != Fingerprint(pub) {
		return v, errors.New("the signature member is malformed")
	}
	if !bytes.Equal(envelope(env.Report, env.Signature), data) {
		return v, errors.New("the file is not laid out as Backstop writes it: it was changed after it was signed")
	}
	if !ed25519.Verify(pub, message("json", env.Report), sig) {
		return v, ErrBadSignature
	}
	v.PublicKey = pub
	var r Report
	dec = json.NewDecoder(bytes.NewReader(env.Report))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return v, fmt.Errorf("the report does not read: %w", err)
	}
	if err := r.Check(); err != nil {
		return v, fmt.Errorf("the content does not hold: %w", err)
	}
	v.GeneratedAt, v.From, v.To, v.Summary = r.GeneratedAt, r.From, r.To, r.Summary
	return v, nil
}

func verifyCSV(data []byte) (Verified, error) {
	v := Verified{Format: "csv"}
	payload, pub, err := splitTrailer(data, "csv", "#")
	if err != nil {
		return v, err
	}
	v.PublicKey = pub
	rows, err := readCSV(payload)
	if err != nil {
		return v, fmt.Errorf("the content does not read: %w", err)
	}
	if err := checkCSV(rows, &v); err != nil {
		return v, fmt.Errorf("the content does not hold: %w", err)
	}
	return v, nil
}

// readCSV reads a report's CSV rows by kind, as maps from column to value, checking that
// every kind's rows follow its columns row and have as many fields.
func readCSV(payload []byte) (map[string][]map[string]string, error) {
	cr := csv.NewReader(bytes.NewReader(payload))
	cr.FieldsPerRecord = -1
	cols := map[string][]string{}
	rows := map[string][]map[string]string{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec[0] == "columns" {
			if len(rec) < 2 || cols[rec[1]] != nil {
				return nil, fmt.Errorf("row %d: a repeated or empty columns row", line)
			}
			cols[rec[1]] = rec[2:]
			continue
		}
		c, ok := cols[rec[0]]
		if !ok || len(rec)-1 != len(c) {
			return nil, fmt.Errorf("row %d: a %q row that does not follow its columns", line, rec[0])
		}
		m := map[string]string{}
		for i, name := range c {
			m[name] = rec[i+1]
		}
		rows[rec[0]] = append(rows[rec[0]], m)
	}
	for _, k := range csvColumns {
		if !slices.Equal(cols[k.kind], k.cols) {
			return nil, fmt.Errorf("the %s columns are not %v", k.kind, k.cols)
		}
	}
	return rows, nil
}

// checkCSV checks that the summary row matches the rows, and fills v from it.
func checkCSV(rows map[string][]map[string]string, v *Verified) error {
	if len(rows["report"]) != 1 || len(rows["summary"]) != 1 {
		return errors.New("want one report row and one summary row")
	}
	rep, sum := rows["report"][0], rows["summary"][0]
	if rep["format"] != FormatVersion {
		return fmt.Errorf("format %q, want %q", rep["format"], FormatVersion)
	}
	var err error
	parseT := func(s string) time.Time {
		t, e := time.Parse(time.RFC3339, s)
		err = errors.Join(err, e)
		return t
	}
	num := func(m map[string]string, k string) int64 {
		n, e := strconv.ParseInt(m[k], 10, 64)
		err = errors.Join(err, e)
		return n
	}
	v.GeneratedAt, v.From, v.To = parseT(rep["generated_at"]), parseT(rep["from"]), parseT(rep["to"])
	s := Summary{Sources: []string{}}
	for _, src := range rows["source"] {
		s.Sources = append(s.Sources, src["source"])
		if src["window_held"] == "true" {
			s.WindowsHeld++
		}
	}
	s.Backups, s.VerifyRuns, s.Drills = len(rows["backup"]), len(rows["verify_run"]), len(rows["drill"])
	s.Findings, s.Alerts, s.Restores = len(rows["finding"]), len(rows["alert"]), len(rows["restore"])
	for _, b := range rows["backup"] {
		if b["state"] == "complete" {
			s.BackupsComplete++
			s.BackupBytes += num(b, "source_bytes")
		}
	}
	for _, d := range rows["drill"] {
		if d["state"] == "passed" {
			s.DrillsPassed++
		}
	}
	gaps := map[string]int64{}
	for _, g := range rows["day_gap"] {
		gaps[g["source"]+" "+g["date"]] += num(g, "seconds")
		if n := int64(parseT(g["to"]).Sub(parseT(g["from"])) / time.Second); n != num(g, "seconds") {
			return fmt.Errorf("source %s, day %s: a gap from %s to %s is not %s seconds", g["source"], g["date"], g["from"], g["to"], g["seconds"])
		}
	}
	for _, d := range rows["day"] {
		prov, meas := num(d, "provable_seconds"), num(d, "measured_seconds")
		if prov < 0 || prov > meas || prov+gaps[d["source"]+" "+d["date"]] != meas || d["share"] != ftoa(share(prov, meas)) {
			return fmt.Errorf("source %s, day %s: %s provable of %s measured, share %s and its gaps do not add up", d["source"],
				d["date"], d["provable_seconds"], d["measured_seconds"], d["share"])
		}
		s.ProvableSeconds, s.MeasuredSeconds = s.ProvableSeconds+prov, s.MeasuredSeconds+meas
	}
	s.Coverage = share(s.ProvableSeconds, s.MeasuredSeconds)
	if err != nil {
		return err
	}
	want := []string{itoa(len(s.Sources)), itoa(s.Backups), itoa(s.BackupsComplete), i64(s.BackupBytes), itoa(s.VerifyRuns),
		itoa(s.Findings), itoa(s.Drills), itoa(s.DrillsPassed), itoa(s.Alerts), itoa(s.Restores), i64(s.ProvableSeconds),
		i64(s.MeasuredSeconds), ftoa(s.Coverage), itoa(s.WindowsHeld)}
	for i, col := range csvColumns[1].cols {
		if sum[col] != want[i] {
			return fmt.Errorf("the summary's %s is %s, but the rows make it %s", col, sum[col], want[i])
		}
	}
	v.Summary = s
	return nil
}

func verifyPDF(data []byte) (Verified, error) {
	v := Verified{Format: "pdf"}
	payload, pub, err := splitTrailer(data, "pdf", "%")
	if err != nil {
		return v, err
	}
	v.PublicKey = pub
	i := bytes.LastIndex(payload, []byte("\n"+pdfHeader))
	if i < 0 || !bytes.HasSuffix(bytes.TrimRight(payload[:i], "\r\n"), []byte("%%EOF")) {
		return v, errors.New("the content does not read: no report line after the PDF's end")
	}
	var m pdfMeta
	dec := json.NewDecoder(bytes.NewReader(payload[i+1+len(pdfHeader):]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return v, fmt.Errorf("the content does not read: %w", err)
	}
	s := m.Summary
	switch {
	case m.Format != FormatVersion:
		return v, fmt.Errorf("format %q, want %q", m.Format, FormatVersion)
	case !m.From.Before(m.To):
		return v, errors.New("the content does not hold: the period is empty")
	case s.BackupsComplete > s.Backups || s.DrillsPassed > s.Drills || s.WindowsHeld > len(s.Sources) ||
		s.ProvableSeconds > s.MeasuredSeconds || s.Coverage != share(s.ProvableSeconds, s.MeasuredSeconds):
		return v, errors.New("the content does not hold: the summary's figures contradict each other")
	}
	v.GeneratedAt, v.From, v.To, v.Summary = m.GeneratedAt, m.From, m.To, s
	return v, nil
}

// Text describes a verified report for people: what `backstop report verify` prints.
func (v Verified) Text() string {
	s := v.Summary
	var b bytes.Buffer
	fmt.Fprintf(&b, "Signature: good, Ed25519 key %s\n", v.Fingerprint)
	fmt.Fprintf(&b, "Report (%s): %s to %s, generated %s\n", v.Format, day(v.From), lastDay(v.To), clock(v.GeneratedAt))
	fmt.Fprintf(&b, "Sources: %d", len(s.Sources))
	if len(s.Sources) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(s.Sources, ", "))
	}
	fmt.Fprintf(&b, "\nBackups: %d (%d complete)\n", s.Backups, s.BackupsComplete)
	fmt.Fprintf(&b, "Verification runs: %d, findings: %d\n", s.VerifyRuns, s.Findings)
	fmt.Fprintf(&b, "Drills: %d (%d passed)\n", s.Drills, s.DrillsPassed)
	fmt.Fprintf(&b, "Alerts: %d\nRestores: %d\n", s.Alerts, s.Restores)
	fmt.Fprintf(&b, "Provably restorable: %s of %s measured\n", percent(s.Coverage), time.Duration(s.MeasuredSeconds)*time.Second)
	fmt.Fprintf(&b, "Policy windows held: %d of %d sources\n", s.WindowsHeld, len(s.Sources))
	return b.String()
}
