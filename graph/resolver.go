// Package graph is the GraphQL API of the public contract, built with
// gqlgen. Resolvers only translate: they call the account service and map
// its results to the schema's types; errors become the contract's codes in
// one place, errors.go.
package graph

//go:generate go tool -C .. gqlgen generate

import (
	"context"
	"time"

	"github.com/verifier/verifier/graph/model"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/status"
)

// Accounts is what the resolvers need from the account service.
type Accounts interface {
	Register(ctx context.Context, in account.RegisterInput) (watchToken string, err error)
	VerifyEmail(ctx context.Context, token string) (account.Verification, error)
	VerifyEmailWithCode(ctx context.Context, watchToken, code string) (account.Verification, error)
	SignIn(ctx context.Context, email, password string) (token string, expiresAt time.Time, err error)
	// ChangeEmail and ConfirmEmailChange take the request's bearer token.
	ChangeEmail(ctx context.Context, bearer, newEmail string) error
	ConfirmEmailChange(ctx context.Context, bearer, code string) (account.Verification, error)
	// Receipt signs the proof of a verification, for a client that asked.
	Receipt(ctx context.Context, v account.Verification) (string, error)
	Resend(ctx context.Context, email string) error
	Status(ctx context.Context, watchToken string) (status.Status, error)
	// Watch's channel is the subscription's: gqlgen reads it directly, and
	// its closing completes the subscription. notify, if set, is called
	// before each event and before the close.
	Watch(ctx context.Context, watchToken string, withDelivery bool, notify func()) (<-chan *status.Change, error)
}

var _ Accounts = (*account.Service)(nil)

// Resolver is the root resolver; it holds the dependencies.
type Resolver struct {
	Accounts Accounts
	// ClientLimit bounds register and resend calls per client (they hash a
	// password or send mail); nil is no limit.
	ClientLimit *ratelimit.Limiter
	// VerifyLimit bounds verifyEmail, verifyEmailWithCode, signIn and
	// confirmEmailChange calls per client, more generously: a person
	// clicks a link or types a code a few times, a guesser calls by the
	// thousand. nil is no limit.
	VerifyLimit *ratelimit.Limiter
}

// verification maps a confirmation to its payload.
func verification(v account.Verification) *model.VerifyEmailPayload {
	return &model.VerifyEmailPayload{Verification: v, Status: status.Verified}
}

// limitClient spends one of the calling client's tokens from l before a
// mutation runs.
func limitClient(ctx context.Context, l *ratelimit.Limiter) error {
	if ok, wait := l.Allow(ratelimit.Client(ctx)); !ok {
		return apperr.Limited(wait, "too many requests from this client; try again in %d seconds", account.RetryAfterSeconds(wait))
	}
	return nil
}

// watch opens a verificationStatus subscription. On a websocket its stream
// tells the transport before each event, so the subscription waits with
// no goroutine (gqlws.Ready); elsewhere (SSE) gqlgen waits on it as usual.
func (r *Resolver) watch(ctx context.Context, watchToken string, withDelivery bool) (<-chan *status.Change, error) {
	ready := gqlws.ReadyFrom(ctx)
	var notify func()
	if ready != nil {
		notify = ready.Notify
	}
	ch, err := r.Accounts.Watch(ctx, watchToken, withDelivery, notify)
	if err == nil {
		ready.Arm()
	}
	return ch, err
}
