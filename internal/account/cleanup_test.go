package account

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/apperr"
)

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch := b.register(t, "old@example.com")
		tok := b.newestToken(t)

		n, err := b.svc.DeleteExpired(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "nothing has expired yet")

		// Past the token lifetime: the cooldown record goes, the watch
		// token stops working; the verification token stays and still
		// says "expired".
		b.clock.Advance(2 * time.Hour)
		n, err = b.svc.DeleteExpired(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = b.svc.Status(ctx, watch)
		require.Equal(t, apperr.InvalidToken, apperr.CodeOf(err))
		_, err = b.svc.VerifyEmail(ctx, tok)
		require.Equal(t, apperr.TokenExpired, apperr.CodeOf(err))

		b.clock.Advance(ExpiredTokenGrace)
		n, err = b.svc.DeleteExpired(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = b.svc.VerifyEmail(ctx, tok)
		require.Equal(t, apperr.InvalidToken, apperr.CodeOf(err))
	})
}
