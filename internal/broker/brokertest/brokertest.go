// Package brokertest is the behaviour every broker.Broker must show, run
// against each implementation by its own tests.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker"
)

// New returns an unstarted broker; queue names it is given are unique to the
// calling test.
type New func(t *testing.T) broker.Broker

// Run runs the conformance tests.
func Run(t *testing.T, newBroker New) {
	t.Run("delivers what was published", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		got := make(chan broker.Message, 10)
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"a.b"}, Concurrency: 2}, func(_ context.Context, m broker.Message) error {
			got <- m
			return nil
		}))
		start(t, b)
		want := message("a.b")
		require.NoError(t, b.Publish(context.Background(), want))
		m := receive(t, got)
		require.Equal(t, want.ID, m.ID)
		require.Equal(t, want.Topic, m.Topic)
		require.Equal(t, want.Body, m.Body)
		require.False(t, m.Redelivered)
	})

	t.Run("routes by topic", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		got := make(chan broker.Message, 10)
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"x.wanted"}}, func(_ context.Context, m broker.Message) error {
			got <- m
			return nil
		}))
		start(t, b)
		require.NoError(t, b.Publish(context.Background(), message("x.unwanted")))
		want := message("x.wanted")
		require.NoError(t, b.Publish(context.Background(), want))
		require.Equal(t, want.ID, receive(t, got).ID, "the unwanted topic never arrives")
	})

	t.Run("redelivers what a handler hands back", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		got := make(chan broker.Message, 10)
		var calls atomic.Int32
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"r"}}, func(_ context.Context, m broker.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("not now")
			}
			got <- m
			return nil
		}))
		start(t, b)
		want := message("r")
		require.NoError(t, b.Publish(context.Background(), want))
		m := receive(t, got)
		require.Equal(t, want.ID, m.ID)
		require.True(t, m.Redelivered)
	})

	t.Run("does not redeliver a permanent failure", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		got := make(chan broker.Message, 10)
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"p"}}, func(_ context.Context, m broker.Message) error {
			got <- m
			if string(m.Body) == "poison" {
				return broker.Permanent(errors.New("cannot ever handle this"))
			}
			return nil
		}))
		start(t, b)
		poison := message("p")
		poison.Body = []byte("poison")
		require.NoError(t, b.Publish(context.Background(), poison))
		require.Equal(t, poison.ID, receive(t, got).ID)
		// One queue, one worker: the next message arrives only after the
		// poison one was settled, and the poison one does not come again.
		next := message("p")
		require.NoError(t, b.Publish(context.Background(), next))
		require.Equal(t, next.ID, receive(t, got).ID)
	})

	t.Run("calls OnReady when attached", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		ready := make(chan struct{}, 10)
		require.NoError(t, b.Consume(broker.Queue{Topics: []string{"o"}, OnReady: func() { ready <- struct{}{} }}, func(context.Context, broker.Message) error { return nil }))
		start(t, b)
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			t.Fatal("OnReady never called")
		}
	})

	t.Run("stop ends handlers and is idempotent", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		entered := make(chan struct{})
		left := make(chan error, 1)
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"s"}}, func(ctx context.Context, m broker.Message) error {
			close(entered)
			<-ctx.Done()
			left <- ctx.Err()
			return ctx.Err()
		}))
		start(t, b)
		go func() { _ = b.Publish(context.Background(), message("s")) }()
		<-entered
		b.Stop(10 * time.Millisecond)
		require.ErrorIs(t, <-left, context.Canceled, "the handler's context ends after the grace period")
		b.Stop(time.Second)
	})
}

func start(t *testing.T, b broker.Broker) {
	t.Helper()
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { b.Stop(5 * time.Second) })
	require.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, 20*time.Second, 10*time.Millisecond)
}

func message(topic string) broker.Message {
	id := uuid.NewString()
	return broker.Message{ID: id, Topic: topic, Body: []byte(fmt.Sprintf(`{"id":%q}`, id)), Published: time.Now().UTC().Truncate(time.Second)}
}

func receive(t *testing.T, ch <-chan broker.Message) broker.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s")
		return broker.Message{}
	}
}
