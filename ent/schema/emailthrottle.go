package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// EmailThrottle remembers when an address was last sent (or asked to be
// sent) an email. Rows exist for unregistered addresses too, so the cooldown
// answers the same whether or not the address has an account.
type EmailThrottle struct{ ent.Schema }

// Fields of EmailThrottle.
func (EmailThrottle) Fields() []ent.Field {
	return []ent.Field{
		field.String("email").MaxLen(254).NotEmpty().Unique(),
		// Unix milliseconds: an integer compares the same way on every
		// database, which the conditional upsert relies on.
		field.Int64("last_sent_ms"),
	}
}
