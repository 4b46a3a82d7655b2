package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backstop/backstop/jobs/pg/pgtest"
)

// TestBrowserOverviewTurnsRedWhenTheSourceStops: in a real Chromium, the overview of a
// running `backstop serve` shows a healthy source; when the source's server stops, the
// card turns red ("Broken") with the reason, without a reload, and the navigation says
// "1 source broken". It logs how long that took.
func TestBrowserOverviewTurnsRedWhenTheSourceStops(t *testing.T) {
	if testing.Short() {
		t.Skip("browser flows are skipped in -short mode")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed")
	}
	t.Parallel()
	c := pgtest.Start(t)
	home := filepath.Join(t.TempDir(), "home")
	mustBackstop(t, home, "init")
	mustBackstop(t, home, "source", "add", "orders", c.DSN("postgres"))
	cmd := command(t, home, "user", "add", "ana", "--password-stdin")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	mustBackstop(t, home, "backup", "orders")

	serve := command(t, home, "serve", "--listen", "127.0.0.1:0")
	var out syncBuffer
	serve.Stdout, serve.Stderr = &out, &out
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Kill()
		serve.Wait()
		if t.Failed() {
			t.Logf("serve output:\n%s", out.String())
		}
	})
	serving := regexp.MustCompile(`Backstop is serving (\S+)`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if m := serving.FindStringSubmatch(out.String()); m != nil {
			base = strings.TrimSuffix(m[1], "/")
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-name"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-name"]`), "ana"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="login-password"]`), "correct horse battery"),
		chromedp.Click(chromedp.CSS(`[data-testid="login-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="source-card"]`)),
	); err != nil {
		t.Fatalf("sign in and open the overview: %v", err)
	}
	// state reads the card's health badge, its reason and the navigation's indicator, as shown.
	state := func() (level, reason, nav string) {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[
			(document.querySelector('[data-testid="source-card"] [data-testid="source-health"]')||{}).dataset?.state || '',
			(document.querySelector('[data-testid="source-card"] [data-testid="source-health-reason"]')||{}).textContent || '',
			(document.querySelector('[data-testid="nav-health"]')||{}).textContent || '']`))
		if err != nil {
			t.Fatalf("read the overview: %v", err)
		}
		return v[0], strings.Join(strings.Fields(v[1]), " "), strings.TrimSpace(v[2])
	}
	waitLevel := func(want string, limit time.Duration) (string, string, time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			level, reason, nav := state()
			if level == want {
				return reason, nav, time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("overview health = %q (%s), nav %q after %s, want %q", level, reason, nav, limit, want)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	// The first page may predate the archiver's first report: it refreshes by itself.
	reason, _, _ := waitLevel("ok", time.Minute)
	t.Logf("healthy: %s", reason)

	if err := c.Stop(context.Background(), "fast"); err != nil {
		t.Fatal(err)
	}
	reason, nav, took := waitLevel("broken", time.Minute)
	t.Logf("the overview turned red %.1f s after the source stopped: %q; navigation %q", took.Seconds(), reason, nav)
	if !strings.Contains(reason, "WAL archiving stopped") || !strings.Contains(reason, "no server is listening") {
		t.Errorf("reason = %q, want the stopped archiver and the refused connection", reason)
	}
	if nav != "1 source broken" {
		t.Errorf("navigation indicator = %q, want %q", nav, "1 source broken")
	}
	color, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('[data-testid="source-card"] [data-testid="source-health"]')).color`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("badge colour %s", color)
}
