package delivery

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/publicevent"
)

// A dead letter for an address is verifier.email.failed.v1 for its user,
// written with the FAILED record; an event that could not be made into an
// email is not news about anyone.
func TestFailureIsPublic(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		owner, err := b.db.User.Create().SetEmail("owner@example.com").SetPasswordHash("x").Save(ctx)
		require.NoError(t, err)
		named := uuid.New()
		tests := []struct {
			name   string
			event  func(e *Event)
			mark   func(r Record) error
			userID uuid.UUID // uuid.Nil: no public event
		}{
			{"the event names its user", func(e *Event) { e.UserID = named }, func(r Record) error { return b.store.MarkFailed(ctx, r, true, "550 no such user") }, named},
			{"a notice, to a registered address", func(e *Event) { e.Address = owner.Email }, func(r Record) error { return b.store.MarkFailed(ctx, r, true, "550 no such user") }, owner.ID},
			{"an address nobody holds", func(e *Event) { e.Address = "nobody@example.com" }, func(r Record) error { return b.store.MarkFailed(ctx, r, true, "550 no such user") }, uuid.Nil},
			{"an event that could not be sent", func(e *Event) { e.UserID = named }, func(r Record) error { return b.store.MarkUnsendable(ctx, r, "sealed token does not open") }, uuid.Nil},
		}
		for _, tt := range tests {
			_, err := b.db.OutboxEvent.Delete().Exec(ctx)
			require.NoError(t, err)
			e := newEvent()
			tt.event(&e)
			require.NoError(t, tt.mark(b.begin(t, e)), tt.name)
			rows, err := b.db.OutboxEvent.Query().Where(outboxevent.Topic(publicevent.EmailFailedType)).All(ctx)
			require.NoError(t, err)
			if tt.userID == uuid.Nil {
				require.Empty(t, rows, tt.name)
				continue
			}
			require.Len(t, rows, 1, tt.name)
			var env struct {
				Subject string                  `json:"subject"`
				Data    publicevent.EmailFailed `json:"data"`
			}
			require.NoError(t, json.Unmarshal(rows[0].Payload, &env))
			require.Equal(t, tt.userID.String(), env.Subject, tt.name)
			require.Equal(t, publicevent.EmailFailed{UserID: tt.userID, Email: e.Address, Reason: "550 no such user", FailedAt: b.clock.Now().UTC()}, env.Data, tt.name)
		}
	})
}
