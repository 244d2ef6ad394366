package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/verifier/verifier/internal/gqlws"
)

// WebsocketPolicy is every websocket setting of the service, in one place:
// the GraphQL transport (Transport, for graph.HandlerOptions) and the
// per-client cap (this package's middleware).
type WebsocketPolicy struct {
	// HandshakeTimeout bounds the upgrade handshake.
	HandshakeTimeout time.Duration
	// ReadBufferSize is gorilla's read buffer, kept for the socket's whole
	// life: small, since client messages are small (a larger one is read
	// in pieces). Writes borrow a buffer from a pool only while writing,
	// so an idle socket holds none.
	ReadBufferSize int
	// MaxMessageBytes bounds one message from a client.
	MaxMessageBytes int64
	// InitTimeout drops a socket that never says hello.
	InitTimeout time.Duration
	// KeepAlive is how often an idle socket is pinged with websocket ping
	// frames (a pong is due within twice this). gqlws sends them from a
	// timer, not from a goroutine per socket as gqlgen's keep-alive
	// would.
	KeepAlive time.Duration
	// MaxSubscriptionsPerSocket and MaxSubscriptions cap the subscriptions
	// open on one socket and in the process; 0 is no cap.
	MaxSubscriptionsPerSocket, MaxSubscriptions int
	// MaxSocketsPerClient caps the sockets one client address (an IPv6
	// /64 counting as one) holds open; 0 is no cap.
	MaxSocketsPerClient int
}

// Defaults of WebsocketPolicy; the caps come from configuration.
const (
	// DefaultHandshakeTimeout: an upgrade is one round trip; a client that
	// takes longer is gone or hostile.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxMessageBytes: the largest legitimate message is a
	// subscribe with a watch token, far under this; the same bound as a
	// POST body.
	DefaultMaxMessageBytes = DefaultMaxBodyBytes
	// DefaultInitTimeout: a client that opens a socket and never says
	// hello is dropped.
	DefaultInitTimeout = 10 * time.Second
	// DefaultKeepAlive: dead peers are noticed within a minute, under the
	// usual 60s idle timeout of proxies in between.
	DefaultKeepAlive = gqlws.PingInterval
)

// DefaultWebsocketPolicy returns the defaults with the given caps.
func DefaultWebsocketPolicy(perSocket, total, perClient int) WebsocketPolicy {
	return WebsocketPolicy{
		HandshakeTimeout:          DefaultHandshakeTimeout,
		ReadBufferSize:            gqlws.ReadBufferSize,
		MaxMessageBytes:           DefaultMaxMessageBytes,
		InitTimeout:               DefaultInitTimeout,
		KeepAlive:                 DefaultKeepAlive,
		MaxSubscriptionsPerSocket: perSocket,
		MaxSubscriptions:          total,
		MaxSocketsPerClient:       perClient,
	}
}

// Transport is the GraphQL websocket transport with this policy's
// settings; conns tracks every socket so shutdown can close them all with
// one code.
func (p WebsocketPolicy) Transport(conns *gqlws.Conns) gqlws.Transport {
	return gqlws.Transport{
		Upgrader: websocket.Upgrader{
			HandshakeTimeout: p.HandshakeTimeout,
			ReadBufferSize:   p.ReadBufferSize,
			WriteBufferPool:  gqlws.NewWriteBufferPool(),
			// The server checks the origin before the upgrade, with the
			// contract's rules (checkOrigin).
			CheckOrigin: func(*http.Request) bool { return true },
		},
		Conns:        conns,
		PingInterval: p.KeepAlive,
		InitTimeout:  p.InitTimeout,
		ReadLimit:    p.MaxMessageBytes,
	}
}
