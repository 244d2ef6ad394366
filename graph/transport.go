package graph

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/internal/apperr"
)

// getKey marks the context of a request that came over GET; its value is
// the *bool queriesOnlyOverGET sets when it refuses the operation.
type getKey struct{}

// getQueries is gqlgen's GET transport, answering anything but a query
// with 405 and "Allow: POST" (GraphQL over HTTP): a GET must be safe, as
// browsers, proxies and link previews repeat and prefetch it, and a
// mutation over GET could be sent by any <img> on any site. The operation
// is refused by queriesOnlyOverGET before it runs, once its persisted
// query is resolved and it is parsed and validated, so the answer carries
// the contract's code like any other.
type getQueries struct{ transport.GET }

var _ graphql.Transport = getQueries{}

func (t getQueries) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	refused := new(bool)
	r = r.WithContext(context.WithValue(r.Context(), getKey{}, refused))
	t.GET.Do(&allowPOST{ResponseWriter: w, refused: refused}, r, exec)
}

// allowPOST turns the status of an answer into 405 with "Allow: POST"
// once queriesOnlyOverGET has refused the operation.
type allowPOST struct {
	http.ResponseWriter
	refused *bool
}

func (a *allowPOST) WriteHeader(code int) {
	if *a.refused {
		a.Header().Set("Allow", "POST")
		code = http.StatusMethodNotAllowed
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *allowPOST) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// queriesOnlyOverGET refuses a mutation or subscription that came over
// GET (getQueries), before anything runs.
type queriesOnlyOverGET struct{}

var (
	_ graphql.HandlerExtension        = queriesOnlyOverGET{}
	_ graphql.OperationContextMutator = queriesOnlyOverGET{}
)

func (queriesOnlyOverGET) ExtensionName() string                   { return "QueriesOnlyOverGET" }
func (queriesOnlyOverGET) Validate(graphql.ExecutableSchema) error { return nil }

func (queriesOnlyOverGET) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	refused, overGET := ctx.Value(getKey{}).(*bool)
	if !overGET || oc.Operation == nil || oc.Operation.Operation == ast.Query {
		return nil
	}
	*refused = true
	return badInput("a %s cannot be sent over GET: use POST (or, for a subscription, a websocket or POST with Accept: text/event-stream)", oc.Operation.Operation)
}

// automaticPersistedQuery is gqlgen's, with a code on each of its errors:
// PersistedQueryNotFound already has Apollo's PERSISTED_QUERY_NOT_FOUND
// (the link's signal to send the query with its hash); a hash that does
// not match its query, or a malformed extension, is the client's mistake,
// BAD_USER_INPUT. Its messages quote nothing the client sent.
type automaticPersistedQuery struct {
	extension.AutomaticPersistedQuery
}

var _ graphql.OperationParameterMutator = automaticPersistedQuery{}

func (a automaticPersistedQuery) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	err := a.AutomaticPersistedQuery.MutateOperationParameters(ctx, p)
	if err != nil && err.Extensions["code"] == nil {
		errcode.Set(err, string(apperr.BadUserInput))
	}
	return err
}
