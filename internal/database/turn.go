package database

import (
	"context"
	"sync"
)

// turns hands out the single SQLite writer one holder at a time, first
// come first served, except that callers marked Urgent or Ahead go before every
// ordinary one. database/sql's own wait queue picks a random waiter, so
// under 64 concurrent requests the outbox relay, which needs a turn to
// lease events and one to settle them, waited behind dozens of
// transactions each time (verifyEmail answer → VERIFIED p50 over 100 ms
// at c=64), and a request could wait far longer than its share.
type turns struct {
	mu     sync.Mutex
	busy   bool
	first  []chan struct{} // Urgent and Ahead
	normal []chan struct{}
	// idle, if set, runs when the turn is given back with nobody
	// waiting, before the writer is free: the open group commits.
	idle func()
}

// priority is where a write queues for the writer's turn, and whether its
// transaction commits at once.
type priority int

const (
	ordinary priority = iota
	// ahead: before ordinary writes; commits with its group.
	ahead
	// urgent: before ordinary writes; commits at once, with the group it
	// joined.
	urgent
)

type priorityKey struct{}

// Urgent marks ctx's writes to go before ordinary ones on SQLite's single
// writer and to commit at once. It is for short bookkeeping that everyone
// waits on (the outbox relay: every event waits for its lease and
// settlement), never for request work, which would only reorder requests.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, priorityKey{}, urgent)
}

// Ahead marks ctx's writes to go before ordinary ones, like Urgent, but to
// commit with the group they join (when nobody else waits for the writer,
// or maxGroup members are in): for a write whose delay matters more than
// others' but that nobody else waits on.
func Ahead(ctx context.Context) context.Context {
	return context.WithValue(ctx, priorityKey{}, ahead)
}

func priorityOf(ctx context.Context) priority {
	p, _ := ctx.Value(priorityKey{}).(priority)
	return p
}

// acquire waits for the writer's turn, or ctx's end.
func (t *turns) acquire(ctx context.Context) error {
	ch := t.enqueue(priorityOf(ctx) >= ahead)
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
func (t *turns) enqueue(first bool) chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.busy {
		t.busy = true
		return nil
	}
	ch := make(chan struct{})
	if first {
		t.first = append(t.first, ch)
	} else {
		t.normal = append(t.normal, ch)
	}
	return ch
}

// remove takes ch out of its queue; false if it was already handed the
// turn.
func (t *turns) remove(ch chan struct{}) bool {
	for _, q := range []*[]chan struct{}{&t.first, &t.normal} {
		for i, c := range *q {
			if c == ch {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return true
			}
		}
	}
	return false
}

// release hands the turn to the next waiter, Urgent and Ahead ones first; with
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

// handOffLocked gives the turn to the next waiter, if any.
func (t *turns) handOffLocked() bool {
	for _, q := range []*[]chan struct{}{&t.first, &t.normal} {
		if len(*q) > 0 {
			next := (*q)[0]
			*q = (*q)[1:]
			close(next)
			return true
		}
	}
	return false
}
