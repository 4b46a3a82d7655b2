package jobs

import (
	"context"
	"time"

	"github.com/backstop/backstop/store"
)

// EventType says what an Event carries.
type EventType string

// The kinds of events the hub carries.
const (
	EventProgress EventType = "progress" // Progress is set
	EventState    EventType = "state"    // the job changed state; State is set
	EventLog      EventType = "log"      // a row was added to the job's event log; Log is set
)

// Progress is a snapshot of a running job's progress.
type Progress struct {
	Phase string
	Done  int64 // bytes done
	Total int64 // bytes expected; 0 when unknown
	Rate  float64
	ETA   time.Duration // 0 when unknown
}

// Event is one message on the hub: something happened to a job.
type Event struct {
	Type     EventType
	JobID    int64
	JobKind  string
	SourceID int64 // 0 when the job has no source
	State    store.JobState
	Progress Progress
	Log      *store.JobEvent
}

// Subscription receives events until it is closed by Unsubscribe, by the hub dropping a
// subscriber that does not keep up, or by the hub stopping. C is closed in all three cases.
type Subscription struct {
	C <-chan Event
	c chan Event
}

// Hub fans job events out to subscribers (the websocket connections). One goroutine, Run,
// owns the subscriber set; Publish never blocks: when the hub is saturated an event is
// dropped, since a later progress event supersedes it and state changes are re-read from the
// catalog by whoever renders them.
type Hub struct {
	publish     chan Event
	subscribe   chan *Subscription
	unsubscribe chan *Subscription
	done        chan struct{}
}

// subscriberBuffer is how many events a subscriber may lag behind before it is dropped.
const subscriberBuffer = 64

// NewHub returns a hub; call Run to start it.
func NewHub() *Hub {
	return &Hub{
		publish:     make(chan Event, 256),
		subscribe:   make(chan *Subscription),
		unsubscribe: make(chan *Subscription),
		done:        make(chan struct{}),
	}
}

// Run delivers events until ctx is done, then closes every subscription.
func (h *Hub) Run(ctx context.Context) {
	defer close(h.done)
	subs := make(map[*Subscription]bool)
	defer func() {
		for s := range subs {
			close(s.c)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-h.subscribe:
			subs[s] = true
		case s := <-h.unsubscribe:
			if subs[s] {
				delete(subs, s)
				close(s.c)
			}
		case ev := <-h.publish:
			for s := range subs {
				select {
				case s.c <- ev:
				default: // too slow: drop it; its reader sees the closed channel
					delete(subs, s)
					close(s.c)
				}
			}
		}
	}
}

// Publish hands an event to the hub without blocking.
func (h *Hub) Publish(ev Event) {
	select {
	case h.publish <- ev:
	default:
	}
}

// Subscribe returns a new subscription, or one whose channel is already closed if the hub
// has stopped.
func (h *Hub) Subscribe() *Subscription {
	c := make(chan Event, subscriberBuffer)
	s := &Subscription{C: c, c: c}
	select {
	case h.subscribe <- s:
	case <-h.done:
		close(c)
	}
	return s
}

// Unsubscribe stops delivery to s and closes its channel.
func (h *Hub) Unsubscribe(s *Subscription) {
	select {
	case h.unsubscribe <- s:
	case <-h.done:
	}
}
