// Package broker is the seam between the outbox relay, the consumers and a
// message broker. Two implementations satisfy Broker: rabbitmq (AMQP_URL
// set) and inproc (the embedded default). Both deliver at least once: a
// message is redelivered until a handler accepts or rejects it.
//
// Retries are the broker's job, never a handler's: a handler that cannot
// finish now returns RetryAfter and gives its worker back at once, so a few
// messages that keep failing never hold up the others.
package broker

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/internal/startstop"
	"github.com/verifier/verifier/internal/tracing"
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
	// Redelivered is set by the broker when this delivery may be a repeat
	// of one whose outcome it never heard (a crash, a lost connection).
	Redelivered bool
	// Attempt is 1 on the first delivery and grows by one each time a
	// handler asked for the message again with RetryAfter.
	Attempt int
	// Headers carry the W3C trace context (traceparent, tracestate) of the
	// publish, so a consumer's span continues the request's trace
	// (Consuming). AMQP headers on RabbitMQ; nil when untraced.
	Headers map[string]string
}

// Consuming starts the span of one delivery of m to queue, a child of the
// publish span whose context m.Headers carry. Both brokers run every
// handler inside it; end it with Consumed.
func Consuming(ctx context.Context, queue string, m Message) (context.Context, trace.Span) {
	ctx = tracing.FromHeaders(ctx, m.Headers)
	if queue == "" {
		queue = "(private)"
	}
	return tracing.Tracer().Start(ctx, "consume "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.destination.name", queue),
			attribute.String("messaging.message.id", m.ID),
			attribute.Int("messaging.message.delivery_attempt", m.Attempt)))
}

// Consumed ends a span from Consuming with the handler's outcome.
func Consumed(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "handler failed")
	}
	span.End()
}

// PublicNamespace starts every public event type (the contract's
// verifier.user.registered.v1 and the rest) and no internal topic.
const PublicNamespace = "verifier."

// Public reports whether topic is a public event type, which RabbitMQ
// routes on the public exchange (verifier.public) that other services
// bind to; every other topic stays on the internal one. Deciding by the
// name keeps the outbox and the relay unaware of the difference: a public
// event is an outbox row like any other.
func Public(topic string) bool { return strings.HasPrefix(topic, PublicNamespace) }

// Handler processes one delivery and says what becomes of it:
//
//   - nil: done; the message is acknowledged.
//   - Permanent(err): no retry will help; the message is dead-lettered.
//   - RetryAfter(err, d): deliver it again, not before d, with Attempt+1.
//     The handler returns at once; nothing sleeps holding the message.
//   - any other error: the handler could not finish. While ctx lives this
//     is RetryAfter(err, DefaultRetry(m.Attempt)); once ctx has ended the
//     message is left to the broker, which hands it out again.
//
// ctx ends when the broker stops (after its grace period) or when the
// delivery can no longer be settled because its channel or connection
// died. The broker then gives the message to another consumer, so a handler
// must stop working on it as soon as ctx ends: nothing may keep sending a
// message that was handed out again.
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
	// A broker that keeps no durable copy of its own (inproc) may instead
	// return a RetryAfter error, passed on from the handler: the caller
	// (the outbox relay) keeps the message and publishes it again after the
	// delay with Attempt+1.
	Publish(ctx context.Context, m Message) error
	// Consume registers a handler; call it before Start.
	Consume(q Queue, h Handler) error
	// Ping reports whether the broker is reachable now.
	Ping(ctx context.Context) error
	// Start connects and starts the consumers. It returns at once; the
	// broker keeps (re)connecting in the background until Stop. Stop
	// stops consuming, lets handlers in flight finish within the broker's
	// stop grace, hands back anything unfinished, and disconnects.
	startstop.Service
}

// DefaultStopGrace is how long Stop lets handlers in flight finish when a
// broker is built without a grace of its own: the service's default
// SHUTDOWN_GRACE.
const DefaultStopGrace = 10 * time.Second

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

type retryAfter struct {
	err   error
	delay time.Duration
}

func (r retryAfter) Error() string { return r.err.Error() }
func (r retryAfter) Unwrap() error { return r.err }

// RetryAfter asks for the message to be delivered again, not before d,
// with Attempt+1. err says why, for logs.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return retryAfter{err, max(d, 0)}
}

// RetryDelay reports the delay asked for with RetryAfter, if err carries
// one.
func RetryDelay(err error) (time.Duration, bool) {
	var r retryAfter
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}

// Bounds of DefaultRetry: a handler error that names no delay is
// unexpected, so its message comes back soon but never spins.
const (
	defaultRetryBase = time.Second
	defaultRetryMax  = time.Minute
)

// DefaultRetry is the delay before the next delivery of a message whose
// handler returned an error without RetryAfter, after attempt (1-based).
func DefaultRetry(attempt int) time.Duration {
	return Backoff(max(attempt-1, 0), defaultRetryBase, defaultRetryMax)
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
