package graph

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/consumers"
	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/inproc"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/token"
)

// liveBundle is the status path from the account service to a websocket,
// as server.go wires it: account → outbox → relay → in-process broker →
// notifier → hub → GraphQL subscription.
type liveBundle struct {
	accounts *account.Service
	db       *ent.Client
	broker   *inproc.Broker
	hub      *hub.Hub
	box      *seal.Box
	url      string
	// mails receives what the mailer would get.
	mails chan event.VerificationRequested
}

func setupLive(t *testing.T) *liveBundle {
	t.Helper()
	ctx := context.Background()
	log := testkit.Discard()
	db, err := database.Open(ctx, databasetest.SQLite(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	codes, err := code.NewHasher(make([]byte, seal.KeyLen))
	require.NoError(t, err)

	b := &liveBundle{db: db.Ent, broker: inproc.New(log, inproc.Options{}), hub: hub.New(), box: box, mails: make(chan event.VerificationRequested, 16)}
	n := &consumers.Notifier{Hub: b.hub}
	require.NoError(t, b.broker.Consume(n.Queue(), n.Handle))
	require.NoError(t, b.broker.Consume(broker.Queue{Name: "mail", Topics: []string{event.RegisteredTopic}, Concurrency: 1}, func(_ context.Context, m broker.Message) error {
		var req event.VerificationRequested
		if err := json.Unmarshal(m.Body, &req); err != nil {
			return broker.Permanent(err)
		}
		b.mails <- req
		return nil
	}))
	require.NoError(t, b.broker.Start(ctx))
	t.Cleanup(b.broker.Stop)
	relay := outbox.NewRelay(db.Ent, b.broker, log, outbox.Options{})
	require.NoError(t, relay.Start(ctx))
	t.Cleanup(relay.Stop)
	b.accounts = account.New(account.Options{
		DB: db.Ent, Dialect: db.Dialect, Seal: box, Codes: codes, Hub: b.hub, Wake: relay.Wake,
		// Cheap parameters: this test is about events, not hashing.
		Hasher:   password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 0),
		TokenTTL: time.Hour, ResendCooldown: time.Minute, Log: log,
	})
	t.Cleanup(b.hub.CloseAll)

	srv := httptest.NewServer(NewHandler(&Resolver{Accounts: b.accounts}, HandlerOptions{
		Log:       log,
		Websocket: gqlws.Transport{PingInterval: gqlws.PingInterval, ReadLimit: 1 << 16},
	}))
	t.Cleanup(srv.Close)
	b.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/query"
	return b
}

// register returns a new registration's watch token, its registration id
// and the token of its email link.
func (b *liveBundle) register(t *testing.T, email string) (watch string, reg uuid.UUID, link string) {
	t.Helper()
	ctx := context.Background()
	watch, err := b.accounts.Register(ctx, account.RegisterInput{Email: email, Password: "a good password"})
	require.NoError(t, err)
	wt, err := b.db.Registration.Query().Where(registration.WatchTokenHash(token.Hash(watch))).Only(ctx)
	require.NoError(t, err)
	req := testkit.Receive(t, b.mails, "verification email for %s", email)
	require.Equal(t, email, req.Email)
	link, err = b.box.Open(req.SealedToken, req.Email)
	require.NoError(t, err)
	return watch, wt.ID, link
}

// deliver publishes a delivery change through the broker, as the mailer's
// outbox rows reach it.
func (b *liveBundle) deliver(t *testing.T, reg uuid.UUID, d status.Delivery) {
	t.Helper()
	body, err := json.Marshal(event.DeliveryChanged{Registration: reg, Delivery: d})
	require.NoError(t, err)
	require.NoError(t, b.broker.Publish(context.Background(), broker.Message{ID: uuid.NewString(), Topic: event.DeliveryChangedTopic, Body: body}))
}

// wsClient is one graphql-transport-ws connection with one subscription.
type wsClient struct{ *graphtest.Client }

const watchQuery = `subscription($w:String!,$d:Boolean){verificationStatus(watchToken:$w,withDelivery:$d){status at delivery{state at attempts reason}}}`

func (b *liveBundle) subscribe(t *testing.T, watch string, withDelivery bool) *wsClient {
	t.Helper()
	w := &wsClient{graphtest.Connect(t, b.url, graphtest.TransportWS)}
	w.Subscribe("1", watchQuery, map[string]any{"w": watch, "d": withDelivery})
	return w
}

type liveEvent struct {
	Status   string
	At       time.Time
	Delivery *struct {
		State    string
		At       time.Time
		Attempts int
		Reason   *string
	}
}

func (w *wsClient) event() liveEvent {
	w.T.Helper()
	m := w.Next()
	require.Equal(w.T, "next", m.Type, "%s", m.Payload)
	var p struct {
		Data struct {
			VerificationStatus liveEvent `json:"verificationStatus"`
		}
		Errors []any
	}
	require.NoError(w.T, json.Unmarshal(m.Payload, &p))
	require.Empty(w.T, p.Errors)
	return p.Data.VerificationStatus
}

func (w *wsClient) complete() {
	w.T.Helper()
	m := w.Next()
	require.Equal(w.T, "complete", m.Type, "%s", m.Payload)
}

// withDelivery: QUEUED at once, then each delivery change, then VERIFIED,
// then complete. Without: UNVERIFIED, then VERIFIED, then complete, and
// never a delivery.
func TestSubscriptionWithDelivery(t *testing.T) {
	t.Parallel()
	b := setupLive(t)
	watch, reg, link := b.register(t, "live@example.com")
	live := b.subscribe(t, watch, true)
	plain := b.subscribe(t, watch, false)

	first := live.event()
	require.Equal(t, "UNVERIFIED", first.Status)
	require.NotNil(t, first.Delivery)
	require.Equal(t, "QUEUED", first.Delivery.State)
	require.Zero(t, first.Delivery.Attempts)
	require.Nil(t, first.Delivery.Reason)
	p := plain.event()
	require.Equal(t, "UNVERIFIED", p.Status)
	require.Nil(t, p.Delivery)

	start := first.Delivery.At
	reason := "the mail server is busy; retrying"
	steps := []status.Delivery{
		{State: status.Deferred, At: start.Add(time.Second), Attempts: 1, Reason: &reason},
		{State: status.Sent, At: start.Add(2 * time.Second), Attempts: 2},
	}
	for _, d := range steps {
		b.deliver(t, reg, d)
		ev := live.event()
		require.Equal(t, "UNVERIFIED", ev.Status)
		require.Equal(t, string(d.State), ev.Delivery.State)
		require.Equal(t, d.Attempts, ev.Delivery.Attempts)
		require.True(t, d.At.Equal(ev.Delivery.At))
		require.Equal(t, d.Reason, ev.Delivery.Reason)
	}

	_, err := b.accounts.VerifyEmail(context.Background(), link)
	require.NoError(t, err)
	ev := live.event()
	require.Equal(t, "VERIFIED", ev.Status)
	require.Equal(t, "SENT", ev.Delivery.State, "the latest delivery")
	live.complete()

	ev = plain.event()
	require.Equal(t, "VERIFIED", ev.Status, "no delivery events before it")
	require.Nil(t, ev.Delivery)
	plain.complete()
	require.Zero(t, b.hub.Len())
}

// Idle subscriptions cost at most 2 goroutines each (the socket's read
// loop and the subscription's own; gqlws), and leave none behind. Not parallel: it counts the
// process's goroutines.
func TestSubscriptionGoroutines(t *testing.T) {
	const n = 200
	b := setupLive(t)
	watch, _, _ := b.register(t, "idle@example.com")
	before := runtime.NumGoroutine()
	subs := make([]*wsClient, n)
	for i := range subs {
		subs[i] = b.subscribe(t, watch, i%2 == 0)
		require.Equal(t, "UNVERIFIED", subs[i].event().Status)
	}
	require.Equal(t, n, b.hub.Len())
	delta := runtime.NumGoroutine() - before
	t.Logf("%.2f goroutines per idle subscription", float64(delta)/n)
	// background is room for goroutines no subscription owns that may
	// come and go meanwhile (the relay publishing, a database opener):
	// a third goroutine per subscription would still be n over.
	const background = 10
	require.LessOrEqual(t, delta, 2*n+background, "%.2f goroutines per subscription", float64(delta)/n)

	for _, s := range subs {
		s.WS.Close()
	}
	// Polled on this goroutine: require.Eventually would count its own.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for runtime.NumGoroutine() > before || b.hub.Len() > 0 {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("goroutines: %d before, %d after; %d subscriptions open", before, runtime.NumGoroutine(), b.hub.Len())
		}
	}
}
