package graph

import (
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/verifier/verifier/internal/gqlws"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Log *slog.Logger
	// Websocket serves subscriptions over websockets, with the service's
	// websocket settings (httpapi.WebsocketPolicy.Transport); NewHandler
	// adds the per-socket count and the log.
	Websocket gqlws.Transport
	// MaxSubscriptionsPerSocket and MaxSubscriptions cap the subscriptions
	// open on one websocket and in the process; 0 is no cap.
	MaxSubscriptionsPerSocket int
	MaxSubscriptions          int
	// StreamKeepAlive is how often an idle SSE stream gets a comment
	// line, so proxies in between do not time it out; 0 sends none.
	StreamKeepAlive time.Duration
}

// persistedQueries bounds the automatic persisted queries kept: each is
// at most a request body (64 KiB), and a client that finds its hash
// evicted sends the query again (Apollo's link does).
const persistedQueries = 1000

// NewHandler returns the GraphQL endpoint: POST for every operation, GET
// for queries only, Server-Sent Events (graphql-sse, distinct
// connections) and websockets (graphql-transport-ws and legacy graphql-ws)
// for subscriptions; automatic persisted queries over POST and GET.
func NewHandler(r *Resolver, o HandlerOptions) *handler.Server {
	cfg := Config{Resolvers: r}
	weighLookups(&cfg.Complexity)
	srv := handler.New(NewExecutableSchema(cfg))
	ws := o.Websocket
	// Each socket counts its own subscriptions (subscriptionLimit).
	ws.OnInit = withSocketCount
	ws.Log = o.Log
	srv.AddTransport(ws)
	// Before POST, which would take the same request: SSE is a POST that
	// accepts text/event-stream.
	srv.AddTransport(transport.SSE{KeepAlivePingInterval: o.StreamKeepAlive})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(getQueries{})
	cache := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(cache)
	// Introspection feeds the playground and client code generators; the
	// schema is public anyway.
	srv.Use(extension.Introspection{})
	// Before fieldLimit, which needs the query a hash stands for.
	srv.Use(automaticPersistedQuery{extension.AutomaticPersistedQuery{Cache: lru.New[string](persistedQueries)}})
	// First of the operation checks, before the field limit and gqlgen's
	// validation: a mutation over GET gets 405 whatever else is wrong
	// with it.
	srv.Use(queriesOnlyOverGET{tokens: publicBounds.ParserTokens, cache: cache})
	Bound(srv, cache, publicBounds)
	present := ErrorPresenter(o.Log)
	srv.Use(&subscriptionLimit{
		perSocket: int64(o.MaxSubscriptionsPerSocket),
		total:     int64(o.MaxSubscriptions),
		present:   present,
	})
	srv.SetErrorPresenter(present)
	srv.Use(traceResolvers{})
	srv.SetRecoverFunc(RecoverFunc(o.Log))
	return srv
}
