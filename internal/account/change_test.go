package account

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// signedIn registers and confirms addr and signs in: a session token.
func (b *testBundle) signedIn(t *testing.T, addr string) string {
	t.Helper()
	b.verified(t, addr)
	tok, _, err := b.svc.SignIn(ratelimit.WithClient(context.Background(), "192.0.2.1"), addr, pw)
	require.NoError(t, err)
	return tok
}

// notices returns the email-change notices queued, oldest first.
func (b *testBundle) changeNotices(t *testing.T) []event.EmailChangeNotice {
	t.Helper()
	var out []event.EmailChangeNotice
	for _, ev := range b.events(t, event.EmailChangeNoticeTopic) {
		var n event.EmailChangeNotice
		require.NoError(t, json.Unmarshal(ev.Payload, &n))
		out = append(out, n)
	}
	return out
}

func TestChangeEmail(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"link", "code"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				session := b.signedIn(t, "old@example.com")
				u, err := b.db.User.Query().Only(ctx)
				require.NoError(t, err)

				err = b.svc.ChangeEmail(ctx, "", "new@example.com")
				requireCode(t, apperr.Unauthenticated, err, "no token")
				require.NoError(t, b.svc.ChangeEmail(ctx, session, "New@Example.com"))
				m := b.lastEmail(t, "new@example.com")
				require.NotEmpty(t, m.token)
				require.Len(t, m.code, 6)
				require.Equal(t, []event.EmailChangeNotice{{Email: "old@example.com", NewEmail: "n…@example.com", UserID: u.ID, Locale: "en"}}, b.changeNotices(t))

				// Nothing changes before the confirmation.
				_, _, err = b.svc.SignIn(ratelimit.WithClient(ctx, "192.0.2.1"), "old@example.com", pw)
				require.NoError(t, err)

				var v Verification
				if by == "link" {
					v, err = b.svc.VerifyEmail(ctx, m.token)
				} else {
					_, err = b.svc.ConfirmEmailChange(ctx, session, wrongCode(m.code))
					require.Equal(t, 4, attemptsLeft(t, err))
					v, err = b.svc.ConfirmEmailChange(ctx, session, m.code)
				}
				require.NoError(t, err)
				require.Equal(t, "new@example.com", v.Email)
				require.False(t, v.AlreadyVerified)
				b.requireReceipt(t, b.receipt(t, v), "new@example.com")

				u2, err := b.db.User.Get(ctx, u.ID)
				require.NoError(t, err)
				require.Equal(t, "new@example.com", u2.Email)
				evs := b.events(t, publicevent.EmailChangedType)
				require.Len(t, evs, 1)
				var changed struct{ Data publicevent.EmailChanged }
				require.NoError(t, json.Unmarshal(evs[0].Payload, &changed))
				require.Equal(t, publicevent.EmailChanged{UserID: u.ID, OldEmail: "old@example.com", Email: "new@example.com", ChangedAt: v.VerifiedAt}, changed.Data)

				// Again: VERIFIED, already, no second event.
				v, err = b.svc.VerifyEmail(ctx, m.token)
				require.NoError(t, err)
				require.True(t, v.AlreadyVerified)
				require.Len(t, b.events(t, publicevent.EmailChangedType), 1)

				_, _, err = b.svc.SignIn(ratelimit.WithClient(ctx, "192.0.2.2"), "new@example.com", pw)
				require.NoError(t, err)
			})
		})
	}
}

// Once the account has moved to another address, the sign-up's link to
// the old one no longer answers: whoever reads the old inbox would learn
// the new address and get a receipt for it.
func TestSignupLinkDiesWithTheAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		session := b.signedIn(t, "old@example.com")
		signup := b.newestToken(t)
		v, err := b.svc.VerifyEmail(ctx, signup)
		require.NoError(t, err, "the sign-up's link answers again before the change")
		require.True(t, v.AlreadyVerified)

		require.NoError(t, b.svc.ChangeEmail(ctx, session, "new@example.com"))
		_, err = b.svc.ConfirmEmailChange(ctx, session, b.lastEmail(t, "new@example.com").code)
		require.NoError(t, err)

		_, err = b.svc.VerifyEmail(ctx, signup)
		requireCode(t, apperr.InvalidToken, err, "the old address's link after the change")
	})
}

// The sign-up's watchToken dies with the address as its links do: once
// the account has moved, watching it must neither show the new address
// nor mint a receipt for it (a receipt names the address).
func TestSignupWatchDiesWithTheAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watch := b.verified(t, "was@example.com")
		session, _, err := b.svc.SignIn(ratelimit.WithClient(ctx, "192.0.2.1"), "was@example.com", pw)
		require.NoError(t, err)
		ch, err := b.svc.Watch(ctx, watch, false, nil)
		require.NoError(t, err, "the sign-up's watchToken answers before the change")
		c := testkit.Receive(t, ch, "a status change")
		require.Equal(t, status.Verified, c.Status)

		require.NoError(t, b.svc.ChangeEmail(ctx, session, "moved@example.com"))
		_, err = b.svc.ConfirmEmailChange(ctx, session, b.lastEmail(t, "moved@example.com").code)
		require.NoError(t, err)

		_, err = b.svc.Status(ctx, watch)
		requireCode(t, apperr.InvalidToken, err, "the status behind the old address's watchToken")
		_, err = b.svc.Watch(ctx, watch, false, nil)
		requireCode(t, apperr.InvalidToken, err, "a subscription on the old address's watchToken")
	})
}

// A new address held by a VERIFIED account: the same answer, a stand-in
// registration, the "someone tried" notice to its owner, and the notice to
// the requester's own address as always (what codes answer then:
// TestConfirmEmailChangeCountsDownAlike).
func TestChangeEmailToTakenAddress(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		session := b.signedIn(t, "me@example.com")
		b.verified(t, "taken@example.com")
		b.clock.Advance(2 * time.Minute)
		before := len(b.events(t, event.RegisteredTopic))

		require.NoError(t, b.svc.ChangeEmail(ctx, session, "taken@example.com"))
		require.Len(t, b.events(t, event.EmailChangeRequestedTopic), 0, "no link to the taken address")
		require.Len(t, b.events(t, event.RegisteredTopic), before)
		notices := b.events(t, event.AlreadyRegisteredTopic)
		require.Len(t, notices, 1)
		var n event.AlreadyRegistered
		require.NoError(t, json.Unmarshal(notices[0].Payload, &n))
		owner, err := b.db.User.Query().Where(user.Email("taken@example.com")).Only(ctx)
		require.NoError(t, err)
		me, err := b.db.User.Query().Where(user.Email("me@example.com")).Only(ctx)
		require.NoError(t, err)
		require.Equal(t, event.AlreadyRegistered{Email: "taken@example.com", ChangeEmail: true, UserID: owner.ID, Locale: "en"}, n, "names the owner, for its list of emails")
		require.Equal(t, []event.EmailChangeNotice{{Email: "me@example.com", NewEmail: "t…@example.com", UserID: me.ID, Locale: "en"}}, b.changeNotices(t))
	})
}

// Codes against a change to a taken address count down exactly as against
// one to a free address (4, 3, … 0, then dead), so confirmEmailChange does
// not tell whether the new address belongs to someone else; and no code
// confirms a change to a taken address: its owner was mailed none.
func TestConfirmEmailChangeCountsDownAlike(t *testing.T) {
	t.Parallel()
	for _, taken := range []bool{false, true} {
		t.Run(map[bool]string{false: "free", true: "taken"}[taken], func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				const target = "target@example.com"
				session := b.signedIn(t, "mine@example.com")
				if taken {
					b.verified(t, target)
				}
				b.clock.Advance(2 * time.Minute)
				require.NoError(t, b.svc.ChangeEmail(ctx, session, target))
				right := "" // the owner of a taken address is mailed no code
				if !taken {
					right = b.lastEmail(t, target).code
				}

				for left := MaxCodeAttempts - 1; left >= 0; left-- {
					_, err := b.svc.ConfirmEmailChange(ctx, session, wrongCode(right))
					require.Equal(t, left, attemptsLeft(t, err))
				}
				_, err := b.svc.ConfirmEmailChange(ctx, session, wrongCode(right))
				require.Zero(t, attemptsLeft(t, err), "dead")
				if !taken {
					_, err = b.svc.ConfirmEmailChange(ctx, session, right)
					require.Zero(t, attemptsLeft(t, err), "dead even for the right code")
					return
				}

				// What stands in for the change matches no code at all
				// (checked on one database: the hash is made in Go).
				reg, err := b.db.Registration.Query().
					Where(registration.Email(target), registration.PurposeEQ(registration.PurposeCHANGE_EMAIL)).
					Only(ctx)
				require.NoError(t, err)
				if b.svc.Dialect == dialect.SQLite && !testing.Short() {
					for n := range 1_000_000 {
						if c := fmt.Sprintf("%06d", n); b.svc.Codes.Match(reg.ID, c, reg.CodeHash) {
							t.Fatalf("code %s confirms a change to a taken address", c)
						}
					}
				}
				me, err := b.db.User.Query().Where(user.Email("mine@example.com")).Only(ctx)
				require.NoError(t, err)
				require.Equal(t, user.StatusVERIFIED, me.Status, "the account kept its address")
			})
		})
	}
}

// An UNVERIFIED account holding the new address when the change is
// confirmed is deleted: the inbox's owner proved control of it.
func TestChangeEmailDeletesUnverifiedHolder(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		session := b.signedIn(t, "mover@example.com")
		squatter := b.registerWith(t, "wanted@example.com", "squatter password")
		squatterReg := b.registration(t, squatter)
		require.NoError(t, b.svc.ChangeEmail(ctx, session, "wanted@example.com"))
		v, err := b.svc.VerifyEmail(ctx, b.lastEmail(t, "wanted@example.com").token)
		require.NoError(t, err)
		require.Equal(t, "wanted@example.com", v.Email)

		users, err := b.db.User.Query().Where(user.Email("wanted@example.com")).All(ctx)
		require.NoError(t, err)
		require.Len(t, users, 1)
		require.Equal(t, user.StatusVERIFIED, users[0].Status)
		_, err = b.svc.Status(ctx, squatter)
		requireCode(t, apperr.InvalidToken, err, "the squatter's registration went with it")
		requireSuperseded(t, b, squatterReg, "the squatter's open waiting screen completes")
		_, _, err = b.svc.SignIn(ratelimit.WithClient(ctx, "192.0.2.3"), "wanted@example.com", "squatter password")
		requireCode(t, apperr.InvalidCredentials, err)
	})
}

// A newer change supersedes the pending one, whether its own new address
// is free or taken: the pending one's link and code are dead.
func TestChangeEmailSupersedes(t *testing.T) {
	t.Parallel()
	for _, taken := range []bool{false, true} {
		t.Run(map[bool]string{false: "by a free address", true: "by a taken address"}[taken], func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				const second = "second@example.com"
				session := b.signedIn(t, "me2@example.com")
				if taken {
					b.verified(t, second)
				}
				require.NoError(t, b.svc.ChangeEmail(ctx, session, "first@example.com"))
				first := b.lastEmail(t, "first@example.com")
				require.NoError(t, b.svc.ChangeEmail(ctx, session, second))
				_, err := b.svc.VerifyEmail(ctx, first.token)
				requireCode(t, apperr.InvalidToken, err)
				_, err = b.svc.ConfirmEmailChange(ctx, session, first.code)
				require.Equal(t, MaxCodeAttempts-1, attemptsLeft(t, err), "checked against the newest change's code")
				me, err := b.db.User.Query().Where(user.Email("me2@example.com")).Only(ctx)
				require.NoError(t, err, "the account kept its address")
				if taken {
					return
				}
				v, err := b.svc.ConfirmEmailChange(ctx, session, b.lastEmail(t, second).code)
				require.NoError(t, err)
				require.Equal(t, second, v.Email)
				require.Equal(t, me.ID, v.UserID)
			})
		})
	}
}

// TestChangeLinkRacingANewerChange clicks a change's link as a newer
// changeEmail supersedes it: the click read the registration while it
// was live, the newer change commits, then the click's transaction runs.
// The account must not move to the address it just abandoned.
func TestChangeLinkRacingANewerChange(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		session := b.signedIn(t, "racer@example.com")
		require.NoError(t, b.svc.ChangeEmail(ctx, session, "abandoned@example.com"))
		// What VerifyEmail has read by the time the newer change commits.
		read, err := b.db.Registration.Query().
			Where(registration.Email("abandoned@example.com"), registration.SupersededAtIsNil()).
			Only(ctx)
		require.NoError(t, err)
		require.NoError(t, b.svc.ChangeEmail(ctx, session, "wanted@example.com"))

		_, err = b.svc.confirm(ctx, read)
		requireCode(t, apperr.InvalidToken, err)
		_, err = b.db.User.Query().Where(user.Email("racer@example.com")).Only(ctx)
		require.NoError(t, err, "the account kept its address")

		v, err := b.svc.ConfirmEmailChange(ctx, session, b.lastEmail(t, "wanted@example.com").code)
		require.NoError(t, err)
		require.Equal(t, "wanted@example.com", v.Email)
		again, err := b.svc.VerifyEmail(ctx, b.lastEmail(t, "wanted@example.com").token)
		require.NoError(t, err, "a second click still answers")
		require.True(t, again.AlreadyVerified)
	})
}

// TestLinkOfADeletedUser clicks a sign-up link and a change's link whose
// registrations were read just before an admin deleted the user: the
// answer is INVALID_TOKEN, like any link of a deleted account, not
// INTERNAL.
func TestLinkOfADeletedUser(t *testing.T) {
	t.Parallel()
	for _, purpose := range []string{"sign-up", "change"} {
		t.Run(purpose, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				var read *ent.Registration
				if purpose == "sign-up" {
					read = b.registrationOf(t, b.register(t, "gone@example.com"))
				} else {
					session := b.signedIn(t, "gone@example.com")
					require.NoError(t, b.svc.ChangeEmail(ctx, session, "elsewhere@example.com"))
					var err error
					read, err = b.db.Registration.Query().Where(registration.Email("elsewhere@example.com")).Only(ctx)
					require.NoError(t, err)
				}
				require.NoError(t, b.svc.DeleteUser(ctx, *read.UserID))

				_, err := b.svc.confirm(ctx, read)
				requireCode(t, apperr.InvalidToken, err)
			})
		})
	}
}
