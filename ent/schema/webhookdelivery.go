package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// WebhookDelivery is one public event on its way to one webhook endpoint.
// One row per (event, endpoint) makes every endpoint independent: a dead
// one keeps its own rows retrying for a day while the others are done, and
// the row, not a process's memory, is what survives a restart. A FAILED row
// is the record of a delivery given up on, to list and replay.
type WebhookDelivery struct{ ent.Schema }

// Mixin of WebhookDelivery.
func (WebhookDelivery) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of WebhookDelivery.
func (WebhookDelivery) Fields() []ent.Field {
	return []ent.Field{
		// The endpoint's URL, one of WEBHOOK_URL.
		field.String("endpoint").NotEmpty().MaxLen(2048).Immutable(),
		// The CloudEvents id: webhook-id, the same on every attempt.
		field.UUID("event_id", uuid.UUID{}).Immutable(),
		field.String("type").Immutable(),
		// The user the event is about (its CloudEvents subject), set by
		// Handle, so erasing a user finds its deliveries by the index, not
		// by reading every payload. NULL on rows written before the column
		// was added.
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		// The CloudEvents envelope, POSTed as is. Public events carry no
		// secret, but they do carry addresses.
		field.Bytes("payload").Immutable().Sensitive(),
		field.Enum("state").Values("PENDING", "DELIVERED", "FAILED").Default("PENDING"),
		// POSTs made so far.
		field.Int("attempts").Default(0),
		// When the next attempt is due; while a dispatcher holds the row,
		// when its lease lapses.
		field.Time("next_attempt_at"),
		// The dispatcher holding the row, "" when none.
		field.String("claim").Default(""),
		// Why the last attempt failed, in plain words (the status code, a
		// timeout); never the response body.
		field.String("last_error").MaxLen(500).Default(""),
		// Since when this delivery has been retried: giving up is counted
		// from here, and a replay starts it again.
		field.Time("pending_since"),
		field.Time("updated_at").Default(time.Now),
	}
}

// Indexes of WebhookDelivery.
func (WebhookDelivery) Indexes() []ent.Index {
	return []ent.Index{
		// A redelivered event makes no second row.
		index.Fields("event_id", "endpoint").Unique(),
		// The dispatcher's claim: due rows of one endpoint, oldest first.
		index.Fields("endpoint", "state", "next_attempt_at"),
		// Listing failed deliveries.
		index.Fields("state", "updated_at"),
		// Erasing a user's deliveries (account's eraseWebhooks), and the
		// legacy rows without a user.
		index.Fields("user_id"),
	}
}
