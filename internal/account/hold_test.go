package account

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// mailed is what the newest verification email to an address carries.
type mailed struct {
	token, code string
}

// lastEmail opens the newest verification email queued for addr (any
// topic that carries a link), as the mailer would.
func (b *testBundle) lastEmail(t *testing.T, addr string) mailed {
	t.Helper()
	evs, err := b.db.OutboxEvent.Query().
		Where(outboxevent.TopicIn(event.RegisteredTopic, event.RenewedTopic, event.ResentTopic, event.EmailChangeRequestedTopic)).
		Order(ent.Desc(outboxevent.FieldID)).All(context.Background())
	require.NoError(t, err)
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	for _, ev := range evs {
		var p event.VerificationRequested
		require.NoError(t, json.Unmarshal(ev.Payload, &p))
		if p.Email != addr {
			continue
		}
		var m mailed
		m.token, err = box.Open(p.SealedToken, p.Email)
		require.NoError(t, err)
		if p.SealedCode != "" {
			m.code, err = box.Open(p.SealedCode, p.Email)
			require.NoError(t, err)
		}
		return m
	}
	t.Fatalf("no verification email to %s", addr)
	return mailed{}
}

// registerWith registers addr with a password of its own.
func (b *testBundle) registerWith(t *testing.T, addr, password string) string {
	t.Helper()
	watch, err := b.svc.Register(context.Background(), RegisterInput{Email: addr, Password: password})
	require.NoError(t, err)
	return watch
}

func requireCode(t *testing.T, want apperr.Code, err error, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, want, apperr.CodeOf(err), append([]any{"%v"}, err)...)
}

// Pre-hijacking: an attacker registers the victim's address first with
// their password; the owner registers with theirs and confirms. The owner's
// password is the one that counts, and everything the attacker holds
// (link, code, watch token, open subscription) is dead.
func TestPreHijackClosed(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const victim = "victim@example.com"
		attackerWatch := b.registerWith(t, victim, "attacker password A")
		attacker := b.lastEmail(t, victim)
		attackerEvents, err := b.svc.Watch(ctx, attackerWatch, false, nil)
		require.NoError(t, err)
		require.Equal(t, status.Unverified, testkit.Receive(t, attackerEvents, "a status change").Status)

		b.clock.Advance(2 * time.Minute)
		ownerWatch := b.registerWith(t, victim, "owner password B")
		owner := b.lastEmail(t, victim)
		require.NotEqual(t, attacker, owner)

		// The attacker's registration is superseded: its watchers are told
		// to complete (the notifier hands this event to every replica's hub).
		sup := b.events(t, event.SupersededTopic)
		require.Len(t, sup, 1)
		var ev event.Superseded
		require.NoError(t, json.Unmarshal(sup[0].Payload, &ev))
		require.Equal(t, []uuid.UUID{b.registration(t, attackerWatch)}, ev.Registrations)
		b.hub.End(ev.Registrations...)
		require.Nil(t, testkit.Receive(t, attackerEvents, "the end"), "completed without VERIFIED")

		_, err = b.svc.VerifyEmail(ctx, attacker.token)
		requireCode(t, apperr.InvalidToken, err, "the attacker's link")
		_, err = b.svc.VerifyEmailWithCode(ctx, attackerWatch, attacker.code)
		requireCode(t, apperr.InvalidToken, err, "the attacker's code")
		_, err = b.svc.Status(ctx, attackerWatch)
		requireCode(t, apperr.InvalidToken, err, "the attacker's watch token")
		_, err = b.svc.Watch(ctx, attackerWatch, false, nil)
		requireCode(t, apperr.InvalidToken, err)

		// While unverified, sign-in checks the newest password.
		_, _, err = b.svc.SignIn(ctx, victim, "owner password B")
		requireCode(t, apperr.EmailNotVerified, err)
		_, _, err = b.svc.SignIn(ctx, victim, "attacker password A")
		requireCode(t, apperr.InvalidCredentials, err)

		ownerEvents, err := b.svc.Watch(ctx, ownerWatch, false, nil)
		require.NoError(t, err)
		testkit.Receive(t, ownerEvents, "a status change")
		v, err := b.svc.VerifyEmail(ctx, owner.token)
		require.NoError(t, err)
		require.False(t, v.AlreadyVerified)
		b.requireReceipt(t, b.receipt(t, v), victim)

		tok, _, err := b.svc.SignIn(ctx, victim, "owner password B")
		require.NoError(t, err)
		require.NotEmpty(t, tok)
		_, _, err = b.svc.SignIn(ctx, victim, "attacker password A")
		requireCode(t, apperr.InvalidCredentials, err)
		_, err = b.svc.VerifyEmail(ctx, attacker.token)
		requireCode(t, apperr.InvalidToken, err, "still dead after the confirmation")

		// user.verified names the confirming registration and the address.
		var verified event.Verified
		evs := b.events(t, event.VerifiedTopic)
		require.Len(t, evs, 1)
		require.NoError(t, json.Unmarshal(evs[0].Payload, &verified))
		require.Equal(t, b.registration(t, ownerWatch), verified.Registration)
		require.Equal(t, victim, verified.Email)
	})
}

// A link of a superseded registration stays dead even when it races the
// registration that supersedes it: the confirmation is conditional on the
// user's password hash still being its registration's.
func TestSupersededLinkLosesRace(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		b.registerWith(t, "race2@example.com", "first password")
		first := b.lastEmail(t, "race2@example.com")
		vt, err := b.db.VerificationToken.Query().WithRegistration().Only(ctx)
		require.NoError(t, err)
		b.clock.Advance(2 * time.Minute)
		b.registerWith(t, "race2@example.com", "second password")
		// The first registration as it was read before the second one
		// landed: confirming it now changes nothing.
		_, err = b.svc.confirm(ctx, vt.Edges.Registration)
		requireCode(t, apperr.InvalidToken, err)
		u, err := b.db.User.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, user.StatusUNVERIFIED, u.Status)
		_, err = b.svc.VerifyEmail(ctx, first.token)
		requireCode(t, apperr.InvalidToken, err)
	})
}

// UNVERIFIED_TTL after its last registration an unconfirmed account goes,
// with its registrations and tokens, and its address is free again.
func TestDeleteUnverified(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		squat := b.registration(t, b.register(t, "squat@example.com"))
		b.verified(t, "kept@example.com")
		b.clock.Advance(5 * 24 * time.Hour)
		b.register(t, "late@example.com")
		b.clock.Advance(3 * 24 * time.Hour)

		n, err := b.svc.DeleteUnverified(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "only the one past its TTL")
		requireSuperseded(t, b, squat, "its open waiting screen completes")
		emails, err := b.db.User.Query().Select(user.FieldEmail).Strings(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"kept@example.com", "late@example.com"}, emails)
		left, err := b.db.Registration.Query().Where(registration.Email("squat@example.com")).Count(ctx)
		require.NoError(t, err)
		require.Zero(t, left)

		// The address is free: a new registration makes a new user.
		b.register(t, "squat@example.com")
		require.Len(t, b.events(t, event.RegisteredTopic), 4)

		// A repeated registration renews the clock.
		b.clock.Advance(6 * 24 * time.Hour)
		b.register(t, "late@example.com")
		b.clock.Advance(6 * 24 * time.Hour)
		n, err = b.svc.DeleteUnverified(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "squat@ again; late@ registered 6 days ago")
	})
}

// Registrations racing a confirmation never change a verified user's
// password: whichever wins, a VERIFIED user's password is the one of the
// registration that confirmed it. An invariant check: the narrowest window
// (on PostgreSQL, a renewal that read the user UNVERIFIED just before the
// confirmation committed) is closed by register's conditional update and
// rarely opens here.
func TestRenewalsRacingConfirmation(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := ratelimit.WithClient(context.Background(), "192.0.2.1")
		b.registerWith(t, "contest@example.com", "owner password")
		owner := b.lastEmail(t, "contest@example.com")
		var confirmErr error
		errs := concurrently(t, 9, func(i int) error {
			if i == 0 {
				_, confirmErr = b.svc.VerifyEmail(ctx, owner.token)
				return nil
			}
			_, err := b.svc.Register(ctx, RegisterInput{Email: "contest@example.com", Password: fmt.Sprintf("attacker password %d", i)})
			return err
		})
		for _, err := range errs {
			require.NoError(t, err)
		}
		u, err := b.db.User.Query().Only(ctx)
		require.NoError(t, err)
		if confirmErr != nil {
			requireCode(t, apperr.InvalidToken, confirmErr, "superseded first")
			require.Equal(t, user.StatusUNVERIFIED, u.Status)
			return
		}
		require.Equal(t, user.StatusVERIFIED, u.Status)
		ok, err := b.svc.Hasher.Verify(ctx, "owner password", u.PasswordHash)
		require.NoError(t, err)
		require.True(t, ok, "the confirming registration's password")
	})
}

// A repeated registration supersedes the one before it whatever the
// address's state, so an outsider who registers an address twice and
// follows the first watch token learns nothing: for a new, an UNVERIFIED
// and a VERIFIED address (whose registrations are decoys) alike, the
// first token answers INVALID_TOKEN, its open subscription completes on
// every replica (the event, or a re-read after a missed one), and the
// second token answers UNVERIFIED.
func TestRepeatedRegistrationSupersedesAlike(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		before func(b *testBundle, t *testing.T, addr string)
	}{
		{"new", func(*testBundle, *testing.T, string) {}},
		{"unverified", func(b *testBundle, t *testing.T, addr string) { b.register(t, addr) }},
		{"verified", func(b *testBundle, t *testing.T, addr string) { b.verified(t, addr) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				const addr = "twice@example.com"
				tt.before(b, t, addr)
				b.clock.Advance(time.Hour)
				first := b.registerWith(t, addr, "outsider password 1")
				heard, err := b.svc.Watch(ctx, first, false, nil)
				require.NoError(t, err)
				reread, err := b.svc.Watch(ctx, first, false, nil)
				require.NoError(t, err)
				for _, ch := range []<-chan *status.Change{heard, reread} {
					require.Equal(t, status.Unverified, testkit.Receive(t, ch, "a status change").Status)
				}
				b.clock.Advance(time.Minute)
				second := b.registerWith(t, addr, "outsider password 2")

				sup := b.events(t, event.SupersededTopic)
				require.NotEmpty(t, sup, "the second registration supersedes the first")
				var ev event.Superseded
				require.NoError(t, json.Unmarshal(sup[len(sup)-1].Payload, &ev))
				require.Equal(t, []uuid.UUID{b.registration(t, first)}, ev.Registrations)

				// A replica that missed the event finds out on its re-read.
				b.hub.RecheckAll()
				require.Nil(t, testkit.Receive(t, reread, "the end"), "completed without VERIFIED")
				b.hub.End(ev.Registrations...)
				require.Nil(t, testkit.Receive(t, heard, "the end"), "completed without VERIFIED")

				_, err = b.svc.Status(ctx, first)
				requireCode(t, apperr.InvalidToken, err, "the first watch token")
				_, err = b.svc.Watch(ctx, first, false, nil)
				requireCode(t, apperr.InvalidToken, err, "a new subscription on it")
				_, err = b.svc.VerifyEmailWithCode(ctx, first, "123456")
				requireCode(t, apperr.InvalidToken, err, "a code with it")
				st, err := b.svc.Status(ctx, second)
				require.NoError(t, err)
				require.Equal(t, status.Unverified, st)
			})
		})
	}
}
