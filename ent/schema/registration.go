package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Registration is one attempt to verify an address: a sign-up, or a
// signed-in user's change of address. It holds what the confirmation must
// match (the watch token its client follows it with, the one-time code of
// its emails) and what the confirmation decides (the password of a
// sign-up). Only a registration that is not superseded confirms: a newer
// sign-up of the same unverified address, or a newer change of address,
// makes every link, code and watch token of the older one answer
// INVALID_TOKEN, so an address is verified with the password of whoever
// proved they read its inbox.
//
// A repeated sign-up of a VERIFIED address gets a registration too, with no
// user (a decoy): its watch token answers UNVERIFIED for its whole life,
// exactly like a fresh one, so it reveals nothing. A change of address to
// one a VERIFIED account holds gets a stand-in of the requester's, whose
// code nothing matches: wrong codes count down against it as against any
// pending change, and nothing confirms it.
type Registration struct{ ent.Schema }

// Mixin of Registration.
func (Registration) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of Registration.
func (Registration) Fields() []ent.Field {
	return []ent.Field{
		// The id that its emails' delivery records and events carry
		// (event.DeliveryChanged), so a watcher can be shown its own
		// email's delivery without the token.
		field.UUID("id", uuid.UUID{}).Default(uuid.New),
		// SHA-256 of the watch token, in hex: the only form it is stored in.
		field.String("watch_token_hash").MaxLen(64).NotEmpty().Unique().Immutable().Sensitive(),
		// Unset for a decoy (a repeated sign-up of a VERIFIED address).
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		field.Enum("purpose").Values("SIGNUP", "CHANGE_EMAIL").Immutable(),
		// The address it verifies: for CHANGE_EMAIL the new one.
		field.String("email").MaxLen(254).NotEmpty().Immutable(),
		// argon2id (PHC string) of a sign-up's password: the user's
		// password once this registration confirms.
		field.String("password_hash").Optional().Nillable().Immutable().Sensitive(),
		// HMAC-SHA256 of the one-time code under the code key, in hex;
		// replaced by a resend (its code is new), with the tries kept.
		field.String("code_hash").MaxLen(64).Optional().Sensitive(),
		field.Time("code_expires_at").Optional().Nillable(),
		// Wrong codes tried; at MaxCodeAttempts the code is dead.
		field.Int("code_attempts").Default(0).NonNegative(),
		field.String("redirect_to").MaxLen(2048).Optional().Nillable().Immutable(),
		// BCP 47 tag of the emails' language.
		field.String("locale").MaxLen(35).Default("en").Immutable(),
		field.Time("superseded_at").Optional().Nillable(),
		// Until when its watch token works (TOKEN_TTL).
		field.Time("expires_at").Immutable(),
	}
}

// Edges of Registration.
func (Registration) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("registrations").Field("user_id").Unique().Immutable(),
		edge.To("verification_tokens", VerificationToken.Type),
	}
}

// Indexes of Registration.
func (Registration) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("expires_at"),
		// A resend or a new sign-up finds the user's newest registration.
		index.Fields("user_id", "created_at"),
		// The registrations of an address, which no user id names: a
		// decoy supersedes the address's earlier decoys with it, and the
		// per-address budget of wrong codes reads the newest first. The
		// table keeps every registration for at least TOKEN_TTL, so
		// without it both read the whole table.
		index.Fields("email", "created_at"),
	}
}
