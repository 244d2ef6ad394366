package account

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/ratelimit"
)

// Every email speaks its reader's language: a verification email the
// locale of its registration; a notice to an account's owner and a change
// of address (changeEmail takes no locale) the owner's, from their
// sign-up, whatever locale whoever set them off asked for.
func TestEmailsInTheOwnersLanguage(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		de, en := "de-AT", "en"
		_, err := b.svc.Register(ctx, RegisterInput{Email: "anna@example.com", Password: pw, Locale: &de})
		require.NoError(t, err)
		var reg event.VerificationRequested
		evs := b.events(t, event.RegisteredTopic)
		require.NoError(t, json.Unmarshal(evs[len(evs)-1].Payload, &reg))
		require.Equal(t, "de-AT", reg.Locale)
		_, err = b.svc.VerifyEmail(ctx, b.newestToken(t))
		require.NoError(t, err)

		// Someone else, in English, tries the address: the notice is German.
		b.clock.Advance(2 * time.Minute)
		_, err = b.svc.Register(ctx, RegisterInput{Email: "anna@example.com", Password: pw, Locale: &en})
		require.NoError(t, err)
		var notice event.AlreadyRegistered
		evs = b.events(t, event.AlreadyRegisteredTopic)
		require.Len(t, evs, 1)
		require.NoError(t, json.Unmarshal(evs[0].Payload, &notice))
		require.Equal(t, "de-AT", notice.Locale)

		// A change of address: the link to the new address and the notice
		// to the old one in German too.
		b.clock.Advance(2 * time.Minute)
		session, _, err := b.svc.SignIn(ratelimit.WithClient(ctx, "192.0.2.1"), "anna@example.com", pw)
		require.NoError(t, err)
		require.NoError(t, b.svc.ChangeEmail(ctx, session, "anna@example.org"))
		evs = b.events(t, event.EmailChangeRequestedTopic)
		require.Len(t, evs, 1)
		require.NoError(t, json.Unmarshal(evs[0].Payload, &reg))
		require.Equal(t, "de-AT", reg.Locale)
		require.Equal(t, "de-AT", b.changeNotices(t)[0].Locale)
	})
}
