// Package broker is the seam between the outbox relay, the consumers and a
// message broker. Two implementations satisfy Broker: rabbitmq (AMQP_URL
// set) and inproc (the embedded default). Both deliver at least once: a
// message is redelivered until a handler accepts or rejects it.
package broker

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Message is one event on the wire.
type Message struct {
	// ID is unique per event and kept across redeliveries.
	ID string
	// Topic is the routing key.
	Topic string
	Body  []byte
	// Published is when the event was written to the outbox.
	Published time.Time
	// Redelivered is set by the broker when this delivery may be a repeat.
	Redelivered bool
}

// Handler processes one delivery. Returning nil acknowledges it; an error
// made with Permanent dead-letters it; any other error hands it back to the
// broker for a later attempt. Handlers wait out transient failures
// themselves (with backoff) and return such an error only when ctx ends.
type Handler func(ctx context.Context, m Message) error

// Queue describes what a consumer listens to.
type Queue struct {
	// Name of a durable queue shared by all replicas; each message goes to
	// one of them. Empty means a private queue for this process only, which
	// lives while the process is connected: every replica hears every
	// message, which is how status changes reach every websocket.
	Name string
	// Topics bound to the queue.
	Topics []string
	// Concurrency is how many messages are handled at once (the prefetch).
	Concurrency int
	// OnReady, if set, is called each time the queue is (re)attached. A
	// private queue misses what was published while it was gone, so its
	// consumer uses this to catch up.
	OnReady func()
}

// Broker publishes and consumes messages.
type Broker interface {
	// Publish returns nil once the broker has taken responsibility for m.
	Publish(ctx context.Context, m Message) error
	// Consume registers a handler; call it before Start.
	Consume(q Queue, h Handler) error
	// Start connects and starts the consumers. It returns at once; the
	// broker keeps (re)connecting in the background until Stop.
	Start(ctx context.Context) error
	// Stop stops consuming, lets handlers in flight finish within grace,
	// hands back anything unfinished, and disconnects. It is idempotent.
	Stop(grace time.Duration)
	// Ping reports whether the broker is reachable now.
	Ping(ctx context.Context) error
}

// ErrNotConnected is returned by Publish while the broker is unreachable.
var ErrNotConnected = errors.New("broker: not connected")

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that no retry will fix; the message is
// dead-lettered.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Backoff returns the wait before attempt n (0-based): doubling from base,
// capped at max, with up to 25% jitter subtracted so that replicas that
// failed together do not retry together.
func Backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// Drain waits up to grace for handlers to finish, then calls cancel (which
// ends their contexts) and waits for the rest. It reports whether they all
// finished within grace. Both brokers stop their consumers this way.
func Drain(handlers *sync.WaitGroup, grace time.Duration, cancel func()) (inTime bool) {
	done := make(chan struct{})
	go func() { handlers.Wait(); close(done) }()
	select {
	case <-done:
		inTime = true
	case <-time.After(grace):
	}
	cancel()
	<-done
	return inTime
}
