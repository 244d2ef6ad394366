package outbox

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// recorder is a Publisher that records what it confirms and can fail.
type recorder struct {
	mu        sync.Mutex
	published map[string]int
	fail      int // calls left to fail
	block     bool
	calls     chan struct{}
}

func newRecorder() *recorder {
	return &recorder{published: map[string]int{}, calls: make(chan struct{}, 10000)}
}

func (r *recorder) Publish(ctx context.Context, m broker.Message) error {
	r.calls <- struct{}{}
	r.mu.Lock()
	if r.block {
		r.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("broker unreachable")
	}
	r.published[m.ID]++
	return nil
}

func (r *recorder) count() (events, publishes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.published {
		events++
		publishes += n
	}
	return
}

type testBundle struct {
	db    *ent.Client
	clock *testkit.Clock
	log   *slog.Logger
	// settled fires each time a relay of this bundle settles a batch.
	settled *testkit.Signal
}

// eachDB runs f once per database the service supports.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle)) {
	databasetest.Each(t, func(t *testing.T, url string) { f(t, setup(t, url)) })
}

func setup(t *testing.T, url string) *testBundle {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return &testBundle{db: db.Ent, clock: testkit.NewFrozenClock(time.Now().UTC()), log: testkit.Discard(), settled: testkit.NewSignal()}
}

func (b *testBundle) enqueue(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Tx(ctx)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, Enqueue(ctx, tx, b.clock.Now(), "test.topic", map[string]int{"i": i}))
	}
	require.NoError(t, tx.Commit())
}

// enqueueTopics commits one event of each topic given, in that order.
func (b *testBundle) enqueueTopics(t *testing.T, topics ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Tx(ctx)
	require.NoError(t, err)
	for _, topic := range topics {
		require.NoError(t, Enqueue(ctx, tx, b.clock.Now(), topic, struct{}{}))
	}
	require.NoError(t, tx.Commit())
}

func (b *testBundle) backlog(t *testing.T) int {
	n, err := b.db.OutboxEvent.Query().Count(context.Background())
	require.NoError(t, err)
	return n
}

func (b *testBundle) relay(t *testing.T, pub Publisher, published func(int)) *Relay {
	t.Helper()
	return b.startRelay(t, pub, Options{OnPublished: published})
}

// startRelay starts a relay with opts on the bundle's clock, polling
// hourly (tests wake it) and firing b.settled.
func (b *testBundle) startRelay(t *testing.T, pub Publisher, opts Options) *Relay {
	t.Helper()
	opts.Now, opts.Poll, opts.OnSettled = b.clock.Now, time.Hour, b.settled.Fire
	r := NewRelay(b.db, pub, b.log, opts)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(r.Stop)
	return r
}

func TestRelayPublishesAndDeletes(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		pub := newRecorder()
		done := make(chan int, 100)
		r := b.relay(t, pub, func(n int) { done <- n })
		b.enqueue(t, 10)
		r.Wake() // no poll for an hour: the wake alone must do it
		for total := 0; total < 10; {
			total += testkit.Receive(t, done, "publish confirmation after %d of 10", total)
		}
		events, publishes := pub.count()
		require.Equal(t, 10, events)
		require.Equal(t, 10, publishes)
		require.Zero(t, b.backlog(t))
	})
}

func TestRelayRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		pub := newRecorder()
		pub.fail = 3
		done := make(chan int, 10)
		r := b.relay(t, pub, func(n int) { done <- n })
		b.enqueue(t, 3)
		r.Wake()
		for range 3 {
			testkit.Receive(t, pub.calls, "publish attempt")
		}
		// All three failed and were rescheduled with backoff; nothing is due
		// until the clock moves.
		testkit.WaitUntil(t, b.settled, func() bool {
			n, err := b.db.OutboxEvent.Query().Where(outboxevent.Attempts(1)).Count(context.Background())
			return err == nil && n == 3
		}, "three events rescheduled")
		b.clock.Advance(10 * time.Second)
		r.Wake()
		for total := 0; total < 3; {
			total += testkit.Receive(t, done, "publish confirmation after %d of 3 after recovery", total)
		}
		require.Zero(t, b.backlog(t))
	})
}

// Two relays (two replicas) on one outbox publish each event exactly once.
func TestRelaysShareWithoutDuplicates(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		pub := newRecorder()
		b.enqueue(t, 300)
		r1, r2 := b.relay(t, pub, nil), b.relay(t, pub, nil)
		r1.Wake()
		r2.Wake()
		// Each settled batch may leave work the other relay could take:
		// wake both until the outbox is empty.
		testkit.WaitUntil(t, b.settled, func() bool { r1.Wake(); r2.Wake(); return b.backlog(t) == 0 }, "outbox empty")
		events, publishes := pub.count()
		require.Equal(t, 300, events)
		require.Equal(t, 300, publishes, "no event published twice")
	})
}

// Stopping with publishes in flight releases their events at once for the
// next start, instead of leaving them leased.
func TestRelayStopReleasesInFlight(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		pub := newRecorder()
		pub.block = true
		r := NewRelay(b.db, pub, b.log, Options{Now: b.clock.Now, Poll: time.Hour})
		require.NoError(t, r.Start(context.Background()))
		b.enqueue(t, 2)
		r.Wake()
		testkit.Receive(t, pub.calls, "publish attempt")
		testkit.Receive(t, pub.calls, "publish attempt")
		r.Stop()
		r.Stop() // idempotent
		evs, err := b.db.OutboxEvent.Query().All(context.Background())
		require.NoError(t, err)
		require.Len(t, evs, 2)
		for _, ev := range evs {
			require.Empty(t, ev.Claim)
			require.False(t, ev.AvailableAt.After(b.clock.Now()), "due at once")
		}
	})
}

// Retry (called on broker reconnect) sends events waiting out a backoff at
// once, without the clock moving.
func TestRelayRetrySkipsBackoff(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		pub := newRecorder()
		pub.fail = 2
		done := make(chan int, 10)
		r := b.relay(t, pub, func(n int) { done <- n })
		b.enqueue(t, 2)
		r.Wake()
		testkit.Receive(t, pub.calls, "publish attempt")
		testkit.Receive(t, pub.calls, "publish attempt")
		testkit.WaitUntil(t, b.settled, func() bool {
			n, err := b.db.OutboxEvent.Query().Where(outboxevent.Attempts(1), outboxevent.Claim("")).Count(context.Background())
			return err == nil && n == 2
		}, "two events waiting out a backoff")
		r.Retry()
		for total := 0; total < 2; {
			total += testkit.Receive(t, done, "publish confirmation after %d of 2", total)
		}
	})
}

// funcPublisher publishes with a function.
type funcPublisher func(ctx context.Context, m broker.Message) error

func (f funcPublisher) Publish(ctx context.Context, m broker.Message) error { return f(ctx, m) }

// A consumer's request to see an event again after a delay (the in-process
// broker passes it back from Publish) reschedules the row, which stays the
// durable copy: due after the delay, released, with one more attempt, and
// published again then with the next attempt number.
func TestRelayReschedulesDeferred(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		attempts := make(chan int, 10)
		pub := funcPublisher(func(_ context.Context, m broker.Message) error {
			attempts <- m.Attempt
			if m.Attempt == 1 {
				return broker.RetryAfter(errors.New("451 try later"), 10*time.Second)
			}
			return nil
		})
		done := make(chan int, 10)
		r := b.relay(t, pub, func(n int) { done <- n })
		b.enqueue(t, 1)
		r.Wake()
		require.Equal(t, 1, testkit.Receive(t, attempts, "first attempt"))
		testkit.WaitUntil(t, b.settled, func() bool {
			ev, err := b.db.OutboxEvent.Query().Only(context.Background())
			// PostgreSQL keeps microseconds.
			due := b.clock.Now().Add(10 * time.Second)
			return err == nil && ev.Attempts == 1 && ev.Claim == "" && ev.AvailableAt.Sub(due).Abs() < time.Millisecond
		}, "event rescheduled 10s ahead")
		require.Empty(t, done, "not counted as published")

		b.clock.Advance(10 * time.Second)
		r.Wake()
		require.Equal(t, 2, testkit.Receive(t, attempts, "second attempt"))
		require.Equal(t, 1, testkit.Receive(t, done, "publish confirmation"))
		require.Zero(t, b.backlog(t))
	})
}

// A topic whose publishes hang (the in-process broker while SMTP times out)
// takes at most its share of the slots: other topics still go out.
func TestRelayBoundsEachTopic(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		var mu sync.Mutex
		inFlight := map[string]int{}
		fast := make(chan string, 10)
		pub := funcPublisher(func(ctx context.Context, m broker.Message) error {
			if m.Topic == "slow" {
				mu.Lock()
				inFlight[m.Topic]++
				mu.Unlock()
				<-ctx.Done()
				return ctx.Err()
			}
			fast <- m.ID
			return nil
		})
		b.enqueueTopics(t, append(slices.Repeat([]string{"slow"}, 20), "fast")...)
		r := b.startRelay(t, pub, Options{MaxInFlight: 8})
		r.Wake()
		testkit.Receive(t, fast, "fast topic publish: it waited behind the slow one")
		// The leases tell how many the relay has handed out: each is
		// committed before its publish starts. (The publisher's own count
		// lags its goroutines: a bound of 4 showed there in 2 runs of 10,
		// in the leases in 20 of 20.)
		leased, err := b.db.OutboxEvent.Query().Where(outboxevent.Topic("slow"), outboxevent.ClaimNEQ("")).Count(context.Background())
		require.NoError(t, err)
		require.LessOrEqual(t, leased, 2, "a quarter of 8 slots")
		mu.Lock()
		defer mu.Unlock()
		require.LessOrEqual(t, inFlight["slow"], 2, "a quarter of 8 slots")
	})
}

// A topic at its bound is refilled once an eighth of its slots are free,
// not one slot at a time: each refill would read the topic's due rows.
func TestRelayRefillsATopicByEighths(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		release := make(chan struct{})
		started := make(chan string, 64)
		pub := funcPublisher(func(ctx context.Context, m broker.Message) error {
			started <- m.ID
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		b.enqueue(t, 40)
		// 16 a topic, refilled 2 at a time.
		r := b.startRelay(t, pub, Options{MaxInFlight: 64})
		leased := func() int {
			n, err := b.db.OutboxEvent.Query().Where(outboxevent.ClaimNEQ("")).Count(context.Background())
			require.NoError(t, err)
			return n
		}
		r.Wake()
		for range 16 {
			testkit.Receive(t, started, "the topic's first 16")
		}
		require.Equal(t, 16, leased())

		release <- struct{}{}
		testkit.WaitUntil(t, b.settled, func() bool { return b.backlog(t) == 39 }, "one published")
		require.Equal(t, 15, leased(), "one slot free: the topic waits for a second")
		require.Empty(t, started)

		release <- struct{}{}
		testkit.WaitUntil(t, b.settled, func() bool { return b.backlog(t) == 38 && leased() == 16 }, "two free: refilled")
		testkit.Receive(t, started, "a refill")
		testkit.Receive(t, started, "a refill")
		close(release)
		testkit.WaitUntil(t, b.settled, func() bool { return b.backlog(t) == 0 }, "all published")
	})
}

// Publishes that outlive their lease leave their rows due again while they
// still hang here: they must not crowd other topics' events out of the
// rows a cycle reads.
func TestRelayLooksPastLapsedLeases(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		hanging := make(chan string, 16)
		published := make(chan string, 16)
		pub := funcPublisher(func(ctx context.Context, m broker.Message) error {
			if m.Topic == "c" {
				published <- m.ID
				return nil
			}
			hanging <- m.ID
			<-ctx.Done()
			return ctx.Err()
		})
		b.enqueueTopics(t, "a", "b", "a", "b", "a", "b")
		// 4 a topic: "a" and "b" stay open with 3 in flight each.
		r := b.startRelay(t, pub, Options{MaxInFlight: 16})
		r.Wake()
		for range 6 {
			testkit.Receive(t, hanging, "a publish that hangs")
		}

		b.clock.Advance(DefaultLease + time.Second)
		b.enqueueTopics(t, "c")
		r.Wake()
		testkit.Receive(t, published, "the other topic's event, behind six lapsed leases")
		require.Empty(t, hanging, "nothing published twice here")
	})
}

// A failure to record what was published is logged once: the relay's loop
// adds nothing to what settling says (which events are published again),
// so an outage does not double every line of the log.
func TestRelayLogsASettleFailureOnce(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		var logs testkit.LogBuffer
		b.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
		calls, release := make(chan struct{}, 1), make(chan struct{})
		pub := funcPublisher(func(context.Context, broker.Message) error {
			calls <- struct{}{}
			<-release
			return nil
		})
		r := b.startRelay(t, pub, Options{})
		b.enqueue(t, 1)
		r.Wake()
		testkit.Receive(t, calls, "publish attempt")
		// Confirmed, but the database is gone before the relay records it.
		require.NoError(t, b.db.Close())
		close(release)
		testkit.WaitUntil(t, b.settled, func() bool { return logs.Count("settling events failed") > 0 }, "the failed settle logged: %s", logs.String())
		r.Stop() // the loop has logged whatever it logs of that failure
		require.Equal(t, 1, logs.Count("outbox: settling"), "one line for one failure: %s", logs.String())
	})
}
