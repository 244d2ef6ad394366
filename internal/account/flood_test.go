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

func (b *testBundle) throttle(t *testing.T, addr string) *ent.EmailThrottle {
	t.Helper()
	th, err := b.db.EmailThrottle.Query().Where(emailthrottle.Email(addr)).Only(context.Background())
	require.NoError(t, err)
	return th
}

// emailTopics are the topics of events that are emails.
var emailTopics = []string{
	event.RegisteredTopic, event.RenewedTopic, event.ResentTopic, event.EmailChangeRequestedTopic,
	event.AlreadyRegisteredTopic, event.EmailChangeNoticeTopic,
}

// mailTo returns the emails queued for addr (any spelling NormalizeEmail
// accepts), oldest first.
func (b *testBundle) mailTo(t *testing.T, addr string) []*ent.OutboxEvent {
	t.Helper()
	addr = normalized(t, addr)
	evs, err := b.db.OutboxEvent.Query().Where(outboxevent.TopicIn(emailTopics...)).Order(ent.Asc(outboxevent.FieldID)).All(context.Background())
	require.NoError(t, err)
	var out []*ent.OutboxEvent
	for _, ev := range evs {
		if recipient(t, ev) == addr {
			out = append(out, ev)
		}
	}
	return out
}

// recipient is the address an email event goes to.
func recipient(t *testing.T, ev *ent.OutboxEvent) string {
	t.Helper()
	var p struct{ Email string }
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	return p.Email
}

// mailTimes says when the emails queued for addr go, in seconds after t0.
func (b *testBundle) mailTimes(t *testing.T, t0 time.Time, addr string) []int {
	t.Helper()
	var out []int
	for _, ev := range b.mailTo(t, addr) {
		out = append(out, int(ev.AvailableAt.Sub(t0)/time.Second))
	}
	return out
}

// waiting returns the outbox rows not yet due, oldest first.
func (b *testBundle) waiting(t *testing.T) []*ent.OutboxEvent {
	t.Helper()
	var out []*ent.OutboxEvent
	for _, ev := range b.outbox(t) {
		if ev.AvailableAt.UTC().After(b.clock.Now()) {
			out = append(out, ev)
		}
	}
	return out
}

// The cooldown and the waiting email belong to the address as stored
// (NormalizeEmail): spellings of one inbox are addresses of their own, and
// each gets its email, while a change of case is the same address.
func TestCooldownPerAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		// When the emails to a and b go, in seconds after t0, and what a
		// resend of b answers at t0+10s.
		wantA, wantB []int
		retryB       int
	}{
		{"+tags", "ann+1@example.com", "Ann+2@Example.com", []int{60}, []int{10}, 60},
		{"+tag and none", "ann+1@example.com", "ann@example.com", []int{60}, []int{10}, 60},
		{"gmail dots", "a.b@gmail.com", "ab@gmail.com", []int{60}, []int{10}, 60},
		{"gmail's two domains", "ab@googlemail.com", "ab@gmail.com", []int{60}, []int{10}, 60},
		// One address: b's email replaces a's in its slot.
		{"case", "kim@example.com", "KIM@example.com", []int{60}, []int{60}, 110},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				// Mail to a at t0 (a resend: for an unknown address it
				// sends nothing but starts the cooldown all the same),
				// so a's registration email at t0+5s waits.
				t0 := b.clock.Now()
				require.NoError(t, b.svc.Resend(ctx, tt.a))
				b.clock.Set(t0.Add(5 * time.Second))
				b.register(t, tt.a)
				b.clock.Set(t0.Add(10 * time.Second))
				b.register(t, tt.b)

				require.Equal(t, tt.wantA, b.mailTimes(t, t0, tt.a), "to %s", tt.a)
				require.Equal(t, tt.wantB, b.mailTimes(t, t0, tt.b), "to %s", tt.b)
				require.Equal(t, tt.retryB, retryAfter(t, b.svc.Resend(ctx, tt.b)), "resend %s", tt.b)
				require.Equal(t, 110, retryAfter(t, b.svc.Resend(ctx, tt.a)), "resend %s: its email waits", tt.a)
			})
		})
	}
}

// A resend answers for its own address only: mail to another spelling of
// the inbox does not hold it back; mail to the address itself does, with
// retryAfterSeconds.
func TestResendPerAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, resent, other string
		retry               int // 0: a fresh email goes out
	}{
		{"+tags", "ann+1@example.com", "ann+2@example.com", 0},
		{"+tag and none", "ann+1@example.com", "ann@example.com", 0},
		{"gmail spellings", "a.b@gmail.com", "ab@googlemail.com", 0},
		{"same address", "ann+1@example.com", "ANN+1@example.com", 58},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				b.register(t, tt.resent)
				b.clock.Advance(2 * time.Minute) // past its cooldown
				b.register(t, tt.other)
				b.clock.Advance(2 * time.Second)

				err := b.svc.Resend(ctx, tt.resent)
				if tt.retry > 0 {
					require.Equal(t, tt.retry, retryAfter(t, err))
					require.Empty(t, b.events(t, event.ResentTopic))
					return
				}
				require.NoError(t, err)
				resent := b.events(t, event.ResentTopic)
				require.Len(t, resent, 1)
				require.Equal(t, normalized(t, tt.resent), verificationEmail(t, resent[0]))
				require.Equal(t, 60, retryAfter(t, b.svc.Resend(ctx, tt.resent)), "now its own cooldown runs")
			})
		})
	}
}

// normalized is addr as NormalizeEmail stores it.
func normalized(t *testing.T, addr string) string {
	t.Helper()
	n, err := NormalizeEmail(addr)
	require.NoError(t, err)
	return n
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

// One provider's domains share a domain budget: with the cooldown per
// address, the cap is what bounds one inbox across its spellings.
func TestDomainBudgetPerProvider(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		require.NoError(t, b.svc.Resend(ctx, "a.b@gmail.com"))
		require.NoError(t, b.svc.Resend(ctx, "ab@example.com"), "another domain")
		_, err := b.svc.Register(ctx, RegisterInput{Email: "ab@googlemail.com", Password: pw})
		retryAfter(t, err)
		retryAfter(t, b.svc.Resend(ctx, "a.b+x@gmail.com"))
	}, func(o *Options) { o.DomainEmailLimit = 1 })
}

// A domain's spellings share its budget: full-width letters, Unicode and
// its punycode form, composed or not, name one domain (IDNA maps them to
// one), and each spelling had a budget of its own, multiplying the cap.
func TestDomainBudgetPerSpelling(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, first, second string }{
		{"full-width letters", "a@example.com", "b@\uff45xample.com"},
		{"full-width letters, gmail", "a@gmail.com", "b@g\uff4dail.com"},
		{"Unicode and punycode", "a@b\u00fccher.example", "b@xn--bcher-kva.example"},
		{"decomposed and composed", "a@bu\u0308cher.example", "b@b\u00fccher.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				require.NoError(t, b.svc.Resend(ctx, tt.first))
				retryAfter(t, b.svc.Resend(ctx, tt.second))
			}, func(o *Options) { o.DomainEmailLimit = 1 })
		})
	}
}

// Concurrent spends on both databases never pass the cap.
func TestEmailBudgetConcurrent(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		errs := concurrently(t, 12, func(i int) error {
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

// At most one email waits per address, the newest; another spelling of
// the inbox is another address, with a slot of its own.
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

		w := b.waiting(t)
		require.Len(t, w, 1)
		require.Equal(t, event.AlreadyRegisteredTopic, w[0].Topic)
		require.Equal(t, due, w[0].AvailableAt.UTC())
		require.Equal(t, w[0].EventID, *b.throttle(t, "kim@example.com").PendingEvent)
		notice := w[0].EventID

		// A new account at another spelling of the inbox: its link goes at
		// once, and the notice keeps its slot.
		b.clock.Set(t0.Add(15 * time.Second))
		b.register(t, "kim+shop@example.com")
		require.Equal(t, []int{15}, b.mailTimes(t, t0, "kim+shop@example.com"))
		w = b.waiting(t)
		require.Len(t, w, 1)
		require.Equal(t, notice, w[0].EventID)

		// The spelling's own cooldown holds its next email, in its own slot.
		b.clock.Set(t0.Add(20 * time.Second))
		b.register(t, "kim+shop@example.com")
		w = b.waiting(t)
		require.Len(t, w, 2)
		require.Equal(t, notice, w[0].EventID)
		require.Equal(t, event.RenewedTopic, w[1].Topic)
		require.Equal(t, "kim+shop@example.com", verificationEmail(t, w[1]))
		require.Equal(t, t0.Add(75*time.Second), w[1].AvailableAt.UTC())
		require.Equal(t, due.UnixMilli(), b.throttle(t, "kim@example.com").LastSentMs, "kim's slot did not move")

		// Once the waiting email is due, the next one takes the slot after it.
		b.clock.Set(due)
		b.register(t, "kim@example.com")
		notices := b.events(t, event.AlreadyRegisteredTopic)
		require.Equal(t, due.Add(time.Minute), notices[len(notices)-1].AvailableAt.UTC())
	})
}

// heldMail is an email the cooldown holds back: its topic and address.
type heldMail struct{ topic, to string }

// Every email the cooldown holds back goes out when the cooldown ends, at
// most one per address (the newest), whoever else the inbox hears from
// meanwhile.
func TestHeldEmailGoesOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// hold runs at t0, and at t0+10s at the latest leaves held
		// waiting until t0+1m.
		hold func(t *testing.T, b *testBundle, t0 time.Time)
		held []heldMail
	}{
		{"registration email after a resend", func(t *testing.T, b *testBundle, t0 time.Time) {
			require.NoError(t, b.svc.Resend(context.Background(), "ann@example.com"))
			b.clock.Set(t0.Add(10 * time.Second))
			b.register(t, "ann@example.com")
		}, []heldMail{{event.RegisteredTopic, "ann@example.com"}}},
		{"registration email, another spelling registered meanwhile", func(t *testing.T, b *testBundle, t0 time.Time) {
			require.NoError(t, b.svc.Resend(context.Background(), "ann+1@example.com"))
			b.clock.Set(t0.Add(5 * time.Second))
			b.register(t, "ann+1@example.com")
			b.clock.Set(t0.Add(10 * time.Second))
			b.register(t, "ann+2@example.com") // goes at once: its own cooldown
		}, []heldMail{{event.RegisteredTopic, "ann+1@example.com"}}},
		{"notice, newer than a waiting link", func(t *testing.T, b *testBundle, t0 time.Time) {
			ctx := context.Background()
			b.register(t, "lee@example.com")
			b.clock.Set(t0.Add(5 * time.Second))
			b.register(t, "lee@example.com") // a new link, waiting
			u, err := b.db.User.Query().Only(ctx)
			require.NoError(t, err)
			_, err = b.svc.MarkVerified(ctx, u.ID) // the link verifies nothing now
			require.NoError(t, err)
			b.clock.Set(t0.Add(10 * time.Second))
			b.register(t, "lee@example.com") // the notice takes the link's place
		}, []heldMail{{event.AlreadyRegisteredTopic, "lee@example.com"}}},
		{"changeEmail link and notice", func(t *testing.T, b *testBundle, t0 time.Time) {
			session := b.signedIn(t, "old@example.com")
			require.NoError(t, b.svc.Resend(context.Background(), "new@example.com"))
			b.clock.Set(t0.Add(10 * time.Second))
			require.NoError(t, b.svc.ChangeEmail(context.Background(), session, "new@example.com"))
		}, []heldMail{{event.EmailChangeRequestedTopic, "new@example.com"}, {event.EmailChangeNoticeTopic, "old@example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				t0 := b.clock.Now()
				tt.hold(t, b, t0)

				var held []heldMail
				ids := map[string]bool{}
				for _, ev := range b.waiting(t) {
					require.Equal(t, t0.Add(time.Minute), ev.AvailableAt.UTC())
					held = append(held, heldMail{ev.Topic, recipient(t, ev)})
					ids[ev.EventID.String()] = true
				}
				require.ElementsMatch(t, tt.held, held, "waiting")

				clock := testkit.NewFrozenClock(t0.Add(59 * time.Second))
				pub := make(fakePublisher)
				relay := outbox.NewRelay(b.db, pub, b.svc.Log, outbox.Options{Now: clock.Now, Poll: time.Hour})
				require.NoError(t, relay.Start(ctx))
				t.Cleanup(relay.Stop)
				due := 0
				for _, ev := range b.outbox(t) {
					if !broker.Public(ev.Topic) && !ids[ev.EventID.String()] {
						due++
					}
				}
				for range due {
					require.False(t, ids[nextMessage(t, pub).ID], "went before the cooldown ended")
				}

				clock.Set(t0.Add(time.Minute))
				relay.Wake()
				for range held {
					m := nextMessage(t, pub)
					require.True(t, ids[m.ID], "a held email, got %s", m.Topic)
					delete(ids, m.ID)
				}
			})
		})
	}
}

// A cooldown record keyed by inbox, as versions before per-address keys
// wrote them, keeps the email waiting in it for another spelling: a newer
// email to the key's own address takes a slot of its own after it.
func TestInboxKeyedRecordKeepsItsEmail(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		t0 := b.clock.Now()
		b.register(t, "kim+shop@example.com")
		b.clock.Set(t0.Add(5 * time.Second))
		b.register(t, "kim+shop@example.com") // waits until t0+1m
		n, err := b.db.EmailThrottle.Update().
			Where(emailthrottle.Email("kim+shop@example.com")).
			SetEmail(CanonicalEmail("kim+shop@example.com")).
			Save(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		b.clock.Set(t0.Add(10 * time.Second))
		b.register(t, "kim@example.com")
		require.Equal(t, []int{0, 60}, b.mailTimes(t, t0, "kim+shop@example.com"), "not replaced")
		require.Equal(t, []int{120}, b.mailTimes(t, t0, "kim@example.com"), "after the record's cooldown")
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
