// Package graph is the GraphQL API of the public contract, built with
// gqlgen. Resolvers only translate: they call the account service and map
// its results to the schema's types; errors become the contract's codes in
// one place, errors.go.
package graph

//go:generate go tool -C .. gqlgen generate

import (
	"context"

	"github.com/verifier/verifier/internal/account"
)

// Accounts is what the resolvers need from the account service.
type Accounts interface {
	Register(ctx context.Context, email, password string) (watchToken string, err error)
	VerifyEmail(ctx context.Context, token string) (account.Verification, error)
	Resend(ctx context.Context, email string) error
	Status(ctx context.Context, watchToken string) (account.Status, error)
	Watch(ctx context.Context, watchToken string) (<-chan account.StatusEvent, error)
}

var _ Accounts = (*account.Service)(nil)

// Resolver is the root resolver; it holds the dependencies.
type Resolver struct {
	Accounts Accounts
}
