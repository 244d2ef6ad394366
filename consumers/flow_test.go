package consumers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/inproc"
	"github.com/verifier/verifier/internal/broker/rabbitmq"
	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/testkit"
)

// brokers are the two brokers the mail path runs on.
var brokers = []struct {
	name string
	new  func(t *testing.T) broker.Broker
}{
	{"in-process", func(*testing.T) broker.Broker { return inproc.New(quiet(), inproc.Options{}) }},
	{"RabbitMQ", func(t *testing.T) broker.Broker {
		url := rabbitmqtest.URL(t)
		return rabbitmq.New(url, quiet(), rabbitmq.Options{Prefix: rabbitmqtest.Prefix(t, url)})
	}},
}

// pipeline runs the real send path on b: outbox relay → broker → mailer.
func (b *testBundle) pipeline(t testing.TB, br broker.Broker) *outbox.Relay {
	t.Helper()
	require.NoError(t, br.Consume(b.mailer.Queue(), b.mailer.Handle))
	relay := outbox.NewRelay(b.db, br, quiet(), outbox.Options{Poll: 100 * time.Millisecond})
	// As server.go wires it: delivery changes go out at once.
	b.mailer.Records.OnAnnounce(relay.Wake)
	require.NoError(t, br.Start(context.Background()))
	t.Cleanup(br.Stop)
	testkit.Eventually(t, func() bool { return br.Ping(context.Background()) == nil }, "broker connected")
	require.NoError(t, relay.Start(context.Background()))
	t.Cleanup(relay.Stop)
	return relay
}

// register writes verification events for addrs into the outbox, in order.
func (b *testBundle) register(t testing.TB, addrs ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Tx(ctx)
	require.NoError(t, err)
	for _, a := range addrs {
		reg := uuid.New()
		if b.unwatched {
			reg = uuid.Nil
		}
		require.NoError(t, outbox.Enqueue(ctx, tx, time.Now(), event.RegisteredTopic, event.VerificationRequested{
			UserID: uuid.New(), Registration: reg, Email: a, SealedToken: testBox(t).Seal("tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD", a),
			ExpiresAt: time.Now().Add(time.Hour),
		}))
	}
	require.NoError(t, tx.Commit())
}

func (b *testBundle) countRecords(t *testing.T, state entdelivery.State) int {
	t.Helper()
	n, err := b.db.Delivery.Query().Where(entdelivery.StateEQ(state)).Count(context.Background())
	require.NoError(t, err)
	return n
}

func addresses(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d@example.com", prefix, i)
	}
	return out
}

// Eight addresses that always answer 451, first in line, among seventy
// normal ones, with eight handlers: every normal mail goes out on its first
// attempt while the eight keep being retried. (Handlers that slept on their
// message held all eight workers and sent none of the seventy.)
func TestStubbornAddressesHoldUpNothing(t *testing.T) {
	t.Parallel()
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.sink.Refuse(func(to string) error {
				if strings.HasPrefix(to, "stubborn") {
					return mailtest.TempFail
				}
				return nil
			})
			relay := b.pipeline(t, br.new(t))
			stubborn, normal := addresses("stubborn", 8), addresses("normal", 70)
			// The stubborn ones first, each tried once before the others
			// are queued: they are ahead in line, as many as the handlers.
			// (Queued together, the relay's concurrent publishes may put
			// some of them behind the normal ones.)
			b.register(t, stubborn...)
			relay.Wake()
			testkit.WaitUntil(t, b.handled, func() bool {
				for _, a := range stubborn {
					if b.sink.Attempts(a) == 0 {
						return false
					}
				}
				return true
			}, "every stubborn address tried")
			b.register(t, normal...)
			start := time.Now()
			relay.Wake()

			got := map[string]bool{}
			for _, m := range b.sink.Collect(t, len(normal), 60*time.Second) {
				got[m.To[0]] = true
			}
			t.Logf("%s: %d normal mails out %s after the start, behind %d stubborn ones", br.name, len(normal), time.Since(start).Round(10*time.Millisecond), len(stubborn))
			for _, a := range normal {
				require.True(t, got[a], a)
			}
			// The record follows the server's acceptance by a moment.
			testkit.WaitUntil(t, b.handled, func() bool { return b.countRecords(t, delivery.Sent) == len(normal) }, "every normal email recorded SENT")
			recs, err := b.db.Delivery.Query().All(context.Background())
			require.NoError(t, err)
			for _, r := range recs {
				if strings.HasPrefix(r.Address, "normal") {
					require.Equal(t, delivery.Sent, r.State, r.Address)
					require.Equal(t, 1, r.Attempts, "%s went out at its first attempt", r.Address)
				} else {
					require.NotEqual(t, delivery.Failed, r.State, "a 451 is never a dead letter")
				}
			}
		})
	}
}

// After an outage the whole backlog goes at once: mail waits at most two
// seconds between tries while the server is unreachable, and the first try
// that gets through reopens the way for all of it. The time it took is
// logged, not asserted.
func TestBacklogGoesWhenSMTPReturns(t *testing.T) {
	t.Parallel()
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.sink.Greet(mailtest.ServiceUnavailable)
			relay := b.pipeline(t, br.new(t))
			const n = 40
			b.register(t, addresses("backlog", n)...)
			relay.Wake()
			testkit.WaitUntil(t, b.handled, func() bool { return b.countRecords(t, delivery.Deferred) == n }, "every email tried once and deferred")

			b.sink.Greet(nil)
			back := time.Now()
			b.sink.Collect(t, n, 60*time.Second)
			t.Logf("%s: a backlog of %d went out %s after SMTP returned, over %d sessions",
				br.name, n, time.Since(back).Round(10*time.Millisecond), b.sink.Sessions())
			testkit.WaitUntil(t, b.handled, func() bool { return b.countRecords(t, delivery.Sent) == n }, "every email recorded SENT")
			require.Zero(t, b.counts.get().failed)
		})
	}
}

// On RabbitMQ, a refused recipient's event is acknowledged, not rejected:
// the dead letter is the FAILED record (replayable), and nothing is left in
// RabbitMQ's queues.
func TestRefusedRecipientIsAcknowledged(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	br := rabbitmq.New(url, quiet(), rabbitmq.Options{Prefix: rabbitmqtest.Prefix(t, url)})
	b := setup(t)
	b.sink.Refuse(func(to string) error {
		if strings.HasPrefix(to, "gone") {
			return mailtest.PermFail
		}
		return nil
	})
	relay := b.pipeline(t, br)
	b.register(t, "gone@example.com", "here@example.com")
	relay.Wake()
	require.Equal(t, []string{"here@example.com"}, b.sink.Next(t, 30*time.Second).To)
	testkit.WaitUntil(t, b.handled, func() bool { return b.countRecords(t, delivery.Failed) == 1 }, "the refused email recorded FAILED")

	br.Stop() // every delivery settled
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	for _, q := range []string{br.Names().Queue(MailerQueue), br.Names().DeadLetter()} {
		info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		require.NoError(t, err, q)
		require.Zero(t, info.Messages, q)
	}
}
