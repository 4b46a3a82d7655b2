package handlers

import (
	"fmt"
	"testing"
	"time"
)

// simClock is a clock the test moves.
type simClock struct{ t time.Time }

func (c *simClock) now() time.Time { return c.t }

func TestThrottleLocksOutAfterFreeFailuresAndDoubles(t *testing.T) {
	t.Parallel()
	clk := &simClock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	th := newThrottle(clk.now)
	for i := 1; i <= accountFreeFailures; i++ {
		th.fail("admin", "192.0.2.1")
		if d := th.wait(accountKey("admin"), addressKey("192.0.2.1")); d != 0 {
			t.Fatalf("after %d failures wait = %v, want 0", i, d)
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		th.fail("admin", "192.0.2.1")
		if d := th.wait(accountKey("admin")); d != want {
			t.Fatalf("after %d failures wait = %v, want %v", accountFreeFailures+1+i, d, want)
		}
		clk.t = clk.t.Add(want)
	}
	// Another account from another address is not held up by admin's failures.
	if d := th.wait(accountKey("bob"), addressKey("198.51.100.1")); d != 0 {
		t.Errorf("wait(bob, other address) = %v, want 0", d)
	}
	// The right password clears the account, not the address.
	th.succeed("admin")
	if d := th.wait(accountKey("admin")); d != 0 {
		t.Errorf("wait(admin) after success = %v, want 0", d)
	}
	// An address spraying many names is held up after its own free failures.
	clk.t = clk.t.Add(time.Hour)
	for i := range addressFreeFailures + 1 {
		th.fail(fmt.Sprintf("user%d", i), "203.0.113.9")
	}
	if d := th.wait(accountKey("someone-new"), addressKey("203.0.113.9")); d != time.Second {
		t.Errorf("wait(new name, spraying address) = %v, want 1s", d)
	}
}

func TestThrottleMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clk := &simClock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	th := newThrottle(clk.now)
	th.max = 100
	for range accountFreeFailures + 3 {
		th.fail("admin", "192.0.2.1") // locked out
	}
	for i := range 10 * th.max {
		th.fail(fmt.Sprintf("name%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		clk.t = clk.t.Add(time.Millisecond)
	}
	if n := th.len(); n > th.max {
		t.Errorf("throttle tracks %d keys, want at most %d", n, th.max)
	}
	if d := th.wait(accountKey("admin")); d == 0 {
		t.Errorf("flooding the table freed a locked-out account")
	}
}

// TestThrottleGuessingRate simulates a guesser that retries the moment it is allowed, for
// one hour of simulated time, and logs how many guesses reach the password check.
func TestThrottleGuessingRate(t *testing.T) {
	t.Parallel()
	clk := &simClock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
	th := newThrottle(clk.now)
	start := clk.t
	perMinute := map[int]int{}
	total := 0
	for clk.t.Sub(start) < time.Hour {
		if d := th.wait(accountKey("admin"), addressKey("192.0.2.1")); d > 0 {
			clk.t = clk.t.Add(d)
			continue
		}
		perMinute[int(clk.t.Sub(start)/time.Minute)]++
		total++
		th.fail("admin", "192.0.2.1")
		clk.t = clk.t.Add(400 * time.Millisecond) // one attempt's round trip, bcrypt included
	}
	t.Logf("guesses reaching the password check: first minute %d, second %d, first hour %d (%.2f/min); unthrottled: about 150/min",
		perMinute[0], perMinute[1], total, float64(total)/60)
	if total > 30 {
		t.Errorf("%d guesses in an hour, want at most 30", total)
	}
}
