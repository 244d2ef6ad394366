package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/signer"
)

// Failed sign-ins allowed per BudgetWindow (an hour) by default: enough
// for a person who mistypes, far too few to guess a password.
const (
	DefaultSignInAddressLimit = 10
	DefaultSignInClientLimit  = 50
)

// dummyPassword is hashed once into the hash an unknown address's
// sign-in is checked against.
const dummyPassword = "verifier: no account has this password hash"

var errBadCredentials = apperr.Errorf(apperr.InvalidCredentials, "the email address or the password is wrong")

// SignIn checks a password and answers a session token for a VERIFIED
// address. An unknown address and a wrong password answer the same
// INVALID_CREDENTIALS after the same work (an argon2id check against a
// fixed hash for the unknown address, and the same counting); only the
// right password learns EMAIL_NOT_VERIFIED. Failures count per address
// (canonical, so a+1@x and a+2@x share) and per client in the database,
// shared by every replica; over either limit RATE_LIMITED until the hour
// ends, whatever the password.
func (s *Service) SignIn(ctx context.Context, email, pw string) (token string, expiresAt time.Time, err error) {
	email, err = NormalizeEmail(email)
	if err != nil {
		return "", time.Time{}, err
	}
	if len(pw) > 4*MaxPasswordLen {
		// Longer than any password register takes: nothing to hash.
		return "", time.Time{}, apperr.Errorf(apperr.BadUserInput, "password must be at most %d characters", MaxPasswordLen)
	}
	scopes := []signInScope{
		{"signin:" + CanonicalEmail(email), s.SignInAddressLimit},
		{"signin-client:" + ratelimit.Key(ratelimit.Client(ctx)), s.SignInClientLimit},
	}
	if err := s.signInAllowed(ctx, scopes); err != nil {
		return "", time.Time{}, err
	}
	u, err := s.DB.User.Query().Where(user.Email(email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return "", time.Time{}, fmt.Errorf("sign in: %w", err)
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	} else if hash, err = s.dummy(ctx); err != nil {
		return "", time.Time{}, fmt.Errorf("sign in: %w", err)
	}
	ok, err := s.Hasher.Verify(ctx, pw, hash)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign in: %w", err)
	}
	if u == nil || !ok {
		if err := s.signInFailed(ctx, scopes); err != nil {
			return "", time.Time{}, fmt.Errorf("sign in: %w", err)
		}
		return "", time.Time{}, errBadCredentials
	}
	if u.Status != user.StatusVERIFIED {
		return "", time.Time{}, apperr.Errorf(apperr.EmailNotVerified, "this email address is not verified yet; confirm it with the link or code we sent, or ask for a new email")
	}
	if s.Signer == nil {
		return "", time.Time{}, errors.New("sign in: no signer")
	}
	token, expiresAt, err = s.Signer.Session(ctx, Claims{UserID: u.ID, Email: u.Email, VerifiedAt: u.VerifiedAt.UTC()})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign in: %w", err)
	}
	return token, expiresAt, nil
}

// dummy is the fixed hash unknown addresses are checked against, made
// with the service's own parameters so that the check costs the same.
func (s *Service) dummy(ctx context.Context) (string, error) {
	s.dummyOnce.Do(func() { s.dummyHash, s.dummyErr = s.Hasher.Hash(ctx, dummyPassword) })
	return s.dummyHash, s.dummyErr
}

// signInScope is one counter of failed sign-ins and its limit.
type signInScope struct {
	scope string
	limit int
}

// signInAllowed answers RATE_LIMITED while a scope's failures of this
// window reached its limit.
func (s *Service) signInAllowed(ctx context.Context, scopes []signInScope) error {
	now := s.now()
	window := now.Truncate(BudgetWindow)
	for _, sc := range scopes {
		b, err := s.DB.EmailBudget.Query().Where(emailbudget.Scope(sc.scope), emailbudget.WindowStart(window.Unix())).Only(ctx)
		if ent.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sign in: read failures: %w", err)
		}
		if b.Sent >= sc.limit {
			wait := window.Add(BudgetWindow).Sub(now)
			return apperr.Limited(wait, "too many failed sign-ins; try again in %d seconds", RetryAfterSeconds(wait))
		}
	}
	return nil
}

// signInFailed counts a failure in every scope.
func (s *Service) signInFailed(ctx context.Context, scopes []signInScope) error {
	window := s.now().Truncate(BudgetWindow)
	for _, sc := range scopes {
		if _, err := s.countUp(ctx, s.DB, sc.scope, window, 0); err != nil {
			return fmt.Errorf("count failure: %w", err)
		}
	}
	return nil
}

// Authenticate returns the VERIFIED user a session token (a bearer
// token) names, or UNAUTHENTICATED. A receipt is refused by the Signer: it
// is a proof for apps, never a credential.
func (s *Service) Authenticate(ctx context.Context, bearer string) (*ent.User, error) {
	unauthenticated := apperr.Errorf(apperr.Unauthenticated, "sign in first: this needs Authorization: Bearer with a signIn token")
	if bearer == "" || len(bearer) > 4096 || s.Signer == nil {
		return nil, unauthenticated
	}
	c, err := s.Signer.VerifySession(ctx, bearer)
	if errors.Is(err, signer.ErrInvalid) {
		return nil, unauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	u, err := s.DB.User.Get(ctx, c.UserID)
	if ent.IsNotFound(err) || (err == nil && u.Status != user.StatusVERIFIED) {
		return nil, unauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return u, nil
}
