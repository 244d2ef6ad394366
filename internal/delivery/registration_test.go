package delivery

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/status"
)

// announced returns the delivery changes enqueued for reg, in order.
func (b *testBundle) announced(t *testing.T, reg uuid.UUID) []status.Delivery {
	t.Helper()
	rows, err := b.db.OutboxEvent.Query().
		Where(outboxevent.Topic(event.DeliveryChangedTopic)).
		Order(ent.Asc(outboxevent.FieldID)).
		All(context.Background())
	require.NoError(t, err)
	var out []status.Delivery
	for _, r := range rows {
		var ev event.DeliveryChanged
		require.NoError(t, json.Unmarshal(r.Payload, &ev))
		if ev.Registration == reg {
			out = append(out, ev.Delivery)
		}
	}
	return out
}

func registered(reg uuid.UUID) Event {
	e := newEvent()
	e.Registration = reg
	return e
}

func reason(s string) *string { return &s }

// Every change a watcher could see of a registration's email is enqueued
// for it, with the attempts and the reason in plain words; nothing else
// is.
func TestDeliveryChanges(t *testing.T) {
	t.Parallel()
	type step = func(ctx context.Context, s *Store, r Record) error
	var (
		deferred = func(ctx context.Context, s *Store, r Record) error {
			return s.MarkDeferred(ctx, r, true, "451 mailbox busy")
		}
		notTried = func(ctx context.Context, s *Store, r Record) error {
			return s.MarkDeferred(ctx, r, false, "no connection")
		}
		sent   = func(ctx context.Context, s *Store, r Record) error { return s.MarkSent(ctx, r, true) }
		failed = func(ctx context.Context, s *Store, r Record) error {
			return s.MarkFailed(ctx, r, true, "550 no such user")
		}
	)
	tests := []struct {
		name  string
		steps []step
		want  []status.Delivery // At is checked apart
	}{
		{"queued, then sent: the first email's creation is not announced (watchers see it QUEUED already)",
			[]step{sent}, []status.Delivery{{State: status.Sent, Attempts: 1}}},
		{"deferred, then sent", []step{deferred, sent}, []status.Delivery{
			{State: status.Deferred, Attempts: 1, Reason: reason("451 mailbox busy")},
			{State: status.Sent, Attempts: 2},
		}},
		{"refused for good", []step{failed}, []status.Delivery{{State: status.Failed, Attempts: 1, Reason: reason("550 no such user")}}},
		{"retries that never reached the server are announced once", []step{notTried, notTried, notTried, sent}, []status.Delivery{
			{State: status.Deferred, Attempts: 0, Reason: reason("no connection")},
			{State: status.Sent, Attempts: 1},
		}},
	}
	for _, tt := range tests {
		// Through the outbox (RabbitMQ: every replica's watchers), or
		// straight to this process's hub (the in-process broker): the
		// same changes either way.
		for _, local := range []bool{false, true} {
			name := tt.name
			if local {
				name += ", heard locally"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				eachDB(t, func(t *testing.T, b *testBundle) {
					testDeliveryChanges(t, b, local, tt.steps, tt.want)
				})
			})
		}
	}
}

func testDeliveryChanges(t *testing.T, b *testBundle, local bool, steps []func(context.Context, *Store, Record) error, want []status.Delivery) {
	ctx := context.Background()
	reg := uuid.New()
	var heard []status.Delivery
	if local {
		b.store.HearLocally(func(r uuid.UUID, d status.Delivery) {
			require.Equal(t, reg, r)
			heard = append(heard, d)
		})
	}
	e := registered(reg)
	r, err := b.store.Begin(ctx, e)
	require.NoError(t, err)
	require.Equal(t, &reg, r.Registration)
	for _, s := range steps {
		b.clock.Advance(time.Second)
		require.NoError(t, s(ctx, b.store, r))
		// As the next delivery of the event finds it.
		r, err = b.store.Begin(ctx, e)
		require.NoError(t, err)
	}
	got := b.announced(t, reg)
	if local {
		require.Empty(t, got, "heard locally: nothing goes through the outbox")
		got = heard
	}
	require.Len(t, got, len(want))
	for i := range got {
		require.False(t, got[i].At.IsZero())
		require.Equal(t, r.ID, got[i].Email, "the changes of one email")
		got[i].At, got[i].Email = time.Time{}, 0
	}
	require.Equal(t, want, got)

	latest, err := b.store.Latest(ctx, reg)
	require.NoError(t, err)
	last := want[len(want)-1]
	require.WithinDuration(t, b.clock.Now(), latest.At, time.Millisecond, "the time of the latest change")
	require.Equal(t, r.ID, latest.Email)
	latest.At, latest.Email = time.Time{}, 0
	require.Equal(t, &last, latest, "Latest agrees with the last announcement")
}

// Latest answers for the registration's newest email; nil before any.
func TestLatest(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		reg := uuid.New()
		got, err := b.store.Latest(ctx, reg)
		require.NoError(t, err)
		require.Nil(t, got, "no email yet")

		first, err := b.store.Begin(ctx, registered(reg))
		require.NoError(t, err)
		got, err = b.store.Latest(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, status.Queued, got.State)
		require.Nil(t, got.Reason)
		require.NoError(t, b.store.MarkFailed(ctx, first, true, "550 no such user"))
		got, err = b.store.Latest(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, status.Failed, got.State)
		require.Equal(t, "550 no such user", *got.Reason)

		// A resend: its email is the one shown from now on.
		b.clock.Advance(time.Second)
		second, err := b.store.Begin(ctx, registered(reg))
		require.NoError(t, err)
		got, err = b.store.Latest(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, &status.Delivery{State: status.Queued, At: b.clock.Now(), Email: second.ID}, got)
		require.Equal(t, []status.Delivery{
			{State: status.Failed, At: b.clock.Now().Add(-time.Second), Attempts: 1, Reason: reason("550 no such user"), Email: first.ID},
			{State: status.Queued, At: b.clock.Now(), Email: second.ID},
		}, b.announced(t, reg), "the resend's email replaces the refused one for the watcher: announced")

		other, err := b.store.Latest(ctx, uuid.New())
		require.NoError(t, err)
		require.Nil(t, other, "another registration's emails are not this one's")
	})
}

// An older email settling after a newer one exists (a resend overtook
// it) changes nothing the watcher is shown.
func TestOlderEmailIsNotAnnounced(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		reg := uuid.New()
		old, err := b.store.Begin(ctx, registered(reg))
		require.NoError(t, err)
		newer, err := b.store.Begin(ctx, registered(reg))
		require.NoError(t, err)
		require.NoError(t, b.store.MarkSent(ctx, newer, true))
		before := len(b.announced(t, reg))
		require.NoError(t, b.store.MarkFailed(ctx, old, true, "550 no such user"))
		require.Len(t, b.announced(t, reg), before)
		got, err := b.store.Latest(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, status.Sent, got.State)
	})
}

// Emails without a registration (events from before the field) and
// dead-letter replays: the first announce nothing, a replay announces
// the email QUEUED again in its own transaction.
func TestReplayIsAnnounced(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		plain, err := b.store.Begin(ctx, newEvent())
		require.NoError(t, err)
		require.Nil(t, plain.Registration)
		require.NoError(t, b.store.MarkFailed(ctx, plain, true, "550"))
		require.Zero(t, b.db.OutboxEvent.Query().Where(outboxevent.Topic(event.DeliveryChangedTopic)).CountX(ctx), "nobody watches it")

		reg := uuid.New()
		e := registered(reg)
		r, err := b.store.Begin(ctx, e)
		require.NoError(t, err)
		require.NoError(t, b.store.MarkFailed(ctx, r, true, "550 no such user"))
		b.clock.Advance(time.Minute)
		require.NoError(t, b.store.Replay(ctx, e.ID))
		got := b.announced(t, reg)
		require.Len(t, got, 2)
		require.Equal(t, status.Delivery{State: status.Queued, At: b.clock.Now(), Attempts: 1, Email: r.ID}, got[1])
	})
}

// The hook hears of each committed announcement, and only of those: the
// relay is woken for a change, not for a write nobody is told of.
func TestOnAnnounce(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		woken := 0
		b.store.OnAnnounce(func() { woken++ })
		plain, err := b.store.Begin(ctx, newEvent())
		require.NoError(t, err)
		require.NoError(t, b.store.MarkSent(ctx, plain, true))
		require.Zero(t, woken, "no registration: nothing announced")

		r, err := b.store.Begin(ctx, registered(uuid.New()))
		require.NoError(t, err)
		require.Zero(t, woken, "a first email's creation is not announced")
		require.NoError(t, b.store.MarkDeferred(ctx, r, true, "451"))
		require.Equal(t, 1, woken)
	})
}

// A resend is announced without a look for an earlier email: one that is
// the registration's first after all (its first was replaced in its
// cooldown) tells the watcher QUEUED, which it shows already.
func TestResendIsAnnounced(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		reg := uuid.New()
		e := registered(reg)
		e.Resend = true
		r, err := b.store.Begin(context.Background(), e)
		require.NoError(t, err)
		require.Equal(t, []status.Delivery{{State: status.Queued, At: b.clock.Now(), Email: r.ID}}, b.announced(t, reg))
	})
}

// A change's time is to the microsecond, as every other time of the API:
// the change pushed live (from the clock) and the same change read back
// (from the record; PostgreSQL keeps microseconds) show one time.
func TestDeliveryTimeToTheMicrosecond(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		reg := uuid.New()
		b.clock.Advance(123456 * time.Nanosecond) // 123.456 µs: a clock with nanoseconds
		rec, err := b.store.Begin(ctx, registered(reg))
		require.NoError(t, err)
		require.NoError(t, b.store.MarkFailed(ctx, rec, true, "550 no such user"))
		read, err := b.store.Latest(ctx, reg)
		require.NoError(t, err)
		pushed := b.announced(t, reg)
		require.NotEmpty(t, pushed)
		last := pushed[len(pushed)-1]
		require.Zero(t, last.At.Nanosecond()%1000, "pushed at %s", last.At)
		require.Equal(t, last.At, read.At, "pushed and read back")
	})
}
