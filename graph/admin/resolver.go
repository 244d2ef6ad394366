// Package admin is the admin API's GraphQL schema (POST /admin/query),
// built with gqlgen apart from the public one: its own schema and
// generated code, the public API's error presenter. Resolvers only
// translate: the service package internal/admin holds the logic.
package admin

//go:generate go tool -C ../.. gqlgen generate --config graph/admin/gqlgen.yml

import (
	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/graph/admin/model"
	adminsvc "github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/status"
)

// Resolver is the root resolver; it holds the dependencies.
type Resolver struct {
	Admin *adminsvc.Service
}

// user maps a user to the schema's type; its deliveries are resolved when
// asked for.
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
