package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// EmailBudget counts the emails queued in one hour for one scope: a
// recipient domain or everyone; and, with the same counting, failed
// sign-ins per inbox and per client. Kept in the database so that every
// replica spends from the same budget.
type EmailBudget struct{ ent.Schema }

// Fields of EmailBudget.
func (EmailBudget) Fields() []ent.Field {
	return []ent.Field{
		// "domain:" + the canonical domain, "global", "signin:" + the
		// canonical address or "signin-client:" + the client's key.
		field.String("scope").MaxLen(300).NotEmpty().Immutable(),
		// Start of the hour counted, in Unix seconds.
		field.Int64("window_start").Immutable(),
		field.Int("sent").NonNegative(),
	}
}

// Indexes of EmailBudget.
func (EmailBudget) Indexes() []ent.Index {
	return []ent.Index{
		// The conflict target of the counting upsert.
		index.Fields("scope", "window_start").Unique(),
		// The janitor deletes past windows.
		index.Fields("window_start"),
	}
}
