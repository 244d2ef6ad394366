package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// DevMail is an email kept by the dev outbox (SMTP_URL empty) instead of
// being sent, so a developer can open it at /dev/mail.
type DevMail struct{ ent.Schema }

// Mixin of DevMail.
func (DevMail) Mixin() []ent.Mixin { return []ent.Mixin{CreateTime{}} }

// Fields of DevMail.
func (DevMail) Fields() []ent.Field {
	return []ent.Field{
		// The event that caused the mail; unique so a redelivered event is
		// kept once.
		field.String("message_id").NotEmpty().Unique().Immutable(),
		field.String("to").Immutable(),
		field.String("subject").Immutable(),
		field.Text("text").Immutable(),
		field.Text("html").Immutable(),
	}
}

// Indexes of DevMail.
func (DevMail) Indexes() []ent.Index {
	return []ent.Index{index.Fields("created_at")}
}
