package account

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/ratelimit"
)

func TestSignIn(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := ratelimit.WithClient(context.Background(), "192.0.2.1")
		b.verified(t, "in@example.com")
		b.register(t, "pending@example.com")

		tests := []struct {
			name, email, password string
			want                  apperr.Code
		}{
			{"unknown address", "nobody@example.com", pw, apperr.InvalidCredentials},
			{"wrong password", "in@example.com", "not the password", apperr.InvalidCredentials},
			{"unverified, wrong password", "pending@example.com", "not the password", apperr.InvalidCredentials},
			{"unverified, right password", "pending@example.com", pw, apperr.EmailNotVerified},
			{"malformed address", "in@", pw, apperr.BadUserInput},
			{"wrong password of 256 characters", "in@example.com", strings.Repeat("\u00e9", MaxPasswordLen), apperr.InvalidCredentials},
			{"password of 257 characters", "in@example.com", strings.Repeat("x", MaxPasswordLen+1), apperr.BadUserInput},
			{"password of 257 characters, 514 bytes", "nobody@example.com", strings.Repeat("\u00e9", MaxPasswordLen+1), apperr.BadUserInput},
			{"password of 1025 bytes", "in@example.com", strings.Repeat("x", 4*MaxPasswordLen+1), apperr.BadUserInput},
		}
		for _, tt := range tests {
			_, _, err := b.svc.SignIn(ctx, tt.email, tt.password)
			requireCode(t, tt.want, err, tt.name)
		}

		tok, expires, err := b.svc.SignIn(ctx, " IN@example.com", pw)
		require.NoError(t, err)
		require.Equal(t, b.clock.Now().Add(time.Hour), expires.UTC())
		u, err := b.svc.Authenticate(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, "in@example.com", u.Email)

		// A receipt is never a credential, nor is anything else.
		v, err := b.svc.VerifyEmail(ctx, b.lastEmail(t, "in@example.com").token)
		require.NoError(t, err)
		for name, bearer := range map[string]string{"receipt": *b.receipt(t, v), "none": "", "garbage": "abc.def.ghi", "tampered": tampered(tok)} {
			_, err := b.svc.Authenticate(ctx, bearer)
			requireCode(t, apperr.Unauthenticated, err, name)
		}
	})
}

// Failures count per address (its inbox) and per client, shared in the
// database; over a limit RATE_LIMITED until the hour ends, right password
// or not.
func TestSignInThrottled(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := ratelimit.WithClient(context.Background(), "192.0.2.1")
		b.verified(t, "target@example.com")
		for i := range 3 {
			// Spellings of one inbox count together.
			_, _, err := b.svc.SignIn(ctx, []string{"target@example.com", "target+x@example.com", "Target@example.com"}[i], "wrong password")
			requireCode(t, apperr.InvalidCredentials, err)
		}
		// From a client with no failures: the address's own limit.
		fresh := ratelimit.WithClient(context.Background(), "203.0.113.9")
		_, _, err := b.svc.SignIn(fresh, "target@example.com", pw)
		requireCode(t, apperr.RateLimited, err, "locked for the address")
		e, _ := apperr.From(err)
		require.Equal(t, time.Hour-b.clock.Now().Sub(b.clock.Now().Truncate(time.Hour)), e.RetryAfter)

		// Another client, another address: the client's own limit.
		other := ratelimit.WithClient(context.Background(), "198.51.100.7")
		for i := range 3 {
			_, _, err := b.svc.SignIn(other, "nobody@example.com", "wrong password "+string(rune('a'+i)))
			requireCode(t, apperr.InvalidCredentials, err)
		}
		_, _, err = b.svc.SignIn(other, "someone-else@example.com", "wrong password")
		requireCode(t, apperr.RateLimited, err, "locked for the client")

		b.clock.Advance(time.Hour)
		_, _, err = b.svc.SignIn(ctx, "target@example.com", pw)
		require.NoError(t, err, "the next hour")
	}, func(o *Options) { o.SignInAddressLimit, o.SignInClientLimit = 3, 3 })
}

// tampered changes one character in the middle of a JWT's signature (the
// last one may carry only padding bits).
func tampered(jwt string) string {
	b := []byte(jwt)
	i := len(b) - 20
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// Wrong passwords sent in parallel take no more tries than the limit:
// the barrier holds every sign-in that read its failures until all of
// them have, the interleaving in which a count read before the
// password check and written after it let each of them through. A right
// password costs no try.
func TestParallelSignInsCountEach(t *testing.T) {
	t.Parallel()
	const limit, n = 3, 8
	eachDB(t, func(t *testing.T, b *testBundle) {
		b.verified(t, "target@example.com")
		for i := range limit + 2 {
			_, _, err := b.svc.SignIn(ratelimit.WithClient(context.Background(), "192.0.2.1"), "target@example.com", pw)
			require.NoError(t, err, "right password %d", i)
		}

		type arrival struct{ once sync.Once }
		var barrier sync.WaitGroup
		barrier.Add(n)
		b.db.EmailBudget.Intercept(ent.InterceptFunc(func(next ent.Querier) ent.Querier {
			return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
				v, err := next.Query(ctx, q)
				if a, ok := ctx.Value(arrival{}).(*arrival); ok {
					a.once.Do(func() { barrier.Done(); barrier.Wait() })
				}
				return v, err
			})
		}))
		errs := concurrently(t, n, func(i int) error {
			ctx := context.WithValue(context.Background(), arrival{}, &arrival{})
			// Each from a client of its own: only the address's limit applies.
			ctx = ratelimit.WithClient(ctx, fmt.Sprintf("198.51.100.%d", i+1))
			_, _, err := b.svc.SignIn(ctx, "target@example.com", "wrong password")
			return err
		})
		got := map[apperr.Code]int{}
		for _, err := range errs {
			e, ok := apperr.From(err)
			require.True(t, ok, "%v", err)
			got[e.Code]++
		}
		require.Equal(t, map[apperr.Code]int{apperr.InvalidCredentials: limit, apperr.RateLimited: n - limit}, got)
	}, func(o *Options) { o.SignInAddressLimit, o.SignInClientLimit = limit, limit })
}
