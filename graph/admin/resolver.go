// Package admin is the admin API's GraphQL schema (POST /admin/query),
// built with gqlgen apart from the public one: its own schema and
// generated code, the public API's error presenter and its kind of bounds
// on a request (limit.go). Resolvers only translate: the service package
// internal/admin holds the logic.
package admin

//go:generate go tool -C ../.. gqlgen generate --config graph/admin/gqlgen.yml

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/graph/admin/model"
	adminsvc "github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/status"
)

// Resolver is the root resolver; it holds the dependencies.
type Resolver struct {
	Admin *adminsvc.Service
}

// user maps a user to the schema's type. Its deliveries stay nil: the
// deliveries resolver reads them when asked, unless withDeliveries has
// filled them in (never nil then).
func user(u *ent.User) *model.User {
	m := &model.User{ID: u.ID.String(), Email: u.Email, Status: status.Status(u.Status), CreatedAt: u.CreatedAt.UTC()}
	if u.VerifiedAt != nil {
		at := u.VerifiedAt.UTC()
		m.VerifiedAt = &at
	}
	return m
}

// orDefault is a list's first argument, DefaultPage when absent.
func orDefault(first *int) int {
	if first == nil {
		return adminsvc.DefaultPage
	}
	return *first
}

// optional is s as an optional field: nil when empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// withDeliveries fills in the emails of a page's users (edges[i] is
// users[i]'s) with one look-up for the whole page, where the deliveries
// resolver would make one per user.
func (r *Resolver) withDeliveries(ctx context.Context, users []*ent.User, edges []*model.UserEdge) error {
	ids := make([]uuid.UUID, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	all, err := r.Admin.DeliveriesOf(ctx, ids)
	if err != nil {
		return err
	}
	for i, e := range edges {
		e.Node.Deliveries = all[ids[i]]
	}
	return nil
}

// selects reports whether the field being resolved selects the fields of
// path, one below the other, fragments and @skip/@include considered.
func selects(ctx context.Context, path ...string) bool {
	oc := graphql.GetOperationContext(ctx)
	set := graphql.GetFieldContext(ctx).Field.Selections
	for _, name := range path {
		found := false
		var next ast.SelectionSet
		for _, f := range graphql.CollectFields(oc, set, nil) {
			if f.Name == name {
				found = true
				next = append(next, f.Selections...)
			}
		}
		if !found {
			return false
		}
		set = next
	}
	return true
}
