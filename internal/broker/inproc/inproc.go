// Package inproc is the embedded broker used when AMQP_URL is empty.
//
// It keeps RabbitMQ's at-least-once contract within one process, and goes one
// step further to survive a crash: Publish confirms only after every queue
// the message was routed to has handled it. Until then the outbox row stays
// in the database, so a message held only in memory is never the last copy.
//
// For the same reason it keeps no delay queues: when a handler asks for a
// retry (broker.RetryAfter), Publish returns that request and the outbox
// relay reschedules the row, which is the durable copy. No worker and no
// publish waits out the delay.
package inproc

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/startstop"
)

// Broker is an in-memory broker.Broker.
type Broker struct {
	startstop.Base

	log   *slog.Logger
	grace time.Duration

	mu     sync.Mutex
	queues []*queue

	stopping chan struct{} // closed when Stop begins: no new deliveries start
	// hctx is the handlers' context, set by Start; stopped is set (under
	// mu) as Stop begins: no worker starts after it, so handlerWG's Wait
	// never races an Add.
	hctx      context.Context
	stopped   bool
	handlerWG sync.WaitGroup
}

var _ broker.Broker = (*Broker)(nil)

type queue struct {
	spec     broker.Queue
	handle   broker.Handler
	pending  chan *delivery
	shutdown <-chan struct{}
	// workers is how many of the queue's workers run (Broker.mu): at
	// most spec.Concurrency, none while nothing is pending.
	workers int
}

type delivery struct {
	msg broker.Message
	// done receives the outcome once: nil (handled or dead-lettered), a
	// broker.RetryAfter, or broker.ErrNotConnected when stopped first.
	done chan error
}

// Options tune a Broker.
type Options struct {
	// StopGrace is how long Stop lets handlers in flight finish before it
	// cancels them (default broker.DefaultStopGrace).
	StopGrace time.Duration
}

// pendingPerQueue is how many deliveries wait for a queue's workers before
// Publish blocks: a burst of commits is absorbed, and a slow consumer
// holds up the relay's publishes (its in-flight bound) rather than memory.
const pendingPerQueue = 1024

// New returns a broker that logs to log.
func New(log *slog.Logger, o Options) *Broker {
	if o.StopGrace <= 0 {
		o.StopGrace = broker.DefaultStopGrace
	}
	return &Broker{log: log, grace: o.StopGrace, stopping: make(chan struct{})}
}

// Consume registers h for q.
func (b *Broker) Consume(q broker.Queue, h broker.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q.Concurrency <= 0 {
		q.Concurrency = 1
	}
	b.queues = append(b.queues, &queue{spec: q, handle: h, pending: make(chan *delivery, pendingPerQueue), shutdown: b.stopping})
	return nil
}

// Start starts the handler workers. Stop stops them: handlers still
// running after the stop grace see their context cancelled.
func (b *Broker) Start(ctx context.Context) error {
	ctx, run, err := b.StartInit(ctx)
	if run == nil {
		return err
	}
	// Handlers outlive ctx, which ends as Stop begins, by the grace.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.mu.Lock()
	b.hctx = hctx
	for _, q := range b.queues {
		// Deliveries published before Start.
		for range min(len(q.pending), q.spec.Concurrency) {
			b.addWorkerLocked(q)
		}
		if q.spec.OnReady != nil {
			q.spec.OnReady()
		}
	}
	b.mu.Unlock()
	go func() {
		defer run.Stopped(nil)
		run.Started()
		<-ctx.Done()
		b.mu.Lock()
		b.stopped = true
		close(b.stopping)
		b.mu.Unlock()
		if !broker.Drain(&b.handlerWG, b.grace, cancel) {
			b.log.Warn("handlers were still running after the grace period; cancelled them")
		}
	}()
	return nil
}

// Publish routes m to every queue bound to its topic and waits until each
// has handled it. If a handler asked for a retry, Publish returns that
// broker.RetryAfter (the longest delay when several did): the caller
// publishes m again after it, with Attempt+1. Every queue then gets m
// again, so handlers sharing a topic must be idempotent, as they must be
// under any at-least-once broker.
func (b *Broker) Publish(ctx context.Context, m broker.Message) error {
	if m.Attempt < 1 {
		m.Attempt = 1
	}
	b.mu.Lock()
	var targets []*queue
	for _, q := range b.queues {
		if slices.Contains(q.spec.Topics, m.Topic) {
			targets = append(targets, q)
		}
	}
	b.mu.Unlock()

	ds := make([]*delivery, 0, len(targets))
	for _, q := range targets {
		d := &delivery{msg: m, done: make(chan error, 1)}
		select {
		case q.pending <- d:
			ds = append(ds, d)
			b.mu.Lock()
			if q.workers < q.spec.Concurrency {
				b.addWorkerLocked(q)
			}
			b.mu.Unlock()
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stopping:
			return broker.ErrNotConnected
		}
	}
	var retry error
	var longest time.Duration
	for _, d := range ds {
		select {
		case err := <-d.done:
			if err == nil {
				continue
			}
			delay, ok := broker.RetryDelay(err)
			if !ok {
				return err
			}
			if retry == nil || delay > longest {
				retry, longest = err, delay
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stopping:
			return broker.ErrNotConnected
		}
	}
	return retry
}

// addWorkerLocked starts one more worker for q, unless the broker has not
// started (Start starts them) or is stopping. Call it with b.mu held.
//
// Why workers come and go: a queue's workers are as many as it may handle
// at once (the mailer's 256), and parked ones are not free: every garbage
// collection scans each goroutine's stack, and the 276 parked workers of
// an idle service took about 1 ms of every cycle (make bench -profile,
// runtime.markroot), a cycle every eight sign-ups while passwords are
// hashed. A goroutine costs a microsecond or two to start.
func (b *Broker) addWorkerLocked(q *queue) {
	if b.hctx == nil || b.stopped {
		return
	}
	q.workers++
	b.handlerWG.Go(func() { b.work(b.hctx, q) })
}

// work handles q's pending deliveries, and returns once there is none or
// Stop has begun.
func (b *Broker) work(ctx context.Context, q *queue) {
	for {
		select {
		case <-q.shutdown:
			b.mu.Lock()
			q.workers--
			b.mu.Unlock()
			return
		case d := <-q.pending:
			d.done <- b.deliver(ctx, q, d.msg)
			continue
		default:
		}
		// Publish puts a delivery in pending before it counts the
		// workers under mu: one that arrives after this check finds a
		// worker fewer and starts one.
		b.mu.Lock()
		if len(q.pending) == 0 {
			q.workers--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// deliver runs the handler once and returns the outcome for Publish.
func (b *Broker) deliver(ctx context.Context, q *queue, m broker.Message) error {
	ctx, span := broker.Consuming(ctx, q.spec.Name, m)
	err := q.handle(ctx, m)
	broker.Consumed(span, err)
	switch {
	case err == nil:
		return nil
	case broker.IsPermanent(err):
		b.log.Error("message dead-lettered", "topic", m.Topic, "id", m.ID, "err", err)
		return nil
	}
	if _, ok := broker.RetryDelay(err); ok {
		return err
	}
	if ctx.Err() != nil {
		// Stopped past the grace period: the unconfirmed outbox row is the
		// copy that survives.
		return broker.ErrNotConnected
	}
	b.log.Warn("message handed back for retry", "topic", m.Topic, "id", m.ID, "attempt", m.Attempt, "err", err)
	return broker.RetryAfter(err, broker.DefaultRetry(m.Attempt))
}

// Ping always succeeds: the broker is this process.
func (b *Broker) Ping(context.Context) error { return nil }
