package admin

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestCursor(t *testing.T) {
	t.Parallel()
	c := cursor{CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.New()}
	got, err := decodeCursor(encodeCursor(c))
	require.NoError(t, err)
	require.True(t, c.CreatedAt.Equal(got.CreatedAt))
	require.Equal(t, c.ID, got.ID)
	for _, bad := range []string{"x", "bm9wZQ", encodeCursor(cursor{}), "eyJ0IjoiMjAyNi0wMS0wMlQwMzowNDowNVoifQ"} {
		_, err := decodeCursor(bad)
		var e *apperr.Error
		require.ErrorAs(t, err, &e, bad)
		require.Equal(t, apperr.BadUserInput, e.Code)
	}
}

// The checks that need no database: bad arguments never reach one.
func TestArguments(t *testing.T) {
	t.Parallel()
	s := &Service{}
	ctx := context.Background()
	id, email := "x", "a@example.com"
	// SQLite refuses a LIKE pattern over 50,000 bytes: that answered
	// INTERNAL. No address is longer than account.MaxEmailLen.
	long := strings.Repeat("a", account.MaxEmailLen+1)
	// PostgreSQL refuses a NUL in a text parameter: that answered INTERNAL.
	nul := "a\x00b"
	for name, err := range map[string]error{
		"neither":     func() error { _, err := s.User(ctx, nil, nil); return err }(),
		"both":        func() error { _, err := s.User(ctx, &id, &email); return err }(),
		"bad id":      func() error { _, err := s.User(ctx, &id, nil); return err }(),
		"first 0":     func() error { _, err := s.Users(ctx, UsersQuery{First: 0}); return err }(),
		"first 201":   func() error { _, err := s.Users(ctx, UsersQuery{First: MaxPage + 1}); return err }(),
		"long filter": func() error { _, err := s.Users(ctx, UsersQuery{First: 10, EmailContains: &long}); return err }(),
		"NUL filter":  func() error { _, err := s.Users(ctx, UsersQuery{First: 10, EmailContains: &nul}); return err }(),
		"dead -1":     func() error { _, err := s.DeadLetters(ctx, -1); return err }(),
		"no webhooks": s.ReplayWebhook(ctx, 1),
		"resend bad":  func() error { _, err := s.ResendVerificationEmail(ctx, "nope"); return err }(),
		"delete bad":  s.DeleteUser(ctx, ""),
		"mark bad":    func() error { _, err := s.MarkVerified(ctx, "1"); return err }(),
	} {
		var e *apperr.Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, apperr.BadUserInput, e.Code, name)
	}
	_, err := s.Users(ctx, UsersQuery{First: 10, EmailContains: &long})
	require.ErrorContains(t, err, "at most 254 bytes", "counted in bytes, as an address, and said so")
	hooks, err := s.FailedWebhooks(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, hooks, "none without webhooks")
}

// accountsStub answers every change as done, as the account service does
// for an existing user.
type accountsStub struct{}

func (accountsStub) ResendTo(context.Context, uuid.UUID) (bool, error) { return true, nil }
func (accountsStub) MarkVerified(_ context.Context, id uuid.UUID) (*ent.User, error) {
	at := time.Date(2026, 12, 8, 3, 4, 5, 0, time.UTC)
	return &ent.User{ID: id, VerifiedAt: &at}, nil
}
func (accountsStub) DeleteUser(context.Context, uuid.UUID) error { return nil }

// Each change an operator makes leaves a line in the replica's log, naming
// the user by id; a refused call, whose argument is the client's own,
// leaves none.
func TestChangesAreLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	id := uuid.New()
	for _, tc := range []struct {
		name   string
		change func(s *Service) error
		want   string // "" for no line
	}{
		{"resend", func(s *Service) error { _, err := s.ResendVerificationEmail(ctx, id.String()); return err }, "msg=\"admin: verification email sent again\" user=" + id.String()},
		{"mark verified", func(s *Service) error { _, err := s.MarkVerified(ctx, id.String()); return err }, "msg=\"admin: user marked verified\" user=" + id.String() + " verified_at=2026-12-08T03:04:05.000Z"},
		{"erase", func(s *Service) error { return s.DeleteUser(ctx, id.String()) }, "msg=\"admin: user erased\" user=" + id.String()},
		{"a malformed id", func(s *Service) error { return s.DeleteUser(ctx, "not-an-id-7q") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs testkit.LogBuffer
			s := &Service{Accounts: accountsStub{}, Log: slog.New(slog.NewTextHandler(&logs, nil))}
			err := tc.change(s)
			if tc.want == "" {
				require.Error(t, err)
				require.Empty(t, logs.String())
				return
			}
			require.NoError(t, err)
			require.Contains(t, logs.String(), tc.want)
			require.Equal(t, 1, strings.Count(logs.String(), "\n"), logs.String())
		})
	}
}
