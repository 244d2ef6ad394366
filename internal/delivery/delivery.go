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
package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/internal/outbox"
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
	db  *ent.Client
	now func() time.Time
}

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
	Topic   string
	Payload []byte
}

// Record is what the mailer needs of a record.
type Record struct {
	ID       int
	State    entdelivery.State
	Attempts int
	// Since is when the mailer first saw the event.
	Since time.Time
	// Busy is set when another delivery of the same event holds the
	// record (it is sending the email now): wait this long, then look
	// again, rather than send a second copy.
	Busy time.Duration
}

// SendLease is how long Begin reserves a record for the caller's send:
// longer than one SMTP send may take (mail.SMTP's timeouts), short enough
// that after a crash mid-send the redelivery waits only briefly.
const SendLease = 30 * time.Second

// Begin returns the record of e, creating it QUEUED on first sight, and
// reserves it for the caller for SendLease unless it is SENT, FAILED or
// reserved by another delivery of the same event (then Busy says for how
// long). The reservation ends with MarkSent, MarkDeferred or MarkFailed.
func (s *Store) Begin(ctx context.Context, e Event) (Record, error) {
	now := s.now().UTC()
	until := now.Add(SendLease)
	id, err := s.db.Delivery.Create().
		SetEventID(e.ID).
		SetKind(e.Kind).
		SetAddress(truncate(e.Address, 254)).
		SetTopic(e.Topic).
		SetPayload(e.Payload).
		SetCreatedAt(now).
		SetUpdatedAt(now).
		SetSendingUntil(until).
		OnConflictColumns(entdelivery.FieldEventID).
		DoNothing().
		ID(ctx)
	if err == nil {
		return Record{ID: id, State: Queued, Since: now}, nil
	}
	// Seen before (the insert did nothing), or the insert failed: take
	// the reservation if it is free (one conditional update, so of two
	// racing copies exactly one wins), then read what is there.
	claimed, cerr := s.db.Delivery.Update().
		Where(
			entdelivery.EventID(e.ID),
			entdelivery.StateIn(Queued, Deferred),
			entdelivery.Or(entdelivery.SendingUntilIsNil(), entdelivery.SendingUntilLTE(now)),
		).
		SetSendingUntil(until).
		Save(ctx)
	rec, qerr := s.db.Delivery.Query().Where(entdelivery.EventID(e.ID)).Only(ctx)
	if qerr != nil || cerr != nil {
		return Record{}, fmt.Errorf("delivery record of %s: %w", e.ID, errors.Join(err, cerr, qerr))
	}
	r := Record{ID: rec.ID, State: rec.State, Attempts: rec.Attempts, Since: rec.CreatedAt.UTC()}
	if claimed == 0 && rec.SendingUntil != nil && (rec.State == Queued || rec.State == Deferred) {
		r.Busy = max(rec.SendingUntil.Sub(now), time.Second)
	}
	return r, nil
}

// Release ends Begin's reservation without changing the record: the
// caller stopped before it tried to send.
func (s *Store) Release(ctx context.Context, r Record) error {
	if err := s.db.Delivery.UpdateOneID(r.ID).ClearSendingUntil().Exec(ctx); err != nil {
		return fmt.Errorf("delivery record %d: release: %w", r.ID, err)
	}
	return nil
}

// MarkSent records that the server accepted the email, and drops the
// event's payload: nothing left to replay.
func (s *Store) MarkSent(ctx context.Context, r Record, tried bool) error {
	return s.mark(ctx, r, Sent, tried, "", true)
}

// MarkDeferred records a failure that will be retried.
func (s *Store) MarkDeferred(ctx context.Context, r Record, tried bool, reason string) error {
	return s.mark(ctx, r, Deferred, tried, reason, false)
}

// MarkFailed records a failure no retry will fix: a dead letter, payload
// kept for a replay.
func (s *Store) MarkFailed(ctx context.Context, r Record, tried bool, reason string) error {
	return s.mark(ctx, r, Failed, tried, reason, false)
}

// maxReason is the reason column's length.
const maxReason = 500

func (s *Store) mark(ctx context.Context, r Record, state entdelivery.State, tried bool, reason string, clearPayload bool) error {
	u := s.db.Delivery.UpdateOneID(r.ID).
		SetState(state).
		SetReason(truncate(reason, maxReason)).
		SetUpdatedAt(s.now().UTC()).
		ClearSendingUntil()
	if tried {
		u.AddAttempts(1)
	}
	if clearPayload {
		u.ClearPayload()
	}
	if err := u.Exec(ctx); err != nil {
		return fmt.Errorf("delivery record %d: mark %s: %w", r.ID, state, err)
	}
	return nil
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
)

// Replay puts a dead letter's event back into the outbox, under its own
// id, and marks its record QUEUED, in one transaction: the relay publishes
// it and the mailer tries again.
func (s *Store) Replay(ctx context.Context, eventID string) error {
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	rec, err := tx.Delivery.Query().Where(entdelivery.EventID(eventID)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		return fmt.Errorf("%s: %w", eventID, ErrNotFound)
	case err != nil:
		return err
	case rec.State != Failed:
		return fmt.Errorf("%s is %s: %w", eventID, rec.State, ErrNotDeadLetter)
	case len(rec.Payload) == 0:
		return fmt.Errorf("%s: the event was not kept", eventID)
	}
	id, err := uuid.Parse(rec.EventID)
	if err != nil {
		return fmt.Errorf("%s: not an outbox event id", eventID)
	}
	now := s.now().UTC()
	if err := outbox.Requeue(ctx, tx, now, id, rec.Topic, rec.Payload); err != nil {
		return err
	}
	err = tx.Delivery.UpdateOneID(rec.ID).SetState(Queued).SetReason("").SetUpdatedAt(now).Exec(ctx)
	if err != nil {
		return err
	}
	return tx.Commit()
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
