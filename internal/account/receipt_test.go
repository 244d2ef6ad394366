package account

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// errKeyGone is a signer's failure: a key that cannot be read, say.
var errKeyGone = errors.New("signing key unavailable")

// failingSigner signs no receipt.
type failingSigner struct{ Signer }

func (failingSigner) Receipt(context.Context, Claims) (string, error) { return "", errKeyGone }

// A receipt that cannot be signed is an error that says so, for the
// error presenter to log once and answer INTERNAL; never "" for the
// non-null receipt, nor a line of the service's own. The verification
// itself stands.
func TestReceiptThatCannotBeSigned(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		signer func(Signer) Signer
	}{
		{"the signer fails", func(s Signer) Signer { return failingSigner{s} }},
		{"no signer", func(Signer) Signer { return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs testkit.LogBuffer
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				watch := b.register(t, "unsigned@example.com")
				v, err := b.svc.VerifyEmail(ctx, b.newestToken(t))
				require.NoError(t, err, "the verification stands")

				r, err := b.svc.Receipt(ctx, v)
				require.Error(t, err)
				require.Empty(t, r)
				if tt.name == "the signer fails" {
					require.ErrorIs(t, err, errKeyGone)
				}

				events, err := b.svc.Watch(ctx, watch, false, nil)
				require.NoError(t, err)
				c := testkit.Receive(t, events, "a status change")
				require.Equal(t, status.Verified, c.Status)
				receipt, err := c.Receipt(ctx)
				require.Error(t, err)
				require.Nil(t, receipt)
			}, func(o *Options) {
				o.Signer = tt.signer(o.Signer)
				o.Log = slog.New(slog.NewTextHandler(&logs, nil))
			})
			require.NotContains(t, logs.String(), "receipt", "logged once, by the error presenter")
		})
	}
}
