package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"
)

// DispatchOptions tunes a Dispatcher. A zero field takes its default.
type DispatchOptions struct {
	QueueSize      int           // events waiting per channel before the oldest is dropped; default 100
	MaxAttempts    int           // attempts per event and channel, the first included; default 6
	BaseDelay      time.Duration // wait before the first retry, doubled for each next one; default 1 s
	MaxDelay       time.Duration // longest backoff wait; default 1 min
	MaxRetryAfter  time.Duration // longest wait a receiver's Retry-After may ask for; default 5 min
	AttemptTimeout time.Duration // limit on one attempt, and on Test; default 15 s

	// OnResult, when set, is called after every attempt with its number
	// (1 for the first) and its error, nil once delivered. When the
	// Dispatcher stops trying, err wraps ErrUndelivered: after the last
	// attempt, after a final error such as HTTP 400, or with attempt 0 for
	// an event dropped unsent (ErrQueueFull, ErrClosed). So the last call
	// for an (event, channel) has err == nil or errors.Is(err,
	// ErrUndelivered). It runs on the channel's worker goroutine, and for
	// drops on the goroutine calling Notify or Close: it must be quick and
	// must not call the Dispatcher.
	OnResult func(channel string, e Event, attempt int, err error)

	// wait sleeps for d or until ctx is done; tests replace it to observe
	// the delays without waiting for them.
	wait func(ctx context.Context, d time.Duration) error
}

func (o *DispatchOptions) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 100
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	def(&o.BaseDelay, time.Second)
	def(&o.MaxDelay, time.Minute)
	def(&o.MaxRetryAfter, 5*time.Minute)
	def(&o.AttemptTimeout, 15*time.Second)
	if o.wait == nil {
		o.wait = sleep
	}
}

// ChannelStats counts what a Dispatcher did with one channel since it was
// made.
type ChannelStats struct {
	Sent    int64 // events delivered
	Failed  int64 // events given up after one or more attempts
	Retried int64 // attempts after the first
	Dropped int64 // events never attempted: the queue was full, or the Dispatcher closed
	Queued  int   // events waiting now, not counting one being sent

	LastError   string // the last attempt's error, "" if none failed yet
	LastErrorAt time.Time
	LastSentAt  time.Time
}

// Dispatcher delivers events to its channels, each through its own bounded
// queue and worker goroutine, so that a slow or failing channel never
// blocks the caller or the other channels. Events to one channel are sent
// in order, one at a time; a retried event holds back the ones behind it.
// The workers run from NewDispatcher until Close returns.
type Dispatcher struct {
	log     *slog.Logger
	opts    DispatchOptions
	workers []*worker
	byName  map[string]*worker

	abort     context.Context // cancelled when Close gives up
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	done      chan struct{} // closed when every worker has returned
	abandoned atomic.Int64  // events given up because Close gave up
}

type worker struct {
	ch   Channel
	wake chan struct{} // buffered 1: something was queued, or the queue closed

	mu     sync.Mutex
	queue  []Event
	closed bool
	stats  ChannelStats
}

// NewDispatcher starts one worker per channel. Channel names must be unique:
// a channel whose name is already taken is left out, with an error logged.
// A nil log discards.
func NewDispatcher(log *slog.Logger, opts DispatchOptions, channels ...Channel) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.setDefaults()
	d := &Dispatcher{
		log:    log,
		opts:   opts,
		byName: make(map[string]*worker, len(channels)),
		done:   make(chan struct{}),
	}
	d.abort, d.cancel = context.WithCancel(context.Background())
	for _, ch := range channels {
		if _, dup := d.byName[ch.Name()]; dup {
			log.Error("notification channel left out: its name is already taken", "channel", ch.Name())
			continue
		}
		w := &worker{ch: ch, wake: make(chan struct{}, 1)}
		d.workers = append(d.workers, w)
		d.byName[ch.Name()] = w
	}
	d.wg.Add(len(d.workers))
	for _, w := range d.workers {
		go d.run(w)
	}
	return d
}

// Notify queues e for every channel and returns at once. An empty e.ID is
// filled with a random one and a zero e.At with the current time, once, so
// that every channel and every retry carries the same.
func (d *Dispatcher) Notify(e Event) {
	if e.ID == "" {
		e.ID = newEventID("evt-")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	// The workers read the map after Notify returns: take a copy the caller
	// cannot change under them.
	e.Evidence = maps.Clone(e.Evidence)
	for _, w := range d.workers {
		d.enqueue(w, e)
	}
}

// NotifyChannel queues e for the channel named name only (a caller filtering by
// severity per channel) and returns at once; an unknown name is ignored.
func (d *Dispatcher) NotifyChannel(name string, e Event) {
	w, ok := d.byName[name]
	if !ok {
		return
	}
	if e.ID == "" {
		e.ID = newEventID("evt-")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Evidence = maps.Clone(e.Evidence)
	d.enqueue(w, e)
}

func (d *Dispatcher) enqueue(w *worker, e Event) {
	w.mu.Lock()
	if w.closed {
		w.stats.Dropped++
		w.mu.Unlock()
		d.log.Warn("notification dropped: dispatcher closed", d.attrs(w, e)...)
		d.report(w, e, 0, ErrClosed)
		return
	}
	var dropped []Event
	for len(w.queue) >= d.opts.QueueSize {
		dropped = append(dropped, w.queue[0])
		w.queue[0] = Event{}
		w.queue = w.queue[1:]
		w.stats.Dropped++
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	for _, old := range dropped {
		d.log.Warn("notification dropped: queue full", d.attrs(w, old)...)
		d.report(w, old, 0, ErrQueueFull)
	}
}

// run is one channel's worker. It returns when the queue is closed and
// empty, or when Close gives up.
func (d *Dispatcher) run(w *worker) {
	defer d.wg.Done()
	for {
		e, ok := d.next(w)
		if !ok {
			return
		}
		d.deliver(w, e)
	}
}

func (d *Dispatcher) next(w *worker) (Event, bool) {
	for {
		w.mu.Lock()
		if d.abort.Err() != nil {
			w.mu.Unlock()
			return Event{}, false // Close reports what is left
		}
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue[0] = Event{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return e, true
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return Event{}, false
		}
		select {
		case <-w.wake:
		case <-d.abort.Done():
		}
	}
}

// deliver tries e on w's channel until it is delivered, fails for good, runs
// out of attempts or Close gives up.
func (d *Dispatcher) deliver(w *worker, e Event) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(d.abort, d.opts.AttemptTimeout)
		err := send(ctx, w.ch, e)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.stats.Sent++
			w.stats.LastSentAt = time.Now()
			w.mu.Unlock()
			if attempt > 1 {
				d.log.Info("notification delivered after retrying", append(d.attrs(w, e), "attempt", attempt)...)
			}
			d.report(w, e, attempt, nil)
			return
		}
		w.mu.Lock()
		w.stats.LastError = err.Error()
		w.stats.LastErrorAt = time.Now()
		w.mu.Unlock()

		retry, retryAfter := retryable(err)
		var final error
		switch {
		case d.abort.Err() != nil:
			d.abandoned.Add(1)
			final = fmt.Errorf("%w: %w", ErrClosed, err)
		case !retry:
			final = fmt.Errorf("%w: %w", ErrUndelivered, err)
		case attempt >= d.opts.MaxAttempts:
			final = fmt.Errorf("%w after %d attempts: %w", ErrUndelivered, attempt, err)
		}
		if final != nil {
			d.fail(w, e, attempt, final)
			return
		}

		delay := d.backoff(attempt)
		if retryAfter > 0 {
			delay = min(retryAfter, d.opts.MaxRetryAfter)
		}
		w.mu.Lock()
		w.stats.Retried++
		w.mu.Unlock()
		d.log.Info("notification failed; will retry",
			append(d.attrs(w, e), "attempt", attempt, "retry_in", delay, "err", err)...)
		d.report(w, e, attempt, err)
		if werr := d.opts.wait(d.abort, delay); werr != nil {
			d.abandoned.Add(1)
			d.fail(w, e, attempt, fmt.Errorf("%w: %w", ErrClosed, err))
			return
		}
	}
}

func (d *Dispatcher) fail(w *worker, e Event, attempt int, err error) {
	w.mu.Lock()
	w.stats.Failed++
	w.mu.Unlock()
	d.log.Warn("notification not delivered", append(d.attrs(w, e), "attempt", attempt, "err", err)...)
	d.report(w, e, attempt, err)
}

// send makes one attempt. A panicking channel fails the attempt for good
// rather than the process.
func send(ctx context.Context, ch Channel, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("channel %q panicked: %v", ch.Name(), r))
		}
	}()
	return ch.Send(ctx, e)
}

// retryable says whether another attempt may succeed, and after how long the
// receiver asked to wait (0: not said).
func retryable(err error) (bool, time.Duration) {
	var pe *permanentError
	if errors.As(err, &pe) {
		return false, 0
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.retryable(), se.RetryAfter
	}
	var te *textproto.Error // an SMTP reply
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500, 0
	}
	// Network errors, timeouts and anything unclassified: try again.
	return true, 0
}

// backoff is the wait after the given failed attempt: BaseDelay doubled
// for each attempt after the first, capped at MaxDelay, then drawn
// uniformly from its upper half so that channels failing together do not
// retry in step.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	delay := d.opts.BaseDelay
	for i := 1; i < attempt && delay < d.opts.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, d.opts.MaxDelay)
	half := delay / 2
	return half + rand.N(delay-half+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Dispatcher) report(w *worker, e Event, attempt int, err error) {
	if d.opts.OnResult != nil {
		d.opts.OnResult(w.ch.Name(), e, attempt, err)
	}
}

func (d *Dispatcher) attrs(w *worker, e Event) []any {
	return []any{"channel", w.ch.Name(), "event", e.ID, "alert", e.AlertID, "kind", e.Kind}
}

// Test sends a "test" event to the named channel now, once, within
// AttemptTimeout, and returns its error: the dashboard's test button. It
// does not touch the channel's queue or stats and does not call OnResult.
func (d *Dispatcher) Test(ctx context.Context, name string) error {
	w, ok := d.byName[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownChannel, name)
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.AttemptTimeout)
	defer cancel()
	return send(ctx, w.ch, TestEvent(name, time.Now()))
}

// TestEvent is the event [Dispatcher.Test] sends to the named channel.
func TestEvent(channel string, now time.Time) Event {
	return Event{
		ID:          newEventID("test-"),
		Kind:        KindTest,
		Rule:        "test",
		Severity:    "info",
		Title:       "Test notification from Backstop",
		Explanation: fmt.Sprintf("This was sent from Backstop to check that the notification channel %q reaches you.", channel),
		Action:      "Nothing to do: if you can read this, the channel works.",
		At:          now,
	}
}

// Stats returns each channel's counters, by channel name.
func (d *Dispatcher) Stats() map[string]ChannelStats {
	out := make(map[string]ChannelStats, len(d.workers))
	for _, w := range d.workers {
		w.mu.Lock()
		s := w.stats
		s.Queued = len(w.queue)
		w.mu.Unlock()
		out[w.ch.Name()] = s
	}
	return out
}

// Close stops taking events and waits until every queued event has been
// delivered or given up. When ctx ends first it cancels the attempts and
// backoff waits in progress, reports what is left to OnResult with
// ErrClosed, and returns an error wrapping ctx's. Events passed to Notify
// after Close are dropped. Every worker has returned when Close returns.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		for _, w := range d.workers {
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
		go func() {
			d.wg.Wait()
			d.cancel() // release the context; every worker has returned
			close(d.done)
		}()
	})
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-d.done:
		return nil // finished just in time
	default:
	}
	d.cancel()
	<-d.done
	for _, w := range d.workers {
		w.mu.Lock()
		left := w.queue
		w.queue = nil
		w.stats.Dropped += int64(len(left))
		w.mu.Unlock()
		for _, e := range left {
			d.abandoned.Add(1)
			d.log.Warn("notification dropped: dispatcher closed", d.attrs(w, e)...)
			d.report(w, e, 0, ErrClosed)
		}
	}
	return fmt.Errorf("notify: close gave up with %d deliveries unfinished: %w", d.abandoned.Load(), context.Cause(ctx))
}
