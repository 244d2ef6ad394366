package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"github.com/google/uuid"
)

// User is a registered address and its verification state.
type User struct{ ent.Schema }

// Mixin of User.
func (User) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("id", uuid.UUID{}).Default(uuid.New),
		// Normalised (trimmed, lower-cased) so that one person cannot hold two
		// accounts by changing case.
		field.String("email").MaxLen(254).NotEmpty().Unique(),
		// argon2id in PHC string form.
		field.String("password_hash").Sensitive(),
		field.Enum("status").Values("UNVERIFIED", "VERIFIED").Default("UNVERIFIED"),
		field.Time("verified_at").Optional().Nillable(),
	}
}

// Edges of User.
func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("verification_tokens", VerificationToken.Type),
		edge.To("registrations", Registration.Type),
	}
}
