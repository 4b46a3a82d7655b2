package handlers_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/jobs/report"
	"github.com/backstop/backstop/store"
)

// TestBrowserAuditorDownloadsAReport: an auditor signs in, finds Reports in the
// navigation and no control to restore or delete anything, previews the last 30 days
// (summary and a drawn scorecard chart), downloads the PDF, and the file verifies with
// the key whose fingerprint the page shows; the download is in the audit log.
func TestBrowserAuditorDownloadsAReport(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx0 := t.Context()
	src, err := a.store.CreateSource(ctx0, store.SourceParams{Name: "ledger", DSN: "postgres://backstop@127.0.0.1:1/ledger",
		SystemIdentifier: "7300000000000000042", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.store.CreateBackup(ctx0, store.BackupParams{SourceID: src.ID, RepoID: "20261201T000000Z-ledger01", StartLSN: "0/2000028"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.CompleteBackup(ctx0, b.ID, store.BackupCompletion{EndLSN: "0/2000100", Stats: store.BackupStats{SourceBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.CreateUser(ctx0, "audrey", testPassword, store.RoleAuditor); err != nil {
		t.Fatal(err)
	}

	ctx, consoleProblems := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	progress := chromedp.BrowserEvents(ctx, cdpbrowser.DownloadProgress)
	err = chromedp.Do(ctx,
		chromedp.Navigate(a.srv.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), "audrey"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
		chromedp.Navigate(a.srv.URL+"/restores"),
		chromedp.WaitVisible(chromedp.CSS(`main`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](postForms))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("as auditor, /restores shows controls: %v", found)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`nav a[href="/reports"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report-form"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="report-preview-button"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="report-summary"]`)),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="scorecard-chart"][data-chart-state="drawn"]`)),
	)
	if err != nil {
		t.Fatalf("preview: %v", err)
	}
	summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="report-summary"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "1 (1 complete)") {
		t.Errorf("preview summary = %q, want the one backup", summary)
	}
	found, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](postForms))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("as auditor, /reports shows controls: %v", found)
	}
	fingerprint, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="report-fingerprint"]`)))
	if err != nil {
		t.Fatal(err)
	}

	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)})
			return err
		}),
		chromedp.Click(chromedp.CSS(`[data-testid="report-download-pdf"]`)),
	)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := report.Verify(data, nil)
	if err != nil {
		t.Fatalf("the downloaded PDF does not verify: %v", err)
	}
	if v.Format != "pdf" || v.Fingerprint != strings.TrimSpace(fingerprint) || v.Summary.Backups != 1 {
		t.Errorf("verified %s report signed by %s with %d backups, want a pdf signed by %s (the page's key) with 1",
			v.Format, v.Fingerprint, v.Summary.Backups, fingerprint)
	}
	es, err := a.store.AuditEntries(ctx0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range es {
		audited = audited || (e.Action == "report.download" && e.Actor == "audrey" && e.Target == "pdf")
	}
	if !audited {
		t.Error("the download is not in the audit log")
	}
	if p := consoleProblems(); len(p) > 0 {
		t.Errorf("console errors: %v", p)
	}
}
