package account

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/token"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

type testBundle struct {
	svc   *Service
	db    *ent.Client
	hub   *hub.Hub
	clock *testkit.Clock
}

// eachDB runs f once per database the service supports; opts adjust the
// service's options.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle), opts ...func(*Options)) {
	databasetest.Each(t, func(t *testing.T, url string) { f(t, setup(t, url, opts...)) })
}

func setup(t *testing.T, url string, opts ...func(*Options)) *testBundle {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	b := &testBundle{db: db.Ent, hub: hub.New(), clock: testkit.NewFrozenClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	o := Options{
		DB: db.Ent, Dialect: db.Dialect, Seal: box,
		// Cheap parameters: these tests are about transactions, not hashing.
		Hasher:         password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 0),
		Hub:            b.hub,
		TokenTTL:       time.Hour,
		ResendCooldown: time.Minute,
		Log:            testkit.Discard(),
		Now:            b.clock.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	b.svc = New(o)
	return b
}

// events returns the payload of every outbox event with topic, oldest first.
func (b *testBundle) events(t *testing.T, topic string) []*ent.OutboxEvent {
	t.Helper()
	evs, err := b.db.OutboxEvent.Query().Where(outboxevent.Topic(topic)).Order(ent.Asc(outboxevent.FieldID)).All(context.Background())
	require.NoError(t, err)
	return evs
}

func verificationToken(t *testing.T, ev *ent.OutboxEvent) string {
	t.Helper()
	var p event.VerificationRequested
	require.NoError(t, json.Unmarshal(ev.Payload, &p))
	require.NotContains(t, string(ev.Payload), `"token"`, "no token in clear")
	box, err := seal.New(make([]byte, seal.KeyLen))
	require.NoError(t, err)
	tok, err := box.Open(p.SealedToken, p.Email)
	require.NoError(t, err)
	return tok
}

func TestRegisterStoresOnlyHashes(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		watch, err := b.svc.Register(ctx, "Someone@Example.com", "a good password")
		require.NoError(t, err)
		require.True(t, token.WellFormed(watch))

		u, err := b.db.User.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, "someone@example.com", u.Email)
		require.Contains(t, u.PasswordHash, "$argon2id$")
		require.NotContains(t, u.String(), u.PasswordHash, "password hash is Sensitive")

		evs := b.events(t, event.RegisteredTopic)
		require.Len(t, evs, 1)
		tok := verificationToken(t, evs[0])
		vt, err := b.db.VerificationToken.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, token.Hash(tok), vt.TokenHash)
		wt, err := b.db.WatchToken.Query().Only(ctx)
		require.NoError(t, err)
		require.Equal(t, token.Hash(watch), wt.TokenHash)
		require.Equal(t, b.clock.Now().Add(time.Hour), wt.ExpiresAt.UTC())
	})
}

// Concurrent clicks on one link: all succeed, one change, one event.
func TestConcurrentVerifyWritesOneEvent(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		_, err := b.svc.Register(ctx, "click@example.com", "a good password")
		require.NoError(t, err)
		tok := verificationToken(t, b.events(t, event.RegisteredTopic)[0])

		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() { _, errs[i] = b.svc.VerifyEmail(ctx, tok) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, b.events(t, event.VerifiedTopic), 1)
	})
}

// Concurrent resends: exactly one gets through the cooldown.
func TestConcurrentResendsOneEmail(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		_, err := b.svc.Register(ctx, "resend@example.com", "a good password")
		require.NoError(t, err)
		b.clock.Advance(2 * time.Minute)

		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() { errs[i] = b.svc.Resend(ctx, "resend@example.com") })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.Equal(t, apperr.RateLimited, apperr.CodeOf(err))
		}
		require.Equal(t, 1, ok)
		require.Len(t, b.events(t, event.RegisteredTopic), 1)
		require.Len(t, b.events(t, event.ResentTopic), 1, "one resend")
	})
}

// Concurrent registrations of one new address: one account, and every
// caller gets a watch token.
func TestConcurrentRegisterOneUser(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { _, errs[i] = b.svc.Register(ctx, "race@example.com", "a good password") })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		n, err := b.db.User.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		n, err = b.db.WatchToken.Query().Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 8, n)
		require.Len(t, b.events(t, event.RegisteredTopic), 1)
	})
}

// A change committed between Watch's subscribe and its read is not missed,
// and a Recheck after a broker reconnect finds a change whose event was lost.
func TestWatchRecheckFindsMissedChange(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watch, err := b.svc.Register(ctx, "watch@example.com", "a good password")
		require.NoError(t, err)
		tok := verificationToken(t, b.events(t, event.RegisteredTopic)[0])

		events, err := b.svc.Watch(ctx, watch)
		require.NoError(t, err)
		require.Equal(t, Unverified, (<-events).Status)

		_, err = b.svc.VerifyEmail(ctx, tok) // its event is never delivered here
		require.NoError(t, err)
		b.hub.RecheckAll()
		ev := <-events
		require.Equal(t, Verified, ev.Status)
		_, open := <-events
		require.False(t, open, "completes after VERIFIED")
		require.Zero(t, b.hub.Len())
	})
}

func TestWatchEndsWithContext(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx, cancel := context.WithCancel(context.Background())
		watch, err := b.svc.Register(ctx, "leave@example.com", "a good password")
		require.NoError(t, err)
		events, err := b.svc.Watch(ctx, watch)
		require.NoError(t, err)
		<-events
		cancel()
		for range events {
		}
		require.Zero(t, b.hub.Len())
	})
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{" Mixed.Case@Example.COM ", "mixed.case@example.com", true},
		{"a+tag@sub.example.org", "a+tag@sub.example.org", true},
		{"", "", false},
		{"plain", "", false},
		{"@example.com", "", false},
		{"a@", "", false},
		{"a@b", "", false},
		{"a@.com", "", false},
		{"a@example.com.", "", false},
		{"a@[127.0.0.1]", "", false},
		{"Name <a@example.com>", "", false},
		{"a b@example.com", "", false},
		{"a@example.com\n", "a@example.com", true},
		{strings.Repeat("a", 65) + "@example.com", "", false},
		{"a\xff@example.com", "", false},
		{"\u212a@example.com", "k@example.com", true},              // Kelvin sign: 3 bytes, lower-cased 1
		{strings.Repeat("\u023a", 32) + "@example.com", "", false}, // 64 bytes, 96 once lower-cased
	}
	for _, tt := range tests {
		got, err := NormalizeEmail(tt.in)
		if !tt.ok {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		require.Equal(t, tt.want, got)
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"1234567", false},
		{"12345678", true},
		{"ééééééé", false}, // 7 characters, 14 bytes
		{"éééééééé", true}, // 8 characters
		{string(make([]rune, 256)), true},
		{string(make([]rune, 257)), false},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", false},
	}
	for _, tt := range tests {
		err := CheckPassword(tt.in)
		if tt.ok {
			require.NoError(t, err, "%q", tt.in)
		} else {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
		}
	}
}
