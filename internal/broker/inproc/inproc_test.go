package inproc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/brokertest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func newBroker(_ *testing.T, grace time.Duration) broker.Broker {
	return New(testkit.Discard(), Options{StopGrace: grace})
}

func TestConformance(t *testing.T) { brokertest.Run(t, newBroker) }

// Publish confirms only once the handler is done, so the outbox row stays
// until then and a crash in between loses nothing.
func TestPublishWaitsForHandler(t *testing.T) {
	t.Parallel()
	b := New(testkit.Discard(), Options{})
	release := make(chan struct{})
	require.NoError(t, b.Consume(broker.Queue{Name: "q", Topics: []string{"t"}}, func(ctx context.Context, _ broker.Message) error {
		// ctx too: were the test to fail before it releases, Stop's
		// cancel ends the handler instead of Stop waiting on it for ever.
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()

	confirmed := make(chan error, 1)
	go func() { confirmed <- b.Publish(context.Background(), broker.Message{ID: "1", Topic: "t"}) }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, b.Publish(ctx, broker.Message{ID: "2", Topic: "t"}), context.DeadlineExceeded,
		"not confirmed while the handler holds it")
	close(release)
	require.NoError(t, testkit.Receive(t, confirmed, "confirm of the first publish once the handler returned"))
}

func TestPublishAfterStop(t *testing.T) {
	t.Parallel()
	b := New(testkit.Discard(), Options{})
	require.NoError(t, b.Consume(broker.Queue{Name: "q", Topics: []string{"t"}}, func(context.Context, broker.Message) error { return nil }))
	require.NoError(t, b.Start(context.Background()))
	b.Stop()
	require.ErrorIs(t, b.Publish(context.Background(), broker.Message{ID: "1", Topic: "t"}), broker.ErrNotConnected)
}

// A handler's request for a retry comes back from Publish at once: the
// outbox row is the copy that waits, not a worker or the publisher.
func TestPublishPassesRetryBack(t *testing.T) {
	t.Parallel()
	b := New(testkit.Discard(), Options{})
	attempts := make(chan int, 10)
	require.NoError(t, b.Consume(broker.Queue{Name: "q", Topics: []string{"t"}}, func(_ context.Context, m broker.Message) error {
		attempts <- m.Attempt
		return broker.RetryAfter(errors.New("451 later"), 5*time.Second)
	}))
	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()

	err := b.Publish(context.Background(), broker.Message{ID: "1", Topic: "t"})
	d, ok := broker.RetryDelay(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, 5*time.Second, d)
	require.Equal(t, 1, testkit.Receive(t, attempts, "attempt from the handler for the first publish"), "a first publish is attempt 1")

	_ = b.Publish(context.Background(), broker.Message{ID: "1", Topic: "t", Attempt: 3})
	require.Equal(t, 3, testkit.Receive(t, attempts, "attempt from the handler for the republish"), "the publisher's attempt number reaches the handler")
}

// A queue has as many workers as deliveries in hand, up to its
// concurrency, and none once nothing is pending: an idle service keeps no
// parked workers for every garbage collection to scan.
func TestWorkersComeAndGo(t *testing.T) {
	t.Parallel()
	b := New(testkit.Discard(), Options{})
	const concurrency, published = 3, 10
	h := brokertest.NewHolder(published)
	entered := h.Entered
	require.NoError(t, b.Consume(broker.Queue{Name: "q", Topics: []string{"t"}, Concurrency: concurrency}, h.Handle))
	workers := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.queues[0].workers
	}

	// Published before Start: waits in pending, no worker yet.
	confirmed := make(chan error, published)
	publish := func(id string) { confirmed <- b.Publish(context.Background(), broker.Message{ID: id, Topic: "t"}) }
	go publish("early")
	testkit.Eventually(t, func() bool { return len(b.queues[0].pending) == 1 }, "the early delivery pending")
	require.Zero(t, workers(), "no worker before Start")

	require.NoError(t, b.Start(context.Background()))
	defer b.Stop()
	for i := range published - 1 {
		go publish(string(rune('a' + i)))
	}
	for range concurrency {
		testkit.Receive(t, entered, "a handler running")
	}
	testkit.Eventually(t, func() bool { return len(b.queues[0].pending) == published-concurrency }, "the rest pending")
	require.Equal(t, concurrency, workers(), "no more workers than the queue's concurrency")
	require.Len(t, entered, 0, "no fourth handler at once")

	close(h.Release)
	for range published {
		require.NoError(t, testkit.Receive(t, confirmed, "a confirmation"))
	}
	testkit.Eventually(t, func() bool { return workers() == 0 }, "the workers gone once nothing is pending")
}
