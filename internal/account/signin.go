package account

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

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
//
// Each sign-in takes its try before the password is checked and only the
// right password gives it back: a count read before the check and written
// after it let through every sign-in that arrived while the first ones
// were hashing, so parallel guesses took as many tries as they were
// requests, whatever the limit.
func (s *Service) SignIn(ctx context.Context, email, pw string) (token string, expiresAt time.Time, err error) {
	email, err = NormalizeEmail(email)
	if err != nil {
		return "", time.Time{}, err
	}
	// Longer than any password register takes: nothing to hash, and no
	// try taken. Counted in characters, as register counts them (the
	// contract's BAD_USER_INPUT rule); the byte bound first spares
	// counting an oversized argument.
	if len(pw) > 4*MaxPasswordLen || utf8.RuneCountInString(pw) > MaxPasswordLen {
		return "", time.Time{}, apperr.Errorf(apperr.BadUserInput, "password must be at most %d characters", MaxPasswordLen)
	}
	scopes := []signInScope{
		{"signin:" + CanonicalEmail(email), s.SignInAddressLimit},
		{"signin-client:" + ratelimit.Key(ratelimit.Client(ctx)), s.SignInClientLimit},
	}
	window, err := s.takeSignInTry(ctx, scopes)
	if err != nil {
		return "", time.Time{}, err
	}
	u, ok, err := s.checkPassword(ctx, email, pw)
	if err == nil && (u == nil || !ok) {
		return "", time.Time{}, errBadCredentials // the try stays taken
	}
	// The right password, or no answer: not a failure.
	if gerr := s.giveSignInTry(ctx, scopes, window); err == nil {
		err = gerr
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign in: %w", err)
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

// checkPassword finds the user of email (nil if none) and reports
// whether pw is its password, checked against the dummy hash when there is
// no such user.
func (s *Service) checkPassword(ctx context.Context, email, pw string) (*ent.User, bool, error) {
	u, err := s.DB.User.Query().Where(user.Email(email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return nil, false, err
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	} else if hash, err = s.dummy(ctx); err != nil {
		return nil, false, err
	}
	ok, err := s.Hasher.Verify(ctx, pw, hash)
	return u, ok, err
}

// takeSignInTry counts a try in every scope, each one conditional upsert
// that counts only below the scope's limit (countUp), so concurrent
// sign-ins on any replica cannot take more tries between them. Over a
// limit it gives back what it took and answers RATE_LIMITED until the
// window ends. It returns the window the tries count in.
func (s *Service) takeSignInTry(ctx context.Context, scopes []signInScope) (time.Time, error) {
	now := s.now()
	window := now.Truncate(BudgetWindow)
	for i, sc := range scopes {
		ok, err := s.countUp(ctx, s.DB, sc.scope, window, sc.limit)
		if err == nil && ok {
			continue
		}
		if gerr := s.giveSignInTry(ctx, scopes[:i], window); err == nil {
			err = gerr
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("sign in: count try: %w", err)
		}
		wait := window.Add(BudgetWindow).Sub(now)
		return time.Time{}, apperr.Limited(wait, "too many failed sign-ins; try again in %d seconds", RetryAfterSeconds(wait))
	}
	return window, nil
}

// giveSignInTry gives back the tries takeSignInTry took in window, in
// one statement.
func (s *Service) giveSignInTry(ctx context.Context, scopes []signInScope, window time.Time) error {
	if len(scopes) == 0 {
		return nil
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = sc.scope
	}
	err := s.DB.EmailBudget.Update().
		Where(emailbudget.ScopeIn(names...), emailbudget.WindowStart(window.Unix()), emailbudget.SentGT(0)).
		AddSent(-1).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("give try back: %w", err)
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
