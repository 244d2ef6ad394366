package main

// Verification end to end: register, the email, the link, the live
// status, confirmation; on each broker, and across replicas.

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
)

// TestFlow is the whole path through the public API: register, receive the
// email over SMTP, open the link (which alone changes nothing), watch the
// status over a websocket, confirm, see VERIFIED live and the subscription
// complete.
func TestFlow(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{transportWS, legacyWS} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			eachBroker(t, func(t *testing.T, opts svcOptions) {
				s := startService(t, opts)

				watch := s.register(t, "  Ada.Lovelace@Example.COM ")
				m := s.sink.Next(t, 30*time.Second)
				require.Equal(t, []string{"ada.lovelace@example.com"}, m.To)
				tok := tokenFrom(t, m)

				w := s.subscribe(t, proto, watch)
				w.expect("UNVERIFIED")

				// Opening the link shows the confirm page and changes nothing:
				// mail scanners fetch links.
				resp, err := s.http.Get(s.url("/verify-email?token=" + tok))
				require.NoError(t, err)
				page, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Contains(t, string(page), `<main id="app"`)
				require.Equal(t, "UNVERIFIED", s.status(t, watch))

				r := s.gql(t, verifyQ, map[string]any{"t": tok})
				require.Empty(t, r.Errors)
				v := r.Data["verifyEmail"].(map[string]any)
				require.Equal(t, "ada.lovelace@example.com", v["email"])
				require.Equal(t, "VERIFIED", v["status"])
				require.Equal(t, false, v["alreadyVerified"])
				verifiedAt, err := time.Parse(time.RFC3339Nano, v["verifiedAt"].(string))
				require.NoError(t, err)

				at := w.expect("VERIFIED")
				require.WithinDuration(t, verifiedAt, at, time.Millisecond)
				w.expectComplete()
				require.Equal(t, "VERIFIED", s.status(t, watch))

				// A later subscriber gets VERIFIED at once, then completion.
				late := s.subscribe(t, proto, watch)
				late.expect("VERIFIED")
				late.expectComplete()
			})
		})
	}
}

// TestVerifyIsIdempotent: every unexpired token of a verified address
// answers success again, and no second change is published.
func TestVerifyIsIdempotent(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		opts.env = map[string]string{"RESEND_COOLDOWN": "1s"}
		s := startService(t, opts)
		watch := s.register(t, "grace@example.com")
		first := tokenFrom(t, s.sink.Next(t, 30*time.Second))
		// The first email's SENT is recorded before the resend: an older
		// email that settles after a newer one exists is not announced
		// (the count below would depend on who won).
		s.waitMetric(t, `verifier_emails_sent_total{kind="verification"}`, 1)
		// Through the outbox: the registration; on RabbitMQ also its
		// email's SENT (in-process, delivery changes go from the records
		// to the hub) and the public registered event (in-process, no
		// webhook: nobody hears it, and none is written).
		public, relayed := 0, 0
		if opts.amqpURL != "" {
			public, relayed = 1, 1
		}
		s.waitMetric(t, "verifier_outbox_published_total", float64(1+relayed+public))
		s.clock.Advance(2 * time.Second)
		r := s.gql(t, resendQ, map[string]any{"e": "grace@example.com"})
		require.Empty(t, r.Errors)
		second := tokenFrom(t, s.sink.Next(t, 30*time.Second))
		require.NotEqual(t, first, second)

		w := s.subscribe(t, transportWS, watch)
		w.expect("UNVERIFIED")

		// Double click, concurrently, with the older link.
		var wg sync.WaitGroup
		results := make([]gqlResponse, 8)
		errs := make([]error, len(results))
		for i := range results {
			wg.Go(func() { results[i], errs[i] = s.gqlAside(verifyQ, map[string]any{"t": first}) })
		}
		testkit.Wait(t, &wg, "the %d clicks' answers", len(results))
		var at string
		fresh := 0
		for i, r := range results {
			require.NoError(t, errs[i])
			require.Empty(t, r.Errors)
			v := r.Data["verifyEmail"].(map[string]any)
			require.Equal(t, "VERIFIED", v["status"])
			if at == "" {
				at = v["verifiedAt"].(string)
			}
			if v["alreadyVerified"] == false {
				fresh++
			}
			require.Equal(t, at, v["verifiedAt"], "one verification, reported the same to every click")
		}
		require.Equal(t, 1, fresh, "exactly one click verified; the others report alreadyVerified")
		// The newer token works too, with the same verifiedAt.
		r = s.gql(t, verifyQ, map[string]any{"t": second})
		require.Empty(t, r.Errors)
		require.Equal(t, at, r.Data["verifyEmail"].(map[string]any)["verifiedAt"])
		require.Equal(t, true, r.Data["verifyEmail"].(map[string]any)["alreadyVerified"])

		w.expect("VERIFIED")
		w.expectComplete()
		// The counter moves when the relay settles, just after the push.
		// register, resend and exactly one change event; on RabbitMQ
		// also three delivery changes of the registration (the first
		// email SENT; the resent one QUEUED, as it replaces the first for
		// the watcher, then SENT) and the public registered and verified
		// events.
		want := float64(3 + 3*relayed + 2*public)
		s.waitMetric(t, "verifier_outbox_published_total", want)
		require.Equal(t, want, s.metric(t, "verifier_outbox_published_total"), "no second change event")
	})
}

// TestReplicas runs two replicas on one PostgreSQL and one RabbitMQ: a
// registration made on one is confirmed through it while the "check your
// inbox" subscription is open on the other, which sees VERIFIED live; the
// replicas share the outbox and the mail queue without sending twice.
func TestReplicas(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	opts := rabbitOptions(t, url)
	opts.sink = mailtest.Start(t)
	opts.settled = testkit.NewSignal()
	opts.env = map[string]string{"DATABASE_URL": databasetest.Postgres(t)}
	a, b := startService(t, opts), startService(t, opts)
	a.waitReady(t, http.StatusOK)
	b.waitReady(t, http.StatusOK)

	watch := a.register(t, "replica@example.com")
	tok := tokenFrom(t, opts.sink.Next(t, 30*time.Second))
	w := b.subscribe(t, transportWS, watch)
	w.expect("UNVERIFIED")
	require.Empty(t, a.gql(t, verifyQ, map[string]any{"t": tok}).Errors)
	w.expect("VERIFIED")
	w.expectComplete()
	require.Equal(t, "VERIFIED", b.status(t, watch))

	const n = 10
	for i := range n {
		replica := []*svc{a, b}[i%2]
		replica.register(t, fmt.Sprintf("spread-%d@example.com", i))
	}
	got := map[string]int{}
	for _, m := range opts.sink.Collect(t, n, 30*time.Second) {
		got[m.To[0]]++
	}
	require.Len(t, got, n, "one email per registration")
	a.waitMetric(t, "verifier_outbox_backlog", 0)
	require.Empty(t, opts.sink.Pending(), "no duplicates")
}
