// Package inproc is the embedded broker used when AMQP_URL is empty.
//
// It keeps RabbitMQ's at-least-once contract within one process, and goes one
// step further to survive a crash: Publish confirms only after every queue
// the message was routed to has handled it. Until then the outbox row stays
// in the database, so a message held only in memory is never the last copy.
package inproc

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/verifier/verifier/internal/broker"
)

// Broker is an in-memory broker.Broker.
type Broker struct {
	log *slog.Logger

	mu      sync.Mutex
	queues  []*queue
	started bool

	stopOnce  sync.Once
	stopping  chan struct{}      // closed when Stop begins: no new deliveries start
	cancel    context.CancelFunc // ends handler contexts after the grace period
	handlerWG sync.WaitGroup
}

var _ broker.Broker = (*Broker)(nil)

type queue struct {
	spec     broker.Queue
	handle   broker.Handler
	pending  chan *delivery
	shutdown <-chan struct{}
}

type delivery struct {
	msg  broker.Message
	done chan struct{} // closed once the handler accepted or rejected it
}

// New returns a broker that logs to log.
func New(log *slog.Logger) *Broker {
	return &Broker{log: log, stopping: make(chan struct{})}
}

// Consume registers h for q.
func (b *Broker) Consume(q broker.Queue, h broker.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q.Concurrency <= 0 {
		q.Concurrency = 1
	}
	b.queues = append(b.queues, &queue{spec: q, handle: h, pending: make(chan *delivery, 1024), shutdown: b.stopping})
	return nil
}

// Start starts the handler workers.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return nil
	}
	b.started = true
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	for _, q := range b.queues {
		for range q.spec.Concurrency {
			b.handlerWG.Go(func() { b.work(hctx, q) })
		}
		if q.spec.OnReady != nil {
			q.spec.OnReady()
		}
	}
	return nil
}

// Publish routes m to every queue bound to its topic and waits until each
// has handled it.
func (b *Broker) Publish(ctx context.Context, m broker.Message) error {
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
		d := &delivery{msg: m, done: make(chan struct{})}
		select {
		case q.pending <- d:
			ds = append(ds, d)
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stopping:
			return broker.ErrNotConnected
		}
	}
	for _, d := range ds {
		select {
		case <-d.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.stopping:
			return broker.ErrNotConnected
		}
	}
	return nil
}

func (b *Broker) work(ctx context.Context, q *queue) {
	for {
		select {
		case <-q.shutdown:
			return
		case d := <-q.pending:
			b.deliver(ctx, q, d)
		}
	}
}

// deliver runs the handler until it accepts or rejects d. A handler that
// hands d back is tried again after a pause, unless the broker is stopping;
// then the publisher's outbox row, still unconfirmed, is the copy that
// survives.
func (b *Broker) deliver(ctx context.Context, q *queue, d *delivery) {
	for attempt := 0; ; attempt++ {
		err := q.handle(ctx, d.msg)
		switch {
		case err == nil:
			close(d.done)
			return
		case broker.IsPermanent(err):
			b.log.Error("message dead-lettered", "topic", d.msg.Topic, "id", d.msg.ID, "err", err)
			close(d.done)
			return
		}
		b.log.Warn("message handed back for retry", "topic", d.msg.Topic, "id", d.msg.ID, "err", err)
		d.msg.Redelivered = true
		select {
		case <-time.After(broker.Backoff(attempt, 100*time.Millisecond, 5*time.Second)):
		case <-q.shutdown:
			return
		}
	}
}

// Stop stops the workers; handlers still running after grace see their
// context cancelled.
func (b *Broker) Stop(grace time.Duration) {
	b.stopOnce.Do(func() {
		close(b.stopping)
		cancel := b.cancel
		if cancel == nil {
			cancel = func() {} // never started
		}
		if !broker.Drain(&b.handlerWG, grace, cancel) {
			b.log.Warn("handlers were still running after the grace period; cancelled them")
		}
	})
}

// Ping always succeeds: the broker is this process.
func (b *Broker) Ping(context.Context) error { return nil }
