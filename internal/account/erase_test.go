package account

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
)

// An erased user's email that a mailer gets after the erasure (the relay
// had published it, the broker brings it back for a retry, or, after
// UNVERIFIED_TTL, it still waits in the outbox) is not sent to the erased
// address, and leaves no record naming the user or the address.
func TestErasedEmailIsNotSent(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"deleteUser", "UNVERIFIED_TTL"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				b.register(t, "gone@example.com")
				u, err := b.db.User.Query().Where(user.Email("gone@example.com")).Only(ctx)
				require.NoError(t, err)
				evs := b.events(t, event.RegisteredTopic)
				require.Len(t, evs, 1)
				var req event.VerificationRequested
				require.NoError(t, json.Unmarshal(evs[0].Payload, &req))
				// The event as a mailer gets it, whatever became of its
				// outbox row.
				e := delivery.EventOf(evs[0].EventID.String(), event.RegisteredTopic, req.Mail())
				e.Payload = evs[0].Payload

				if how == "deleteUser" {
					require.NoError(t, b.svc.DeleteUser(ctx, u.ID))
				} else {
					b.clock.Advance(2 * time.Hour)
					n, err := b.svc.DeleteUnverified(ctx)
					require.NoError(t, err)
					require.Equal(t, 1, n)
				}

				r, err := b.svc.Deliveries.(*delivery.Store).Begin(ctx, e)
				require.NoError(t, err)
				require.Equal(t, delivery.Sent, r.State, "turned away, not sent to the erased address")
				named, err := b.db.Delivery.Query().Where(entdelivery.Or(entdelivery.Address("gone@example.com"), entdelivery.UserID(u.ID), entdelivery.Registration(req.Registration))).Count(ctx)
				require.NoError(t, err)
				require.Zero(t, named, "no record names the erased user or address")
			}, func(o *Options) {
				o.Deliveries = delivery.New(o.DB, o.Now)
				o.UnverifiedTTL = time.Hour
			})
		})
	}
}
