package account

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/publicevent"
)

// MarkVerified writes what a confirmation writes, once: user.verified for
// the current sign-up (its watchers get VERIFIED) and the public event.
func TestMarkVerified(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch := b.register(t, "op@example.com")
		u, err := b.db.User.Query().Only(ctx)
		require.NoError(t, err)

		got, err := b.svc.MarkVerified(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, user.StatusVERIFIED, got.Status)
		require.NotNil(t, got.VerifiedAt)
		evs := b.events(t, event.VerifiedTopic)
		require.Len(t, evs, 1)
		var v event.Verified
		require.NoError(t, json.Unmarshal(evs[0].Payload, &v))
		require.Equal(t, event.Verified{UserID: u.ID, VerifiedAt: got.VerifiedAt.UTC(), Registration: b.registration(t, watch), Email: "op@example.com"}, v)
		require.Len(t, b.events(t, publicevent.UserVerifiedType), 1)

		again, err := b.svc.MarkVerified(ctx, u.ID)
		require.NoError(t, err)
		require.Equal(t, got.VerifiedAt, again.VerifiedAt, "unchanged")
		require.Len(t, b.events(t, event.VerifiedTopic), 1, "no second event")
		require.Len(t, b.events(t, publicevent.UserVerifiedType), 1)

		_, err = b.svc.MarkVerified(ctx, uuid.New())
		requireCode(t, apperr.BadUserInput, err, "unknown user")
		ok, err := b.svc.ResendTo(ctx, u.ID)
		require.NoError(t, err)
		require.False(t, ok, "a verified user needs no email")
		_, err = b.svc.ResendTo(ctx, uuid.New())
		requireCode(t, apperr.BadUserInput, err, "unknown user")
	})
}

// DeleteUser leaves the cooldowns of other addresses, and other users,
// alone, also one whose address contains the deleted one's.
func TestDeleteUserKeepsOthers(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		b.register(t, "gone@example.com")
		b.register(t, "stays@example.com")
		b.register(t, "begone@example.com")
		gone, err := b.db.User.Query().Where(user.Email("gone@example.com")).Only(ctx)
		require.NoError(t, err)
		_, err = b.db.EmailBudget.Create().SetScope("signin:gone@example.com").SetWindowStart(1).SetSent(1).Save(ctx)
		require.NoError(t, err)

		require.NoError(t, b.svc.DeleteUser(ctx, gone.ID))
		requireCode(t, apperr.BadUserInput, b.svc.DeleteUser(ctx, gone.ID), "gone")
		n, err := b.db.User.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		inboxes, err := b.db.EmailThrottle.Query().Select(emailthrottle.FieldEmail).Strings(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"stays@example.com", "begone@example.com"}, inboxes)
		left, err := b.db.EmailBudget.Query().Where(emailbudget.ScopeHasPrefix("signin:")).Count(ctx)
		require.NoError(t, err)
		require.Zero(t, left)
		require.Len(t, b.events(t, publicevent.UserDeletedType), 1)
		for _, ev := range b.events(t, event.RegisteredTopic) {
			require.NotContains(t, string(ev.Payload), `"gone@example.com"`, "its queued email is gone")
		}
		require.Len(t, b.events(t, event.RegisteredTopic), 2, "the others' stay, begone@example.com's included")
	})
}
