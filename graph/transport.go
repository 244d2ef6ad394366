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
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/verifier/verifier/internal/apperr"
)

// getKey marks the context of a request that came over GET; its value is
// the *bool queriesOnlyOverGET sets when it refuses the operation.
type getKey struct{}

// getQueries is gqlgen's GET transport, answering anything but a query
// with 405 and "Allow: POST" (GraphQL over HTTP): a GET must be safe, as
// browsers, proxies and link previews repeat and prefetch it, and a
// mutation over GET could be sent by any <img> on any site. The operation
// is refused by queriesOnlyOverGET before anything else is checked of it,
// once its persisted query is resolved, so the answer carries the
// contract's code like any other.
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
// GET (getQueries), before anything runs and before validation: a
// mutation over GET answers 405 whatever else is wrong with it (unknown
// fields, variables of the wrong type, too many fields), as the contract
// says. It parses the document (a query in gqlgen's cache is parsed
// already) and picks the operation by operationName as gqlgen will; a
// document that does not parse, or names no operation it has, is left to
// gqlgen's own errors.
type queriesOnlyOverGET struct {
	// tokens is the parser's token limit (Bounds.ParserTokens).
	tokens int
	cache  graphql.Cache[*ast.QueryDocument]
}

var (
	_ graphql.HandlerExtension          = queriesOnlyOverGET{}
	_ graphql.OperationParameterMutator = queriesOnlyOverGET{}
)

func (queriesOnlyOverGET) ExtensionName() string                   { return "QueriesOnlyOverGET" }
func (queriesOnlyOverGET) Validate(graphql.ExecutableSchema) error { return nil }

func (q queriesOnlyOverGET) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	refused, overGET := ctx.Value(getKey{}).(*bool)
	if !overGET {
		return nil
	}
	doc, ok := q.cache.Get(ctx, p.Query)
	if !ok {
		var err error
		if doc, err = parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, q.tokens); err != nil {
			return nil // gqlgen parses again and reports it
		}
	}
	op := doc.Operations.ForName(p.OperationName)
	if op == nil || op.Operation == ast.Query {
		return nil
	}
	*refused = true
	return badInput("a %s cannot be sent over GET: use POST (or, for a subscription, a websocket or POST with Accept: text/event-stream)", op.Operation)
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
