// Package startstop is the one lifecycle of the service's long-lived
// parts (broker, outbox relay, janitor, hub, HTTP server), in the spirit
// of riverqueue/river's rivershared/startstop.
//
// A part embeds Base and writes one Start method:
//
//	func (p *Part) Start(ctx context.Context) error {
//		ctx, run, err := p.StartInit(ctx)
//		if run == nil {
//			return err // already running, or stopped for good
//		}
//		// ... whatever can fail at start: return run.Fail(err)
//		go func() {
//			defer run.Stopped(nil)
//			run.Started()
//			<-ctx.Done() // Stop was called
//			// ... wind down
//		}()
//		return nil
//	}
//
// Base provides Stop (cancel that context, then wait for Stopped), so a
// part's whole shutdown sits in its own goroutine after ctx ends, and
// every part stops the same way: idempotent, safe before Start, and done
// when Stop returns.
package startstop

import (
	"context"
	"errors"
	"sync"
)

// ErrStopped is returned by Start once a part has run and stopped: a part
// runs at most once (its channels and connections are gone), so a restart
// builds a new one.
var ErrStopped = errors.New("startstop: already stopped")

// Service is a long-lived part of the process.
type Service interface {
	// Start returns once the part runs in the background, or with the
	// reason it could not start. Starting a running part does nothing.
	Start(ctx context.Context) error
	// Stop ends the part and returns when it has wound down. It is safe
	// to call twice, concurrently, or before Start.
	Stop()
	// Started is closed once the part runs (or failed to start).
	Started() <-chan struct{}
	// Stopped is closed once the part has ended, by Stop or by itself.
	Stopped() <-chan struct{}
	// Err is what the part ended with: nil while it runs and after a
	// clean stop.
	Err() error
}

type state int

const (
	idle state = iota
	running
	stopped
)

// Base implements Stop, Started, Stopped and Err for a part that embeds
// it. The zero value is ready to use.
type Base struct {
	mu      sync.Mutex
	state   state
	cancel  context.CancelFunc
	started chan struct{}
	stopped chan struct{}
	err     error
}

// Run is one run of a part, handed out by StartInit.
type Run struct {
	b           *Base
	startedOnce sync.Once
	stoppedOnce sync.Once
}

// StartInit begins a Start. It returns a context that ends when Stop is
// called, and the Run to report to; a nil Run means do nothing and return
// err (nil if the part runs already, ErrStopped if it ran and stopped).
//
// The context keeps ctx's values but not its cancellation: the process
// stops its parts one by one in reverse order, which one shared
// cancellation would undo.
func (b *Base) StartInit(ctx context.Context) (context.Context, *Run, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case running:
		return ctx, nil, nil
	case stopped:
		return ctx, nil, ErrStopped
	}
	b.state = running
	b.chans()
	ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return ctx, &Run{b: b}, nil
}

// chans allocates the signal channels; callers hold mu.
func (b *Base) chans() {
	if b.started == nil {
		b.started = make(chan struct{})
	}
	if b.stopped == nil {
		b.stopped = make(chan struct{})
	}
}

// Started reports that the part runs.
func (r *Run) Started() { r.startedOnce.Do(func() { close(r.b.started) }) }

// Stopped reports that the part has ended: err nil after a Stop, else the
// failure that ended it. Call it last, from the part's own goroutine, or
// once a start failed (Fail does).
func (r *Run) Stopped(err error) {
	r.stoppedOnce.Do(func() {
		r.Started()
		r.b.mu.Lock()
		r.b.state = stopped
		r.b.cancel()
		if !errors.Is(err, context.Canceled) {
			r.b.err = err
		}
		r.b.mu.Unlock()
		close(r.b.stopped)
	})
}

// Fail ends a run that could not start and returns err, for
// `return run.Fail(err)`.
func (r *Run) Fail(err error) error {
	r.Stopped(err)
	return err
}

// Stop ends the part and waits until it has wound down. Before Start it
// does nothing, and the part may still start.
func (b *Base) Stop() {
	b.mu.Lock()
	if b.state == idle {
		b.mu.Unlock()
		return
	}
	cancel, done := b.cancel, b.stopped
	b.mu.Unlock()
	cancel()
	<-done
}

// Started is closed once the part runs, or failed to start.
func (b *Base) Started() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chans()
	return b.started
}

// Stopped is closed once the part has ended.
func (b *Base) Stopped() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chans()
	return b.stopped
}

// Running reports whether the part has started and not yet ended.
func (b *Base) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == running
}

// Err is what the part ended with: nil while it runs and after a clean
// stop.
func (b *Base) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
