package graph

import (
	"context"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Log *slog.Logger
	// Websocket accepts websocket connections (the gorilla adapter).
	Websocket transport.WebsocketImplementation
	// MaxMessageBytes bounds one websocket message from a client.
	MaxMessageBytes int64
}

// NewHandler returns the GraphQL endpoint: POST for queries and
// mutations, websockets (graphql-transport-ws and legacy graphql-ws) for
// subscriptions.
func NewHandler(r *Resolver, o HandlerOptions) *handler.Server {
	srv := handler.New(NewExecutableSchema(Config{Resolvers: r}))
	limit := o.MaxMessageBytes
	srv.AddTransport(transport.Websocket{
		Implementation: o.Websocket,
		// A client that opens a socket and never says hello is dropped.
		InitTimeout: 10 * time.Second,
		// graphql-ws (legacy) keep-alive, and graphql-transport-ws ping with
		// a pong deadline: dead peers are noticed within a minute.
		KeepAlivePingInterval: 25 * time.Second,
		PingPongInterval:      25 * time.Second,
		PayloadReadLimit:      &limit,
		ErrorFunc: func(_ context.Context, err error) {
			o.Log.Debug("websocket error", "err", err)
		},
	})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	// Introspection feeds the playground and client code generators; the
	// schema is public anyway.
	srv.Use(extension.Introspection{})
	srv.Use(mutationLimit{max: 5})
	srv.SetErrorPresenter(ErrorPresenter(o.Log))
	srv.SetRecoverFunc(RecoverFunc(o.Log))
	return srv
}
