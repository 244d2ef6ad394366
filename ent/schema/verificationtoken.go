package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// VerificationToken is one emailed link. Every unexpired token of the
// address's current registration works, so a resend never breaks the link
// in an earlier email; a superseded registration's tokens do not.
type VerificationToken struct{ ent.Schema }

// Mixin of VerificationToken.
func (VerificationToken) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of VerificationToken.
func (VerificationToken) Fields() []ent.Field {
	return []ent.Field{
		secretHash(),
		field.UUID("user_id", uuid.UUID{}).Immutable(),
		field.UUID("registration_id", uuid.UUID{}).Immutable(),
		field.Time("expires_at").Immutable(),
		field.Time("used_at").Optional().Nillable(),
	}
}

// Edges of VerificationToken.
func (VerificationToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("verification_tokens").Field("user_id").Unique().Required().Immutable(),
		edge.From("registration", Registration.Type).Ref("verification_tokens").Field("registration_id").Unique().Required().Immutable(),
	}
}

// Indexes of VerificationToken.
func (VerificationToken) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}
