package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/internal/apperr"
)

// mutationLimit caps the mutation fields in one operation. Every field of
// this schema is cheap except the mutations (register hashes a password);
// without a cap one request could alias register hundreds of times.
type mutationLimit struct{ max int }

var (
	_ graphql.HandlerExtension        = mutationLimit{}
	_ graphql.OperationContextMutator = mutationLimit{}
)

func (mutationLimit) ExtensionName() string                   { return "MutationLimit" }
func (mutationLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l mutationLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return nil
	}
	if n := countFields(oc.Operation.SelectionSet, oc.Doc.Fragments); n > l.max {
		err := gqlerror.Errorf("at most %d mutations per request, got %d", l.max, n)
		err.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
		return err
	}
	return nil
}

// countFields counts the top-level fields, looking through fragments.
func countFields(set ast.SelectionSet, frags ast.FragmentDefinitionList) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			n++
		case *ast.InlineFragment:
			n += countFields(s.SelectionSet, frags)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil {
				n += countFields(f.SelectionSet, frags)
			}
		}
	}
	return n
}
