// Package wsgorilla adapts github.com/gorilla/websocket to gqlgen's
// transport.WebsocketImplementation. gqlgen now defaults to another
// websocket library; this service keeps gorilla, and this small adapter is
// the whole of that choice.
package wsgorilla

import (
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// writeTimeout bounds one write, so a client that stops reading cannot
// hold a writer (and the subscription behind it) forever.
const writeTimeout = 10 * time.Second

// Implementation accepts websocket connections with Upgrader.
type Implementation struct {
	Upgrader websocket.Upgrader
}

var _ transport.WebsocketImplementation = Implementation{}

// Accept upgrades the request, offering gqlgen's subprotocols.
func (i Implementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	up := i.Upgrader
	up.Subprotocols = slices.Clone(up.Subprotocols)
	for _, p := range o.Subprotocols {
		if !slices.Contains(up.Subprotocols, p) {
			up.Subprotocols = append(up.Subprotocols, p)
		}
	}
	if up.Error == nil {
		// gqlgen writes its own error response when Accept fails; stop
		// gorilla from writing a second one.
		up.Error = func(http.ResponseWriter, *http.Request, int, error) {}
	}
	c, err := up.Upgrade(w, r, o.ResponseHeader)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c}, nil
}

// Conn is an accepted connection.
type Conn struct {
	c *websocket.Conn
}

var (
	_ transport.WebsocketConn          = (*Conn)(nil)
	_ transport.WebsocketReadLimiter   = (*Conn)(nil)
	_ transport.WebsocketReadDeadliner = (*Conn)(nil)
)

// Close closes the underlying connection without a close frame.
func (c *Conn) Close() error { return c.c.Close() }

// NextReader returns the next data message. A normal close by the peer is
// reported as transport.ErrWebsocketClosed, as gqlgen expects.
func (c *Conn) NextReader() (int, io.Reader, error) {
	t, r, err := c.c.NextReader()
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		return t, nil, transport.ErrWebsocketClosed
	}
	return t, r, err
}

// WriteJSON writes v as one text message. gqlgen serialises writes.
func (c *Conn) WriteJSON(v any) error {
	if err := c.c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return c.c.WriteJSON(v)
}

// WriteClose sends a close frame with code and reason.
func (c *Conn) WriteClose(code int, reason string) error {
	return c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(writeTimeout))
}

// Subprotocol is the negotiated subprotocol.
func (c *Conn) Subprotocol() string { return c.c.Subprotocol() }

// SetReadLimit bounds one incoming message.
func (c *Conn) SetReadLimit(n int64) { c.c.SetReadLimit(n) }

// SetReadDeadline sets when a read gives up (gqlgen's pong deadline).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }
