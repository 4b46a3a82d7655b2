package pg

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseConfLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line, name, value string
		ok                bool
	}{
		{"port = 5433", "port", "5433", true},
		{"port=5433 # comment", "port", "5433", true},
		{"  port 5433", "port", "5433", true},
		{"unix_socket_directories = '/tmp/it''s dir'", "unix_socket_directories", "/tmp/it's dir", true},
		{`x = 'a\\b'`, "x", `a\b`, true},
		{"#port = 5432", "", "", false},
		{"", "", "", false},
		{"x = 'unterminated", "", "", false},
	}
	for _, tt := range tests {
		name, value, ok := parseConfLine(tt.line)
		if name != tt.name || value != tt.value || ok != tt.ok {
			t.Errorf("parseConfLine(%q) = %q, %q, %v, want %q, %q, %v", tt.line, name, value, ok, tt.name, tt.value, tt.ok)
		}
	}
}

func TestAppendAndReadSetting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "postgresql.conf")
	auto := filepath.Join(dir, "postgresql.auto.conf")
	if err := os.WriteFile(conf, []byte("#port = 5432\nport = 5433\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := appendSettings(conf, "test", map[string]string{"port": "6000", "unix_socket_directories": `/tmp/a'b\c`}); err != nil {
		t.Fatalf("appendSettings() = %v", err)
	}
	for name, want := range map[string]string{"port": "6000", "unix_socket_directories": `/tmp/a'b\c`} {
		got, found, err := readSetting(name, conf, auto)
		if err != nil || !found || got != want {
			t.Errorf("readSetting(%s) = %q, %v, %v, want %q", name, got, found, err, want)
		}
	}
	if err := os.WriteFile(auto, []byte("port = '7000'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := readSetting("port", conf, auto); got != "7000" {
		t.Errorf("readSetting(port) with postgresql.auto.conf = %q, want 7000", got)
	}
	if err := appendSettings(conf, "test", map[string]string{"bad name": "x"}); err == nil {
		t.Errorf("appendSettings(bad name) = nil, want an error")
	}
	if err := appendSettings(conf, "test", map[string]string{"x": "a\nb"}); err == nil {
		t.Errorf("appendSettings(newline) = nil, want an error")
	}
}

func TestWALFileName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tli     int32
		seg     uint64
		segSize int64
		want    string
	}{
		{1, 2, 16 << 20, "000000010000000000000002"},
		{1, 256, 16 << 20, "000000010000000100000000"},
		{3, 4661, 1 << 30, "000000030000048D00000001"},
	}
	for _, tt := range tests {
		if got := walFileName(tt.tli, tt.seg, tt.segSize); got != tt.want {
			t.Errorf("walFileName(%d, %d, %d) = %q, want %q", tt.tli, tt.seg, tt.segSize, got, tt.want)
		}
	}
}
