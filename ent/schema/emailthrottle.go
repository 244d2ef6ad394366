package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// EmailThrottle is the cooldown of one address: when an email to it last
// went out or is scheduled to, and which email, if any, waits for the
// cooldown to end. Rows exist for unregistered addresses too, so the cooldown answers
// the same whether or not the address has an account.
type EmailThrottle struct{ ent.Schema }

// Fields of EmailThrottle.
func (EmailThrottle) Fields() []ent.Field {
	return []ent.Field{
		// The address as account.NormalizeEmail gives it: a+1@x and a+2@x
		// have a cooldown each, as the contract has it. A record from a
		// version that keyed by inbox (account.CanonicalEmail) holds the
		// same kind of string, so the column needs no migration; see
		// account.replaceWaiting for how such a record is read.
		field.String("email").MaxLen(254).NotEmpty().Unique(),
		// Unix milliseconds: an integer compares the same way on every
		// database. May lie in the future: the time a waiting email is
		// scheduled for.
		field.Int64("last_sent_ms"),
		// The outbox event (its event_id) scheduled for last_sent_ms while
		// it has not gone out; a newer email replaces it rather than
		// queueing behind it. Stale once the relay has published it.
		field.UUID("pending_event", uuid.UUID{}).Optional().Nillable(),
	}
}
