package account

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/testkit"
)

// retryAfter is the RATE_LIMITED answer's retryAfterSeconds, failing the
// test for any other answer.
func retryAfter(t *testing.T, err error) int {
	t.Helper()
	e, ok := apperr.From(err)
	require.True(t, ok, "a client-facing error, got %v", err)
	require.Equal(t, apperr.RateLimited, e.Code, "%v", err)
	return RetryAfterSeconds(e.RetryAfter)
}

// registerInCooldown registers first now and second 10 s later, inside
// the first one's cooldown, and returns the first one's time.
func (b *testBundle) registerInCooldown(t *testing.T, first, second string) (t0 time.Time) {
	t.Helper()
	t0 = b.clock.Now()
	b.register(t, first)
	b.clock.Set(t0.Add(10 * time.Second))
	b.register(t, second)
	return t0
}

// verificationEmail is the address a verification email goes to.
func verificationEmail(t *testing.T, ev *ent.OutboxEvent) string {
	t.Helper()
	var p event.VerificationRequested
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	return p.Email
}

// outbox returns every outbox row, oldest first.
func (b *testBundle) outbox(t *testing.T) []*ent.OutboxEvent {
	t.Helper()
	evs, err := b.db.OutboxEvent.Query().Order(ent.Asc(outboxevent.FieldID)).All(context.Background())
	require.NoError(t, err)
	return evs
}

func (b *testBundle) throttle(t *testing.T, inbox string) *ent.EmailThrottle {
	t.Helper()
	th, err := b.db.EmailThrottle.Query().Where(emailthrottle.Email(inbox)).Only(context.Background())
	require.NoError(t, err)
	return th
}

// The cooldown is per inbox: spellings that reach one inbox share it, while
// each account keeps its address as typed.
func TestCanonicalCooldown(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		t0 := b.registerInCooldown(t, "Ann+1@Example.com", "ann+2@example.com")

		evs := b.events(t, event.RegisteredTopic)
		require.Len(t, evs, 2)
		require.Equal(t, t0, evs[0].AvailableAt.UTC(), "the first email goes at once")
		require.Equal(t, t0.Add(time.Minute), evs[1].AvailableAt.UTC(), "the second waits for the shared cooldown")
		addrs, err := b.db.User.Query().Order(ent.Asc(user.FieldEmail)).Select(user.FieldEmail).Strings(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{"ann+1@example.com", "ann+2@example.com"}, addrs, "stored as typed (lower-cased)")

		// The scheduled email is the inbox's last: a resend waits for its
		// cooldown to end.
		require.Equal(t, 110, retryAfter(t, b.svc.Resend(ctx, "ann@example.com")))
		require.Equal(t, 110, retryAfter(t, b.svc.Resend(ctx, "ANN+3@example.com")))

		b.register(t, "a.b@gmail.com")
		require.Equal(t, 60, retryAfter(t, b.svc.Resend(ctx, "ab@gmail.com")))
		require.Equal(t, 60, retryAfter(t, b.svc.Resend(ctx, "A.B+x@googlemail.com")))
		require.NoError(t, b.svc.Resend(ctx, "a.b@other.example"), "dots count outside Gmail")
		u, err := b.db.User.Query().Where(user.Email("a.b@gmail.com")).Only(ctx)
		require.NoError(t, err)
		require.Equal(t, "a.b@gmail.com", u.Email)
		require.Equal(t, "ab@gmail.com", b.throttle(t, "ab@gmail.com").Email)
	})
}

func TestEmailBudgets(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		untilNextHour := func() int {
			return RetryAfterSeconds(b.clock.Now().Truncate(time.Hour).Add(time.Hour).Sub(b.clock.Now()))
		}
		sent := func(scope string) int {
			eb, err := b.db.EmailBudget.Query().Where(emailbudget.Scope(scope)).Only(ctx)
			require.NoError(t, err)
			return eb.Sent
		}
		t0 := b.registerInCooldown(t, "one@a.example", "one@a.example") // a notice waits for the cooldown
		require.Equal(t, 2, sent("domain:a.example"))
		b.clock.Set(t0.Add(20 * time.Second))
		b.register(t, "one@a.example") // and is replaced: nothing added, nothing spent
		require.Equal(t, 2, sent("domain:a.example"))

		require.NoError(t, b.svc.Resend(ctx, "nobody@a.example"), "spends like any address")
		require.Equal(t, 3, sent("domain:a.example"))
		_, err := b.svc.Register(ctx, RegisterInput{Email: "three@a.example", Password: pw})
		require.Equal(t, untilNextHour(), retryAfter(t, err), "domain cap")
		require.Equal(t, untilNextHour(), retryAfter(t, b.svc.Resend(ctx, "four@a.example")), "domain cap, resend alike")
		n, err := b.db.User.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "a refused registration stores nothing")

		// Another domain has its own budget; the global one has one left.
		require.NoError(t, b.svc.Resend(ctx, "one@b.example"))
		require.Equal(t, untilNextHour(), retryAfter(t, b.svc.Resend(ctx, "two@c.example")), "global cap")
		require.Equal(t, 4, sent(globalScope))
		// A resend inside the cooldown is refused before it spends: the
		// cooldown's answer, not the cap's.
		require.Equal(t, 60, retryAfter(t, b.svc.Resend(ctx, "one@b.example")))

		b.clock.Advance(time.Duration(untilNextHour()) * time.Second)
		b.register(t, "three@a.example")

		// The janitor drops the past hour's budgets (domains a and b and
		// global) and keeps this hour's.
		before, err := b.db.EmailBudget.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, before)
		_, err = b.svc.DeleteExpired(ctx)
		require.NoError(t, err)
		after, err := b.db.EmailBudget.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, after)
	}, func(o *Options) { o.DomainEmailLimit, o.GlobalEmailLimit = 3, 4 })
}

// Concurrent spends on both databases never pass the cap.
func TestEmailBudgetConcurrent(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		errs := concurrently(12, func(i int) error {
			return b.svc.Resend(context.Background(), string(rune('a'+i))+"@example.com")
		})
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			retryAfter(t, err)
		}
		require.Equal(t, 5, ok)
	}, func(o *Options) { o.GlobalEmailLimit = 5 })
}

// fakePublisher hands each published message to the test.
type fakePublisher chan broker.Message

func (f fakePublisher) Publish(ctx context.Context, m broker.Message) error {
	select {
	case f <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func nextMessage(t *testing.T, pub fakePublisher) broker.Message {
	t.Helper()
	for {
		// Public events (package publicevent) share the outbox; these
		// tests follow the email events.
		if m := testkit.Receive(t, pub, "message published"); !broker.Public(m.Topic) {
			return m
		}
	}
}

// An email the cooldown holds back (here a repeated registration's, of an
// unverified address) goes out when the cooldown ends, and the next
// cooldown counts from then.
func TestDeferredNoticeGoesOut(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		t0 := b.registerInCooldown(t, "owner@example.com", "owner@example.com")
		notices := b.events(t, event.RenewedTopic)
		require.Len(t, notices, 1, "not dropped")
		require.Equal(t, t0.Add(time.Minute), notices[0].AvailableAt.UTC())
		require.Equal(t, t0.Add(time.Minute).UnixMilli(), b.throttle(t, "owner@example.com").LastSentMs)

		clock := testkit.NewFrozenClock(t0.Add(59 * time.Second))
		pub := make(fakePublisher)
		relay := outbox.NewRelay(b.db, pub, b.svc.Log, outbox.Options{Now: clock.Now, Poll: time.Hour})
		require.NoError(t, relay.Start(ctx))
		t.Cleanup(relay.Stop)

		// The registration email and the superseding are due and go; the
		// relay claimed them in a pass that left the waiting email alone.
		require.ElementsMatch(t, []string{event.RegisteredTopic, event.SupersededTopic}, []string{nextMessage(t, pub).Topic, nextMessage(t, pub).Topic})
		relay.Retry() // a broker reconnect does not make waiting mail due
		waiting, err := b.db.OutboxEvent.Get(ctx, notices[0].ID)
		require.NoError(t, err)
		require.Empty(t, waiting.Claim)
		require.Equal(t, t0.Add(time.Minute), waiting.AvailableAt.UTC())

		clock.Set(t0.Add(time.Minute))
		relay.Wake()
		m := nextMessage(t, pub)
		require.Equal(t, event.RenewedTopic, m.Topic)
		require.Equal(t, notices[0].EventID.String(), m.ID)

		// The cooldown runs from the notice's time.
		b.clock.Set(t0.Add(70 * time.Second))
		require.Equal(t, 50, retryAfter(t, b.svc.Resend(ctx, "owner@example.com")))
	})
}

// At most one email waits per inbox, the newest, except that a notice
// never displaces a verification link.
func TestNewestWaitingEmailWins(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		t0 := b.clock.Now()
		due := t0.Add(time.Minute)
		b.verified(t, "kim@example.com") // goes at t0
		b.clock.Set(t0.Add(5 * time.Second))
		b.register(t, "kim@example.com") // notice, waits
		b.clock.Set(t0.Add(10 * time.Second))
		b.register(t, "KIM@example.com") // a newer notice replaces it

		waiting := func() []*ent.OutboxEvent {
			var out []*ent.OutboxEvent
			for _, ev := range b.outbox(t) {
				if ev.AvailableAt.UTC().After(b.clock.Now()) {
					out = append(out, ev)
				}
			}
			return out
		}
		w := waiting()
		require.Len(t, w, 1)
		require.Equal(t, event.AlreadyRegisteredTopic, w[0].Topic)
		require.Equal(t, due, w[0].AvailableAt.UTC())
		require.Equal(t, w[0].EventID, *b.throttle(t, "kim@example.com").PendingEvent)
		notice := w[0].EventID

		// A new account at another spelling of the inbox: its link
		// replaces the notice, in the same slot.
		b.clock.Set(t0.Add(15 * time.Second))
		b.register(t, "kim+shop@example.com")
		w = waiting()
		require.Len(t, w, 1)
		require.Equal(t, event.RegisteredTopic, w[0].Topic)
		require.NotEqual(t, notice, w[0].EventID)
		require.Equal(t, due, w[0].AvailableAt.UTC())
		link := w[0].EventID

		// A notice does not displace the link: the person needs it.
		b.clock.Set(t0.Add(20 * time.Second))
		b.register(t, "kim@example.com")
		w = waiting()
		require.Len(t, w, 1)
		require.Equal(t, link, w[0].EventID)

		// A newer link does.
		b.register(t, "kim+news@example.com")
		w = waiting()
		require.Len(t, w, 1)
		require.Equal(t, event.RegisteredTopic, w[0].Topic)
		require.Equal(t, "kim+news@example.com", verificationEmail(t, w[0]))
		require.Equal(t, due.UnixMilli(), b.throttle(t, "kim@example.com").LastSentMs, "the slot did not move")

		// Once the waiting email is due, the next one takes the slot after it.
		b.clock.Set(due)
		b.register(t, "kim@example.com")
		notices := b.events(t, event.AlreadyRegisteredTopic)
		require.Equal(t, due.Add(time.Minute), notices[len(notices)-1].AvailableAt.UTC())
	})
}

// retryAfterSeconds after a registration is the same whether the address
// is new, unverified or verified, with and without mail moments before.
func TestRetryAfterSameForEveryAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		b.register(t, "unverified@example.com")
		b.verified(t, "verified@example.com")
		b.clock.Advance(10 * time.Minute)
		addrs := []string{"new@example.com", "unverified@example.com", "verified@example.com"}

		// Registration, then a resend 1.8 s later.
		t1 := b.clock.Now()
		for _, a := range addrs {
			b.clock.Set(t1)
			b.register(t, a)
			b.clock.Set(t1.Add(1800 * time.Millisecond))
			require.Equal(t, 59, retryAfter(t, b.svc.Resend(ctx, a)), a)
		}

		// Mail 1.8 s before the registration (a resend answered true),
		// then a resend.
		t2 := t1.Add(10 * time.Minute)
		for _, a := range []string{"new2@example.com", "unverified@example.com", "verified@example.com"} {
			b.clock.Set(t2)
			require.NoError(t, b.svc.Resend(ctx, a))
			b.clock.Set(t2.Add(1800 * time.Millisecond))
			b.register(t, a)
			b.clock.Set(t2.Add(3 * time.Second))
			require.Equal(t, 117, retryAfter(t, b.svc.Resend(ctx, a)), a)
		}
	})
}
