// Package brokertest is the behaviour every broker.Broker must show, run
// against each implementation by its own tests.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/testkit"
)

// New returns an unstarted broker whose Stop lets handlers finish within
// stopGrace; queue names it is given are unique to the calling test.
type New func(t *testing.T, stopGrace time.Duration) broker.Broker

// stopGrace is the grace of the brokers under test: long enough that a
// handler never sees its context end unless the test means it to.
const stopGrace = 5 * time.Second

// Run runs the conformance tests.
func Run(t *testing.T, newBroker New) {
	t.Run("delivers what was published", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
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
		require.Equal(t, 1, m.Attempt)
	})

	t.Run("routes by topic", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
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

	// A public topic (broker.Public) travels apart from the internal ones
	// on RabbitMQ; a consumer bound to it still gets it, on either broker.
	t.Run("delivers public topics to their consumers, and only those", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
		got := make(chan broker.Message, 10)
		public := broker.PublicNamespace + "test.happened.v1"
		require.NoError(t, b.Consume(broker.Queue{Name: "hooks", Topics: []string{public}}, func(_ context.Context, m broker.Message) error {
			got <- m
			return nil
		}))
		start(t, b)
		require.NoError(t, b.Publish(context.Background(), message("test.happened.v1")))
		want := message(public)
		require.NoError(t, b.Publish(context.Background(), want))
		m := receive(t, got)
		require.Equal(t, want.ID, m.ID, "the internal topic of the same suffix never arrives")
		require.Equal(t, public, m.Topic)
	})

	for _, queue := range []string{"work", ""} {
		t.Run(fmt.Sprintf("delivers again after RetryAfter, with the next attempt number (queue %q)", queue), func(t *testing.T) {
			t.Parallel()
			retryRoundTrip(t, newBroker(t, stopGrace), queue)
		})
	}

	t.Run("delivers again after a plain error", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
		got := make(chan broker.Message, 10)
		var calls atomic.Int32
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"e"}}, func(_ context.Context, m broker.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("not now")
			}
			got <- m
			return nil
		}))
		start(t, b)
		want := message("e")
		publish(t, b, want)
		m := receive(t, got)
		require.Equal(t, want.ID, m.ID)
		require.Equal(t, 2, m.Attempt)
	})

	// One worker: a message waiting for its retry must not hold it.
	t.Run("a message waiting for a retry holds up nothing", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
		got := make(chan broker.Message, 10)
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"h"}, Concurrency: 1}, func(_ context.Context, m broker.Message) error {
			got <- m
			if string(m.Body) == "stubborn" {
				return broker.RetryAfter(errors.New("try later"), time.Hour)
			}
			return nil
		}))
		start(t, b)
		stubborn := message("h")
		stubborn.Body = []byte("stubborn")
		err := b.Publish(context.Background(), stubborn)
		if d, ok := broker.RetryDelay(err); ok {
			require.Equal(t, time.Hour, d, "handed to the publisher to keep")
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, stubborn.ID, receive(t, got).ID)
		next := message("h")
		publish(t, b, next)
		require.Equal(t, next.ID, receive(t, got).ID)
	})

	t.Run("does not redeliver a permanent failure", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
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

	// A queue's concurrency is how many of its messages are handled at
	// once. That no broker goes past it is each one's own test: the
	// in-process broker's publish waits for the handler, RabbitMQ's does
	// not.
	t.Run("handles as many at once as the queue's concurrency", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
		const concurrency, published = 3, 7
		var mu sync.Mutex
		inHand, most := 0, 0
		entered, release := make(chan struct{}, published), make(chan struct{})
		require.NoError(t, b.Consume(broker.Queue{Name: "work", Topics: []string{"c"}, Concurrency: concurrency}, func(context.Context, broker.Message) error {
			mu.Lock()
			inHand++
			most = max(most, inHand)
			mu.Unlock()
			entered <- struct{}{}
			<-release
			mu.Lock()
			inHand--
			mu.Unlock()
			return nil
		}))
		start(t, b)
		// The in-process broker confirms a publish once handled, so the
		// publishes cannot wait in line.
		confirmed := make(chan error, published)
		for range published {
			go func() { confirmed <- b.Publish(context.Background(), message("c")) }()
		}
		for range concurrency {
			testkit.Receive(t, entered, "a message in hand")
		}
		// One at a time: each release lets the next message in, never
		// two.
		for range published - concurrency {
			release <- struct{}{}
			testkit.Receive(t, entered, "the next message in hand")
		}
		close(release)
		for range published {
			require.NoError(t, testkit.Receive(t, confirmed, "a publish confirmed"))
		}
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, concurrency, most, "messages in hand at once")
	})

	t.Run("calls OnReady when attached", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t, stopGrace)
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
		b := newBroker(t, 10*time.Millisecond)
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
		b.Stop()
		require.ErrorIs(t, <-left, context.Canceled, "the handler's context ends after the grace period")
		b.Stop()
	})
}

func retryRoundTrip(t *testing.T, b broker.Broker, queue string) {
	got := make(chan broker.Message, 10)
	var calls atomic.Int32
	require.NoError(t, b.Consume(broker.Queue{Name: queue, Topics: []string{"r.x"}}, func(_ context.Context, m broker.Message) error {
		got <- m
		if calls.Add(1) == 1 {
			return broker.RetryAfter(errors.New("not now"), 10*time.Millisecond)
		}
		return nil
	}))
	start(t, b)
	want := message("r.x")
	publish(t, b, want)
	first, again := receive(t, got), receive(t, got)
	require.Equal(t, 1, first.Attempt)
	require.Equal(t, 2, again.Attempt)
	require.Equal(t, want.ID, again.ID)
	require.Equal(t, want.Topic, again.Topic, "the topic survives the delay")
	require.Equal(t, want.Body, again.Body)
	require.WithinDuration(t, want.Published, again.Published, 0)
}

// publish publishes m as the outbox relay does: a broker that keeps no copy
// of its own (inproc) passes a handler's RetryAfter back from Publish, and
// the message is published again after the delay with Attempt+1, until the
// test ends.
func publish(t *testing.T, b broker.Broker, m broker.Message) {
	t.Helper()
	err := b.Publish(t.Context(), m)
	delay, ok := broker.RetryDelay(err)
	if !ok {
		require.NoError(t, err)
		return
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		for ok {
			select {
			case <-time.After(delay):
			case <-t.Context().Done():
				return
			}
			m.Attempt = max(m.Attempt, 1) + 1
			delay, ok = broker.RetryDelay(b.Publish(t.Context(), m))
		}
	})
}

// Holder is a handler that holds every message it takes until released:
// a test sees on Entered each one taken, and lets them go by sending on
// Release (one) or closing it (all).
type Holder struct {
	Entered chan struct{}
	Release chan struct{}
}

// NewHolder returns a Holder with room on Entered for n messages.
func NewHolder(n int) *Holder {
	return &Holder{Entered: make(chan struct{}, n), Release: make(chan struct{})}
}

// Handle is the broker.Handler.
func (h *Holder) Handle(context.Context, broker.Message) error {
	h.Entered <- struct{}{}
	<-h.Release
	return nil
}

func start(t *testing.T, b broker.Broker) {
	t.Helper()
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(b.Stop)
	testkit.Eventually(t, func() bool { return b.Ping(context.Background()) == nil }, "broker connected")
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
