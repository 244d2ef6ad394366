package delivery

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

type testBundle struct {
	db    *ent.Client
	store *Store
	clock *testkit.Clock
}

// eachDB runs f once per database the service supports.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle)) {
	databasetest.Each(t, func(t *testing.T, url string) {
		db, err := database.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		clock := testkit.NewFrozenClock(time.Now().UTC().Truncate(time.Millisecond))
		f(t, &testBundle{db: db.Ent, store: New(db.Ent, clock.Now), clock: clock})
	})
}

// begin is Store.Begin, failing the test on error.
func (b *testBundle) begin(t *testing.T, e Event) Record {
	t.Helper()
	r, err := b.store.Begin(context.Background(), e)
	require.NoError(t, err)
	return r
}

// started begins the delivery of a new event.
func (b *testBundle) started(t *testing.T) (Event, Record) {
	t.Helper()
	e := newEvent()
	return e, b.begin(t, e)
}

func newEvent() Event {
	return Event{ID: uuid.NewString(), Kind: "verification", Address: "ada@example.com", Topic: "user.registered", Payload: []byte(`{"email":"ada@example.com"}`)}
}

func TestBeginFindsTheRecord(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		e, first := b.started(t)
		require.Equal(t, Queued, first.State)
		again := b.begin(t, e)
		require.Equal(t, first.ID, again.ID, "one record per event")
		require.Equal(t, SendLease, again.Busy, "the first delivery is sending it")

		require.NoError(t, b.store.MarkSent(ctx, first, true))
		sent := b.begin(t, e)
		require.Equal(t, Record{ID: first.ID, State: Sent, Attempts: 1, Since: first.Since, Address: e.Address, payload: e.Payload}, sent)
	})
}

// Two copies of one event (a redelivery racing the first): exactly one
// gets to send; the other is told to wait; a reservation left by a crashed
// sender lapses after SendLease.
func TestBeginReservesForOneSender(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		e := newEvent()
		recs := make([]Record, 16)
		errs := make([]error, len(recs))
		var wg sync.WaitGroup
		for i := range recs {
			wg.Go(func() { recs[i], errs[i] = b.store.Begin(ctx, e) })
		}
		testkit.Wait(t, &wg, "end of %d Begins of one event at once", len(recs))
		free := 0
		for i, r := range recs {
			require.NoError(t, errs[i])
			if r.Busy == 0 {
				free++
			}
		}
		require.Equal(t, 1, free, "one sender")

		// The sender crashed: after the lease another delivery may send.
		b.clock.Advance(SendLease)
		r := b.begin(t, e)
		require.Zero(t, r.Busy)
		require.NoError(t, b.store.MarkDeferred(ctx, r, true, "451 later"))
		r = b.begin(t, e)
		require.Zero(t, r.Busy, "a settled delivery holds nothing")
		require.Equal(t, Deferred, r.State)

		// A delivery that stops before sending hands its reservation back.
		require.NoError(t, b.store.Release(ctx, r))
		r = b.begin(t, e)
		require.Zero(t, r.Busy, "released")
	})
}

func TestMarks(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		e, r := b.started(t)
		read := func() *ent.Delivery {
			rec, err := b.db.Delivery.Get(ctx, r.ID)
			require.NoError(t, err)
			return rec
		}

		b.clock.Advance(time.Second)
		require.NoError(t, b.store.MarkDeferred(ctx, r, true, "451 later"))
		rec := read()
		require.Equal(t, Deferred, rec.State)
		require.Equal(t, 1, rec.Attempts)
		require.Equal(t, "451 later", rec.Reason)
		require.WithinDuration(t, b.clock.Now(), rec.UpdatedAt, time.Millisecond)
		require.Empty(t, rec.Payload, "only a dead letter keeps its event")

		require.NoError(t, b.store.MarkDeferred(ctx, r, false, "held back"))
		require.Equal(t, 1, read().Attempts, "not tried, not counted")

		long := strings.Repeat("é", maxReason)
		require.NoError(t, b.store.MarkFailed(ctx, r, true, long))
		rec = read()
		require.Equal(t, Failed, rec.State)
		require.Equal(t, 2, rec.Attempts)
		require.LessOrEqual(t, len(rec.Reason), maxReason)
		require.True(t, strings.HasPrefix(long, rec.Reason), "cut at a character boundary")
		require.Equal(t, e.Payload, rec.Payload, "a dead letter keeps its event")

		require.NoError(t, b.store.MarkSent(ctx, r, true))
		rec = read()
		require.Equal(t, Sent, rec.State)
		require.Empty(t, rec.Reason)
		require.Empty(t, rec.Payload, "nothing to replay once sent")
	})
}

// A replay puts the event back into the outbox under its own id, with its
// payload, and the record back to QUEUED; only dead letters replay.
func TestReplay(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		e, r := b.started(t)
		require.ErrorIs(t, b.store.Replay(ctx, e.ID), ErrNotDeadLetter)
		require.NoError(t, b.store.MarkFailed(ctx, r, true, "550 no such user"))

		// Until the relay has deleted the event's first trip, a replay
		// would collide with it.
		first, err := b.db.OutboxEvent.Create().SetEventID(uuid.MustParse(e.ID)).SetTopic(e.Topic).SetPayload(e.Payload).SetAvailableAt(b.clock.Now()).Save(ctx)
		require.NoError(t, err)
		require.ErrorIs(t, b.store.Replay(ctx, e.ID), ErrSettling)
		require.NoError(t, b.db.OutboxEvent.DeleteOne(first).Exec(ctx))

		require.NoError(t, b.store.Replay(ctx, e.ID))
		ev, err := b.db.OutboxEvent.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, e.ID, ev.EventID.String())
		require.Equal(t, e.Topic, ev.Topic)
		require.Equal(t, e.Payload, ev.Payload)
		require.False(t, ev.AvailableAt.After(b.clock.Now()), "due at once")
		again := b.begin(t, e)
		require.Equal(t, Queued, again.State)
		require.Equal(t, 1, again.Attempts, "attempts keep counting")

		require.ErrorIs(t, b.store.Replay(ctx, e.ID), ErrNotDeadLetter, "replayed already")
		require.ErrorIs(t, b.store.Replay(ctx, uuid.NewString()), ErrNotFound)

		// A dead letter whose event was not kept has nothing to send.
		old := newEvent()
		bare := b.begin(t, old)
		require.NoError(t, b.store.MarkFailed(ctx, bare, true, "550 no such user"))
		require.NoError(t, b.db.Delivery.UpdateOneID(bare.ID).ClearPayload().Exec(ctx))
		require.ErrorIs(t, b.store.Replay(ctx, old.ID), ErrNotKept)
	})
}

// An id no record can hold (a NUL, bytes that are not UTF-8, longer than
// the column) is no record's: PostgreSQL refuses such text in a query,
// which made the admin API's replayDeadLetter answer INTERNAL.
func TestReplayOfAnIDNoRecordHolds(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		for _, id := range []string{"zq\x00x", "zq\xffx", strings.Repeat("a", 65)} {
			require.ErrorIs(t, b.store.Replay(context.Background(), id), ErrNotFound, "%q", id)
		}
	})
}

func TestReplayAll(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		const n = 3
		for range n {
			r := b.begin(t, newEvent())
			require.NoError(t, b.store.MarkFailed(ctx, r, true, "550"))
		}
		sent := b.begin(t, newEvent())
		require.NoError(t, b.store.MarkSent(ctx, sent, true))

		replayed, err := b.store.ReplayAll(ctx)
		require.NoError(t, err)
		require.Equal(t, n, replayed)
		require.Equal(t, n, b.db.OutboxEvent.Query().Where(outboxevent.Topic("user.registered")).CountX(ctx))
		left, err := b.store.List(ctx, Failed, 10)
		require.NoError(t, err)
		require.Empty(t, left)
	})
}

func TestCountsAndTrim(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		mark := func(f func(Record) error) {
			r := b.begin(t, newEvent())
			require.NoError(t, f(r))
		}
		mark(func(r Record) error { return b.store.MarkSent(ctx, r, true) })
		b.clock.Advance(time.Hour)
		mark(func(r Record) error { return b.store.MarkSent(ctx, r, true) })
		mark(func(r Record) error { return b.store.MarkFailed(ctx, r, true, "550") })
		mark(func(r Record) error { return b.store.MarkDeferred(ctx, r, true, "451") })
		mark(func(r Record) error { return b.store.MarkDeferred(ctx, r, true, "451") })
		mark(func(Record) error { return nil })

		counts, err := b.store.Counts(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"QUEUED": 1, "DEFERRED": 2, "FAILED": 1}, counts)

		n, err := b.store.TrimSent(ctx, b.clock.Now().Add(-time.Minute))
		require.NoError(t, err)
		require.Equal(t, 1, n, "only the old SENT record")
		require.Equal(t, 5, b.db.Delivery.Query().CountX(ctx))
	})
}
