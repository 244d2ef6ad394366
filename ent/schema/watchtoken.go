package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// WatchToken lets the registering client follow one registration. A token
// issued for a repeated registration has no user: it answers UNVERIFIED for
// its whole life, exactly like a fresh one, so it reveals nothing.
type WatchToken struct{ ent.Schema }

// Mixin of WatchToken.
func (WatchToken) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of WatchToken.
func (WatchToken) Fields() []ent.Field {
	return []ent.Field{
		secretHash(),
		field.UUID("user_id", uuid.UUID{}).Optional().Nillable().Immutable(),
		// The registration this token follows, by the id that its emails'
		// delivery records and events carry (event.DeliveryChanged), so a
		// watcher can be shown its own email's delivery without the token.
		// Optional only because tokens issued before the column have none;
		// every new token gets one.
		field.UUID("registration", uuid.UUID{}).Default(uuid.New).Optional().Nillable().Unique().Immutable(),
		field.Time("expires_at").Immutable(),
	}
}

// Edges of WatchToken.
func (WatchToken) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("user", User.Type).Ref("watch_tokens").Field("user_id").Unique().Immutable(),
	}
}

// Indexes of WatchToken.
func (WatchToken) Indexes() []ent.Index {
	return []ent.Index{index.Fields("expires_at")}
}
