package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/codes"

	"github.com/verifier/verifier/internal/tracing"
)

// traceResolvers gives each root field's resolver (register, verifyEmail,
// a subscription's start…) a span under the HTTP request's: the account
// service's transaction runs in it, and the outbox rows it writes carry
// its context on to the broker. Nested fields get none: they read what the
// root resolver returned, and a span each would bury the ones that matter.
type traceResolvers struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.FieldInterceptor
} = traceResolvers{}

func (traceResolvers) ExtensionName() string                   { return "TraceResolvers" }
func (traceResolvers) Validate(graphql.ExecutableSchema) error { return nil }

func (traceResolvers) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	// A root field's parent is the operation's object (Mutation…), whose
	// parent is none.
	if fc == nil || !fc.IsResolver || (fc.Parent != nil && fc.Parent.Parent != nil) {
		return next(ctx)
	}
	ctx, span := tracing.Tracer().Start(ctx, fc.Object+"."+fc.Field.Name)
	defer span.End()
	res, err := next(ctx)
	if err != nil {
		// The error's code only: its message may quote what the client
		// sent.
		span.SetStatus(codes.Error, "resolver failed")
	}
	return res, err
}
