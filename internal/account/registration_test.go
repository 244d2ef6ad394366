package account

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/event"
)

// Every email's event names the registration it belongs to (its watch
// token's registration), so the email's delivery can be shown to whoever
// watches that token: the registration email, the notice to an existing
// address's owner, and a resend (the address's newest registration).
func TestEmailsNameTheirRegistration(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		registration := func(watch string) uuid.UUID { return b.registration(t, watch) }
		named := func(topic string, i int) uuid.UUID {
			evs := b.events(t, topic)
			require.Greater(t, len(evs), i, topic)
			var p struct{ Registration uuid.UUID }
			require.NoError(t, json.Unmarshal(evs[i].Payload, &p))
			return p.Registration
		}

		first := b.register(t, "ada@example.com")
		require.Equal(t, registration(first), named(event.RegisteredTopic, 0))

		// Past the cooldown, so the resend is not refused.
		b.clock.Advance(2 * time.Minute)
		require.NoError(t, b.svc.Resend(ctx, "ada@example.com"))
		require.Equal(t, registration(first), named(event.ResentTopic, 0), "the only registration")

		other := b.verified(t, "bob@example.com")
		require.NotEqual(t, registration(first), registration(other), "one per registration")

		b.clock.Advance(2 * time.Minute)
		again, err := b.svc.Register(ctx, RegisterInput{Email: "bob@example.com", Password: "another password"})
		require.NoError(t, err)
		require.Equal(t, registration(again), named(event.AlreadyRegisteredTopic, 0), "the notice belongs to the repeated registration")
	})
}
