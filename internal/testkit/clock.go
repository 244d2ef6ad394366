package testkit

import (
	"sync"
	"time"
)

// Clock is the one clock stub of the tests: real time plus an offset the
// test moves with Advance, or, once frozen, a fixed instant that moves only
// by Advance and Set. Expiry, cooldowns and retry delays are tested without
// waiting them out. Safe for concurrent use: the service's goroutines read
// it while the test moves it.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time
}

// NewClock returns a clock that runs with real time until moved.
func NewClock() *Clock { return &Clock{} }

// NewFrozenClock returns a clock stopped at t.
func NewFrozenClock(t time.Time) *Clock { return &Clock{frozen: t} }

// Now is the clock's time; pass the method value as a component's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

// Freeze stops the clock at its current time, for tests that check exact
// remaining times however long their steps take.
func (c *Clock) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen.IsZero() {
		c.frozen = time.Now()
	}
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Set freezes the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen, c.offset = t, 0
}
