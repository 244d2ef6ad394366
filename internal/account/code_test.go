package account

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// wrongCode is a well-formed code other than right.
func wrongCode(right string) string {
	if right == "000000" {
		return "000001"
	}
	return "000000"
}

// attemptsLeft is an INVALID_CODE error's attemptsLeft.
func attemptsLeft(t *testing.T, err error) int {
	t.Helper()
	requireCode(t, apperr.InvalidCode, err)
	e, _ := apperr.From(err)
	return e.AttemptsLeft
}

func TestVerifyEmailWithCode(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		redirect := "http://verifier.test/welcome"
		b.svc.RedirectOrigins = []string{"http://verifier.test"}
		watch, err := b.svc.Register(ctx, RegisterInput{Email: "code@example.com", Password: pw, RedirectTo: &redirect})
		require.NoError(t, err)
		m := b.lastEmail(t, "code@example.com")
		require.Len(t, m.code, 6)
		events, err := b.svc.Watch(ctx, watch, false, nil)
		require.NoError(t, err)
		testkit.Receive(t, events, "a status change")

		// Wrong codes count down; a malformed one costs nothing.
		for left := 4; left >= 2; left-- {
			_, err := b.svc.VerifyEmailWithCode(ctx, watch, wrongCode(m.code))
			require.Equal(t, left, attemptsLeft(t, err))
		}
		_, err = b.svc.VerifyEmailWithCode(ctx, watch, "12345")
		requireCode(t, apperr.BadUserInput, err)

		// The code of another registration is worthless with this watch
		// token, and its wrong try counts here.
		b.register(t, "other@example.com")
		_, err = b.svc.VerifyEmailWithCode(ctx, watch, b.lastEmail(t, "other@example.com").code)
		require.Equal(t, 1, attemptsLeft(t, err))

		v, err := b.svc.VerifyEmailWithCode(ctx, watch, m.code)
		require.NoError(t, err)
		require.Equal(t, "code@example.com", v.Email)
		require.False(t, v.AlreadyVerified)
		require.Equal(t, &redirect, v.RedirectTo)
		b.requireReceipt(t, b.receipt(t, v), "code@example.com")

		// Again: VERIFIED, already.
		v, err = b.svc.VerifyEmailWithCode(ctx, watch, m.code)
		require.NoError(t, err)
		require.True(t, v.AlreadyVerified)

		// A watcher that subscribes after the verification gets a receipt too.
		late, err := b.svc.Watch(ctx, watch, false, nil)
		require.NoError(t, err)
		c := testkit.Receive(t, late, "a status change")
		require.Equal(t, status.Verified, c.Status)
		require.Equal(t, &redirect, c.RedirectTo)
		b.requireReceipt(t, eventReceipt(t, c), "code@example.com")
	})
}

// The sixth try finds the code dead, right or not, and a dead code leaves
// the link working; so does an expired one.
func TestDeadCodeKeepsLink(t *testing.T) {
	t.Parallel()
	for _, kill := range []string{"five wrong tries", "expired"} {
		t.Run(kill, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				watch := b.register(t, "dead@example.com")
				m := b.lastEmail(t, "dead@example.com")
				if kill == "expired" {
					b.clock.Advance(DefaultCodeTTL)
					_, err := b.svc.VerifyEmailWithCode(ctx, watch, wrongCode(m.code))
					require.Zero(t, attemptsLeft(t, err))
				} else {
					for range MaxCodeAttempts {
						_, err := b.svc.VerifyEmailWithCode(ctx, watch, wrongCode(m.code))
						requireCode(t, apperr.InvalidCode, err)
					}
				}
				_, err := b.svc.VerifyEmailWithCode(ctx, watch, m.code)
				require.Zero(t, attemptsLeft(t, err), "dead, even when right")

				// A resend of a registration whose tries are spent carries the
				// link only: a resend buys no fresh guesses.
				b.clock.Advance(2 * time.Minute)
				require.NoError(t, b.svc.Resend(ctx, "dead@example.com"))
				resent := b.lastEmail(t, "dead@example.com")
				if kill == "expired" {
					require.Len(t, resent.code, 6, "a fresh code: the tries were not spent")
				} else {
					require.Empty(t, resent.code)
				}

				v, err := b.svc.VerifyEmail(ctx, m.token)
				require.NoError(t, err, "the link still works")
				require.Equal(t, "dead@example.com", v.Email)
			})
		})
	}
}

// A resend while the code lives mails the same code, with CODE_TTL from
// the resend: the first email's code works on, as the contract has it
// ("for CODE_TTL"), and the resent email's too. A new code replacing it
// made the first email's code a wrong one that cost a try.
func TestResendKeepsTheLiveCode(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch := b.register(t, "again@example.com")
		first := b.lastEmail(t, "again@example.com")
		require.Len(t, first.code, 6)

		b.clock.Advance(2 * time.Minute) // past the cooldown
		require.NoError(t, b.svc.Resend(ctx, "again@example.com"))
		resent := b.lastEmail(t, "again@example.com")
		require.NotEqual(t, first.token, resent.token, "a new link")
		require.Equal(t, first.code, resent.code, "the live code again")

		// Past the first email's CODE_TTL, within the resend's.
		b.clock.Advance(DefaultCodeTTL - time.Minute)
		v, err := b.svc.VerifyEmailWithCode(ctx, watch, first.code)
		require.NoError(t, err, "the first email's code")
		require.Equal(t, "again@example.com", v.Email)
	})
}

// 50 parallel wrong tries on one registration: exactly 5 are counted, on
// every database, and the rest find the code dead.
func TestParallelWrongCodesCountFive(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch := b.register(t, "brute@example.com")
		m := b.lastEmail(t, "brute@example.com")
		left := make([]int, 50)
		errs := concurrently(t, len(left), func(i int) error {
			_, err := b.svc.VerifyEmailWithCode(ctx, watch, wrongCode(m.code))
			if e, ok := apperr.From(err); ok {
				left[i] = e.AttemptsLeft
			}
			return err
		})
		dead := 0
		for i, err := range errs {
			requireCode(t, apperr.InvalidCode, err)
			if left[i] == 0 {
				dead++
			}
		}
		reg := b.registrationOf(t, watch)
		require.Equal(t, MaxCodeAttempts, reg.CodeAttempts, "exactly five counted")
		// The tries left an answer shows is read after its own count, so
		// a concurrent count may lower it; never raise it.
		require.GreaterOrEqual(t, dead, len(errs)-MaxCodeAttempts+1)
	})
}

// A right code is checked against the registration as it is when the
// code is taken, not as a guess read it: a guess read before the fifth
// wrong one was counted, or before the code died and a resend replaced it, is one of
// the many a guesser sends at once, and must not confirm. Otherwise a
// burst of parallel guesses tried as many codes as it held, not five.
func TestCodeReadBeforeItDiedStaysDead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kill func(t *testing.T, b *testBundle, watch, right string)
	}{
		{"five wrong codes counted since", func(t *testing.T, b *testBundle, watch, right string) {
			for range MaxCodeAttempts {
				_, err := b.svc.VerifyEmailWithCode(context.Background(), watch, wrongCode(right))
				requireCode(t, apperr.InvalidCode, err)
			}
		}},
		{"it expired and a resend replaced it since", func(t *testing.T, b *testBundle, _, _ string) {
			// A resend while the code lives keeps it (TestResendKeepsTheLiveCode).
			b.clock.Advance(DefaultCodeTTL)
			require.NoError(t, b.svc.Resend(context.Background(), "inflight@example.com"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				watch := b.register(t, "inflight@example.com")
				right := b.lastEmail(t, "inflight@example.com").code
				inFlight := b.registrationOf(t, watch) // as a guess read it
				tt.kill(t, b, watch, right)

				_, err := b.svc.confirmWithCode(ctx, inFlight, right)
				requireCode(t, apperr.InvalidCode, err)
				u, err := b.db.User.Query().Where(user.Email("inflight@example.com")).Only(ctx)
				require.NoError(t, err)
				require.Equal(t, user.StatusUNVERIFIED, u.Status, "not confirmed")
			})
		})
	}
}

// Registering again and again gives each registration 5 tries, but the
// address as a whole takes addressCodeLimit wrong codes a day.
func TestWrongCodesCappedPerAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		var err error
		for i := 0; ; i++ {
			require.Less(t, i, addressCodeLimit/MaxCodeAttempts+1, "never capped")
			watch := b.register(t, "loop@example.com")
			for range MaxCodeAttempts {
				if _, err = b.svc.VerifyEmailWithCode(ctx, watch, "000000"); apperr.CodeOf(err) == apperr.RateLimited {
					break
				}
			}
			if apperr.CodeOf(err) == apperr.RateLimited {
				break
			}
			b.clock.Advance(time.Minute)
		}
		e, _ := apperr.From(err)
		require.Positive(t, e.RetryAfter)
		b.clock.Advance(addressCodeWindow)
		watch := b.register(t, "loop@example.com")
		_, err = b.svc.VerifyEmailWithCode(ctx, watch, "000000")
		requireCode(t, apperr.InvalidCode, err, "a day later")
	})
}

// A decoy's (repeated registration of a VERIFIED address) code fails like
// a wrong code at a real one: the same answer and the same count.
func TestDecoyCodeLooksWrong(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		b.verified(t, "owned@example.com")
		decoy := b.register(t, "owned@example.com")
		fresh := b.register(t, "fresh@example.com")
		for i := range 3 {
			c := fmt.Sprintf("%06d", i)
			_, errDecoy := b.svc.VerifyEmailWithCode(ctx, decoy, c)
			_, errFresh := b.svc.VerifyEmailWithCode(ctx, fresh, wrongCode(b.lastEmail(t, "fresh@example.com").code))
			require.Equal(t, attemptsLeft(t, errFresh), attemptsLeft(t, errDecoy))
		}
	})
}

// A resend renews a decoy's code as it renews a real registration's: once
// CODE_TTL has passed, a resend then a wrong code answered attemptsLeft 0
// for a decoy (a VERIFIED address) and 4 for a fresh registration, which
// told the verified addresses apart.
func TestDecoyCodeRenewedByResend(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		b.verified(t, "owned@example.com")
		b.clock.Advance(2 * time.Minute)
		watches := map[string]string{
			"owned@example.com": b.register(t, "owned@example.com"),
			"fresh@example.com": b.register(t, "fresh@example.com"),
		}
		b.clock.Advance(DefaultCodeTTL + time.Minute) // past the codes and the cooldowns
		left := map[string]int{}
		for addr, watch := range watches {
			require.NoError(t, b.svc.Resend(ctx, addr))
			_, err := b.svc.VerifyEmailWithCode(ctx, watch, "000000")
			left[addr] = attemptsLeft(t, err)
		}
		require.Equal(t, MaxCodeAttempts-1, left["fresh@example.com"], "a resend renews a real registration's code")
		require.Equal(t, left["fresh@example.com"], left["owned@example.com"], "and a decoy's alike")
	})
}

// The address's cap holds against parallel guesses spread over several
// registrations of it (accounts can each have a change to it pending):
// the barrier holds every guess that read the address's count until all
// of them have, the interleaving in which a count read before the guess
// was counted let each of them through.
func TestParallelWrongCodesCappedPerAddress(t *testing.T) {
	t.Parallel()
	const accounts = addressCodeLimit/MaxCodeAttempts + 2
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		sessions := make([]string, accounts)
		for i := range sessions {
			sessions[i] = b.signedIn(t, fmt.Sprintf("u%d@example.com", i))
			require.NoError(t, b.svc.ChangeEmail(ctx, sessions[i], "target@example.com"))
		}
		// A code known here, so that the guesses are wrong for certain.
		regs, err := b.db.Registration.Query().Where(registration.Email("target@example.com")).All(ctx)
		require.NoError(t, err)
		require.Len(t, regs, accounts)
		for _, r := range regs {
			require.NoError(t, b.db.Registration.UpdateOne(r).SetCodeHash(b.svc.Codes.Hash(r.ID, "123456")).Exec(ctx))
		}

		type reads struct{ n int }
		var barrier sync.WaitGroup
		barrier.Add(accounts * MaxCodeAttempts)
		b.db.Registration.Intercept(ent.InterceptFunc(func(next ent.Querier) ent.Querier {
			return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
				v, err := next.Query(ctx, q)
				// The second read of a guess is the address's count.
				if r, ok := ctx.Value(reads{}).(*reads); ok {
					if r.n++; r.n == 2 {
						barrier.Done()
						barrier.Wait()
					}
				}
				return v, err
			})
		}))
		errs := concurrently(t, accounts*MaxCodeAttempts, func(i int) error {
			ctx := context.WithValue(ctx, reads{}, &reads{})
			_, err := b.svc.ConfirmEmailChange(ctx, sessions[i%accounts], "000000")
			return err
		})
		got := map[apperr.Code]int{}
		for _, err := range errs {
			got[apperr.CodeOf(err)]++
		}
		require.Equal(t, map[apperr.Code]int{apperr.InvalidCode: addressCodeLimit, apperr.RateLimited: accounts*MaxCodeAttempts - addressCodeLimit}, got)
	})
}
