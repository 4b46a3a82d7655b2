package handlers

import (
	"sync"
	"time"
)

// Sign-in throttling. Every wrong password costs the attacker one bcrypt comparison and us
// one; without a limit a loop guesses a few passwords a second, for ever. Failures are
// counted per account name and per client address: past a few free failures each further
// one doubles a lock-out during which attempts are refused before the password is checked.
// State is in memory (one process serves the dashboard) and bounded in size.
const (
	// accountFreeFailures is how many wrong passwords an account name gets before lock-outs
	// begin: enough for typos, few enough that guessing gets nowhere.
	accountFreeFailures = 5
	// addressFreeFailures is the same per client address, higher because several people may
	// share one address (an office behind NAT) and mistype different accounts.
	addressFreeFailures = 20
	// firstLockout is the first lock-out; each further failure doubles it up to maxLockout.
	firstLockout = time.Second
	maxLockout   = 15 * time.Minute
	// forgetAfter is how long a key is kept after its last failure and lock-out end.
	forgetAfter = 15 * time.Minute
	// maxThrottleKeys bounds memory: about 100 bytes a key, so about 1 MB at most.
	maxThrottleKeys = 10000
)

// throttle counts failed sign-ins per key ("name:..." or "ip:...").
type throttle struct {
	mu   sync.Mutex
	now  func() time.Time
	keys map[string]*failures
	max  int
}

type failures struct {
	count int
	// last is the time of the newest failure.
	last time.Time
	// until is when the current lock-out ends; zero when there is none.
	until time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, keys: map[string]*failures{}, max: maxThrottleKeys}
}

// accountKey is the key of an account name, cut short so that long made-up names cannot
// make one key large.
func accountKey(name string) string {
	if len(name) > 64 {
		name = name[:64]
	}
	return "name:" + name
}

// addressKey is the key of a client address.
func addressKey(ip string) string { return "ip:" + ip }

// wait returns how long the caller must wait before another attempt for these keys may
// reach the password check; zero means now.
func (t *throttle) wait(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var d time.Duration
	for _, k := range keys {
		if f, ok := t.keys[k]; ok && f.until.After(now) {
			d = max(d, f.until.Sub(now))
		}
	}
	return d
}

// fail records a wrong password for an account name from an address.
func (t *throttle) fail(account, address string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.failLocked(now, accountKey(account), accountFreeFailures)
	t.failLocked(now, addressKey(address), addressFreeFailures)
}

func (t *throttle) failLocked(now time.Time, key string, free int) {
	f, ok := t.keys[key]
	if ok && now.Sub(f.last) > forgetAfter && !f.until.After(now) {
		ok = false // quiet long enough: start over
	}
	if !ok {
		t.makeRoom(now)
		f = &failures{}
		t.keys[key] = f
	}
	f.count++
	f.last = now
	if f.count > free {
		d := maxLockout
		if n := f.count - free - 1; n < 20 {
			d = min(firstLockout<<n, maxLockout)
		}
		f.until = now.Add(d)
	}
}

// succeed forgets an account's failures once its password was given. The address keeps its
// count: signing in to one's own account must not buy guesses at others'.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.keys, accountKey(account))
}

// makeRoom keeps the number of keys below the cap: forgotten keys go first, then the ones
// not locked out, oldest first. A locked-out key is dropped only when every key is locked,
// so flooding the table with new names or addresses does not free a locked account.
func (t *throttle) makeRoom(now time.Time) {
	if len(t.keys) < t.max {
		return
	}
	var oldest string
	var oldestAt time.Time
	oldestLocked := true
	for k, f := range t.keys {
		locked := f.until.After(now)
		if !locked && now.Sub(f.last) > forgetAfter {
			delete(t.keys, k)
			continue
		}
		if oldest == "" || (oldestLocked && !locked) || (oldestLocked == locked && f.last.Before(oldestAt)) {
			oldest, oldestAt, oldestLocked = k, f.last, locked
		}
	}
	if len(t.keys) >= t.max && oldest != "" {
		delete(t.keys, oldest)
	}
}

// len returns the number of tracked keys, for tests.
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}
