// Package delivery keeps the record of each email event (the ent entity
// Delivery): queued, sent, deferred or failed, with its attempts and the
// reason of the last failure.
//
// The record is what makes the mail path safe to repeat. The mailer reads
// it before sending, so an event delivered again after a crash or a lost
// connection is not mailed twice once SENT is written, and it writes SENT
// right after the SMTP server accepted the message, before the broker
// hears back. A FAILED record keeps the event itself: it is the durable
// dead letter, listed and replayed by an operator (verifier dead-letters).
//
// A record that names its registration (the watch token the email belongs
// to) is also what that registration's watchers are told: every change of
// its state writes, in the same transaction, an outbox event
// (event.DeliveryChanged), so nothing is announced that did not commit,
// and Latest answers a watcher that just arrived.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/status"
)

// States of a record.
const (
	Queued   = entdelivery.StateQUEUED
	Sent     = entdelivery.StateSENT
	Deferred = entdelivery.StateDEFERRED
	Failed   = entdelivery.StateFAILED
)

// Store reads and writes delivery records.
type Store struct {
	db       *ent.Client
	now      func() time.Time
	announce func()
	events   publicevent.Writer
	local    func(registration uuid.UUID, d status.Delivery)
}

// OnAnnounce sets f to be called after each committed delivery change
// (the outbox relay's Wake, so watchers hear of it now rather than at the
// relay's next poll). Set it before the store is used.
func (s *Store) OnAnnounce(f func()) { s.announce = f }

// HearLocally hands each committed change of a registration's delivery to
// f (the subscription hub) instead of writing it to the outbox. For the
// in-process broker only: this process then holds every watcher there is,
// and the outbox's way (a row, the relay's lease and delete, the broker,
// the notifier) only made the trip longer; it was two of the three outbox
// events of each resent email, and the mail backlog drained at the pace
// of the single SQLite writer. A change lost with a crash is lost with
// its watchers' websockets, whose clients re-read the record when they
// come back. Set it before the store is used.
func (s *Store) HearLocally(f func(registration uuid.UUID, d status.Delivery)) { s.local = f }

// UseEvents sets the writer of the public event a failed delivery causes
// (verifier.email.failed.v1); without it, the zero publicevent.Writer.
// Set it before the store is used.
func (s *Store) UseEvents(w publicevent.Writer) { s.events = w }

// New returns a store on db; now is the clock (nil for time.Now).
func New(db *ent.Client, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// Event is an email event as the mailer received it.
type Event struct {
	ID      string
	Kind    string
	Address string
	// Registration is the registration the email belongs to (uuid.Nil:
	// none, and nobody is told of its changes).
	Registration uuid.UUID
	// UserID is the user the email is to, when the event names one;
	// uuid.Nil lets a failure find the user by Address.
	UserID  uuid.UUID
	Topic   string
	Payload []byte
	// Resend marks a registration's later email, asked for by its owner:
	// it is announced without looking for an earlier one (a resend that
	// is the first after all, its first email having been replaced in
	// its cooldown, announces what its watchers see already).
	Resend bool
}

// EventOf is the Event of the email m, whose event is id on topic.
func EventOf(id, topic string, m event.Mail) Event {
	return Event{ID: id, Kind: m.Kind, Address: m.To, Registration: m.Registration, UserID: m.UserID, Topic: topic, Resend: topic == event.ResentTopic}
}

// registration is e's Registration, nil for none.
func (e Event) registration() *uuid.UUID {
	if e.Registration == uuid.Nil {
		return nil
	}
	return &e.Registration
}

// create starts the insert of e's record: what the event says of it.
func (e Event) create(c *ent.Client) *ent.DeliveryCreate {
	var userID *uuid.UUID
	if e.UserID != uuid.Nil {
		userID = &e.UserID
	}
	return c.Delivery.Create().
		SetEventID(e.ID).
		SetKind(e.Kind).
		SetAddress(truncate(e.Address, 254)).
		SetNillableRegistration(e.registration()).
		SetNillableUserID(userID).
		SetTopic(e.Topic)
}

// Record is what the mailer needs of a record.
type Record struct {
	ID       int
	State    entdelivery.State
	Attempts int
	// Registration is whose watchers hear of the record's changes (nil:
	// nobody's).
	Registration *uuid.UUID
	// Since is when the mailer first saw the event.
	Since time.Time
	// Busy is set when another delivery of the same event holds the
	// record (it is sending the email now): wait this long, then look
	// again, rather than send a second copy.
	Busy time.Duration
	// UserID and Address say whose email it is, for the public event of
	// a failure (verifier.email.failed.v1).
	UserID  uuid.UUID
	Address string
	// payload is the event as the mailer received it, stored only when
	// the record becomes a dead letter (see MarkFailed).
	payload []byte
}

// SendLease is how long Begin reserves a record for the caller's send:
// longer than one SMTP send may take (mail.SMTP's timeouts), short enough
// that after a crash mid-send the redelivery waits only briefly.
const SendLease = 30 * time.Second

// Queue records, in tx, the email of e (an email event just written to
// the outbox in tx, e.ID its id) as QUEUED, to go out at at: before any
// mailer has it, so the admin API lists an email that waits for its
// cooldown, for the relay or for a worker (with RabbitMQ, in a queue no
// worker reads yet), and a mailer finds the record when the event comes
// (Begin). A resend's record replaces the state its registration's
// watchers see, so it is announced: in tx through the outbox, or, when
// the changes are heard locally, by the returned func once tx committed
// (nil: nothing to call).
func (s *Store) Queue(ctx context.Context, tx *ent.Tx, e Event, at time.Time) (func(), error) {
	now := s.now().UTC()
	reg := e.registration()
	rec, err := e.create(tx.Client()).
		// Since when it could go out: how long it has been failing counts
		// from there (the mailer's backoff), not from a cooldown's wait.
		SetCreatedAt(at.UTC()).
		SetUpdatedAt(now).
		Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("delivery record of %s: %w", e.ID, err)
	}
	if !e.Resend || reg == nil {
		// A registration's first email is what its watchers are shown
		// already (QUEUED since the registration, see Latest).
		return nil, nil
	}
	d := view(rec.ID, Queued, now, 0, "")
	if s.local != nil {
		return func() { s.local(*reg, *d) }, nil
	}
	if err := outbox.Enqueue(ctx, tx, now, event.DeliveryChangedTopic, event.DeliveryChanged{Registration: *reg, Delivery: *d}); err != nil {
		return nil, err
	}
	return s.woken, nil
}

// Forget deletes, in tx, the record of the email event id (a waiting
// email that another took the place of, never to go out).
func (s *Store) Forget(ctx context.Context, tx *ent.Tx, id string) error {
	if _, err := tx.Delivery.Delete().Where(entdelivery.EventID(id)).Exec(ctx); err != nil {
		return fmt.Errorf("forget delivery record of %s: %w", id, err)
	}
	return nil
}

// Erase, for an erasure in tx (admin deleteUser, UNVERIFIED_TTL), keeps
// of each record matching ps only what names neither the user nor the
// address: its event's id, kind and topic, as SENT at now. Deleted, the
// record would be made again by the first mailer to get its event (one
// the relay had published, one the broker brings back for a retry, one
// held for its cooldown that the janitor's erasure leaves in the outbox),
// which would send the email to the erased address and write it down
// once more; found SENT, the event is turned away. TrimSent removes these
// with the other sent records, long after any copy of the event can come.
func Erase(ctx context.Context, tx *ent.Tx, now time.Time, ps ...predicate.Delivery) error {
	recs, err := tx.Delivery.Query().Where(ps...).
		Select(entdelivery.FieldEventID, entdelivery.FieldKind, entdelivery.FieldTopic).
		All(ctx)
	if err != nil || len(recs) == 0 {
		return err
	}
	ids := make([]int, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	if _, err := tx.Delivery.Delete().Where(entdelivery.IDIn(ids...)).Exec(ctx); err != nil {
		return err
	}
	now = now.UTC()
	// In chunks, within PostgreSQL's bound on a statement's parameters.
	for chunk := range slices.Chunk(recs, 1000) {
		creates := make([]*ent.DeliveryCreate, len(chunk))
		for i, r := range chunk {
			creates[i] = tx.Delivery.Create().
				SetEventID(r.EventID).
				SetKind(r.Kind).
				SetTopic(r.Topic).
				SetState(Sent).
				SetReason("erased").
				SetCreatedAt(now).
				SetUpdatedAt(now)
		}
		if err := tx.Delivery.CreateBulk(creates...).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Begin returns the record of e and reserves it for the caller for
// SendLease unless it is SENT, FAILED or reserved by another delivery of
// the same event (then Busy says for how long). The record is mostly
// there already (Queue); an event written without one (by an earlier
// release, or a replayed message) gets it here, QUEUED on first sight.
// The reservation ends with MarkSent, MarkDeferred or MarkFailed.
func (s *Store) Begin(ctx context.Context, e Event) (Record, error) {
	now := s.now().UTC()
	until := now.Add(SendLease)
	// Take the reservation if it is free: one conditional update, so of
	// two racing copies exactly one wins. The record it took is read in
	// the same transaction: on SQLite that read is the writer's, whose page
	// cache stays warm, where a reader's is emptied by every commit and
	// loads each page again (BENCHMARKS.md, "Reads in the writer's turn":
	// on the readers this read was a seventh of the mail path's CPU).
	var rec *ent.Delivery
	claimed := 0
	err := database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		var err error
		claimed, err = tx.Delivery.Update().
			Where(
				entdelivery.EventID(e.ID),
				entdelivery.StateIn(Queued, Deferred),
				entdelivery.Or(entdelivery.SendingUntilIsNil(), entdelivery.SendingUntilLTE(now)),
			).
			SetSendingUntil(until).
			Save(ctx)
		if err != nil || claimed == 0 {
			return err
		}
		rec, err = tx.Delivery.Query().Where(entdelivery.EventID(e.ID)).Only(ctx)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("delivery record of %s: %w", e.ID, err)
	}
	if claimed == 0 {
		r, createErr := s.create(ctx, e, now, until)
		if createErr == nil {
			return r, nil
		}
		// Seen before (the insert did nothing): SENT, FAILED or reserved
		// by another delivery. Or the insert failed: read what is there.
		if rec, err = s.db.Delivery.Query().Where(entdelivery.EventID(e.ID)).Only(ctx); err != nil {
			return Record{}, fmt.Errorf("delivery record of %s: %w", e.ID, errors.Join(createErr, err))
		}
	}
	r := Record{ID: rec.ID, State: rec.State, Attempts: rec.Attempts, Registration: rec.Registration, Since: rec.CreatedAt.UTC(), UserID: e.UserID, Address: e.Address, payload: e.Payload}
	if claimed == 0 && rec.SendingUntil != nil && (rec.State == Queued || rec.State == Deferred) {
		r.Busy = max(rec.SendingUntil.Sub(now), time.Second)
	}
	return r, nil
}

// create writes the record of e, reserved until until; an error when
// there is one already.
func (s *Store) create(ctx context.Context, e Event, now, until time.Time) (Record, error) {
	reg := e.registration()
	// A registration's first email needs no announcement: until its
	// record exists its watchers are shown it QUEUED already (see Latest).
	// A later one (a resend) replaces the state they see, so it is
	// announced, in the insert's transaction.
	announce := reg
	if reg != nil && !e.Resend {
		earlier, err := s.db.Delivery.Query().Where(entdelivery.RegistrationEQ(*reg), entdelivery.EventIDNEQ(e.ID)).Exist(ctx)
		if err != nil {
			return Record{}, fmt.Errorf("delivery record of %s: %w", e.ID, err)
		}
		if !earlier {
			announce = nil
		}
	}
	var id int
	err := s.write(ctx, announce, nil, func(c *ent.Client) (*status.Delivery, error) {
		var err error
		id, err = e.create(c).
			SetCreatedAt(now).
			SetUpdatedAt(now).
			SetSendingUntil(until).
			OnConflictColumns(entdelivery.FieldEventID).
			DoNothing().
			ID(ctx)
		return &status.Delivery{State: status.Queued, At: now, Email: id}, err
	})
	if err != nil {
		return Record{}, err
	}
	return Record{ID: id, State: Queued, Registration: reg, Since: now, UserID: e.UserID, Address: e.Address, payload: e.Payload}, nil
}

// write runs f, and, when reg is set and f reports a change, enqueues the
// change for reg's watchers in the same transaction; public, when set,
// runs in it too (a failure's public event). A record without a
// registration or a public event costs no transaction: nobody is told.
func (s *Store) write(ctx context.Context, reg *uuid.UUID, public func(*ent.Tx) (bool, error), f func(*ent.Client) (*status.Delivery, error)) error {
	if reg == nil && public == nil {
		_, err := f(s.db)
		return err
	}
	announced := false
	var heard *status.Delivery // for s.local, once committed
	err := database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		d, err := f(tx.Client())
		if err != nil {
			return err
		}
		if public != nil {
			if announced, err = public(tx); err != nil {
				return err
			}
		}
		if reg == nil || d == nil {
			return nil
		}
		if s.local != nil {
			heard = d
			return nil
		}
		announced = true
		return outbox.Enqueue(ctx, tx, d.At, event.DeliveryChangedTopic, event.DeliveryChanged{Registration: *reg, Delivery: *d})
	})
	if err != nil {
		return err
	}
	if heard != nil {
		s.local(*reg, *heard)
	}
	if announced {
		s.woken()
	}
	return nil
}

// woken tells the announce hook that a change committed.
func (s *Store) woken() {
	if s.announce != nil {
		s.announce()
	}
}

// Release ends Begin's reservation without changing the record: the
// caller stopped before it tried to send.
func (s *Store) Release(ctx context.Context, r Record) error {
	if err := updateRecord(ctx, s.db, r.ID, func(u *ent.DeliveryUpdate) { u.ClearSendingUntil() }); err != nil {
		return fmt.Errorf("delivery record %d: release: %w", r.ID, err)
	}
	return nil
}

// updateRecord changes the record id with set in one UPDATE. Not ent's
// UpdateOneID: it reads the whole row back after the UPDATE to return it,
// a second statement on SQLite's single writer for each email, and outside
// a transaction it opens one (MarkSent was 15 % of the mail backlog's CPU,
// BenchmarkMailThroughput, pprof).
func updateRecord(ctx context.Context, c *ent.Client, id int, set func(*ent.DeliveryUpdate)) error {
	u := c.Delivery.Update().Where(entdelivery.ID(id))
	set(u)
	n, err := u.Save(ctx)
	if err == nil && n == 0 {
		err = ErrGone
	}
	return err
}

// ErrGone: the record to change is no longer there (erased with its
// user, see Erase): nothing is left to record.
var ErrGone = errors.New("the record is gone")

// MarkSent records that the server accepted the email, and drops the
// event's payload if a dead letter kept it (a replayed one): nothing left
// to replay.
//
// The write goes before ordinary ones on SQLite's single writer and
// commits at once (database.Urgent), together with the urgent writes
// queued behind it: from the server's 250 until this commit, a crash
// means a second copy of an email that was delivered, so the window is
// kept as short as the database allows, not as long as the queue of
// requests in front of it or the group it joins. (Committing with its
// group instead, the mail backlog drained about 9 % faster: not worth a
// longer window.)
func (s *Store) MarkSent(ctx context.Context, r Record, tried bool) error {
	return s.mark(database.Urgent(ctx), r, Sent, tried, "")
}

// MarkDeferred records a failure that will be retried.
func (s *Store) MarkDeferred(ctx context.Context, r Record, tried bool, reason string) error {
	return s.mark(ctx, r, Deferred, tried, reason)
}

// MarkFailed records a failure no retry will fix: a dead letter, with the
// event's payload for a replay. Only a dead letter stores it: every email
// carried it from QUEUED to SENT before, some 600 bytes written twice on
// SQLite's single writer, to replay the few that fail. The address's
// user, if there is one, is the subject of a verifier.email.failed.v1 with
// reason, in the same transaction, so other services hear of it exactly
// when the record says FAILED.
func (s *Store) MarkFailed(ctx context.Context, r Record, tried bool, reason string) error {
	return s.mark(ctx, r, Failed, tried, reason)
}

// MarkUnsendable records as a dead letter an event that could not be made
// into an email (it does not decode, its token does not open with this
// key): a fault of ours an operator fixes and replays, not news about the
// address, so no public event.
func (s *Store) MarkUnsendable(ctx context.Context, r Record, reason string) error {
	r.UserID, r.Address = uuid.Nil, ""
	return s.mark(ctx, r, Failed, false, reason)
}

// emailFailed enqueues verifier.email.failed.v1 for r's user in tx, and
// reports whether there was one: the record's user, or the user who holds
// its address (a notice to an address already registered names none).
func emailFailed(ctx context.Context, tx *ent.Tx, events publicevent.Writer, r Record, reason string, at time.Time) (bool, error) {
	id := r.UserID
	if id == uuid.Nil {
		if r.Address == "" {
			return false, nil
		}
		u, err := tx.User.Query().Where(user.Email(r.Address)).Only(ctx)
		if ent.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		id = u.ID
	}
	err := events.Enqueue(ctx, tx, at, publicevent.EmailFailed{UserID: id, Email: r.Address, Reason: reason, FailedAt: at})
	return err == nil, err
}

// maxReason is the reason column's length.
const maxReason = 500

func (s *Store) mark(ctx context.Context, r Record, state entdelivery.State, tried bool, reason string) error {
	now := s.now().UTC()
	reason = truncate(reason, maxReason)
	var public func(*ent.Tx) (bool, error)
	if state == Failed && r.State != Failed && (r.UserID != uuid.Nil || r.Address != "") {
		public = func(tx *ent.Tx) (bool, error) { return emailFailed(ctx, tx, s.events, r, reason, now) }
	}
	err := s.write(ctx, r.Registration, public, func(c *ent.Client) (*status.Delivery, error) {
		attempts := r.Attempts
		if tried {
			attempts++
		}
		err := updateRecord(ctx, c, r.ID, func(u *ent.DeliveryUpdate) {
			u.SetState(state).SetReason(reason).SetUpdatedAt(now).ClearSendingUntil()
			if tried {
				u.AddAttempts(1)
			}
			switch {
			case state == Sent:
				u.ClearPayload()
			case state == Failed && len(r.payload) > 0:
				u.SetPayload(r.payload)
			}
		})
		if err != nil {
			return nil, err
		}
		if state == r.State && !tried {
			// Nothing a watcher could see changed (a retry that never
			// reached the server, e.g. while it is down): no event per
			// retry.
			return nil, nil
		}
		if r.Registration != nil {
			// Only the registration's latest email is shown: an older
			// one settling late (after a resend) must not overwrite it.
			newer, err := c.Delivery.Query().Where(entdelivery.RegistrationEQ(*r.Registration), entdelivery.IDGT(r.ID)).Exist(ctx)
			if err != nil || newer {
				return nil, err
			}
		}
		return view(r.ID, state, now, attempts, reason), nil
	})
	if err != nil {
		return fmt.Errorf("delivery record %d: mark %s: %w", r.ID, state, err)
	}
	return nil
}

// view is the state of record id as a registration's watchers see it.
func view(id int, state entdelivery.State, at time.Time, attempts int, reason string) *status.Delivery {
	// To the microsecond, as every other time the API shows (PostgreSQL
	// keeps no more): a change pushed live from the clock and the same
	// change read back from the record then show one time.
	d := &status.Delivery{State: status.DeliveryState(state), At: at.UTC().Truncate(time.Microsecond), Attempts: attempts, Email: id}
	if reason != "" && (state == Deferred || state == Failed) {
		d.Reason = &reason
	}
	return d
}

// Latest returns the state of registration's latest email, or nil when it
// has none yet (its event has not reached a mailer): the email is then
// waiting to be sent, QUEUED to whoever asks, and its record's creation is
// not announced.
func (s *Store) Latest(ctx context.Context, registration uuid.UUID) (*status.Delivery, error) {
	rec, err := s.db.Delivery.Query().
		Where(entdelivery.RegistrationEQ(registration)).
		Order(ent.Desc(entdelivery.FieldID)).
		Select(entdelivery.FieldState, entdelivery.FieldUpdatedAt, entdelivery.FieldAttempts, entdelivery.FieldReason).
		First(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest delivery of %s: %w", registration, err)
	}
	return view(rec.ID, rec.State, rec.UpdatedAt, rec.Attempts, rec.Reason), nil
}

// OfUsers returns every email to each of users, newest first, in one
// query whatever their number: the records that name the user, and those
// of its registrations (records written before they named their user);
// owners maps each of the users' registrations to its user. A user with
// no email has an empty list.
func (s *Store) OfUsers(ctx context.Context, users []uuid.UUID, owners map[uuid.UUID]uuid.UUID) (map[uuid.UUID][]*status.Delivery, error) {
	registrations := make([]uuid.UUID, 0, len(owners))
	for r := range owners {
		registrations = append(registrations, r)
	}
	recs, err := s.db.Delivery.Query().
		Where(entdelivery.Or(entdelivery.UserIDIn(users...), entdelivery.RegistrationIn(registrations...))).
		Order(ent.Desc(entdelivery.FieldCreatedAt), ent.Desc(entdelivery.FieldID)).
		Select(entdelivery.FieldState, entdelivery.FieldUpdatedAt, entdelivery.FieldAttempts, entdelivery.FieldReason, entdelivery.FieldUserID, entdelivery.FieldRegistration).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("deliveries of %d users: %w", len(users), err)
	}
	out := make(map[uuid.UUID][]*status.Delivery, len(users))
	for _, u := range users {
		out[u] = []*status.Delivery{}
	}
	for _, r := range recs {
		// Listed for the user it names and for its registration's owner,
		// once where they are the same.
		v := view(r.ID, r.State, r.UpdatedAt, r.Attempts, r.Reason)
		var named uuid.UUID
		if r.UserID != nil {
			named = *r.UserID
			if list, ok := out[named]; ok {
				out[named] = append(list, v)
			}
		}
		if r.Registration != nil {
			if owner, ok := owners[*r.Registration]; ok && owner != named {
				out[owner] = append(out[owner], v)
			}
		}
	}
	return out, nil
}

// List returns up to limit records in state, oldest change first.
func (s *Store) List(ctx context.Context, state entdelivery.State, limit int) ([]*ent.Delivery, error) {
	return s.db.Delivery.Query().
		Where(entdelivery.StateEQ(state)).
		Order(ent.Asc(entdelivery.FieldUpdatedAt), ent.Asc(entdelivery.FieldID)).
		Limit(limit).
		All(ctx)
}

// Errors of Replay.
var (
	ErrNotFound      = errors.New("no such email event")
	ErrNotDeadLetter = errors.New("the email event is not a dead letter (state FAILED)")
	// ErrSettling: the event's first trip is still in the outbox (the
	// relay deletes it once the broker has settled the refusal, moments
	// after the record turned FAILED); a replay then would collide with
	// it. Try again shortly.
	ErrSettling = errors.New("the email event's failure is still being settled; try again in a moment")
	// ErrNotKept: the record no longer holds its event (written before
	// records kept one, or its event id is not one the outbox could have
	// given): there is nothing to send again.
	ErrNotKept = errors.New("the email event was not kept")
)

// maxEventIDLen is the longest event id a record holds (ent/schema's
// event_id).
const maxEventIDLen = 64

// Replay puts a dead letter's event back into the outbox, under its own
// id, and marks its record QUEUED, in one transaction: the relay publishes
// it and the mailer tries again.
func (s *Store) Replay(ctx context.Context, eventID string) error {
	if len(eventID) > maxEventIDLen || !utf8.ValidString(eventID) || strings.ContainsRune(eventID, 0) {
		// No record holds it, and PostgreSQL refuses such text in a
		// query with an error that is no "not found".
		return fmt.Errorf("%q: %w", eventID, ErrNotFound)
	}
	err := database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		rec, err := tx.Delivery.Query().Where(entdelivery.EventID(eventID)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
			return fmt.Errorf("%s: %w", eventID, ErrNotFound)
		case err != nil:
			return err
		case rec.State != Failed:
			return fmt.Errorf("%s is %s: %w", eventID, rec.State, ErrNotDeadLetter)
		case len(rec.Payload) == 0:
			return fmt.Errorf("%s: %w", eventID, ErrNotKept)
		}
		id, err := uuid.Parse(rec.EventID)
		if err != nil {
			return fmt.Errorf("%s is not an outbox event id: %w", eventID, ErrNotKept)
		}
		if pending, err := tx.OutboxEvent.Query().Where(outboxevent.EventID(id)).Exist(ctx); err != nil {
			return err
		} else if pending {
			return fmt.Errorf("%s: %w", eventID, ErrSettling)
		}
		now := s.now().UTC()
		if err := outbox.Requeue(ctx, tx, now, id, rec.Topic, rec.Payload); err != nil {
			return err
		}
		if err := tx.Delivery.UpdateOneID(rec.ID).SetState(Queued).SetReason("").SetUpdatedAt(now).Exec(ctx); err != nil {
			return err
		}
		if rec.Registration == nil {
			return nil
		}
		// Its watchers see it queued again (the attempts so far stay).
		d := view(rec.ID, Queued, now, rec.Attempts, "")
		return outbox.Enqueue(ctx, tx, now, event.DeliveryChangedTopic, event.DeliveryChanged{Registration: *rec.Registration, Delivery: *d})
	})
	if err != nil {
		return err
	}
	// The relay publishes the replayed event (and the change) now.
	s.woken()
	return nil
}

// ReplayAll replays every dead letter and returns how many it replayed.
func (s *Store) ReplayAll(ctx context.Context) (int, error) {
	n := 0
	for {
		// Replayed rows leave state FAILED, so each batch is new ones.
		recs, err := s.List(ctx, Failed, 100)
		if err != nil || len(recs) == 0 {
			return n, err
		}
		for _, rec := range recs {
			if err := s.Replay(ctx, rec.EventID); err != nil {
				return n, err
			}
			n++
		}
	}
}

// TrimSent deletes SENT records last changed before cutoff and returns how
// many went. FAILED records stay until an operator replays them.
func (s *Store) TrimSent(ctx context.Context, cutoff time.Time) (int, error) {
	return s.db.Delivery.Delete().
		Where(entdelivery.StateEQ(Sent), entdelivery.UpdatedAtLT(cutoff.UTC())).
		Exec(ctx)
}

// Counts returns how many records are in each state but SENT (which only
// grows, and is counted by verifier_emails_sent_total).
func (s *Store) Counts(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		State entdelivery.State `json:"state"`
		Count int               `json:"count"`
	}
	err := s.db.Delivery.Query().
		Where(entdelivery.StateNEQ(Sent)).
		GroupBy(entdelivery.FieldState).
		Aggregate(ent.Count()).
		Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	out := map[string]int{Queued.String(): 0, Deferred.String(): 0, Failed.String(): 0}
	for _, r := range rows {
		out[r.State.String()] = r.Count
	}
	return out, nil
}

// truncate bounds s to n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Copy is an email as the dev outbox rendered it, on its record.
type Copy struct {
	To, Subject, Text, HTML string
	State                   entdelivery.State
	// At is when the record last changed.
	At time.Time
}

// KeepCopy stores the rendered email on the record of event eventID (the
// dev outbox's "send"). A redelivered event overwrites it with the same.
// Only while the record is being sent (QUEUED or DEFERRED): one erased
// meanwhile (see Erase) names the address nowhere again.
func (s *Store) KeepCopy(ctx context.Context, eventID, subject, text, html string) error {
	n, err := s.db.Delivery.Update().
		Where(entdelivery.EventID(eventID), entdelivery.StateIn(Queued, Deferred)).
		SetSubject(subject).
		SetText(text).
		SetHTML(html).
		Save(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("delivery record of %s: keep copy: %w", eventID, err)
	case n == 0:
		return fmt.Errorf("delivery record of %s: keep copy: %w", eventID, ErrNotFound)
	}
	return nil
}

// Copies returns the newest n kept emails, newest first.
func (s *Store) Copies(ctx context.Context, n int) ([]Copy, error) {
	recs, err := s.db.Delivery.Query().
		Where(entdelivery.SubjectNotNil()).
		Order(ent.Desc(entdelivery.FieldID)).
		Limit(n).
		All(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Copy, 0, len(recs))
	for _, r := range recs {
		c := Copy{To: r.Address, Subject: *r.Subject, State: r.State, At: r.UpdatedAt}
		if r.Text != nil {
			c.Text = *r.Text
		}
		if r.HTML != nil {
			c.HTML = *r.HTML
		}
		out = append(out, c)
	}
	return out, nil
}

// TrimCopies drops the kept emails of all but the newest keep records (the
// records themselves stay) and returns how many it dropped.
func (s *Store) TrimCopies(ctx context.Context, keep int) (int, error) {
	ids, err := s.db.Delivery.Query().
		Where(entdelivery.SubjectNotNil()).
		Order(ent.Desc(entdelivery.FieldID)).
		Offset(keep).
		IDs(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	return s.db.Delivery.Update().
		Where(entdelivery.IDIn(ids...)).
		ClearSubject().
		ClearText().
		ClearHTML().
		Save(ctx)
}
