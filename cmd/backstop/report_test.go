package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// TestCLIReport: after a backup and a verification of a real cluster, `report create`
// writes a signed report in each format, `report verify` checks each and prints its
// summary, with --key the installation's public key (from `report key`) and refuses
// another's, and a report changed by one byte makes it exit non-zero.
func TestCLIReport(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	home := filepath.Join(reachableDir(t), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "shop", c.DSN("postgres"))
	mustBackstop(t, home, "backup", "shop")
	mustBackstop(t, home, "verify", "--source", "shop")

	_, keyErr, err := backstop(t, home, "report", "key")
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(pub, []byte(mustBackstop(t, home, "report", "key")), 0o644); err != nil {
		t.Fatal(err)
	}
	fp := strings.TrimSpace(keyErr[strings.LastIndex(keyErr, " "):])
	if info, err := os.Stat(filepath.Join(home, "report-signing.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("signing key: %v, %v; want a file of mode 0600 in the home", info, err)
	}

	today := time.Now().UTC().Format(time.DateOnly)
	for _, format := range []string{"pdf", "csv", "json"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report."+format)
			created := mustBackstop(t, home, "report", "create", "--from", today, "--to", today, "--source", "shop",
				"--format", format, "--out", out)
			if !strings.Contains(created, fp) {
				t.Errorf("report create = %q, want the key's fingerprint %s", created, fp)
			}
			stdout, stderr, code := runBinary(t, home, "report", "verify", out, "--key", pub)
			if code != 0 {
				t.Fatalf("report verify = exit %d: %s", code, stderr)
			}
			for _, want := range []string{"Signature: good", fp, "Sources: 1 (shop)", "Backups: 1 (1 complete)",
				"Verification runs: 1, findings: 0", "Drills: 0", "Alerts:", "Restores: 0", "Provably restorable:", "Policy windows held:"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("report verify printed %q, want %q in it", stdout, want)
				}
			}

			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, pos := range []int{len(data) / 2, len(data) - 20} {
				bad := filepath.Join(t.TempDir(), "changed."+format)
				changed := append([]byte(nil), data...)
				changed[pos] ^= 0x04
				if err := os.WriteFile(bad, changed, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, stderr, code := runBinary(t, home, "report", "verify", bad); code == 0 || !strings.Contains(stderr, "does not verify") {
					t.Errorf("report verify of a report changed at byte %d = exit %d, %q; want a refusal", pos, code, stderr)
				}
			}
		})
	}

	other := filepath.Join(t.TempDir(), "other")
	mustBackstop(t, other, "init")
	mustBackstop(t, other, "report", "create", "--from", today, "--to", today, "--format", "json", "--out", filepath.Join(other, "r.json"))
	if _, stderr, code := runBinary(t, home, "report", "verify", filepath.Join(other, "r.json"), "--key", pub); code == 0 ||
		!strings.Contains(stderr, "not by the given key") {
		t.Errorf("report verify of another installation's report with this key = exit %d, %q; want a refusal", code, stderr)
	}
}

// TestReportVerifyJSONSaysWhetherTheKeyWasChecked: without --key, a report signed by anyone
// verifies (the signature matches its own key); the JSON a script reads must say that no
// key was compared, and say so only then.
func TestReportVerifyJSONSaysWhetherTheKeyWasChecked(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	pub := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(pub, []byte(mustBackstop(t, home, "report", "key")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "r.json")
	today := time.Now().UTC().Format(time.DateOnly)
	mustBackstop(t, home, "report", "create", "--from", today, "--to", today, "--format", "json", "--out", out)
	for _, tc := range []struct {
		args []string
		want bool
	}{{nil, false}, {[]string{"--key", pub}, true}} {
		var got struct {
			KeyChecked *bool `json:"key_checked"`
		}
		decodeJSON(t, "report verify --json", mustBackstop(t, home, append([]string{"report", "verify", "--json", out}, tc.args...)...), &got)
		if got.KeyChecked == nil || *got.KeyChecked != tc.want {
			t.Errorf("report verify --json %v: key_checked = %v, want %t", tc.args, got.KeyChecked, tc.want)
		}
	}
}
