package pg_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs/pg"
)

// manifestWithChecksum adds the Manifest-Checksum line to body (which
// holds everything before it, as the server writes it).
func manifestWithChecksum(body string) string {
	sum := sha256.Sum256([]byte(body))
	return body + `"Manifest-Checksum": "` + hex.EncodeToString(sum[:]) + "\"}\n"
}

const manifestBody = `{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "backup_label", "Size": 203, "Last-Modified": "2026-11-25 09:56:54 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "a3cb0ed2" },
{ "Encoded-Path": "626173652f312f31323539", "Size": 8192, "Last-Modified": "2026-11-25 09:56:53 GMT", "Checksum-Algorithm": "SHA256", "Checksum": "00ff" },
{ "Path": "pg_wal/archive_status/000000010000000000000002.done", "Size": 0, "Last-Modified": "2026-11-25 09:56:54 GMT" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
`

func TestParseServerManifest(t *testing.T) {
	t.Parallel()
	data := manifestWithChecksum(manifestBody)
	got, err := pg.ParseServerManifest(strings.NewReader(data))
	if err != nil {
		t.Fatalf("ParseServerManifest() = %v", err)
	}
	sum := sha256.Sum256([]byte(manifestBody))
	want := pg.ServerManifest{
		Version: 1,
		Files: []pg.ManifestFile{
			{Path: "backup_label", Size: 203, LastModified: time.Date(2026, 11, 25, 9, 56, 54, 0, time.UTC), ChecksumAlgorithm: "CRC32C", Checksum: "a3cb0ed2"},
			{Path: "base/1/1259", Size: 8192, LastModified: time.Date(2026, 11, 25, 9, 56, 53, 0, time.UTC), ChecksumAlgorithm: "SHA256", Checksum: "00ff"},
			{Path: "pg_wal/archive_status/000000010000000000000002.done", Size: 0, LastModified: time.Date(2026, 11, 25, 9, 56, 54, 0, time.UTC)},
		},
		WALRanges: []pg.WALRange{{Timeline: 1, StartLSN: 0x2000028, EndLSN: 0x2000100}},
		Checksum:  hex.EncodeToString(sum[:]),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseServerManifest() mismatch (-want +got):\n%s", diff)
	}
}

func TestParseServerManifestRefuses(t *testing.T) {
	t.Parallel()
	replace := func(old, new string) string {
		return manifestWithChecksum(strings.Replace(manifestBody, old, new, 1))
	}
	tests := []struct {
		name, data, want string
	}{
		{"bad-checksum", strings.Replace(manifestWithChecksum(manifestBody), `"Size": 203`, `"Size": 204`, 1), "checksum mismatch"},
		{"no-checksum", manifestBody[:len(manifestBody)-2] + "}\n", "Manifest-Checksum"},
		{"dotdot", replace(`"Path": "backup_label"`, `"Path": "../backup_label"`), `".."`},
		{"absolute", replace(`"Path": "backup_label"`, `"Path": "/etc/passwd"`), "absolute"},
		{"duplicate", replace(`"Path": "backup_label"`, `"Path": "pg_wal/archive_status/000000010000000000000002.done"`), "listed twice"},
		{"both-paths", replace(`"Path": "backup_label"`, `"Path": "backup_label", "Encoded-Path": "61"`), "exactly one"},
		{"negative-size", replace(`"Size": 203`, `"Size": -1`), "negative Size"},
		{"missing-size", replace(`"Size": 203, `, ``), "missing or negative Size"},
		{"bad-algorithm", replace(`"CRC32C"`, `"MD5"`), "unknown checksum algorithm"},
		{"bad-hex", replace(`"a3cb0ed2"`, `"zz"`), "invalid CRC32C checksum"},
		{"bad-lsn", replace(`"0/2000028"`, `"nope"`), "Start-LSN"},
		{"end-before-start", replace(`"0/2000100"`, `"0/1000000"`), "before Start-LSN"},
		{"no-wal-ranges", replace(`{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }`, ``), "no WAL-Ranges"},
		{"version", replace(`"PostgreSQL-Backup-Manifest-Version": 1`, `"PostgreSQL-Backup-Manifest-Version": 9`), "unsupported"},
		{"trailing", manifestWithChecksum(manifestBody) + "{}", "after the JSON object"},
		{"not-json", "hello", "parse manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := pg.ParseServerManifest(strings.NewReader(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseServerManifest(%s) = %v, want an error mentioning %q", tt.name, err, tt.want)
			}
		})
	}
}

// FuzzParseServerManifest checks that the parser never panics and that
// what it accepts is consistent: clean unique paths, sane sizes and ranges.
func FuzzParseServerManifest(f *testing.F) {
	f.Add([]byte(manifestWithChecksum(manifestBody)))
	f.Add([]byte(manifestWithChecksum(strings.Replace(manifestBody, `"Path": "backup_label"`, `"Path": "../x"`, 1))))
	f.Add([]byte(manifestWithChecksum(`{ "PostgreSQL-Backup-Manifest-Version": 2, "System-Identifier": 7, "Files": [], "WAL-Ranges": [{ "Timeline": 2, "Start-LSN": "1/0", "End-LSN": "1/10" }],` + "\n")))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAccepted(t, string(data))
		// Most mutations break the manifest's checksum: also try the
		// mutated body with a correct one, to reach the rest of the parser.
		body := strings.TrimRight(string(data), "\n")
		if i := strings.LastIndexByte(body, '\n'); i >= 0 {
			checkAccepted(t, manifestWithChecksum(body[:i+1]))
		}
	})
}

// checkAccepted parses data and, if the parser accepts it, checks that the
// result is consistent.
func checkAccepted(t *testing.T, data string) {
	t.Helper()
	m, err := pg.ParseServerManifest(strings.NewReader(data))
	if err != nil {
		return
	}
	seen := make(map[string]bool)
	for _, file := range m.Files {
		if file.Path == "" || strings.HasPrefix(file.Path, "/") || strings.Contains("/"+file.Path+"/", "/../") || seen[file.Path] {
			t.Fatalf("ParseServerManifest() accepted path %q", file.Path)
		}
		seen[file.Path] = true
		if file.Size < 0 {
			t.Fatalf("ParseServerManifest() accepted size %d", file.Size)
		}
	}
	if len(m.WALRanges) == 0 {
		t.Fatalf("ParseServerManifest() accepted no WAL ranges")
	}
	for _, w := range m.WALRanges {
		if w.EndLSN < w.StartLSN || w.Timeline <= 0 {
			t.Fatalf("ParseServerManifest() accepted WAL range %+v", w)
		}
	}
}
