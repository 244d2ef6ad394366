package admin

import (
	"log/slog"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/verifier/verifier/graph"
)

// NewHandler returns the admin API's GraphQL endpoint: POST only (its
// callers are servers and scripts, so no websocket and no CORS), with the
// public API's error presenter, so an error has the same contract code on
// both, and bounds of the same kind on a request (bounds). The HTTP edge
// lets only requests with the admin token reach it, introspection
// included.
func NewHandler(r *Resolver, log *slog.Logger) *handler.Server {
	cfg := Config{Resolvers: r}
	weigh(&cfg.Complexity)
	srv := handler.New(NewExecutableSchema(cfg))
	srv.AddTransport(transport.POST{})
	cache := lru.New[*ast.QueryDocument](100)
	srv.SetQueryCache(cache)
	srv.Use(extension.Introspection{})
	graph.Bound(srv, cache, bounds)
	srv.SetErrorPresenter(graph.ErrorPresenter(log))
	srv.SetRecoverFunc(graph.RecoverFunc(log))
	return srv
}
