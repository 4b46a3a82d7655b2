package handlers

import "testing"

func TestSafeNext(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/sources/3", "/sources/3"},
		{"/backups/?source=2&limit=10", "/backups/?source=2&limit=10"},
		{"/jobs/7#events", "/jobs/7"},
		{"/%09/evil.example/", "/%09/evil.example/"}, // an escaped tab stays an escaped, local path
		{"/\t/evil.example/", "/"},                   // browsers strip the tab: //evil.example/
		{"/\n/evil.example/", "/"},
		{"/\r\n/evil.example/", "/"},
		{"//evil.example/", "/"},
		{"///evil.example/", "/"},
		{"/\\evil.example/", "/"},
		{"\\\\evil.example/", "/"},
		{"/.\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"//user@evil.example", "/"},
		{"evil.example", "/"},
		{"sources", "/"},
		{"/login", "/"},
		{"/login?next=/", "/"},
		{"/\x00/evil.example", "/"},
		{"/\x7f", "/"},
		{" /sources", "/"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSafeNext checks that whatever comes in, what goes out is a local path that a browser
// cannot read as another site, even after it strips tabs and newlines.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/sources/1", "/\t/evil.example/", "//x", "/\\x", "/a?b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeNext(in)
		if len(got) == 0 || got[0] != '/' || (len(got) > 1 && (got[1] == '/' || got[1] == '\\')) {
			t.Fatalf("safeNext(%q) = %q, not a local path", in, got)
		}
		for _, c := range got {
			if c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("safeNext(%q) = %q, holds %q", in, got, c)
			}
		}
	})
}
