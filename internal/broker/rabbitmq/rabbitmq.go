// Package rabbitmq is the broker.Broker for RabbitMQ.
//
// Topology, declared on every connect so a fresh or reset broker needs no
// setup (names shown with the default prefix "verifier"):
//
//	verifier.events   durable topic exchange every internal event is
//	                  published to
//	verifier.public   durable topic exchange of the public events
//	                  (broker.Public topics: the CloudEvents other services
//	                  bind to), routing key = the event type
//	verifier.dead     durable fanout exchange for rejected messages
//	verifier.dead     durable queue bound to it, to inspect and replay
//	verifier.<name>   durable queue per broker.Queue with a Name, shared by
//	                  replicas, dead-lettering to verifier.dead
//	verifier.<name>.delay.<d>
//	                  durable delay queue per tier d (delayTiers) of each
//	                  named queue: x-message-ttl d, dead-lettering through
//	                  the default exchange back to verifier.<name>
//	amq.gen-…         exclusive, auto-deleted queue per process for a
//	                  broker.Queue without a Name, with exclusive delay
//	                  queues of its own
//
// Messages are persistent, publishes wait for the broker's confirm, and
// consumers ack by hand with a prefetch equal to their concurrency. A lost
// connection is re-established with backoff; nothing needs a restart.
//
// A handler's broker.RetryAfter is served by the delay queues: the message
// is published, with its topic and next attempt number in headers, to the
// shortest tier at least as long as the delay, and once that is confirmed
// the delivery is acked. A tier holds one TTL for all its messages because
// RabbitMQ expires messages only at the head of a classic queue: one queue
// with per-message TTLs would hold a short delay behind a long one.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/startstop"
)

// defaultPrefix starts the name of every exchange and queue.
const defaultPrefix = "verifier"

// Names are the exchanges and queues of one deployment.
type Names struct {
	prefix string
}

// Exchange is the topic exchange internal events are published to.
func (n Names) Exchange() string { return n.prefix + ".events" }

// Public is the topic exchange of the public events, which other services
// bind their own queues to.
func (n Names) Public() string { return n.prefix + ".public" }

// ExchangeFor is the exchange topic is published to and bound on.
func (n Names) ExchangeFor(topic string) string {
	if broker.Public(topic) {
		return n.Public()
	}
	return n.Exchange()
}

// DeadLetter is the dead-letter exchange and the queue bound to it.
func (n Names) DeadLetter() string { return n.prefix + ".dead" }

// Queue is the full name of a shared queue.
func (n Names) Queue(name string) string { return n.prefix + "." + name }

// Delay is the name of a shared queue's delay queue for tier d.
func (n Names) Delay(name string, d time.Duration) string {
	return n.Queue(name) + ".delay." + d.String()
}

// delayTiers are the delays a retry can wait, shortest first. A retry waits
// the shortest tier at least as long as it asked for (the longest if it
// asked for more). The short ones let a backlog go out within seconds of
// the mail server's return; the long ones serve servers that refuse us
// until someone fixes a setting.
var delayTiers = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute,
}

// tierFor returns the index in delayTiers a retry after d waits in.
func tierFor(d time.Duration) int {
	for i, t := range delayTiers {
		if t >= d {
			return i
		}
	}
	return len(delayTiers) - 1
}

// Headers of a message republished for a retry: the delay queue dead-letters
// it with the consumer's queue as routing key, so the topic travels here.
const (
	topicHeader   = "x-verifier-topic"
	attemptHeader = "x-verifier-attempt"
)

// cloudEventsJSON is the content type of a public event (structured-mode
// CloudEvents), as the contract fixes it.
const cloudEventsJSON = "application/cloudevents+json"

// confirmTimeout bounds the wait for a publisher confirm; a broker that
// takes longer is treated as unreachable and the outbox row is retried.
const confirmTimeout = 15 * time.Second

// Connection settings.
const (
	// heartbeat: a dead TCP connection (no RST, e.g. a vanished NAT entry)
	// is noticed within two of these, not at the next publish.
	heartbeat = 10 * time.Second
	// dialTimeout bounds one connection attempt, so a blackholed address
	// is retried with backoff rather than waiting on the kernel.
	dialTimeout = 5 * time.Second
	// Reconnect backoff: the first retry comes quickly (a restart of
	// RabbitMQ takes seconds), later ones no more than reconnectMax apart
	// so the service is back soon after RabbitMQ is.
	reconnectMin = 250 * time.Millisecond
	reconnectMax = 5 * time.Second
	// closeTimeout bounds each wait of Stop for an answer of RabbitMQ
	// (the consumers' cancel-ok, the connection's close-ok). RabbitMQ
	// stops reading from a connection it blocks (a memory or disk alarm)
	// and still sends heartbeats, so without a bound Stop would wait as
	// long as the alarm lasts; what it did not settle, RabbitMQ requeues
	// when the connection goes.
	closeTimeout = 5 * time.Second
)

// Broker is a broker.Broker backed by RabbitMQ.
type Broker struct {
	startstop.Base

	url   string
	log   *slog.Logger
	name  string
	names Names
	// server is host:port/vhost of url, never its user or password: the
	// connection lines say which broker this process uses.
	server string

	mu   sync.Mutex
	conn *amqp.Connection
	// sock is conn's socket, for Stop to close when RabbitMQ does not
	// answer conn's close.
	sock      net.Conn
	pub       *amqp.Channel
	consumers []consumer
	// declared are shared queues this process publishes to without
	// consuming them (see Declare).
	declared  []broker.Queue
	attached  []*attachment // consumer channels of the current connection
	onConnect []func()
	grace     time.Duration

	handlerCtx    context.Context
	cancelHandler context.CancelFunc
	handlers      sync.WaitGroup
}

var _ broker.Broker = (*Broker)(nil)

type consumer struct {
	q broker.Queue
	h broker.Handler
}

// attachment is one consumer on one connection.
type attachment struct {
	ch  *amqp.Channel
	tag string
	// pub is the publish channel of the same connection: a retry of a
	// delivery from a dead connection must not go out on a new one.
	pub *amqp.Channel
	// delays are the delay queues' names, one per delayTiers entry.
	delays []string
	// ctx ends when ch closes, or when the broker cancels its handlers.
	ctx context.Context
}

// Options tune a Broker.
type Options struct {
	// Prefix of every exchange and queue name (default "verifier"), so
	// several deployments, or tests, can share one RabbitMQ.
	Prefix string
	// StopGrace is how long Stop lets handlers in flight finish before it
	// cancels them (default broker.DefaultStopGrace).
	StopGrace time.Duration
}

// New returns a broker for the AMQP URL.
func New(url string, log *slog.Logger, o Options) *Broker {
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.StopGrace <= 0 {
		o.StopGrace = broker.DefaultStopGrace
	}
	host, _ := os.Hostname()
	return &Broker{
		url: url, log: log, names: Names{o.Prefix}, grace: o.StopGrace,
		name:   fmt.Sprintf("%s@%s/%d", o.Prefix, host, os.Getpid()),
		server: serverOf(url),
	}
}

// serverOf is host:port/vhost of an AMQP URL, without user, password or
// query.
func serverOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host + u.EscapedPath()
}

// refused reports whether RabbitMQ answered and turned us away: a wrong
// user or password, or a vhost that is missing or not open to the user.
// Retrying helps only once someone fixes AMQP_URL or the broker, so the
// log says so instead of calling the broker unreachable.
func refused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed)
}

// OnConnect registers f to be called after each successful (re)connect;
// the outbox relay uses it to publish what waited during an outage at
// once. It is a method, not an option, so the wiring can wait until both
// the broker and what it calls exist.
func (b *Broker) OnConnect(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onConnect = append(b.onConnect, f)
}

// Names returns the broker's exchange and queue names.
func (b *Broker) Names() Names { return b.names }

// Consume registers h for q.
func (b *Broker) Consume(q broker.Queue, h broker.Handler) error {
	if q.Concurrency <= 0 {
		q.Concurrency = 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consumers = append(b.consumers, consumer{q, h})
	return nil
}

// Declare makes the shared queue q exist, bound to its topics, from the
// next connect on, without consuming it. Call it before Start.
//
// Why: RabbitMQ confirms a message that no queue's binding matches and
// drops it. A shared queue used to be declared only by the process that
// consumes it, so an api that started before any worker had ever
// connected to the vhost (a fresh RabbitMQ, a worker that crash-loops)
// had its registrations' emails confirmed, deleted from the outbox and
// lost. Declared by every process that publishes to it, the queue holds
// them until a worker comes.
func (b *Broker) Declare(q broker.Queue) error {
	if q.Name == "" {
		return errors.New("rabbitmq: only a shared (named) queue can be declared without a consumer")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.declared = append(b.declared, q)
	return nil
}

// Start connects in the background. It does not wait for the broker: the
// service must start, and accept registrations into its outbox, while
// RabbitMQ is still down. Stop cancels the consumers, lets handlers finish
// within the stop grace (then cancels them), and closes the connection;
// RabbitMQ requeues whatever was not acked.
func (b *Broker) Start(ctx context.Context) error {
	ctx, run, err := b.StartInit(ctx)
	if run == nil {
		return err
	}
	b.handlerCtx, b.cancelHandler = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer run.Stopped(nil)
		run.Started()
		b.run(ctx)
		b.shutdown()
	}()
	return nil
}

func (b *Broker) run(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		conn, err := b.connect(ctx)
		if ctx.Err() != nil {
			// Stop began while we were connecting: the attempt was cut
			// short (no outage to report), or its connection is no longer
			// wanted. That connection is b.conn already, and shutdown
			// closes it within closeTimeout. Closed here, it waited for a
			// close-ok with no bound but missed heartbeats (30 s) when
			// RabbitMQ had stopped reading as Stop began.
			return
		}
		if err != nil {
			wait := broker.Backoff(attempt, reconnectMin, reconnectMax)
			if refused(err) {
				b.log.Error("RabbitMQ refuses our user, password or vhost: check AMQP_URL and the user's permissions on the vhost; will retry", "server", b.server, "in", wait.Round(time.Millisecond), "err", err)
			} else {
				b.log.Warn("RabbitMQ unreachable; will retry", "server", b.server, "in", wait.Round(time.Millisecond), "err", err)
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return
			}
		}
		attempt = -1
		b.log.Info("connected to RabbitMQ", "server", b.server, "connection", b.name)
		b.mu.Lock()
		onConnect := b.onConnect
		b.mu.Unlock()
		for _, f := range onConnect {
			f()
		}
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
		if !b.watch(ctx, conn, closed, blocked) {
			return
		}
	}
}

// watch follows a connection until it is lost (true: reconnect) or ctx
// ends (false). It says when RabbitMQ blocks the connection: publishes
// then wait for their confirm in vain, and the outbox keeps what they
// carried until the alarm clears; without the line the operator sees
// only the retries.
func (b *Broker) watch(ctx context.Context, conn *amqp.Connection, closed <-chan *amqp.Error, blocked <-chan amqp.Blocking) bool {
	for {
		select {
		case amqpErr := <-closed:
			b.log.Warn("RabbitMQ connection lost; reconnecting", "err", amqpErr)
			b.detach(conn)
			return true
		case bl, ok := <-blocked:
			switch {
			case !ok:
				blocked = nil // closed with the connection: closed says so
			case bl.Active:
				b.log.Warn("RabbitMQ blocked the connection; nothing is published until it lifts the block", "reason", bl.Reason)
			default:
				b.log.Info("RabbitMQ lifted the block on the connection")
			}
		case <-ctx.Done():
			return false
		}
	}
}

// connect dials, declares the topology, opens the confirming publish
// channel and attaches every consumer. amqp091 takes no context: when ctx
// ends (Stop) before connect returns, the socket is closed under it, which
// fails whatever step waits for RabbitMQ. Otherwise Stop would wait for
// the handshake's deadline (dialTimeout), or for a step after it, bounded
// only by missed heartbeats.
func (b *Broker) connect(ctx context.Context) (*amqp.Connection, error) {
	var (
		mu   sync.Mutex // sock, between the dial and ctx's end
		sock net.Conn
	)
	cut := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if sock != nil {
			_ = sock.Close()
		}
	})
	defer cut()
	conn, err := amqp.DialConfig(b.url, amqp.Config{
		Heartbeat: heartbeat,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// As amqp.DefaultDial: the handshake has a deadline, which
			// amqp091 clears once the connection is open.
			if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			if err := ctx.Err(); err != nil {
				// Ended as the dial returned, before cut could see it.
				_ = c.Close()
				return nil, err
			}
			sock = c
			return c, nil
		},
		Properties: amqp.Table{"connection_name": b.name},
	})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	fail := func(step string, err error) (*amqp.Connection, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if err := b.declareTopology(pub); err != nil {
		return fail("declare topology", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail("enable publisher confirms", err)
	}
	b.watchChannel(conn, pub, nil)

	b.mu.Lock()
	consumers := append([]consumer(nil), b.consumers...)
	declared := append([]broker.Queue(nil), b.declared...)
	b.mu.Unlock()
	for _, q := range declared {
		if _, err := b.declareShared(pub, q); err != nil {
			return fail("declare queue", err)
		}
	}
	var attached []*attachment
	var ready []func()
	for _, c := range consumers {
		a, err := b.attach(conn, pub, c)
		if err != nil {
			return fail("attach consumer", err)
		}
		attached = append(attached, a)
		if c.q.OnReady != nil {
			ready = append(ready, c.q.OnReady)
		}
	}

	b.mu.Lock()
	b.conn, b.sock, b.pub, b.attached = conn, sock, pub, attached
	b.mu.Unlock()
	for _, f := range ready {
		f()
	}
	return conn, nil
}

func (b *Broker) declareTopology(ch *amqp.Channel) error {
	dead := b.names.DeadLetter()
	for _, ex := range []string{b.names.Exchange(), b.names.Public()} {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return err
		}
	}
	if err := ch.ExchangeDeclare(dead, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(dead, true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(dead, "", dead, false, nil)
}

// declareShared declares the shared queue q and binds it to its topics:
// the one declaration of a shared queue, for its consumers and for the
// processes that only publish to it (Declare), whose arguments must agree
// or RabbitMQ refuses the second.
func (b *Broker) declareShared(ch *amqp.Channel, q broker.Queue) (amqp.Queue, error) {
	dq, err := ch.QueueDeclare(b.names.Queue(q.Name), true, false, false, false, amqp.Table{"x-dead-letter-exchange": b.names.DeadLetter()})
	if err != nil {
		return dq, fmt.Errorf("declare queue %q: %w", q.Name, err)
	}
	return dq, b.bind(ch, dq.Name, q.Topics)
}

// declarePrivate declares a queue of this connection's own, bound to q's
// topics, gone with the connection.
func (b *Broker) declarePrivate(ch *amqp.Channel, q broker.Queue) (amqp.Queue, error) {
	dq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return dq, fmt.Errorf("declare a private queue: %w", err)
	}
	return dq, b.bind(ch, dq.Name, q.Topics)
}

func (b *Broker) bind(ch *amqp.Channel, queue string, topics []string) error {
	for _, topic := range topics {
		if err := ch.QueueBind(queue, topic, b.names.ExchangeFor(topic), false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", queue, topic, err)
		}
	}
	return nil
}

// attach declares c's queue and its delay queues, binds it and consumes
// it on a channel of its own, so a slow consumer never holds up the
// publisher: a goroutine per delivery in hand, which the channel's
// prefetch bounds to c.q.Concurrency. None waits while the queue is idle:
// parked workers cost every garbage collection a scan of their stacks
// (see inproc.Broker's workers).
func (b *Broker) attach(conn *amqp.Connection, pub *amqp.Channel, c consumer) (*attachment, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(c.q.Concurrency, 0, false); err != nil {
		return nil, err
	}
	var q amqp.Queue
	if c.q.Name != "" {
		q, err = b.declareShared(ch, c.q)
	} else {
		q, err = b.declarePrivate(ch, c.q)
	}
	if err != nil {
		return nil, err
	}
	delays := make([]string, len(delayTiers))
	for i, d := range delayTiers {
		args := amqp.Table{
			"x-message-ttl":             d.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q.Name,
		}
		var dq amqp.Queue
		if c.q.Name != "" {
			dq, err = ch.QueueDeclare(b.names.Delay(c.q.Name, d), true, false, false, false, args)
		} else {
			// Gone with the connection, like the queue it feeds.
			dq, err = ch.QueueDeclare("", false, false, true, false, args)
		}
		if err != nil {
			return nil, fmt.Errorf("declare delay queue %s for %q: %w", d, c.q.Name, err)
		}
		delays[i] = dq.Name
	}
	tag := b.name + "/" + q.Name
	// RabbitMQ cancels a consumer itself when its queue is deleted (or
	// leaves with a node): the deliveries end, but the channel and the
	// connection stay up, so nothing else notices, and the process would
	// look healthy and handle nothing until its next reconnect. A
	// reconnect, the one recovery path, declares the queue again and
	// consumes it. Our own Cancel (Stop) does not notify this.
	cancelled := ch.NotifyCancel(make(chan string, 1))
	go func() {
		if _, ok := <-cancelled; ok {
			b.log.Warn("RabbitMQ cancelled a consumer (its queue was deleted?); reconnecting", "queue", q.Name)
			_ = conn.Close()
		}
	}()
	deliveries, err := ch.Consume(q.Name, tag, false, false, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", q.Name, err)
	}
	ctx, cancel := context.WithCancel(b.handlerCtx)
	a := &attachment{ch: ch, tag: tag, pub: pub, delays: delays, ctx: ctx}
	b.watchChannel(conn, ch, cancel)
	b.handlers.Go(func() {
		for d := range deliveries {
			// Added while this goroutine is counted: never racing Stop's
			// Wait on a zero count.
			b.handlers.Go(func() { b.handle(conn, a, c, d) })
		}
	})
	return a, nil
}

// handle is the one place a delivery's fate is decided.
func (b *Broker) handle(conn *amqp.Connection, a *attachment, c consumer, d amqp.Delivery) {
	m := message(d)
	ctx, span := broker.Consuming(a.ctx, c.q.Name, m)
	err := c.h(ctx, m)
	broker.Consumed(span, err)
	switch {
	case err == nil:
		err = d.Ack(false)
	case broker.IsPermanent(err):
		b.log.Error("message dead-lettered", "queue", c.q.Name, "topic", m.Topic, "id", m.ID, "err", err)
		err = d.Reject(false)
	case a.ctx.Err() != nil:
		// The channel is gone (RabbitMQ hands the message out again, maybe
		// already has) or the broker is stopping past its grace. A retry
		// copy now would be a second one; requeueing is all that is left.
		err = d.Nack(false, true)
	default:
		delay, asked := broker.RetryDelay(err)
		if !asked {
			delay = broker.DefaultRetry(m.Attempt)
			b.log.Warn("message handed back for retry", "queue", c.q.Name, "topic", m.Topic, "id", m.ID, "attempt", m.Attempt, "in", delay, "err", err)
		}
		if perr := b.delay(a, m, delay); perr != nil {
			if a.ctx.Err() != nil {
				// Gone or stopping meanwhile: as above.
				_ = d.Nack(false, true)
				return
			}
			// Requeueing at once could spin; a reconnect (with backoff) is
			// the one recovery path, and RabbitMQ requeues on close.
			b.log.Warn("could not schedule a retry; reconnecting", "queue", c.q.Name, "id", m.ID, "err", perr)
			_ = conn.Close()
			return
		}
		err = d.Ack(false)
	}
	if err != nil {
		// The channel is gone; the broker requeues what we had not acked.
		b.log.Debug("settling delivery failed; the broker will redeliver", "id", m.ID, "err", err)
	}
}

// message turns a delivery into a broker.Message.
func message(d amqp.Delivery) broker.Message {
	m := broker.Message{ID: d.MessageId, Topic: d.RoutingKey, Body: d.Body, Published: d.Timestamp, Redelivered: d.Redelivered, Attempt: 1}
	if t, ok := d.Headers[topicHeader].(string); ok && t != "" {
		m.Topic = t
	}
	switch n := d.Headers[attemptHeader].(type) {
	case int32:
		m.Attempt = int(n)
	case int64:
		m.Attempt = int(n)
	}
	m.Attempt = max(m.Attempt, 1)
	for _, k := range traceHeaders {
		if v, ok := d.Headers[k].(string); ok && v != "" {
			if m.Headers == nil {
				m.Headers = map[string]string{}
			}
			m.Headers[k] = v
		}
	}
	return m
}

// traceHeaders are the W3C trace context headers a message may carry
// (broker.Message.Headers), under their own names as AMQP headers, where
// OpenTelemetry's AMQP conventions and other services' tracers look.
var traceHeaders = []string{"traceparent", "tracestate"}

// publishing is m as a persistent AMQP message; headers carry what a
// delay queue's message must bring back (its topic and attempt). A public
// event is a CloudEvents envelope, and says so.
func publishing(m broker.Message, headers amqp.Table) amqp.Publishing {
	contentType := "application/json"
	if broker.Public(m.Topic) {
		contentType = cloudEventsJSON
	}
	for _, k := range traceHeaders {
		if v := m.Headers[k]; v != "" {
			if headers == nil {
				headers = amqp.Table{}
			}
			headers[k] = v
		}
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  contentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Timestamp:    m.Published,
		Body:         m.Body,
	}
}

// delay publishes m, with Attempt+1, to the delay queue for d and waits for
// the confirm.
func (b *Broker) delay(a *attachment, m broker.Message, d time.Duration) error {
	ctx, cancel := context.WithTimeout(a.ctx, confirmTimeout)
	defer cancel()
	dc, err := a.pub.PublishWithDeferredConfirmWithContext(ctx, "", a.delays[tierFor(d)], false, false, publishing(m, amqp.Table{topicHeader: m.Topic, attemptHeader: int32(m.Attempt + 1)}))
	if err != nil {
		return fmt.Errorf("publish to delay queue: %w", err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("wait for confirm: %w", err)
	}
	if !acked {
		return errors.New("delay queue publish not confirmed")
	}
	return nil
}

// watchChannel calls cancel (if set) when ch closes, and turns a
// channel-level error (which leaves the connection up) into a full
// reconnect, the one recovery path.
func (b *Broker) watchChannel(conn *amqp.Connection, ch *amqp.Channel, cancel context.CancelFunc) {
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		err, ok := <-closed
		if cancel != nil {
			cancel()
		}
		// A channel closed because its connection went down gets the
		// connection's error too (the connection marks itself closed
		// first): that loss is logged once, where it is noticed, not
		// again per channel.
		if ok && err != nil && !conn.IsClosed() {
			b.log.Warn("RabbitMQ channel closed by the broker", "err", err)
			_ = conn.Close()
		}
	}()
}

func (b *Broker) detach(conn *amqp.Connection) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == conn {
		b.conn, b.sock, b.pub, b.attached = nil, nil, nil, nil
	}
}

// Publish sends m persistently and waits for the broker's confirm.
func (b *Broker) Publish(ctx context.Context, m broker.Message) error {
	b.mu.Lock()
	pub := b.pub
	b.mu.Unlock()
	if pub == nil {
		return broker.ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, b.names.ExchangeFor(m.Topic), m.Topic, false, false, publishing(m, nil))
	if err != nil {
		return fmt.Errorf("rabbitmq: publish %s: %w", m.Topic, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("rabbitmq: wait for confirm of %s: %w", m.Topic, err)
	}
	if !acked {
		return fmt.Errorf("rabbitmq: %s not confirmed (nack or connection lost)", m.Topic)
	}
	return nil
}

// Ping reports whether a connection is up.
func (b *Broker) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil || b.conn.IsClosed() {
		return broker.ErrNotConnected
	}
	return nil
}

// shutdown ends what run left: consumers are cancelled, handlers settle
// their deliveries within the grace, and the connection closes.
func (b *Broker) shutdown() {
	b.mu.Lock()
	conn, sock, attached := b.conn, b.sock, b.attached
	b.conn, b.sock, b.pub, b.attached = nil, nil, nil, nil
	b.mu.Unlock()
	closeConn := func() {
		if conn == nil {
			return
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			if err := conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
				b.log.Debug("closing RabbitMQ connection", "err", err)
			}
		}()
		select {
		case <-closed:
		case <-time.After(closeTimeout):
			// No close-ok. amqp091's CloseDeadline would not help: each
			// heartbeat RabbitMQ sends moves the socket's read deadline
			// on. Closing the socket ends the close, and whatever else
			// still waits on the connection.
			_ = sock.Close()
			<-closed
		}
	}
	// A cancel waits for RabbitMQ's answer: in the background, so a
	// broker that does not answer holds Stop no longer than closeTimeout.
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		for _, a := range attached {
			_ = a.ch.Cancel(a.tag, false)
		}
	}()
	answered := true
	select {
	case <-cancelled:
	case <-time.After(closeTimeout):
		answered = false
		// RabbitMQ reads nothing: an ack would not reach it either, and
		// the consumers go on until the connection does. Closed now,
		// RabbitMQ hands out again whatever is in hand; the handlers
		// still get their grace to finish what they started.
		b.log.Warn("RabbitMQ did not answer the consumers' cancel; closing the connection", "waited", closeTimeout)
		closeConn()
	}
	// Handlers settle their deliveries before the connection closes;
	// whatever they could not settle, RabbitMQ requeues on close.
	if !broker.Drain(&b.handlers, b.grace, b.cancelHandler) {
		b.log.Warn("handlers were still running after the grace period; cancelled them")
	}
	if answered {
		closeConn()
	}
	<-cancelled
}
