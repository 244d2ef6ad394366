package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/webhookdelivery"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/webhook"
	"github.com/verifier/verifier/internal/webhook/webhooktest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// secret is whsec_ + base64 of 32 bytes.
var secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

type testBundle struct {
	db      *ent.Client
	clock   *testkit.Clock
	settled *testkit.Signal
	// user is the one the events are about: the dispatcher turns away
	// an event whose user is gone (erased).
	user uuid.UUID
}

func setup(t *testing.T, url string) *testBundle {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	u, err := db.Ent.User.Create().SetEmail("ada@example.com").SetPasswordHash("x").Save(context.Background())
	require.NoError(t, err)
	return &testBundle{db: db.Ent, clock: testkit.NewFrozenClock(time.Now()), settled: testkit.NewSignal(), user: u.ID}
}

// dispatcher returns a started dispatcher for endpoints, stopped when t
// ends (or earlier by the test).
func (b *testBundle) dispatcher(t *testing.T, perEndpoint int, endpoints ...string) *webhook.Dispatcher {
	t.Helper()
	d, err := webhook.New(webhook.Options{
		DB: b.db, Endpoints: endpoints, Secret: secret, Log: testkit.Discard(),
		Now: b.clock.Now, PerEndpoint: perEndpoint, Poll: time.Hour, OnSettled: b.settled.Fire,
	})
	require.NoError(t, err)
	require.NoError(t, d.Start(context.Background()))
	t.Cleanup(d.Stop)
	return d
}

// publish hands d a public event as the broker would, and returns its id.
func (b *testBundle) publish(t *testing.T, d *webhook.Dispatcher) string {
	t.Helper()
	id := uuid.New()
	body, err := publicevent.Writer{}.Encode(id, b.clock.Now(), publicevent.UserVerified{UserID: b.user, Email: "ada@example.com", VerifiedAt: b.clock.Now()})
	require.NoError(t, err)
	m := broker.Message{ID: id.String(), Topic: publicevent.UserVerifiedType, Body: body}
	require.NoError(t, d.Handle(context.Background(), m))
	return id.String()
}

// row waits until the delivery of event to endpoint satisfies cond.
func (b *testBundle) row(t *testing.T, event, endpoint string, cond func(*ent.WebhookDelivery) bool, what string) *ent.WebhookDelivery {
	t.Helper()
	var got *ent.WebhookDelivery
	testkit.WaitUntil(t, b.settled, func() bool {
		r, err := b.db.WebhookDelivery.Query().Where(webhookdelivery.EventID(uuid.MustParse(event)), webhookdelivery.Endpoint(endpoint)).Only(context.Background())
		if err != nil {
			return false
		}
		got = r
		return cond(r)
	}, "%s", what)
	return got
}

// retry moves the clock to row's next attempt and wakes d.
func (b *testBundle) retry(d *webhook.Dispatcher, row *ent.WebhookDelivery) {
	b.clock.Set(row.NextAttemptAt)
	d.Wake()
}

func settledAfter(attempts int) func(*ent.WebhookDelivery) bool {
	return func(r *ent.WebhookDelivery) bool { return r.Attempts == attempts && r.Claim == "" }
}

// One POST per event and endpoint, as the contract says, signed so that
// both the Go reference library and the Node one accept it; a redelivered
// event adds nothing.
func TestDelivers(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		one, two := webhooktest.Start(t, nil), webhooktest.Start(t, nil)
		d := b.dispatcher(t, 0, one.URL, two.URL)
		id := b.publish(t, d)
		for _, rc := range []*webhooktest.Receiver{one, two} {
			got := testkit.Receive(t, rc.Got, "a webhook request")
			require.Equal(t, "application/cloudevents+json", got.Header.Get("Content-Type"))
			require.Equal(t, id, got.Header.Get("webhook-id"))
			wh, err := standardwebhooks.NewWebhook(secret)
			require.NoError(t, err)
			require.NoError(t, wh.VerifyIgnoringTimestamp(got.Body, got.Header))
			webhooktest.VerifyWithNode(t, secret, []webhooktest.Request{got})
			verifyBySpec(t, got)
			b.row(t, id, rc.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered")
		}
		require.NoError(t, d.Handle(context.Background(), broker.Message{ID: id, Topic: publicevent.UserVerifiedType, Body: []byte("{}")}))
		n, err := b.db.WebhookDelivery.Query().Count(context.Background())
		require.NoError(t, err)
		require.Equal(t, 2, n, "a redelivery adds no row")
	})
}

// verifyBySpec checks got's signature as the Standard Webhooks
// specification describes it, with nothing of the reference libraries:
// "v1," + base64 of HMAC-SHA256 over id.timestamp.body, keyed with the
// base64-decoded part of the secret after whsec_.
func verifyBySpec(t *testing.T, got webhooktest.Request) {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	ts := got.Header.Get("webhook-timestamp")
	_, err = strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err, "webhook-timestamp is unix seconds")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(got.Header.Get("webhook-id") + "." + ts + "."))
	mac.Write(got.Body)
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), got.Header.Get("webhook-signature"))
}

// A receiver that fails twice gets the event the third time, with the same
// webhook-id each time.
func TestRetriesWithTheSameID(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	rc := webhooktest.Start(t, func(n int, _ *http.Request) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	d := b.dispatcher(t, 0, rc.URL)
	id := b.publish(t, d)
	var got []webhooktest.Request
	for attempt := 1; attempt <= 2; attempt++ {
		got = append(got, testkit.Receive(t, rc.Got, "attempt %d", attempt))
		row := b.row(t, id, rc.URL, settledAfter(attempt), "attempt recorded")
		require.Equal(t, webhook.Pending, row.State)
		require.Equal(t, "answered 500 Internal Server Error", row.LastError)
		wait := row.NextAttemptAt.Sub(b.clock.Now())
		require.True(t, wait >= webhook.Schedule[attempt-1]/2 && wait <= webhook.Schedule[attempt-1], "retry %d after %s", attempt, wait)
		b.retry(d, row)
	}
	got = append(got, testkit.Receive(t, rc.Got, "attempt 3"))
	row := b.row(t, id, rc.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered")
	require.Equal(t, 3, row.Attempts)
	for _, r := range got {
		require.Equal(t, id, r.Header.Get("webhook-id"))
	}
	webhooktest.VerifyWithNode(t, secret, got)
}

// An endpoint that never answers holds only its own lane: with one request
// in flight per endpoint, the other endpoint gets two events while the
// first request to the hung one is still open.
func TestHungEndpointDelaysNoOther(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	release := make(chan struct{})
	held := make(chan *http.Request, 1)
	hung := webhooktest.Start(t, func(n int, r *http.Request) int {
		if n == 1 {
			held <- r
		}
		<-release
		return http.StatusOK
	})
	ok := webhooktest.Start(t, nil)
	d := b.dispatcher(t, 1, hung.URL, ok.URL)
	t.Cleanup(func() { close(release) }) // before the receivers close: their Close waits for handlers
	first := b.publish(t, d)
	second := b.publish(t, d)
	require.Equal(t, first, testkit.Receive(t, hung.Got, "the hung endpoint's first request").Header.Get("webhook-id"))
	req := testkit.Receive(t, held, "the hung request")
	require.Equal(t, first, testkit.Receive(t, ok.Got, "first event at the live endpoint").Header.Get("webhook-id"))
	require.Equal(t, second, testkit.Receive(t, ok.Got, "second event at the live endpoint").Header.Get("webhook-id"))
	// The dispatcher's side: its request is still open (release is the
	// test's own channel and cannot tell).
	require.NoError(t, req.Context().Err(), "the hung request is still open")
	require.Empty(t, hung.Got, "the hung endpoint's lane holds its one request")
}

// A dispatcher stopped with a delivery pending leaves it to the next one
// on the same database.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	rc := webhooktest.Start(t, func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	d := b.dispatcher(t, 0, rc.URL)
	id := b.publish(t, d)
	testkit.Receive(t, rc.Got, "first attempt")
	row := b.row(t, id, rc.URL, settledAfter(1), "first attempt recorded")
	d.Stop()

	d2 := b.dispatcher(t, 0, rc.URL)
	b.retry(d2, row)
	require.Equal(t, id, testkit.Receive(t, rc.Got, "attempt after the restart").Header.Get("webhook-id"))
	b.row(t, id, rc.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered after the restart")

	n, err := d2.TrimDelivered(context.Background(), b.clock.Now())
	require.NoError(t, err)
	require.Zero(t, n, "kept for a while")
	n, err = d2.TrimDelivered(context.Background(), b.clock.Now().Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// After a day of failures the delivery is FAILED, with its reason; Replay
// sends it again under the same id.
func TestGivesUpAfterADayAndReplays(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	var healthy atomic.Bool
	rc := webhooktest.Start(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	d := b.dispatcher(t, 0, rc.URL)
	start := b.clock.Now()
	id := b.publish(t, d)
	var row *ent.WebhookDelivery
	for attempt := 1; ; attempt++ {
		testkit.Receive(t, rc.Got, "attempt %d", attempt)
		row = b.row(t, id, rc.URL, settledAfter(attempt), "attempt recorded")
		if row.State != webhook.Pending {
			break
		}
		require.Less(t, attempt, 40, "a day takes about twenty attempts")
		b.retry(d, row)
	}
	require.Equal(t, webhook.Failed, row.State)
	require.GreaterOrEqual(t, b.clock.Now().Sub(start), webhook.GiveUpAfter, "retried for at least a day")
	require.Less(t, b.clock.Now().Sub(start), webhook.GiveUpAfter+webhook.Schedule[len(webhook.Schedule)-1])
	require.Equal(t, "answered 503 Service Unavailable", row.LastError)
	failed, err := d.List(context.Background(), webhook.Failed, 10)
	require.NoError(t, err)
	require.Len(t, failed, 1)

	healthy.Store(true)
	require.NoError(t, d.Replay(context.Background(), row.ID))
	require.Equal(t, id, testkit.Receive(t, rc.Got, "the replayed delivery").Header.Get("webhook-id"))
	b.row(t, id, rc.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered after the replay")
	require.ErrorIs(t, d.Replay(context.Background(), row.ID), webhook.ErrNotFailed)
	require.ErrorIs(t, d.Replay(context.Background(), row.ID+1000), webhook.ErrNotFound)
}

// A redirect is not a delivery, and is not followed: the signed body goes
// only where the operator pointed it.
func TestRedirectIsAFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	elsewhere := webhooktest.Start(t, nil)
	asked := make(chan struct{}, 10)
	mover := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		http.Redirect(w, r, elsewhere.URL, http.StatusPermanentRedirect)
	}))
	t.Cleanup(mover.Close)
	d := b.dispatcher(t, 0, mover.URL)
	id := b.publish(t, d)
	testkit.Receive(t, asked, "the request")
	row := b.row(t, id, mover.URL, settledAfter(1), "the attempt recorded")
	require.Equal(t, webhook.Pending, row.State)
	require.Equal(t, "answered 308 Permanent Redirect", row.LastError)
	require.Empty(t, elsewhere.Got)
}

// The reason phrase of the status line is the receiver's text, as its
// body is: neither the record nor the log repeats it, only the code and
// its standard text, if it has one.
func TestReasonPhraseIsNotKept(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status, want string
	}{
		{"a long phrase", "503 " + strings.Repeat("receiver text ", 1000), "answered 503 Service Unavailable"},
		{"a code without standard text", "599 receiver text", "answered 599"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, databasetest.SQLite(t))
			liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				_, _ = buf.WriteString("HTTP/1.1 " + tc.status + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_ = buf.Flush()
			}))
			t.Cleanup(liar.Close)
			d := b.dispatcher(t, 0, liar.URL)
			id := b.publish(t, d)
			row := b.row(t, id, liar.URL, settledAfter(1), "the attempt recorded")
			require.Equal(t, tc.want, row.LastError)
		})
	}
}

// The connections to an endpoint are kept for its next requests: as many
// as it has requests in flight. Each round here holds PerEndpoint
// requests until all have arrived, answers them at once, and the next
// round's events come once they are delivered; with the transport's
// default of 2 idle connections a host, each round after the first
// dialled 2 again.
func TestConnectionsAreKept(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	const perEndpoint, rounds = 4, 3
	arrived, release := make(chan struct{}, perEndpoint), make(chan struct{}, perEndpoint)
	var dialled atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-release
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	d := b.dispatcher(t, perEndpoint, srv.URL)
	for range rounds {
		ids := make([]string, perEndpoint)
		for i := range ids {
			ids[i] = b.publish(t, d)
		}
		for range perEndpoint {
			testkit.Receive(t, arrived, "a request of the round")
		}
		for range perEndpoint {
			release <- struct{}{}
		}
		for _, id := range ids {
			b.row(t, id, srv.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered")
		}
	}
	require.EqualValues(t, perEndpoint, dialled.Load(), "connections opened for %d rounds of %d requests", rounds, perEndpoint)
}

// Two dispatchers on one database (two replicas) share the work and send
// each delivery once.
func TestReplicasSendOnce(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		rc := webhooktest.Start(t, nil)
		one, two := b.dispatcher(t, 0, rc.URL), b.dispatcher(t, 0, rc.URL)
		const n = 20
		for i := range n {
			d := one
			if i%2 == 1 {
				d = two
			}
			b.publish(t, d)
			// Both look at once, whoever was told.
			one.Wake()
			two.Wake()
		}
		seen := map[string]int{}
		for range n {
			seen[testkit.Receive(t, rc.Got, "a webhook request").Header.Get("webhook-id")]++
		}
		testkit.WaitUntil(t, b.settled, func() bool {
			k, err := b.db.WebhookDelivery.Query().Where(webhookdelivery.StateEQ(webhook.Delivered)).Count(context.Background())
			return err == nil && k == n
		}, "all delivered")
		require.Len(t, seen, n)
		for id, k := range seen {
			require.Equal(t, 1, k, "%s sent once", id)
		}
		require.Empty(t, rc.Got, "no second request")
	})
}

// A stop cuts a request short without counting it, and leaves its row due
// at once for the next dispatcher.
func TestStopReleasesWhatIsInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	release := make(chan struct{})
	rc := webhooktest.Start(t, func(n int, _ *http.Request) int {
		if n == 1 {
			<-release
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) }) // runs first: the receiver's Close waits for its handlers
	d := b.dispatcher(t, 0, rc.URL)
	id := b.publish(t, d)
	testkit.Receive(t, rc.Got, "the request that hangs")
	d.Stop()
	row := b.row(t, id, rc.URL, settledAfter(0), "released")
	require.Equal(t, webhook.Pending, row.State)
	require.False(t, row.NextAttemptAt.After(b.clock.Now()), "due at once")

	b.dispatcher(t, 0, rc.URL)
	require.Equal(t, id, testkit.Receive(t, rc.Got, "the request again").Header.Get("webhook-id"))
	b.row(t, id, rc.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered && r.Attempts == 1 }, "delivered, one attempt counted")
}

// An endpoint taken out of WEBHOOK_URL leaves no delivery waiting forever:
// at the next start its pending ones are given up on, with the reason, and
// a replay of one is refused, since nothing would send it.
func TestRemovedEndpointIsGivenUpOn(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		kept := webhooktest.Start(t, nil)
		removed := webhooktest.Start(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
		d := b.dispatcher(t, 0, kept.URL, removed.URL)
		id := b.publish(t, d)
		b.row(t, id, kept.URL, func(r *ent.WebhookDelivery) bool { return r.State == webhook.Delivered }, "delivered to the kept endpoint")
		b.row(t, id, removed.URL, settledAfter(1), "a first attempt to the other")
		d.Stop()

		d2 := b.dispatcher(t, 0, kept.URL)
		gone, err := b.db.WebhookDelivery.Query().Where(webhookdelivery.Endpoint(removed.URL)).Only(context.Background())
		require.NoError(t, err)
		require.Equal(t, webhook.Failed, gone.State)
		require.Equal(t, webhook.RemovedEndpoint, gone.LastError)
		failed, err := d2.List(context.Background(), webhook.Failed, 10)
		require.NoError(t, err)
		require.Len(t, failed, 1, "listed with the deliveries given up on")
		require.ErrorIs(t, d2.Replay(context.Background(), gone.ID), webhook.ErrEndpointGone)
		kept2, err := b.db.WebhookDelivery.Query().Where(webhookdelivery.Endpoint(kept.URL)).Only(context.Background())
		require.NoError(t, err)
		require.Equal(t, webhook.Delivered, kept2.State, "the kept endpoint's delivery is untouched")
	})
}

// With WEBHOOK_URL emptied there is no dispatcher; the janitor gives up on
// every pending delivery, as a dispatcher does for the endpoints it lost.
func TestNoEndpointLeft(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		down := webhooktest.Start(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
		d := b.dispatcher(t, 0, down.URL)
		id := b.publish(t, d)
		b.row(t, id, down.URL, settledAfter(1), "a first attempt, to be retried")
		d.Stop()

		n, err := webhook.GiveUpRemoved(context.Background(), b.db, nil, b.clock.Now())
		require.NoError(t, err)
		require.Equal(t, 1, n)
		row := b.row(t, id, down.URL, func(*ent.WebhookDelivery) bool { return true }, "the row")
		require.Equal(t, webhook.Failed, row.State)
		require.Equal(t, webhook.RemovedEndpoint, row.LastError)
	})
}

// The day of retries counts from a delivery's first attempt, not from when
// it was recorded: one that waited a day before its first attempt (a
// backlog behind a hung endpoint, a worker that was down) is retried, not
// given up on at its first failure.
func TestDayOfRetriesCountsFromTheFirstAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, databasetest.SQLite(t))
	rc := webhooktest.Start(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	// Recorded by a consumer while no dispatcher runs.
	idle, err := webhook.New(webhook.Options{DB: b.db, Endpoints: []string{rc.URL}, Secret: secret, Log: testkit.Discard(), Now: b.clock.Now})
	require.NoError(t, err)
	id := b.publish(t, idle)
	b.clock.Advance(webhook.GiveUpAfter + time.Hour)

	d := b.dispatcher(t, 0, rc.URL)
	d.Wake()
	testkit.Receive(t, rc.Got, "first attempt")
	row := b.row(t, id, rc.URL, settledAfter(1), "first attempt recorded")
	require.Equal(t, webhook.Pending, row.State, "retried after its first attempt")
}

// An event whose user is gone (erased) is turned away, not recorded: it
// names the erased address. The erasure's own user.deleted is recorded
// without its user.
func TestEventOfAnErasedUserIsTurnedAway(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		b := setup(t, url)
		d, err := webhook.New(webhook.Options{DB: b.db, Endpoints: []string{"http://127.0.0.1:9/hook"}, Secret: secret, Log: testkit.Discard(), Now: b.clock.Now})
		require.NoError(t, err)
		gone := uuid.New()
		for _, ev := range []publicevent.Event{
			publicevent.UserVerified{UserID: gone, Email: "gone@example.com", VerifiedAt: b.clock.Now()},
			publicevent.UserDeleted{UserID: gone, DeletedAt: b.clock.Now()},
		} {
			id := uuid.New()
			body, err := publicevent.Writer{}.Encode(id, b.clock.Now(), ev)
			require.NoError(t, err)
			require.NoError(t, d.Handle(context.Background(), broker.Message{ID: id.String(), Topic: ev.Type(), Body: body}))
		}
		rows, err := b.db.WebhookDelivery.Query().All(context.Background())
		require.NoError(t, err)
		require.Len(t, rows, 1)
		require.Equal(t, publicevent.UserDeletedType, rows[0].Type)
		require.Equal(t, &gone, rows[0].UserID, "the subject is kept, for an erasure to find the row by")
	})
}
