package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/brokertest"
	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// newPrefix returns names unique to t, deleted when t ends.
func newPrefix(t *testing.T, url string) string { return rabbitmqtest.Prefix(t, url) }

func quiet() *slog.Logger { return testkit.Discard() }

func TestConformance(t *testing.T) {
	url := rabbitmqtest.URL(t)
	brokertest.Run(t, func(t *testing.T, grace time.Duration) broker.Broker {
		return New(url, quiet(), Options{Prefix: newPrefix(t, url), StopGrace: grace})
	})
}

// A rejected message lands in the dead-letter queue, persistent and intact.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	prefix := newPrefix(t, url)
	b := New(url, quiet(), Options{Prefix: prefix})
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"d"}}, func(context.Context, broker.Message) error {
		return broker.Permanent(fmt.Errorf("no"))
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, "broker connected")
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "poison-1", Topic: "d", Body: []byte("{}")}))

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	var got amqp.Delivery
	testkit.Eventually(t, func() bool {
		d, ok, err := ch.Get(b.Names().DeadLetter(), true)
		got = d
		return err == nil && ok
	}, "poison message in the dead-letter queue")
	require.Equal(t, "poison-1", got.MessageId)
	require.Equal(t, uint8(amqp.Persistent), got.DeliveryMode)
}

// A process that only publishes (ROLE=api) declares the worker's shared
// queue: what it publishes before any consumer of that queue ever
// connected waits there, where RabbitMQ would otherwise confirm it and
// drop it for want of a binding, and goes to the first consumer.
func TestDeclaredQueueKeepsWhatNoConsumerTookYet(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	prefix := newPrefix(t, url)
	work := broker.Queue{Name: "work", Topics: []string{"mail.due"}}

	api := New(url, quiet(), Options{Prefix: prefix})
	require.Error(t, api.Declare(broker.Queue{Topics: work.Topics}), "a private queue cannot outlive its connection")
	require.NoError(t, api.Declare(work))
	require.NoError(t, api.Start(context.Background()))
	defer api.Stop()
	testkit.Eventually(t, func() bool { return api.Ping(context.Background()) == nil }, "broker connected")
	require.NoError(t, api.Publish(context.Background(), broker.Message{ID: "early-1", Topic: "mail.due", Body: []byte("{}")}))

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	q, err := ch.QueueDeclarePassive(api.Names().Queue(work.Name), true, false, false, false, amqp.Table{"x-dead-letter-exchange": api.Names().DeadLetter()})
	require.NoError(t, err, "the queue exists before any consumer")
	require.Equal(t, 1, q.Messages, "the early message waits in it")

	got := make(chan string, 1)
	worker := New(url, quiet(), Options{Prefix: prefix})
	require.NoError(t, worker.Consume(work, func(_ context.Context, m broker.Message) error {
		got <- m.ID
		return nil
	}))
	require.NoError(t, worker.Start(context.Background()))
	defer worker.Stop()
	require.Equal(t, "early-1", testkit.Receive(t, got, "the first consumer gets the early message"))
}

// Private queues (no name) give every replica every message: how a status
// change reaches a websocket open on any replica.
func TestPrivateQueuesFanOut(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	prefix := newPrefix(t, url)
	got := make(chan string, 10)
	var replicas []*Broker
	for i := range 3 {
		b := New(url, quiet(), Options{Prefix: prefix})
		require.NoError(t, b.Consume(broker.Queue{Topics: []string{"user.verified"}}, func(_ context.Context, m broker.Message) error {
			got <- fmt.Sprintf("replica %d got %s", i, m.ID)
			return nil
		}))
		require.NoError(t, b.Start(context.Background()))
		defer b.Stop()
		testkit.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, "broker connected")
		replicas = append(replicas, b)
	}
	require.NoError(t, replicas[0].Publish(context.Background(), broker.Message{ID: "v1", Topic: "user.verified"}))
	seen := map[string]bool{}
	for range 3 {
		seen[testkit.Receive(t, got, "delivery to every replica; only %v", seen)] = true
	}
	require.Len(t, seen, 3)
}

// After the connection is cut the broker reconnects by itself: publishes
// fail while it is down (so the outbox keeps the event) and work again
// after, consumers resume, and OnReady and OnConnect fire again.
func TestReconnects(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	proxy := tcpproxy.Start(t, rabbitmqtest.Host(url))
	connects := make(chan struct{}, 10)
	var logs testkit.LogBuffer
	b := New(rabbitmqtest.Via(url, proxy.Addr()), slog.New(slog.NewTextHandler(&logs, nil)), Options{Prefix: newPrefix(t, url)})
	b.OnConnect(func() { connects <- struct{}{} })
	got := make(chan string, 10)
	ready := make(chan struct{}, 10)
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"r"}, OnReady: func() { ready <- struct{}{} }}, func(_ context.Context, m broker.Message) error {
		got <- m.ID
		return nil
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Receive(t, connects, "connect")
	testkit.Receive(t, ready, "consumer ready")

	proxy.Cut()
	testkit.Eventually(t, func() bool { return b.Ping(context.Background()) != nil }, "broker notices the cut")
	require.Error(t, b.Publish(context.Background(), broker.Message{ID: "lost", Topic: "r"}))

	proxy.Restore()
	testkit.Receive(t, connects, "reconnect")
	testkit.Receive(t, ready, "consumer ready again")
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "after", Topic: "r"}))
	require.Equal(t, "after", testkit.Receive(t, got, "delivery: the consumer did not resume"))
	// The lost connection is one warning, not one more per channel it
	// took down.
	require.Zero(t, logs.Count("channel closed by the broker"), "%s", logs.String())
}

// The delay queues rabbitmqtest deletes after each test are the ones declared.
func TestDelayQueueNames(t *testing.T) {
	t.Parallel()
	n := Names{"p"}
	var suffixes []string
	for _, d := range delayTiers {
		suffixes = append(suffixes, strings.TrimPrefix(n.Delay("q", d), n.Queue("q")))
	}
	require.Equal(t, rabbitmqtest.DelaySuffixes, suffixes)
}

func TestTierFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		delay time.Duration
		want  time.Duration
	}{
		{0, time.Second},
		{10 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1500 * time.Millisecond, 2 * time.Second},
		{15 * time.Second, 15 * time.Second},
		{16 * time.Second, 30 * time.Second},
		{time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, delayTiers[tierFor(tt.delay)], "delay %s", tt.delay)
	}
}

// When the connection drops under a handler, its context ends, and what it
// returns then makes no second copy: the message is handled again exactly
// once, by the new connection's consumer, and nothing is left over in the
// queue or a delay queue.
func TestReconnectEndsOldHandlers(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	proxy := tcpproxy.Start(t, rabbitmqtest.Host(url))
	prefix := newPrefix(t, url)
	connects := make(chan struct{}, 10)
	b := New(rabbitmqtest.Via(url, proxy.Addr()), quiet(), Options{Prefix: prefix})
	b.OnConnect(func() { connects <- struct{}{} })
	type call struct {
		m   broker.Message
		ctx context.Context
	}
	calls := make(chan call, 10)
	var n atomic.Int32
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"c"}, Concurrency: 1}, func(ctx context.Context, m broker.Message) error {
		calls <- call{m, ctx}
		if n.Add(1) == 1 {
			<-ctx.Done()
			// A handler that ignores the end of its delivery and asks for a
			// retry must not create a copy.
			return broker.RetryAfter(errors.New("still trying"), 0)
		}
		return nil
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Receive(t, connects, "connect")
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "c1", Topic: "c", Body: []byte("{}")}))

	first := testkit.Receive(t, calls, "first delivery")
	proxy.Cut()
	testkit.Receive(t, first.ctx.Done(), "end of the handler's context with its connection")
	proxy.Restore()
	second := testkit.Receive(t, calls, "redelivery after the reconnect")
	require.Equal(t, "c1", second.m.ID)
	require.Equal(t, 1, second.m.Attempt, "a redelivery, not a retry")
	require.NoError(t, second.ctx.Err())

	b.Stop() // every handler has returned and settled
	require.Len(t, calls, 0)
	require.Equal(t, map[string]int{}, readyMessages(t, url, b.Names(), "work"))
}

// The channel's prefetch bounds the deliveries in hand, each handled by
// a goroutine of its own, to the queue's concurrency: the rest wait in
// RabbitMQ, not in this process.
func TestPrefetchBoundsDeliveriesInHand(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	b := New(url, quiet(), Options{Prefix: newPrefix(t, url)})
	const concurrency, published = 3, 7
	h := brokertest.NewHolder(published)
	entered := h.Entered
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"p"}, Concurrency: concurrency}, h.Handle))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, "broker connected")
	for i := range published {
		require.NoError(t, b.Publish(context.Background(), broker.Message{ID: fmt.Sprint("p-", i), Topic: "p", Body: []byte("{}")}))
	}
	for range concurrency {
		testkit.Receive(t, entered, "a delivery in hand")
	}
	testkit.Eventually(t, func() bool {
		return readyMessages(t, url, b.Names(), "work")[b.Names().Queue("work")] == published-concurrency
	}, "the rest waiting in RabbitMQ")
	require.Len(t, entered, 0, "no more in hand than the concurrency")
	close(h.Release)
	for range published - concurrency {
		testkit.Receive(t, entered, "the rest handled once released")
	}
}

// readyMessages counts the messages waiting in a shared queue and its delay
// queues, leaving out empty ones.
func readyMessages(t *testing.T, url string, n Names, queue string) map[string]int {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	names := []string{n.Queue(queue)}
	for _, d := range delayTiers {
		names = append(names, n.Delay(queue, d))
	}
	out := map[string]int{}
	for _, name := range names {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		require.NoError(t, err, name)
		if q.Messages > 0 {
			out[name] = q.Messages
		}
	}
	return out
}

// Public events go to the public exchange, as CloudEvents, persistent,
// with the event id as message id; internal topics never appear there.
func TestPublicExchange(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	prefix := newPrefix(t, url)
	b := New(url, quiet(), Options{Prefix: prefix})
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, "broker connected")

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q.Name, "#", b.Names().Public(), false, nil))
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	require.NoError(t, err)

	require.Equal(t, prefix+".public", b.Names().Public())
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "internal-1", Topic: "user.registered", Body: []byte("{}")}))
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "public-1", Topic: "verifier.user.verified.v1", Body: []byte("{}")}))
	d := testkit.Receive(t, deliveries, "a message on the public exchange")
	require.Equal(t, "public-1", d.MessageId, "the internal event is not on the public exchange")
	require.Equal(t, "verifier.user.verified.v1", d.RoutingKey)
	require.Equal(t, "application/cloudevents+json", d.ContentType)
	require.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
}

// When RabbitMQ cancels a consumer itself (its queue was deleted, or
// moved away with a node), the connection stays up but no delivery comes
// any more: the broker reconnects, which declares the queue again and
// consumes it, instead of leaving a healthy-looking process that handles
// nothing.
func TestConsumerCancelledByRabbitMQReconnects(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	b := New(url, quiet(), Options{Prefix: newPrefix(t, url)})
	ready := make(chan struct{}, 10)
	got := make(chan string, 10)
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"k"}, OnReady: func() { ready <- struct{}{} }}, func(_ context.Context, m broker.Message) error {
		got <- m.ID
		return nil
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	testkit.Receive(t, ready, "consumer ready")

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(b.Names().Queue("work"), false, false, false)
	require.NoError(t, err)

	testkit.Receive(t, ready, "consumer ready again after its queue was deleted")
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "after-delete", Topic: "k", Body: []byte("{}")}))
	require.Equal(t, "after-delete", testkit.Receive(t, got, "delivery after the queue came back"))
}

// RabbitMQ stops reading from a connection it blocks (a memory or disk
// alarm) and goes on sending heartbeats, so the connection looks alive
// while no answer comes: Stop must still return, within its bounds, not
// when the alarm clears.
func TestStopWhileRabbitMQReadsNothing(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	proxy := tcpproxy.Start(t, rabbitmqtest.Host(url))
	var logs testkit.LogBuffer
	b := New(rabbitmqtest.Via(url, proxy.Addr()), slog.New(slog.NewTextHandler(&logs, nil)), Options{Prefix: newPrefix(t, url), StopGrace: time.Second})
	ready := make(chan struct{}, 1)
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"b"}, OnReady: func() { ready <- struct{}{} }}, func(context.Context, broker.Message) error { return nil }))
	require.NoError(t, b.Start(context.Background()))
	testkit.Receive(t, ready, "consumer ready")

	proxy.Block()
	stopped := make(chan struct{})
	go func() {
		b.Stop()
		close(stopped)
	}()
	testkit.Receive(t, stopped, "Stop returned while RabbitMQ read nothing")
	require.Equal(t, 1, logs.Count("did not answer the consumers' cancel"), "%s", logs.String())
	require.Zero(t, logs.Count("handlers were still running"), "no delivery was in hand: %s", logs.String())
}

// A wrong password is not an outage: the log says RabbitMQ refuses us
// and to check AMQP_URL, names the broker (host and vhost) and never the
// password; once connected, the line names the broker too.
func TestRefusedLoginSaysCheckAMQPURL(t *testing.T) {
	t.Parallel()
	good := rabbitmqtest.URL(t)
	u, err := url.Parse(good)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "not-the-password-7q")
	var logs testkit.LogBuffer
	b := New(u.String(), slog.New(slog.NewTextHandler(&logs, nil)), Options{Prefix: newPrefix(t, good)})
	require.NoError(t, b.Start(context.Background()))
	testkit.Eventually(t, func() bool { return logs.Count("check AMQP_URL") > 0 }, "the refusal logged")
	b.Stop()
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "server="+rabbitmqtest.Host(good))
	require.NotContains(t, logs.String(), "unreachable", "RabbitMQ answered: %s", logs.String())
	require.NotContains(t, logs.String(), "not-the-password-7q")

	logs.Take()
	ok := New(good, slog.New(slog.NewTextHandler(&logs, nil)), Options{Prefix: newPrefix(t, good)})
	require.NoError(t, ok.Start(context.Background()))
	testkit.Eventually(t, func() bool { return logs.Count("connected to RabbitMQ") > 0 }, "connected")
	ok.Stop()
	require.Contains(t, logs.String(), "server="+rabbitmqtest.Host(good))
}

// Stop ends a connection attempt in progress instead of waiting for it to
// run its course: a server that took the TCP connection and answers
// nothing (RabbitMQ hung, a proxy in front of one that is gone) held Stop
// for the handshake's deadline, and the attempt's failure was logged as an
// outage on the way out. No RabbitMQ is needed: the server here only
// accepts.
func TestStopEndsAConnectInProgress(t *testing.T) {
	t.Parallel()
	addr, accepted := testkit.Silent(t)
	var logs testkit.LogBuffer
	b := New("amqp://guest:guest@"+addr+"/", slog.New(slog.NewTextHandler(&logs, nil)), Options{})
	require.NoError(t, b.Start(context.Background()))
	testkit.Receive(t, accepted, "the broker's connection")
	b.Stop()
	require.Zero(t, logs.Count("unreachable"), "Stop cut the attempt short; no outage to report: %s", logs.String())
}
