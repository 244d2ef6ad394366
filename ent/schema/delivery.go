package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Delivery is the record of one email event: what the mailer did with it.
// The mailer reads it before sending, so a redelivered event whose email
// already went out is not sent twice, and writes SENT right after the SMTP
// server accepted the message, before the broker hears back. A FAILED row is
// the durable dead letter: it keeps the event's topic and payload so an
// operator can replay it (verifier dead-letters).
type Delivery struct{ ent.Schema }

// Mixin of Delivery.
func (Delivery) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of Delivery.
func (Delivery) Fields() []ent.Field {
	return []ent.Field{
		// The outbox event's id, which the broker carries as the message id.
		field.String("event_id").NotEmpty().MaxLen(64).Unique().Immutable(),
		// What the email is: verification, already_registered or
		// email_change_notice.
		field.String("kind").Immutable(),
		// The recipient as the event gave it; empty for an event that did
		// not decode.
		field.String("address").MaxLen(254).Default(""),
		// The registration (its watch token's registration id) the email
		// belongs to, so whoever watches it can be told what happened to
		// its email; unset for an event that carries none.
		field.UUID("registration", uuid.UUID{}).Optional().Nillable().Immutable(),
		// The user the email is to, when its event names one (set by the
		// mailer from the event), so the admin API lists every email to a
		// user, notices included, and erasing the user finds them all.
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.Enum("state").Values("QUEUED", "SENT", "DEFERRED", "FAILED").Default("QUEUED"),
		// SMTP attempts made (a retry on a fresh connection after a stale
		// pooled one is not an attempt).
		field.Int("attempts").Default(0),
		// Why the last attempt did not go through, in plain words and the
		// server's reply; never our host names or internal errors.
		field.String("reason").MaxLen(500).Default(""),
		// The event, kept until the email is sent so a dead letter can be
		// replayed as it was. The verification token in it is sealed.
		field.String("topic").Immutable(),
		field.Bytes("payload").Optional().Sensitive(),
		field.Time("updated_at").Default(time.Now),
		// While a mailer is sending this email: another copy of the event
		// (a redelivery racing the first, after a lost connection or a
		// lapsed outbox lease) waits until then instead of sending too.
		field.Time("sending_until").Optional().Nillable(),
		// The rendered email, kept only by the dev outbox (SMTP_URL empty)
		// so /dev/mail can show it: the text holds a live verification
		// link. Cleared on all but the newest records (see DevOutbox.Trim).
		field.String("subject").Optional().Nillable(),
		field.Text("text").Optional().Nillable().Sensitive(),
		field.Text("html").Optional().Nillable().Sensitive(),
	}
}

// Indexes of Delivery.
func (Delivery) Indexes() []ent.Index {
	// Listing dead letters, counting states for /metrics, and trimming old
	// SENT rows all go by state, oldest first.
	return []ent.Index{
		index.Fields("state", "updated_at"),
		// The latest email of a registration, for its watchers.
		index.Fields("registration", "created_at"),
		// A user's emails, newest first (admin API).
		index.Fields("user_id", "created_at"),
	}
}
