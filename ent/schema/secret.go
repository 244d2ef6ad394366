package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// Secret is a key the service generated for itself on embedded defaults
// (no key given in the settings), kept so that every replica and every
// restart uses the same one.
type Secret struct{ ent.Schema }

// Mixin of Secret.
func (Secret) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of Secret.
func (Secret) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().Unique().Immutable(),
		field.Bytes("value").NotEmpty().Immutable().Sensitive(),
	}
}
