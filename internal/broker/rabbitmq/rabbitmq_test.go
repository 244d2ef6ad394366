package rabbitmq

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/brokertest"
	"github.com/verifier/verifier/internal/rabbittest"
	"github.com/verifier/verifier/internal/tcpproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPrefix returns names unique to t, deleted when t ends.
func newPrefix(t *testing.T, url string) string { return rabbittest.Prefix(t, url) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestConformance(t *testing.T) {
	url := rabbittest.URL(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return New(url, quiet(), Options{Prefix: newPrefix(t, url)})
	})
}

// A rejected message lands in the dead-letter queue, persistent and intact.
func TestPermanentFailureIsDeadLettered(t *testing.T) {
	t.Parallel()
	url := rabbittest.URL(t)
	prefix := newPrefix(t, url)
	b := New(url, quiet(), Options{Prefix: prefix})
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"d"}}, func(context.Context, broker.Message) error {
		return broker.Permanent(fmt.Errorf("no"))
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop(time.Second)
	require.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "poison-1", Topic: "d", Body: []byte("{}")}))

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	var got amqp.Delivery
	require.Eventually(t, func() bool {
		d, ok, err := ch.Get(b.Names().DeadLetter(), true)
		got = d
		return err == nil && ok
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, "poison-1", got.MessageId)
	require.Equal(t, uint8(amqp.Persistent), got.DeliveryMode)
}

// Private queues (no name) give every replica every message: how a status
// change reaches a websocket open on any replica.
func TestPrivateQueuesFanOut(t *testing.T) {
	t.Parallel()
	url := rabbittest.URL(t)
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
		defer b.Stop(time.Second)
		require.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, 20*time.Second, 10*time.Millisecond)
		replicas = append(replicas, b)
	}
	require.NoError(t, replicas[0].Publish(context.Background(), broker.Message{ID: "v1", Topic: "user.verified"}))
	seen := map[string]bool{}
	for range 3 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("only %v", seen)
		}
	}
	require.Len(t, seen, 3)
}

// After the connection is cut the broker reconnects by itself: publishes
// fail while it is down (so the outbox keeps the event) and work again
// after, consumers resume, and OnReady and OnConnect fire again.
func TestReconnects(t *testing.T) {
	t.Parallel()
	url := rabbittest.URL(t)
	proxy := tcpproxy.Start(t, rabbittest.Host(url))
	connects := make(chan struct{}, 10)
	b := New(rabbittest.Via(url, proxy.Addr()), quiet(), Options{Prefix: newPrefix(t, url), OnConnect: func() { connects <- struct{}{} }})
	got := make(chan string, 10)
	ready := make(chan struct{}, 10)
	require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"r"}, OnReady: func() { ready <- struct{}{} }}, func(_ context.Context, m broker.Message) error {
		got <- m.ID
		return nil
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop(time.Second)
	<-connects
	<-ready

	proxy.Cut()
	require.Eventually(t, func() bool { return b.Ping(context.Background()) != nil }, 20*time.Second, 10*time.Millisecond)
	require.Error(t, b.Publish(context.Background(), broker.Message{ID: "lost", Topic: "r"}))

	proxy.Restore()
	select {
	case <-connects:
	case <-time.After(30 * time.Second):
		t.Fatal("did not reconnect")
	}
	<-ready
	require.NoError(t, b.Publish(context.Background(), broker.Message{ID: "after", Topic: "r"}))
	select {
	case id := <-got:
		require.Equal(t, "after", id)
	case <-time.After(20 * time.Second):
		t.Fatal("consumer did not resume")
	}
}
