// Package webhook delivers every public event (package publicevent) to
// every WEBHOOK_URL, signed per the Standard Webhooks specification, and
// keeps at it for a day.
//
// Two halves, on the house path. Handle is a broker consumer of the public
// topics (on either broker): it writes one WebhookDelivery row per
// endpoint, which is quick and never touches the network, so the outbox
// and the mail path never wait on a receiver. The Dispatcher (the
// startstop lifecycle) then works the rows: one lane per endpoint with a
// bounded number of requests in flight, so a slow or dead endpoint holds
// only its own lane; each row is leased before its POST (replicas never
// send one at the same time, and a crash just lets the lease lapse), a 2xx
// marks it DELIVERED, anything else or no answer within RequestTimeout
// reschedules it with backoff (Schedule, jittered), and once it has been
// failing for GiveUpAfter it is FAILED: a record, an ERROR line without the
// body, and something Replay can send again.
//
// Signing uses the specification's own Go library
// (github.com/standard-webhooks/standard-webhooks/libraries/go): webhook-id
// is the event's id, the same on every attempt, so receivers dedupe by it.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/webhookdelivery"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/startstop"
)

// Queue is the durable queue the webhook consumers of all replicas share
// (verifier.webhooks on RabbitMQ).
const Queue = "webhooks"

// States of a delivery.
const (
	Pending   = webhookdelivery.StatePENDING
	Delivered = webhookdelivery.StateDELIVERED
	Failed    = webhookdelivery.StateFAILED
)

// Defaults of Options.
const (
	// RequestTimeout is the contract's: no answer within it is a failure.
	RequestTimeout = 10 * time.Second
	// GiveUpAfter is how long a delivery is retried: the contract's "at
	// least 24 h", counted from its first attempt.
	GiveUpAfter = 24 * time.Hour
	// DefaultPerEndpoint bounds requests in flight to one endpoint: enough
	// to keep up with a healthy receiver, few enough not to flood one.
	DefaultPerEndpoint = 4
	// DefaultPoll is the fallback look for due rows (retries coming due,
	// rows other replicas' consumers wrote).
	DefaultPoll = time.Second
	// lease is how long a claimed row is held: well past RequestTimeout,
	// so only a crashed dispatcher's rows are ever taken over.
	lease = time.Minute
)

// Schedule is the wait before each retry, by attempts made (the last one
// repeats): quick for a receiver that blinked, hours for one that is
// down, so a day is covered with about twenty attempts. Each wait is drawn
// at random from the upper half of its step (5 s gives 2.5–5 s, the last
// 2–4 h): jitter, so that deliveries that failed together (an endpoint
// that went down) do not come back together, and a cap per step.
var Schedule = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 4 * time.Hour}

// retryDelay is the wait after the attempts-th failed attempt.
func retryDelay(attempts int) time.Duration {
	step := Schedule[min(max(attempts, 1), len(Schedule))-1]
	return step/2 + rand.N(step/2+1)
}

// Metrics counts outcomes; nil fields are skipped.
type Metrics struct {
	// Delivered, Failed (given up) and Retried (an attempt failed and
	// will be retried).
	Delivered, Failed, Retried func()
}

// Options configure a Dispatcher.
type Options struct {
	DB *ent.Client
	// Endpoints are the WEBHOOK_URL entries.
	Endpoints []string
	// Secret is WEBHOOK_SECRET, whsec_ + base64.
	Secret string
	Log    *slog.Logger
	// Now is the clock (default time.Now). Timeouts are real time.
	Now     func() time.Time
	Metrics Metrics
	// Client sends the requests (default: a client of its own that
	// follows no redirect).
	Client *http.Client
	// PerEndpoint bounds requests in flight to one endpoint (default
	// DefaultPerEndpoint).
	PerEndpoint int
	// Poll is the fallback interval (default DefaultPoll).
	Poll time.Duration
	// OnSettled, a test hook (nil in production), is called after each
	// attempt's outcome is recorded and after each claim, so a test waits
	// on the rows changing instead of polling them.
	OnSettled func()
}

// Dispatcher sends pending webhook deliveries.
type Dispatcher struct {
	startstop.Base

	o     Options
	sign  *standardwebhooks.Webhook
	lanes map[string]chan struct{} // endpoint → its wake
}

var _ startstop.Service = (*Dispatcher)(nil)

// New returns a dispatcher; it fails only on a secret that does not
// decode (config.Load has checked it already).
func New(o Options) (*Dispatcher, error) {
	sign, err := standardwebhooks.NewWebhook(o.Secret)
	if err != nil {
		return nil, errors.New("webhook: WEBHOOK_SECRET does not decode")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = DefaultPerEndpoint
	}
	if o.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Every endpoint has up to PerEndpoint requests in flight: as many
		// connections are kept for the next ones. With the default's 2 per
		// host, each burst closed the others as they came back, and the
		// next burst dialled them again, a TLS handshake each.
		t.MaxIdleConnsPerHost = o.PerEndpoint * max(len(o.Endpoints), 1)
		o.Client = &http.Client{
			Transport: t,
			// A redirect is an answer, not a 2xx: followed, a POST may
			// turn into a GET, or carry the signed body somewhere the
			// operator never configured. The record says where it went
			// wrong ("answered 301 …").
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	d := &Dispatcher{o: o, sign: sign, lanes: map[string]chan struct{}{}}
	for _, e := range o.Endpoints {
		d.lanes[e] = make(chan struct{}, 1)
	}
	return d, nil
}

// Queue is where the consumer half listens: every public type.
func (d *Dispatcher) Queue() broker.Queue { return Subscription() }

// Subscription is the dispatcher's shared queue, for a process that
// publishes public events without consuming them to declare it too.
func Subscription() broker.Queue {
	return broker.Queue{Name: Queue, Topics: publicevent.Types, Concurrency: 4}
}

// Handle records one public event for every endpoint. A redelivered event
// finds its rows and adds none.
//
// An event whose user is gone is turned away: the user was erased
// (deleteUser, UNVERIFIED_TTL, an unverified holder removed by a confirmed
// change), the erasure erased the deliveries of its events already
// recorded, and this copy, published before the erasure or brought back
// by the broker, names the erased address too; recorded, it would be
// kept and posted after the erasure. Users are never made again under
// the same id, so a missing user is an erased one. Only the erasure's own
// verifier.user.deleted.v1, which names no address, is recorded without
// its user.
//
// The check and the insert are one transaction holding the user's row
// (userHeld), and an erasure deletes the row before it erases the
// deliveries (account's deleteUsers), so whichever of the two comes
// second sees what the first did: an erasure after Handle erases its
// rows, a Handle after an erasure finds no user. No tombstone is needed,
// and nothing about the user is kept.
func (d *Dispatcher) Handle(ctx context.Context, m broker.Message) error {
	id, err := uuid.Parse(m.ID)
	if err != nil {
		return broker.Permanent(fmt.Errorf("webhook: public event with a non-UUID id %q", m.ID))
	}
	now := d.o.Now().UTC()
	// The subject is kept on each row too, so an erasure finds the
	// deliveries of its users by it (account's eraseWebhooks).
	var userID *uuid.UUID
	subject, ok := subjectOf(m)
	if ok {
		userID = &subject
	}
	erased := false
	err = database.InTx(ctx, d.o.DB, func(tx *ent.Tx) error {
		if ok && m.Topic != publicevent.UserDeletedType {
			live, err := tx.User.Query().Where(user.ID(subject), userHeld).Unique(false).Exist(ctx)
			if err != nil {
				return err
			}
			if erased = !live; erased {
				return nil
			}
		}
		creates := make([]*ent.WebhookDeliveryCreate, 0, len(d.o.Endpoints))
		for _, e := range d.o.Endpoints {
			creates = append(creates, tx.WebhookDelivery.Create().
				SetEndpoint(e).
				SetEventID(id).
				SetType(m.Topic).
				SetNillableUserID(userID).
				SetPayload(m.Body).
				SetNextAttemptAt(now).
				SetPendingSince(now).
				SetCreatedAt(now).
				SetUpdatedAt(now))
		}
		return tx.WebhookDelivery.CreateBulk(creates...).
			OnConflictColumns(webhookdelivery.FieldEventID, webhookdelivery.FieldEndpoint).
			DoNothing().
			Exec(ctx)
	})
	if err != nil {
		return fmt.Errorf("webhook: record %s %s: %w", m.Topic, m.ID, err)
	}
	if erased {
		d.o.Log.Debug("webhook: event of an erased user turned away", "event", m.ID, "type", m.Topic)
		return nil
	}
	d.Wake()
	return nil
}

// subjectOf is the user m is about (its CloudEvents subject); false for
// a body without one, which is not one of the service's events and is
// recorded as it is, with no user_id.
func subjectOf(m broker.Message) (uuid.UUID, bool) {
	var e struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(m.Body, &e) != nil {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(e.Subject)
	return id, err == nil
}

// userHeld holds the user's row until the transaction ends on
// PostgreSQL: FOR KEY SHARE, the weakest lock that a DELETE waits for, so
// an erasure's delete of the row waits for Handle's commit and Handle's
// read for the erasure's, while a confirmation's update of the row does
// not wait on a webhook (a new address, a unique column, waits for the
// one short transaction). SQLite needs nothing: its writer's
// transactions are IMMEDIATE, one at a time. The query must not be
// DISTINCT, which PostgreSQL refuses with a lock.
func userHeld(s *entsql.Selector) {
	if s.Dialect() == dialect.Postgres {
		s.For(entsql.LockKeyShare)
	}
}

// Wake makes every lane look for due rows now. It never blocks.
func (d *Dispatcher) Wake() {
	for _, w := range d.lanes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// Errors of Replay.
var (
	ErrNotFound  = errors.New("no such webhook delivery")
	ErrNotFailed = errors.New("the webhook delivery was not given up on (state FAILED)")
	// ErrEndpointGone: the delivery's endpoint is no longer in
	// WEBHOOK_URL, so nothing would send it.
	ErrEndpointGone = errors.New("the webhook delivery's endpoint is no longer in WEBHOOK_URL")
)

// RemovedEndpoint is the last error of a delivery given up on because its
// endpoint left WEBHOOK_URL.
const RemovedEndpoint = "its endpoint is no longer in WEBHOOK_URL"

// Replay makes a FAILED delivery PENDING again, due now, with a fresh day
// of retries; its event and webhook-id are unchanged.
func (d *Dispatcher) Replay(ctx context.Context, id int) error {
	now := d.o.Now().UTC()
	n, err := d.o.DB.WebhookDelivery.Update().
		Where(webhookdelivery.ID(id), webhookdelivery.StateEQ(Failed), webhookdelivery.EndpointIn(d.o.Endpoints...)).
		SetState(Pending).
		SetNextAttemptAt(now).
		SetPendingSince(now).
		SetClaim("").
		SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("webhook delivery %d: replay: %w", id, err)
	}
	if n == 0 {
		row, err := d.o.DB.WebhookDelivery.Query().Where(webhookdelivery.ID(id)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return fmt.Errorf("webhook delivery %d: %w", id, ErrNotFound)
		case err == nil && row.State == Failed:
			return fmt.Errorf("webhook delivery %d: %w", id, ErrEndpointGone)
		}
		return fmt.Errorf("webhook delivery %d: %w", id, ErrNotFailed)
	}
	d.Wake()
	return nil
}

// List returns up to limit deliveries in state, oldest change first.
func (d *Dispatcher) List(ctx context.Context, state webhookdelivery.State, limit int) ([]*ent.WebhookDelivery, error) {
	return d.o.DB.WebhookDelivery.Query().
		Where(webhookdelivery.StateEQ(state)).
		Order(ent.Asc(webhookdelivery.FieldUpdatedAt), ent.Asc(webhookdelivery.FieldID)).
		Limit(limit).
		All(ctx)
}

// TrimDelivered deletes DELIVERED rows last changed before cutoff and
// returns how many went. FAILED ones stay until replayed.
func (d *Dispatcher) TrimDelivered(ctx context.Context, cutoff time.Time) (int, error) {
	return d.o.DB.WebhookDelivery.Delete().
		Where(webhookdelivery.StateEQ(Delivered), webhookdelivery.UpdatedAtLT(cutoff.UTC())).
		Exec(ctx)
}

// Start runs one lane per endpoint until Stop. Stop abandons requests in
// flight; their rows are due again at once for the next start.
func (d *Dispatcher) Start(ctx context.Context) error {
	ctx, run, err := d.StartInit(ctx)
	if run == nil {
		return err
	}
	if n, err := GiveUpRemoved(ctx, d.o.DB, d.o.Endpoints, d.o.Now()); err != nil {
		// Tried again at the next start; the rows only wait meanwhile.
		d.o.Log.Error("webhook: could not give up on the deliveries to endpoints no longer in WEBHOOK_URL", "err", err)
	} else if n > 0 {
		d.o.Log.Warn("webhook: deliveries to endpoints no longer in WEBHOOK_URL given up on; they are listed as failed", "deliveries", n)
	}
	go func() {
		defer run.Stopped(nil)
		run.Started()
		var lanes sync.WaitGroup
		for endpoint, wake := range d.lanes {
			lanes.Go(func() { d.lane(ctx, endpoint, wake) })
		}
		lanes.Wait()
	}()
	return nil
}

// GiveUpRemoved gives up on the pending deliveries to endpoints not in
// endpoints (WEBHOOK_URL): no lane works them, and they would wait
// forever, unseen. They become FAILED with RemovedEndpoint as their last
// error, listed by the admin API with the others given up on. The
// dispatcher runs it at start; with WEBHOOK_URL emptied there is no
// dispatcher, and the janitor runs it with no endpoints.
func GiveUpRemoved(ctx context.Context, db *ent.Client, endpoints []string, now time.Time) (int, error) {
	return db.WebhookDelivery.Update().
		Where(webhookdelivery.StateEQ(Pending), webhookdelivery.EndpointNotIn(endpoints...)).
		SetState(Failed).
		SetClaim("").
		SetLastError(RemovedEndpoint).
		SetUpdatedAt(now.UTC()).
		Save(ctx)
}

type outcome struct {
	row *ent.WebhookDelivery
	err error
}

// lane works one endpoint's rows, at most PerEndpoint at once.
func (d *Dispatcher) lane(ctx context.Context, endpoint string, wake <-chan struct{}) {
	results := make(chan outcome, d.o.PerEndpoint)
	inFlight := map[int]bool{}
	var requests sync.WaitGroup
	defer func() {
		// Let abandoned requests return, then hand their rows back.
		requests.Wait()
		close(results)
		for o := range results {
			d.settle(ctx, o)
		}
	}()
	poll := time.NewTicker(d.o.Poll)
	defer poll.Stop()
	for {
		if free := d.o.PerEndpoint - len(inFlight); free > 0 {
			rows, err := d.claim(ctx, endpoint, free, inFlight)
			if err != nil && ctx.Err() == nil {
				d.o.Log.Error("webhook: claiming deliveries failed; will try again", "endpoint", display(endpoint), "err", err)
			}
			for _, row := range rows {
				inFlight[row.ID] = true
				requests.Go(func() { results <- outcome{row, d.post(ctx, row)} })
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		case o := <-results:
			delete(inFlight, o.row.ID)
			d.settle(ctx, o)
		}
	}
}

// claim leases up to n due rows of endpoint not already in flight here.
// The lease is an UPDATE guarded by the due-condition, so of two
// dispatchers that picked the same row exactly one wins it.
func (d *Dispatcher) claim(ctx context.Context, endpoint string, n int, inFlight map[int]bool) ([]*ent.WebhookDelivery, error) {
	now := d.o.Now().UTC()
	skip := make([]int, 0, len(inFlight))
	for id := range inFlight {
		skip = append(skip, id)
	}
	ids, err := d.o.DB.WebhookDelivery.Query().
		Where(
			webhookdelivery.Endpoint(endpoint),
			webhookdelivery.StateEQ(Pending),
			webhookdelivery.NextAttemptAtLTE(now),
			webhookdelivery.IDNotIn(skip...),
		).
		Order(ent.Asc(webhookdelivery.FieldNextAttemptAt), ent.Asc(webhookdelivery.FieldID)).
		Limit(n).
		IDs(ctx)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	claim := uuid.NewString()
	_, err = d.o.DB.WebhookDelivery.Update().
		Where(webhookdelivery.IDIn(ids...), webhookdelivery.StateEQ(Pending), webhookdelivery.NextAttemptAtLTE(now)).
		SetNextAttemptAt(now.Add(lease)).
		SetClaim(claim).
		Save(ctx)
	if err != nil {
		return nil, err
	}
	if d.o.OnSettled != nil {
		defer d.o.OnSettled()
	}
	return d.o.DB.WebhookDelivery.Query().
		Where(webhookdelivery.IDIn(ids...), webhookdelivery.Claim(claim)).
		Order(ent.Asc(webhookdelivery.FieldID)).
		All(ctx)
}

// Display is an endpoint as an operator is shown it (admin API): without
// its query, which may hold a receiver's key.
func Display(endpoint string) string { return display(endpoint) }

// display is an endpoint as logs show it: without its query, which may
// hold a receiver's key.
func display(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "an unparsable URL"
	}
	u.RawQuery, u.ForceQuery, u.User = "", false, nil
	return u.String()
}

// post sends row once and says why it was not delivered, in plain words
// (never the response body: it is the receiver's, and may be anything).
func (d *Dispatcher) post(ctx context.Context, row *ent.WebhookDelivery) error {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	id := row.EventID.String()
	ts := d.o.Now()
	sig, err := d.sign.Sign(id, ts, row.Payload)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, row.Endpoint, bytes.NewReader(row.Payload))
	if err != nil {
		return errors.New("the endpoint URL is not usable")
	}
	req.Header.Set("Content-Type", publicevent.ContentType)
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	req.Header.Set("User-Agent", "verifier-webhooks")
	resp, err := d.o.Client.Do(req)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Errorf("no answer within %s", RequestTimeout)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		return errors.New("could not connect or the connection broke")
	}
	// A little of the body is read so the connection can be reused; none
	// of it is kept.
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The code only, with its standard text: the reason phrase is the
		// receiver's, as long as it likes, and last_error holds 500
		// characters (longer, the outcome would never be recorded).
		if text := http.StatusText(resp.StatusCode); text != "" {
			return fmt.Errorf("answered %d %s", resp.StatusCode, text)
		}
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

// settle records an attempt's outcome, even as the dispatcher stops (a
// delivery left unrecorded would be sent again). An attempt cut short by
// the stop is not counted, and its row is due again at once.
func (d *Dispatcher) settle(ctx context.Context, o outcome) {
	if d.o.OnSettled != nil {
		defer d.o.OnSettled()
	}
	ctx = context.WithoutCancel(ctx)
	now := d.o.Now().UTC()
	row := o.row
	u := d.o.DB.WebhookDelivery.Update().
		Where(webhookdelivery.ID(row.ID), webhookdelivery.Claim(row.Claim)).
		SetClaim("").
		SetUpdatedAt(now)
	attempts := row.Attempts + 1
	// The day of retries counts from the first attempt, as GiveUpAfter
	// says, not from when the row was written: one that waited that long
	// for its first (a backlog behind a hung endpoint, a worker that was
	// down) would be given up on at its first failure, never retried.
	since := row.PendingSince
	if row.Attempts == 0 && o.err != nil && !errors.Is(o.err, context.Canceled) {
		since = now
		u.SetPendingSince(now)
	}
	var count func()
	switch {
	case o.err == nil:
		u.SetState(Delivered).SetAttempts(attempts).SetLastError("")
		count = d.o.Metrics.Delivered
	case errors.Is(o.err, context.Canceled):
		u.SetNextAttemptAt(now)
	case now.Sub(since) >= GiveUpAfter:
		u.SetState(Failed).SetAttempts(attempts).SetLastError(o.err.Error())
		count = d.o.Metrics.Failed
		d.o.Log.Error("webhook: delivery given up on; replay it once the endpoint works",
			"endpoint", display(row.Endpoint), "event", row.EventID, "type", row.Type, "delivery", row.ID,
			"attempts", attempts, "since", since, "err", o.err)
	default:
		wait := retryDelay(attempts)
		u.SetAttempts(attempts).SetLastError(o.err.Error()).SetNextAttemptAt(now.Add(wait))
		count = d.o.Metrics.Retried
		// Loud once per delivery; a dead endpoint's every retry of every
		// event would flood the log (the counter and the row say the rest).
		level := slog.LevelDebug
		if attempts == 1 {
			level = slog.LevelWarn
		}
		d.o.Log.Log(ctx, level, "webhook: delivery failed; will retry",
			"endpoint", display(row.Endpoint), "event", row.EventID, "type", row.Type, "attempts", attempts, "in", wait.Round(time.Second), "err", o.err)
	}
	if err := u.Exec(ctx); err != nil {
		// The lease lapses and the row is tried again: at least once.
		d.o.Log.Error("webhook: recording an attempt failed; the delivery is tried again when its lease lapses", "delivery", row.ID, "err", err)
		return
	}
	if count != nil {
		count()
	}
}
