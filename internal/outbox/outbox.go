// Package outbox makes "change the database, then publish an event" atomic.
// Enqueue writes the event in the caller's transaction; the Relay publishes
// committed events and deletes each only after the broker confirmed it. A
// crash or a broker outage at any point leaves the event in the table, to
// be published later: at least once, never zero times.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/tracing"
)

// Enqueue adds an event with topic and a JSON payload to tx. It is
// published after tx commits; call Relay.Wake then to skip the poll delay.
// The row keeps ctx's trace context, which the relay's publish continues.
func Enqueue(ctx context.Context, tx *ent.Tx, now time.Time, topic string, payload any) error {
	_, err := EnqueueAt(ctx, tx, now, now, topic, payload)
	return err
}

// EnqueueAt is Enqueue for an event the relay must not publish before at
// (an email held back by a cooldown). It returns the event's id.
func EnqueueAt(ctx context.Context, tx *ent.Tx, now, at time.Time, topic string, payload any) (uuid.UUID, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return uuid.Nil, fmt.Errorf("outbox: encode %s: %w", topic, err)
	}
	ev, err := tx.OutboxEvent.Create().
		SetTopic(topic).
		SetPayload(body).
		SetCreatedAt(now).
		SetAvailableAt(at).
		SetTraceparent(tracing.TraceParent(ctx)).
		Save(ctx)
	if err != nil {
		return uuid.Nil, fmt.Errorf("outbox: write %s: %w", topic, err)
	}
	return ev.EventID, nil
}

// EnqueueRaw adds an event whose id and encoded payload the caller chose
// (a public event, whose id is inside its own body), in tx.
func EnqueueRaw(ctx context.Context, tx *ent.Tx, now time.Time, id uuid.UUID, topic string, payload []byte) error {
	err := tx.OutboxEvent.Create().
		SetEventID(id).
		SetTopic(topic).
		SetPayload(payload).
		SetCreatedAt(now).
		SetAvailableAt(now).
		SetTraceparent(tracing.TraceParent(ctx)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("outbox: write %s: %w", topic, err)
	}
	return nil
}

// Requeue adds an event to tx again with its original id and payload (an
// operator replaying a dead letter), so consumers recognise it as the same
// event.
func Requeue(ctx context.Context, tx *ent.Tx, now time.Time, id uuid.UUID, topic string, payload []byte) error {
	return EnqueueRaw(ctx, tx, now, id, topic, payload)
}
