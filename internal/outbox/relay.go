package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/startstop"
	"github.com/verifier/verifier/internal/tracing"
)

// Publisher is what the relay needs from a broker. A Publish that returns a
// broker.RetryAfter (the in-process broker passing on a handler's request)
// leaves the event to the relay, which publishes it again after the delay
// with the next attempt number.
type Publisher interface {
	Publish(ctx context.Context, m broker.Message) error
}

// Options tune a Relay; zero values take the defaults.
type Options struct {
	// MaxInFlight bounds concurrent publishes (default DefaultMaxInFlight).
	MaxInFlight int
	// MaxInFlightPerTopic bounds concurrent publishes of one topic
	// (default a quarter of MaxInFlight), so a topic whose consumer is slow
	// (with the in-process broker a publish lasts until it is handled: mail
	// while SMTP times out) never takes every slot and stalls the others,
	// such as the status changes that feed subscriptions. A topic at its
	// bound is refilled once an eighth of it is free (refillShare).
	MaxInFlightPerTopic int
	// Poll is the fallback interval for events committed by other replicas
	// or missed wakes (default DefaultPoll).
	Poll time.Duration
	// Lease is how long a claimed event is held before another replica's
	// relay (or this one after a crash) may take it over (default
	// DefaultLease).
	Lease time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnPublished is called with the number of events confirmed.
	OnPublished func(n int)
	// OnSettled, a test hook (nil in production), is called after each
	// batch's rows are deleted or rescheduled, so a test waits on the
	// outbox's state changing instead of polling it.
	OnSettled func()
}

// Relay publishes outbox events. It has the Start/Stop lifecycle of every
// long-lived part of the service.
type Relay struct {
	startstop.Base

	db   *ent.Client
	pub  Publisher
	log  *slog.Logger
	opts Options
	wake chan struct{}
	// refill is how many of a topic's slots must be free before more of
	// it is claimed (see refillShare).
	refill int
	// pickFailures counts the polls in a row that could not read the
	// outbox, and pickLogged is when that was last logged above DEBUG;
	// only the relay's loop touches them.
	pickFailures int
	pickLogged   time.Time
}

// pickFailed logs a poll that could not read the outbox. While the
// database is away every poll (each second, on every replica) fails: the
// first says so at ERROR, a reminder at WARN comes once a minute, the
// rest go to DEBUG, and pickWorked says when it ends.
func (r *Relay) pickFailed(err error) {
	r.pickFailures++
	now := r.opts.Now()
	switch {
	case r.pickFailures == 1:
		r.log.Error("outbox: picking events to claim failed; retried at each poll, and logged when it works again", "err", err)
		r.pickLogged = now
	case now.Sub(r.pickLogged) >= time.Minute:
		r.log.Warn("outbox: picking events to claim still fails", "failures", r.pickFailures, "err", err)
		r.pickLogged = now
	default:
		r.log.Debug("outbox: picking events to claim failed again", "failures", r.pickFailures, "err", err)
	}
}

// pickWorked ends an outage pickFailed logged.
func (r *Relay) pickWorked() {
	if r.pickFailures > 0 {
		r.log.Info("outbox: picking events to claim works again", "failures", r.pickFailures)
		r.pickFailures = 0
	}
}

var _ startstop.Service = (*Relay)(nil)

// Defaults of Options.
const (
	// DefaultMaxInFlight bounds concurrent publishes, and a quarter of it
	// one topic's: what one cycle (at most one per minCycle) can claim of
	// it. A topic's quarter must cover what its consumers hold at once.
	// With the in-process broker a publish lasts until the event is
	// handled, and the mailer handles 256 emails at once so that their
	// delivery records share SQLite's COMMITs (at 64 a topic, the mail
	// backlog drained at 2,200–2,700 emails/s; at 256, 2,800–3,500, make
	// bench, A/B). With RabbitMQ a topic's quarter is held for a
	// confirm's round trip plus the wait for the next cycle, and on a busy
	// PostgreSQL a cycle took about 29 ms: at 64 a topic passed about
	// 1,600 events a second while verifyEmail at c=64 made more, and
	// VERIFIED reached the subscriber at p50 134–166 ms; at 256 a topic,
	// 65–77 ms (make bench, A/B).
	DefaultMaxInFlight = 1024
	// DefaultPoll is the fallback look for events that no Wake announced
	// (other replicas' commits, a lost wake).
	DefaultPoll = time.Second
	// DefaultLease is how long a claimed event is held: far longer than a
	// publish with confirm takes (the RabbitMQ broker gives up after 15s).
	DefaultLease = 30 * time.Second
)

// refillShare is the share of a topic's bound (MaxInFlightPerTopic) that
// must be free before the relay claims more of that topic. Refilled one
// slot at a time, a draining backlog made every cycle read hundreds of due
// rows to take the few its acknowledgements had freed: reading them was
// 12 % of the process's CPU while the mail backlog drained
// (BenchmarkMailThroughput, pprof). Its consumers still hold seven eighths
// of the bound or more; with the default bound that is 224 emails for the
// mailer's 8 SMTP sessions.
const refillShare = 8

// retryTimeout bounds the one UPDATE Retry makes; it runs on the broker's
// reconnect path, which must not hang on a stuck database.
const retryTimeout = 5 * time.Second

// Backoff of a failed publish. Capped short: when the broker comes back,
// waiting events should go out within seconds, not minutes.
const (
	publishRetryMin = 200 * time.Millisecond
	publishRetryMax = 5 * time.Second
	// publishWarnEvery: a failing event is logged on its first attempt
	// and every this many after, not on each retry of an outage.
	publishWarnEvery = 20
)

// NewRelay returns a relay that publishes db's outbox through pub.
func NewRelay(db *ent.Client, pub Publisher, log *slog.Logger, opts Options) *Relay {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxInFlightPerTopic <= 0 {
		opts.MaxInFlightPerTopic = max(opts.MaxInFlight/4, 1)
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Relay{db: db, pub: pub, log: log, opts: opts, wake: make(chan struct{}, 1), refill: max(opts.MaxInFlightPerTopic/refillShare, 1)}
}

// Wake makes the relay look for events now. It never blocks: a commit path
// calls it after every commit, so it must cost nothing.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Retry makes every event that is waiting out a backoff (or a delay its
// consumer asked for) due now, and wakes the relay. The broker calls it
// when its connection is (re)established, so what queued up during an
// outage goes out at once, not after its backoff.
func (r *Relay) Retry() {
	if !r.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(database.Urgent(context.Background()), retryTimeout)
	defer cancel()
	now := r.opts.Now().UTC()
	// Unclaimed (claim "") and not yet due: rescheduled after a failure.
	// Claimed rows are in flight and keep their lease. Rows never claimed
	// (claim NULL, not "") are left alone on purpose: one not yet due is
	// an email held back by its address's cooldown (EnqueueAt), which a
	// reconnect must not send early (account's TestDeferredNoticeGoesOut).
	_, err := r.db.OutboxEvent.Update().
		Where(outboxevent.Claim(""), outboxevent.AvailableAtGT(now)).
		SetAvailableAt(now).
		Save(ctx)
	if err != nil {
		r.log.Warn("outbox: making waiting events due failed; they go out after their backoff", "err", err)
	}
	r.Wake()
}

// Start runs the relay in the background until Stop. Stop abandons
// publishes in flight; their events stay in the outbox for the next start.
func (r *Relay) Start(ctx context.Context) error {
	ctx, run, err := r.StartInit(ctx)
	if run == nil {
		return err
	}
	go func() {
		defer run.Stopped(nil)
		run.Started()
		r.run(ctx)
	}()
	return nil
}

// minCycle is the least time between two of the relay's turns at the
// database. Its turns go before the requests' (database.Urgent), so under
// load, woken by every commit, it would take SQLite's single writer for
// one or two events at a time, every other turn: measured, verifyEmail
// throughput at c=64 halved. Paced, it takes what committed meanwhile in
// one turn; an event waits at most this much longer, and one alone, after
// a quiet spell, not at all. 5 ms before group commit; with it, and with
// verifyEmail at 3,000–4,000/s, 2 ms brought the push p99 at c=64 from
// 39–67 ms to 18–36 ms for about a tenth of the throughput in some runs
// (make bench, BENCHMARKS.md).
const minCycle = 2 * time.Millisecond

type outcome struct {
	ev  *ent.OutboxEvent
	err error
}

// flight is an event being published: its topic, and when its lease ends
// (until then the row is not due, and no query for due rows returns it).
type flight struct {
	topic string
	until time.Time
}

func (r *Relay) run(ctx context.Context) {
	results := make(chan outcome, r.opts.MaxInFlight)
	inFlight := map[int]flight{} // by event row id
	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	var publishers sync.WaitGroup
	// settled are outcomes not yet recorded; the next turn at the database
	// records them and leases the next events together.
	var settled []outcome
	defer func() {
		// Let abandoned publishes return, then settle them: confirmed ones
		// are deleted, the rest released for the next start at once rather
		// than after their lease.
		publishers.Wait()
		close(results)
		batch := settled
		for o := range results {
			batch = append(batch, o)
		}
		r.settleAndClaim(ctx, batch, 0, inFlight)
	}()

	var lastCycle time.Time
	for {
		free := r.opts.MaxInFlight - len(inFlight)
		if free > 0 || len(settled) > 0 {
			if wait := minCycle - time.Since(lastCycle); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			lastCycle = time.Now()
			evs := r.settleAndClaim(ctx, settled, free, inFlight)
			settled = nil
			for _, ev := range evs {
				inFlight[ev.ID] = flight{topic: ev.Topic, until: ev.AvailableAt}
				publishers.Go(func() {
					results <- outcome{ev, r.publish(ctx, ev)}
				})
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-poll.C:
		case o := <-results:
			batch := []outcome{o}
			for more := true; more; {
				select {
				case o := <-results:
					batch = append(batch, o)
				default:
					more = false
				}
			}
			for _, o := range batch {
				delete(inFlight, o.ev.ID)
			}
			settled = batch
		}
	}
}

// publish hands ev to the broker in a span that continues the trace of
// the request that wrote it, and whose context the message carries to the
// consumers.
func (r *Relay) publish(ctx context.Context, ev *ent.OutboxEvent) error {
	ctx, span := tracing.Tracer().Start(tracing.FromTraceParent(ctx, ev.Traceparent), "publish "+ev.Topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.message.id", ev.EventID.String()), attribute.Int("messaging.message.delivery_attempt", ev.Attempts+1)))
	defer span.End()
	m := message(ev)
	m.Headers = tracing.Headers(ctx)
	err := r.pub.Publish(ctx, m)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not confirmed")
	}
	return err
}

// message is the broker message for ev. Attempts counts the times the
// event was handed back, so the next delivery is attempt Attempts+1.
func message(ev *ent.OutboxEvent) broker.Message {
	return broker.Message{ID: ev.EventID.String(), Topic: ev.Topic, Body: ev.Payload, Published: ev.CreatedAt, Attempt: ev.Attempts + 1}
}

// candidates picks up to n due events not already in flight here, leaving
// out topics at their in-flight bound. It only reads, from SQLite's readers
// beside the writer; settleAndClaim leases them.
func (r *Relay) candidates(ctx context.Context, now time.Time, n int, inFlight map[int]flight) ([]*ent.OutboxEvent, error) {
	perTopic := map[string]int{}
	lapsed := 0
	for _, f := range inFlight {
		perTopic[f.topic]++
		if !now.Before(f.until) {
			lapsed++
		}
	}
	// Topics with less than refill slots free wait for more to free up.
	var full []string
	for topic, k := range perTopic {
		if r.opts.MaxInFlightPerTopic-k < r.refill {
			full = append(full, topic)
		}
	}
	// Ids and topics of the due events, oldest due first, from the index
	// on (available_at, topic) alone: the relay is one goroutine, and
	// while the mail backlog drained (its topic at its bound, everyone's
	// status changes behind it) this query was a third of the process's
	// CPU and the relay's pace. Ordered by id it scanned the table, every
	// payload of the backlog, each cycle: 1.4 ms for 3,000 rows against
	// 0.16 ms from the index. The events in flight here are leased (not
	// due) unless a publish outlived its lease: they are left out below,
	// not in the query, where a list of hundreds of ids cost more than the
	// rest of it; the limit makes room for those whose lease lapsed. One
	// topic takes at most its bound, so no more rows than that are read:
	// the rest wait for the next cycle.
	due, err := r.db.OutboxEvent.Query().
		Where(outboxevent.AvailableAtLTE(now), outboxevent.TopicNotIn(full...)).
		Order(ent.Asc(outboxevent.FieldAvailableAt)).
		Limit(min(n, r.opts.MaxInFlightPerTopic)+lapsed).
		Select(outboxevent.FieldID, outboxevent.FieldTopic).
		All(ctx)
	if err != nil || len(due) == 0 {
		return nil, err
	}
	ids := make([]int, 0, min(n, len(due)))
	for _, ev := range due {
		if len(ids) == n {
			break
		}
		if _, busy := inFlight[ev.ID]; busy {
			continue
		}
		if perTopic[ev.Topic] < r.opts.MaxInFlightPerTopic {
			perTopic[ev.Topic]++
			ids = append(ids, ev.ID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// The payloads of the picked ones only: with a backlog on one topic a
	// few places short of its bound, the query above returns up to n rows
	// of which only those few are taken, and reading every payload each
	// cycle was 29 % of the CPU while the mail backlog drained (make bench
	// -profile). Another relay may lease or settle some in between; the
	// lease, guarded by the same due-condition, tells.
	return r.db.OutboxEvent.Query().
		Where(outboxevent.IDIn(ids...)).
		Order(ent.Asc(outboxevent.FieldID)).
		All(ctx)
}

// settleAndClaim records the outcomes of batch (deletes confirmed events,
// reschedules the ones a consumer asked to see again after a delay and
// failed ones with backoff) and leases up to n due events not in flight,
// in one transaction, and returns the leased events. It logs what fails,
// once: the next wake or poll is all the caller can do about it, and
// events not recorded are published again. On SQLite every write
// waits its turn for the single writer connection: one turn for the whole
// cycle instead of one per statement leaves the writer to the requests.
// The lease is an UPDATE guarded by the due-condition the candidates were
// picked with, so two relays that picked the same rows cannot both win
// them.
func (r *Relay) settleAndClaim(ctx context.Context, batch []outcome, n int, inFlight map[int]flight) []*ent.OutboxEvent {
	type reschedule struct {
		ids   []int
		at    time.Time
		retry bool // counts as an attempt
	}
	if r.opts.OnSettled != nil {
		defer r.opts.OnSettled()
	}
	var (
		confirmed, release []int
		later              []reschedule
		now                = r.opts.Now().UTC()
	)
	deferred := map[time.Duration][]int{}
	for _, o := range batch {
		if o.err == nil {
			confirmed = append(confirmed, o.ev.ID)
			continue
		}
		if d, ok := broker.RetryDelay(o.err); ok {
			// Handled, and to be handled again: the normal course of a
			// retry, not a failure of the relay.
			r.log.Debug("outbox: event deferred by its consumer", "topic", o.ev.Topic, "event", o.ev.EventID, "attempt", o.ev.Attempts+1, "in", d, "err", o.err)
			deferred[d] = append(deferred[d], o.ev.ID)
			continue
		}
		if ctx.Err() != nil {
			release = append(release, o.ev.ID)
			continue
		}
		retry := broker.Backoff(o.ev.Attempts, publishRetryMin, publishRetryMax)
		if o.ev.Attempts%publishWarnEvery == 0 {
			r.log.Warn("outbox: publish failed; will retry", "topic", o.ev.Topic, "event", o.ev.EventID, "attempts", o.ev.Attempts+1, "in", retry.Round(time.Millisecond), "err", o.err)
		}
		later = append(later, reschedule{ids: []int{o.ev.ID}, at: now.Add(retry), retry: true})
	}
	for d, ids := range deferred {
		later = append(later, reschedule{ids: ids, at: now.Add(d), retry: true})
	}
	if len(release) > 0 {
		// Released at shutdown: due at once for the next start, not after
		// the lease.
		later = append(later, reschedule{ids: release, at: now})
	}
	var (
		picked []*ent.OutboxEvent
		ids    []int
	)
	if n > 0 && ctx.Err() == nil {
		var err error
		// Urgent: on PostgreSQL the relay's reads take the connections
		// kept for it, not a place in the requests' queue for the pool
		// (c=64 on PostgreSQL: VERIFIED at the subscriber p50 101–251 →
		// 64–138 ms, make bench, four pairs); SQLite reads beside the
		// writer anyway.
		if picked, err = r.candidates(database.Urgent(ctx), now, n, inFlight); err != nil && ctx.Err() == nil {
			// The outcomes are still recorded; the next wake or poll
			// claims again.
			r.pickFailed(err)
		} else if err == nil {
			r.pickWorked()
		}
		for _, ev := range picked {
			ids = append(ids, ev.ID)
		}
	}
	if len(confirmed) == 0 && len(later) == 0 && len(picked) == 0 {
		return nil
	}
	// ctx may be ending, but this bookkeeping must still happen: a
	// confirmed event left behind is published twice. Urgent: every event
	// waits for its lease and the next lease waits for this.
	ctx = database.Urgent(context.WithoutCancel(ctx))
	claim, leased, until := "", 0, now.Add(r.opts.Lease)
	err := database.InTx(ctx, r.db, func(tx *ent.Tx) error {
		for _, l := range later {
			u := tx.OutboxEvent.Update().Where(outboxevent.IDIn(l.ids...)).SetAvailableAt(l.at).SetClaim("")
			if l.retry {
				u.AddAttempts(1)
			}
			if err := u.Exec(ctx); err != nil {
				return fmt.Errorf("rescheduling %d events: %w", len(l.ids), err)
			}
		}
		if len(confirmed) > 0 {
			if _, err := tx.OutboxEvent.Delete().Where(outboxevent.IDIn(confirmed...)).Exec(ctx); err != nil {
				return fmt.Errorf("deleting %d published events: %w", len(confirmed), err)
			}
		}
		if len(picked) > 0 {
			claim = uuid.NewString()
			var err error
			leased, err = tx.OutboxEvent.Update().
				Where(outboxevent.IDIn(ids...), outboxevent.AvailableAtLTE(now)).
				SetAvailableAt(until).
				SetClaim(claim).
				Save(ctx)
			if err != nil {
				return fmt.Errorf("leasing %d events: %w", len(picked), err)
			}
		}
		return nil
	})
	if err != nil {
		if len(batch) > 0 {
			r.log.Error("outbox: settling events failed; confirmed ones will be published again, the others go out when their lease lapses", "confirmed", len(confirmed), "err", err)
		} else {
			r.log.Error("outbox: leasing events failed; the next wake or poll tries again", "err", err)
		}
		return nil
	}
	if len(confirmed) > 0 && r.opts.OnPublished != nil {
		r.opts.OnPublished(len(confirmed))
	}
	if claim == "" {
		return nil
	}
	if leased == len(picked) {
		// All won, as read: publishing needs nothing else the lease
		// changed, so no second read on the relay's path. (Only if
		// another relay took one and handed it back in between is its
		// attempt count as read one short; the table's count is right,
		// as settling adds to it.)
		for _, ev := range picked {
			ev.AvailableAt, ev.Claim = until, claim
		}
		return picked
	}
	// Another relay leased some first: ours are the ones with our claim.
	// By id first: the claim column has no index, and a backlog of
	// thousands of rows would be scanned.
	evs, err := r.db.OutboxEvent.Query().
		Where(outboxevent.IDIn(ids...), outboxevent.Claim(claim)).
		Order(ent.Asc(outboxevent.FieldID)).
		All(ctx)
	if err != nil {
		r.log.Error("outbox: reading the events just leased failed; they go out when their lease lapses", "err", err)
	}
	return evs
}
