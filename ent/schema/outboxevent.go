package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// OutboxEvent is an event written in the same transaction as the change it
// describes. The relay publishes it and deletes it once the broker confirms;
// it is deleted rather than flagged because its payload may carry a live
// verification token that should not outlive its delivery.
type OutboxEvent struct{ ent.Schema }

// Mixin of OutboxEvent.
func (OutboxEvent) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of OutboxEvent.
func (OutboxEvent) Fields() []ent.Field {
	return []ent.Field{
		// Sent as the message id, so consumers can recognise a redelivery.
		field.UUID("event_id", uuid.UUID{}).Default(uuid.New).Unique().Immutable(),
		field.String("topic").NotEmpty().Immutable(),
		field.Bytes("payload").Immutable().Sensitive(),
		// A relay claims a row until this instant; another replica's relay
		// takes it over only after the claim lapses (a crashed process).
		field.Time("available_at"),
		field.String("claim").Optional(),
		field.Int("attempts").Default(0),
		// The W3C traceparent of the span that wrote the event, so the
		// relay's publish continues the request's trace (empty: none).
		// Optional: rows from before it, and from untraced writes, have
		// none.
		field.String("traceparent").Optional().Immutable().MaxLen(traceparentMaxLen),
	}
}

// traceparentMaxLen fits a W3C traceparent (55 characters in version 00)
// with room for a later version's extra fields.
const traceparentMaxLen = 128

// Indexes of OutboxEvent. The relay's look for due events reads this
// index alone (ids and topics, some topics left out), never the rows
// with their payloads.
func (OutboxEvent) Indexes() []ent.Index {
	return []ent.Index{index.Fields("available_at", "topic")}
}
