package testkit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Timeout bounds every wait of the kit. It is a deadline for a failure
// message, not a timing assertion: on a loaded machine a wait may take
// most of it and the test still passes.
const Timeout = 30 * time.Second

// Signal is a test hook that product code fires and a test waits on: a
// coalescing wake-up (many fires before a wait count as one), so the
// firing side never blocks. The zero value is not usable; use NewSignal.
type Signal struct{ ch chan struct{} }

// NewSignal returns a signal that has not fired.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{}, 1)} }

// Fire records that something happened; it never blocks. Its method value
// fits hook fields of type func().
func (s *Signal) Fire() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// C is the channel a fire wakes.
func (s *Signal) C() <-chan struct{} { return s.ch }

// Receive returns the next value from ch, failing t if none comes within
// Timeout; what says what was awaited.
func Receive[T any](t testing.TB, ch <-chan T, what string, args ...any) T {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("testkit: no %s within %s", fmt.Sprintf(what, args...), Timeout)
		var zero T
		return zero
	}
}

// Closed returns once ch is closed, failing t if a value comes instead or
// nothing within Timeout; what names the channel.
func Closed[T any](t testing.TB, ch <-chan T, what string, args ...any) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case v, open := <-ch:
		if open {
			t.Fatalf("testkit: %v on %s, not its close", v, fmt.Sprintf(what, args...))
		}
	case <-timer.C:
		t.Fatalf("testkit: %s not closed within %s", fmt.Sprintf(what, args...), Timeout)
	}
}

// Wait returns once wg's count is zero, failing t if it is not within
// Timeout; what says what was awaited. On failure the goroutine that waits
// on wg is left behind (a WaitGroup's wait cannot be abandoned), and the
// package's leak check names it along with whatever still holds wg.
func Wait(t testing.TB, wg *sync.WaitGroup, what string, args ...any) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Receive(t, done, what, args...)
}

// WaitUntil returns once cond holds, checking it at once and again each
// time changed fires; it fails t if cond does not hold within Timeout.
// changed is the hook of whatever can make cond true (the relay settled
// events, the mailer handled one), so the wait takes no sleep and no
// polling interval: it wakes when something happened.
func WaitUntil(t testing.TB, changed *Signal, cond func() bool, what string, args ...any) {
	t.Helper()
	waitUntil(t, changed.C(), cond, what, args...)
}

// pollEvery is how often Eventually checks a condition nothing signals.
const pollEvery = 10 * time.Millisecond

// Eventually returns once cond holds, checking it every pollEvery, and
// fails t if it does not hold within Timeout. Only for what no hook can
// signal cheaply: state outside the process (a broker connection, a
// socket the server has yet to notice closed) or seen only over HTTP.
// Prefer WaitUntil.
func Eventually(t testing.TB, cond func() bool, what string, args ...any) {
	t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	waitUntil(t, tick.C, cond, what, args...)
}

func waitUntil[T any](t testing.TB, wake <-chan T, cond func() bool, what string, args ...any) {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for !cond() {
		select {
		case <-wake:
		case <-timer.C:
			if cond() {
				return
			}
			t.Fatalf("testkit: %s: not within %s", fmt.Sprintf(what, args...), Timeout)
			return
		}
	}
}
