package main

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemoStopsWhatItStarted: an instance restored while the demo runs is stopped with
// the demo's Ctrl-C, as is the demo's own cluster (on the old code the restored instance
// kept running, holding its port, after the demo had ended).
func TestDemoStopsWhatItStarted(t *testing.T) {
	t.Parallel()
	home := filepath.Join(reachableDir(t), "home")
	cmd := command(t, home, "demo", "--listen", "127.0.0.1:0")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	wait := func() { once.Do(func() { cmd.Wait() }) }
	t.Cleanup(func() {
		cmd.Process.Kill()
		wait()
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "Backstop demo is running") {
		if time.Now().After(deadline) {
			t.Fatal("the demo did not start within two minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	demoPort := demoPort(t, out.String())

	port := freePort(t)
	into := filepath.Join(reachableDir(t), "restored")
	for {
		_, stderr, code := runBinary(t, home, "restore", "--source", "demo", "--to", "latest", "--into", into,
			"--start", "--port", fmt.Sprint(port))
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore during the demo: %s", stderr)
		}
		time.Sleep(time.Second) // the first backup is still running
	}
	if !listening(port) {
		t.Fatalf("the restored instance does not listen on %d", port)
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the demo did not end within a minute of Ctrl-C")
	}
	if listening(port) {
		t.Errorf("the restored instance still listens on %d after the demo ended", port)
	}
	if listening(demoPort) {
		t.Errorf("the demo's cluster still listens on %d after the demo ended", demoPort)
	}
	if !strings.Contains(out.String(), "Stopped the restored instances the demo was running") {
		t.Errorf("the demo did not say it stopped the restored instance")
	}
}

// demoPort reads the demo cluster's port from the demo's "Database:" line.
func demoPort(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`Database:\s+\S+@127\.0\.0\.1:(\d+)/`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no database address in the demo's output")
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
