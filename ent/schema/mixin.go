package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
)

// CreateTime records when a row was written. Timestamps are set by the
// service's clock (not a database default) so tests can control time.
type CreateTime struct{ mixin.Schema }

// Fields of the CreateTime mixin.
func (CreateTime) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable(),
	}
}

// secretHash is a token's SHA-256 digest in hex: the only form in which a
// token is stored, so a database leak yields nothing that can be clicked.
func secretHash() ent.Field {
	return field.String("token_hash").MaxLen(64).NotEmpty().Unique().Immutable().Sensitive()
}
