package database

import (
	"context"
	"sync"
)

// turns hands out the single SQLite writer one holder at a time, first
// come first served, except that callers marked Urgent go before every
// ordinary one. database/sql's own wait queue picks a random waiter, so
// under 64 concurrent requests the outbox relay, which needs a turn to
// lease events and one to settle them, waited behind dozens of
// transactions each time (verifyEmail answer → VERIFIED p50 over 100 ms
// at c=64), and a request could wait far longer than its share.
type turns struct {
	mu     sync.Mutex
	busy   bool
	urgent []chan struct{}
	normal []chan struct{}
	// idle, if set, runs when the turn is given back with nobody
	// waiting, before the writer is free: the open group commits.
	idle func()
}

type urgentKey struct{}

// Urgent marks ctx's writes to go before ordinary ones on SQLite's single
// writer, and ctx's statements to take PostgreSQL's connections kept for
// urgent work (see reserved) instead of waiting for the requests' pool.
// It is for short bookkeeping that others wait on (the outbox relay:
// every event waits for its lease and settlement), never for request
// work, which would only reorder requests.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

func isUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}

// acquire waits for the writer's turn, or ctx's end.
func (t *turns) acquire(ctx context.Context) error {
	ch := t.enqueue(isUrgent(ctx))
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		removed := t.remove(ch)
		t.mu.Unlock()
		if !removed {
			// Handed the turn just as ctx ended: pass it on.
			t.release()
		}
		return ctx.Err()
	}
}

// enqueue takes the turn at once (nil) or queues for it: the returned
// channel is closed when the turn is the caller's.
func (t *turns) enqueue(urgent bool) chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.busy {
		t.busy = true
		return nil
	}
	ch := make(chan struct{})
	if urgent {
		t.urgent = append(t.urgent, ch)
	} else {
		t.normal = append(t.normal, ch)
	}
	return ch
}

// remove takes ch out of its queue; false if it was already handed the
// turn.
func (t *turns) remove(ch chan struct{}) bool {
	for _, q := range []*[]chan struct{}{&t.urgent, &t.normal} {
		for i, c := range *q {
			if c == ch {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return true
			}
		}
	}
	return false
}

// release hands the turn to the next waiter, urgent ones first; with
// nobody waiting, it runs idle (still holding the turn) and then frees the
// writer, unless someone came meanwhile.
func (t *turns) release() {
	if t.idle != nil {
		t.mu.Lock()
		handed := t.handOffLocked()
		t.mu.Unlock()
		if handed {
			return
		}
		t.idle()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.handOffLocked() {
		t.busy = false
	}
}

// urgentWaiting reports whether an Urgent caller waits for the turn.
func (t *turns) urgentWaiting() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.urgent) > 0
}

// handOffLocked gives the turn to the next waiter, if any.
func (t *turns) handOffLocked() bool {
	for _, q := range []*[]chan struct{}{&t.urgent, &t.normal} {
		if len(*q) > 0 {
			next := (*q)[0]
			*q = (*q)[1:]
			close(next)
			return true
		}
	}
	return false
}
