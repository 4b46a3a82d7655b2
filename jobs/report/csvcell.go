package report

import "regexp"

// plainNumber is a field a spreadsheet reads as a number, never as a formula.
var plainNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// CSVCell returns s as it is safe to put in a CSV file that someone opens in a spreadsheet:
// text that a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a
// carriage return, such as a user name typed at the sign-in page) gets a leading
// apostrophe, which spreadsheets read as "this is text". Plain numbers stay as they are.
func CSVCell(s string) string {
	if s == "" || plainNumber.MatchString(s) {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
