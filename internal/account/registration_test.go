package account

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent/watchtoken"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/token"
)

// Every email's event names the registration it belongs to (its watch
// token's registration), so the email's delivery can be shown to whoever
// watches that token: the registration email, the notice to an existing
// address's owner, and a resend (the address's newest registration).
func TestEmailsNameTheirRegistration(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		registration := func(watch string) uuid.UUID {
			wt, err := b.db.WatchToken.Query().Where(watchtoken.TokenHash(token.Hash(watch))).Only(ctx)
			require.NoError(t, err)
			require.NotNil(t, wt.Registration)
			return *wt.Registration
		}
		named := func(topic string, i int) uuid.UUID {
			evs := b.events(t, topic)
			require.Greater(t, len(evs), i, topic)
			var p struct{ Registration uuid.UUID }
			require.NoError(t, json.Unmarshal(evs[i].Payload, &p))
			return p.Registration
		}

		first, err := b.svc.Register(ctx, "ada@example.com", "a good password")
		require.NoError(t, err)
		require.Equal(t, registration(first), named(event.RegisteredTopic, 0))

		// Past the cooldown, so the resend is not refused.
		b.clock.Advance(2 * time.Minute)
		require.NoError(t, b.svc.Resend(ctx, "ada@example.com"))
		require.Equal(t, registration(first), named(event.ResentTopic, 0), "the only registration")

		other, err := b.svc.Register(ctx, "bob@example.com", "a good password")
		require.NoError(t, err)
		require.NotEqual(t, registration(first), registration(other), "one per registration")
		_, err = b.svc.VerifyEmail(ctx, verificationToken(t, b.events(t, event.RegisteredTopic)[1]))
		require.NoError(t, err)

		b.clock.Advance(2 * time.Minute)
		again, err := b.svc.Register(ctx, "bob@example.com", "another password")
		require.NoError(t, err)
		require.Equal(t, registration(again), named(event.AlreadyRegisteredTopic, 0), "the notice belongs to the repeated registration")
	})
}
