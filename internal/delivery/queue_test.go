package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/status"
)

// queue is Store.Queue in a transaction of its own; it returns what Queue
// asked to run after the commit, not yet run.
func (b *testBundle) queue(t *testing.T, e Event, at time.Time) func() {
	t.Helper()
	var after func()
	require.NoError(t, database.InTx(context.Background(), b.db, func(tx *ent.Tx) error {
		var err error
		after, err = b.store.Queue(context.Background(), tx, e, at)
		return err
	}))
	return after
}

// An email is recorded QUEUED when its event is written, before any
// mailer has it; the mailer's Begin then takes that record, and the
// backoff counts from when the email could first go out.
func TestQueuedBeforeTheMailer(t *testing.T) {
	t.Parallel()
	for _, local := range []bool{false, true} {
		name := "through the outbox"
		if local {
			name = "heard locally"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				reg := uuid.New()
				var heard []status.Delivery
				if local {
					b.store.HearLocally(func(_ uuid.UUID, d status.Delivery) { heard = append(heard, d) })
				}
				queuedAt := b.clock.Now()
				due := queuedAt.Add(time.Minute) // held by a cooldown
				e := registered(reg)
				require.Nil(t, b.queue(t, e, due), "a first email announces nothing")

				got, err := b.store.Latest(ctx, reg)
				require.NoError(t, err)
				first := b.db.Delivery.Query().Where(entdelivery.EventID(e.ID)).OnlyIDX(ctx)
				require.Equal(t, &status.Delivery{State: status.Queued, At: queuedAt, Email: first}, got, "listed before any mailer has it")

				b.clock.Advance(time.Minute)
				r := b.begin(t, e)
				require.Equal(t, Queued, r.State)
				require.Zero(t, r.Busy)
				require.Equal(t, &reg, r.Registration)
				require.Equal(t, due, r.Since, "failing counts from when it could go out")
				require.Equal(t, SendLease, b.begin(t, e).Busy, "reserved by the first delivery")
				n, err := b.db.Delivery.Query().Count(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, n, "one record per email")

				require.NoError(t, b.store.MarkSent(ctx, r, true))
				require.Equal(t, Sent, b.begin(t, e).State)

				// A resend replaces what the watchers see: announced, once
				// committed.
				b.clock.Advance(time.Second)
				resend := registered(reg)
				resend.Resend = true
				after := b.queue(t, resend, b.clock.Now())
				require.NotNil(t, after)
				if local {
					require.Len(t, heard, 1, "the resend's not before the caller says so")
					after()
				}
				second := b.db.Delivery.Query().Where(entdelivery.EventID(resend.ID)).OnlyIDX(ctx)
				require.Greater(t, second, first, "a later email's record orders after")
				want := []status.Delivery{
					{State: status.Sent, At: due, Attempts: 1, Email: first},
					{State: status.Queued, At: b.clock.Now(), Email: second},
				}
				announced := b.announced(t, reg)
				if local {
					require.Empty(t, announced, "heard locally: nothing goes through the outbox")
					announced = heard
				}
				require.Equal(t, want, announced)
				got, err = b.store.Latest(ctx, reg)
				require.NoError(t, err)
				require.Equal(t, &want[1], got)
			})
		})
	}
}

// A waiting email that another took the place of leaves no record.
func TestForget(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		kept, dropped := newEvent(), newEvent()
		b.queue(t, kept, b.clock.Now())
		b.queue(t, dropped, b.clock.Now())
		require.NoError(t, database.InTx(ctx, b.db, func(tx *ent.Tx) error { return b.store.Forget(ctx, tx, dropped.ID) }))
		ids, err := b.db.Delivery.Query().Select(entdelivery.FieldEventID).Strings(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{kept.ID}, ids)
	})
}

// An erasure while the email is being sent (the dev outbox keeping its
// copy) leaves the copy, which names the address, off its record.
func TestErasedRecordKeepsNoCopy(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		e, r := b.started(t)
		require.Equal(t, Queued, r.State)
		require.NoError(t, database.InTx(ctx, b.db, func(tx *ent.Tx) error {
			return Erase(ctx, tx, b.clock.Now(), entdelivery.EventID(e.ID))
		}))
		require.ErrorIs(t, b.store.KeepCopy(ctx, e.ID, "Confirm", "to ada@example.com", "<p>ada@example.com</p>"), ErrNotFound)
		copies, err := b.store.Copies(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, copies)
		require.Equal(t, Sent, b.begin(t, e).State, "its event is turned away")
	})
}
