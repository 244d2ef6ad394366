// Package hub fans status changes out to the subscriptions open in this
// process. Every send is non-blocking: a slow or vanished websocket client
// never stalls the consumer that feeds the hub.
package hub

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/internal/startstop"
)

// Event is a user's verification, or, with Recheck set, a request to every
// subscription to re-read the status from the database because events may
// have been missed while the broker connection was re-established.
type Event struct {
	VerifiedAt time.Time
	Recheck    bool
}

// Hub is a set of subscriptions keyed by user.
type Hub struct {
	// Base gives the hub the service's lifecycle: Stop ends every
	// subscription (lifecycle.go).
	startstop.Base

	mu   sync.Mutex
	subs map[uuid.UUID]map[*Subscription]struct{}
	// OnChange, if set, is called with +1/-1 as subscriptions open and close.
	OnChange func(delta int)
}

// New returns an empty hub.
func New() *Hub { return &Hub{subs: map[uuid.UUID]map[*Subscription]struct{}{}} }

// Subscription receives the events of one user until Close.
type Subscription struct {
	hub  *Hub
	user uuid.UUID
	ch   chan Event
	once sync.Once
}

// C delivers events; it is closed when the subscription ends, including
// when the hub dropped it for not keeping up.
func (s *Subscription) C() <-chan Event { return s.ch }

// Close ends the subscription. Safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	s.once.Do(func() {
		if set := s.hub.subs[s.user]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(s.hub.subs, s.user)
			}
		}
		close(s.ch)
		if s.hub.OnChange != nil {
			s.hub.OnChange(-1)
		}
	})
}

// Subscribe opens a subscription to user's events.
func (h *Hub) Subscribe(user uuid.UUID) *Subscription {
	// One slot is enough: a user changes status once, and a Recheck that
	// finds the slot taken is redundant with what is already queued.
	s := &Subscription{hub: h, user: user, ch: make(chan Event, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[user]
	if set == nil {
		set = map[*Subscription]struct{}{}
		h.subs[user] = set
	}
	set[s] = struct{}{}
	if h.OnChange != nil {
		h.OnChange(+1)
	}
	return s
}

// Publish sends e to user's subscriptions without waiting on any of them.
func (h *Hub) Publish(user uuid.UUID, e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[user] {
		h.offer(s, e)
	}
}

// RecheckAll asks every subscription to re-read its status.
func (h *Hub) RecheckAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for s := range set {
			h.offer(s, Event{Recheck: true})
		}
	}
}

// offer delivers e to s if s has room. A full slot already holds an event
// that makes s re-read or finish, so dropping e loses nothing.
func (h *Hub) offer(s *Subscription, e Event) {
	select {
	case s.ch <- e:
	default:
	}
}

// Len reports the open subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.subs {
		n += len(set)
	}
	return n
}

// CloseAll ends every subscription, for shutdown.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for s := range set {
			s.closeLocked()
		}
	}
}
