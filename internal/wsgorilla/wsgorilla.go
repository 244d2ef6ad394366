// Package wsgorilla adapts github.com/gorilla/websocket to gqlgen's
// transport.WebsocketImplementation. gqlgen now defaults to another
// websocket library; this service keeps gorilla, and this small adapter is
// the whole of that choice. It is also the one place that knows every open
// websocket, so shutdown can close them all with one close code (Conns).
package wsgorilla

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// writeTimeout bounds one write, so a client that stops reading cannot
// hold a writer (and the subscription behind it) forever.
const writeTimeout = 10 * time.Second

// Settings that keep an idle connection cheap, for Upgrader. An idle
// subscription holds its read buffer for its whole life, so it is small:
// clients send only short control messages, and a longer message just
// takes more reads. Write buffers come from a pool and are held only while
// a message is written.
const (
	// ReadBufferSize is the Upgrader.ReadBufferSize to use.
	ReadBufferSize = 512
	// PingInterval is how often an idle connection is pinged (websocket
	// ping frames, which every client answers by itself): often enough to
	// keep proxies from closing it for idleness, rarely enough to cost
	// nothing.
	PingInterval = 25 * time.Second
)

// NewWriteBufferPool returns the Upgrader.WriteBufferPool to use: one per
// process, shared by every connection.
func NewWriteBufferPool() websocket.BufferPool { return &sync.Pool{} }

// Implementation accepts websocket connections with Upgrader.
type Implementation struct {
	Upgrader websocket.Upgrader
	// Conns, when not nil, tracks every accepted connection.
	Conns *Conns
	// PingInterval, when not zero, pings every connection this often with
	// websocket ping frames and drops one that answers none within two
	// intervals. It replaces gqlgen's own keep-alive and ping loops, each
	// of which costs a goroutine per connection for its whole life; a
	// timer costs none between pings.
	PingInterval time.Duration
}

var _ transport.WebsocketImplementation = Implementation{}

// withRequestID adds the X-Request-Id a middleware set on w to the
// upgrade's answer: gorilla writes the 101 itself, from h alone.
func withRequestID(w http.ResponseWriter, h http.Header) http.Header {
	id := w.Header().Get("X-Request-Id")
	if id == "" {
		return h
	}
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("X-Request-Id", id)
	return h
}

// Accept upgrades the request, offering gqlgen's subprotocols. Once
// upgraded, r has no headers left.
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
	c, err := up.Upgrade(w, r, withRequestID(w, o.ResponseHeader))
	if err != nil {
		return nil, err
	}
	// gqlgen keeps the request's headers for the socket's whole life, to
	// hand every operation on it (about 700 bytes per idle socket). Nothing
	// here reads them after the upgrade: the client's address, the origin
	// and the caps were settled before it.
	r.Header = nil
	conn := &Conn{c: c, set: i.Conns}
	if i.PingInterval > 0 {
		conn.keepAlive(i.PingInterval)
	}
	if i.Conns != nil {
		i.Conns.add(conn)
	}
	return conn, nil
}

// keepAlive pings c every interval from a timer, and sets the read
// deadline that each pong (answered within the read loop gqlgen runs)
// pushes back, so a peer that vanished without a close is noticed.
func (c *Conn) keepAlive(interval time.Duration) {
	wait := 2 * interval
	_ = c.c.SetReadDeadline(time.Now().Add(wait))
	c.c.SetPongHandler(func(string) error { return c.c.SetReadDeadline(time.Now().Add(wait)) })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinger = time.AfterFunc(interval, func() {
		// Safe beside the writer gqlgen serialises: gorilla allows one
		// WriteControl concurrently with other writes. An error means the
		// connection is closing; the read loop ends it.
		if err := c.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			c.pinger.Reset(interval)
		}
	})
}

// Conn is an accepted connection.
type Conn struct {
	c   *websocket.Conn
	set *Conns

	mu sync.Mutex
	// closing is set once a close frame went out: gqlgen's own close
	// frame (1000 "terminated") must not follow the shutdown's.
	closing bool
	closed  bool
	// pinger sends the next ping (keepAlive); nil without pings.
	pinger *time.Timer
}

var (
	_ transport.WebsocketConn          = (*Conn)(nil)
	_ transport.WebsocketReadLimiter   = (*Conn)(nil)
	_ transport.WebsocketReadDeadliner = (*Conn)(nil)
)

// Close closes the underlying connection without a close frame.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.mu.Unlock()
	if c.set != nil {
		c.set.remove(c)
	}
	return c.c.Close()
}

// NextReader returns the next data message. A close by the peer that is
// not an error (including the echo of a shutdown's 1012) is reported as
// transport.ErrWebsocketClosed, as gqlgen expects.
func (c *Conn) NextReader() (int, io.Reader, error) {
	t, r, err := c.c.NextReader()
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived, websocket.CloseServiceRestart) {
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

// WriteClose sends a close frame with code and reason, unless one was
// sent already: the first close frame is the one the client acts on.
func (c *Conn) WriteClose(code int, reason string) error {
	return c.writeClose(code, reason, writeTimeout)
}

func (c *Conn) writeClose(code int, reason string, timeout time.Duration) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.mu.Unlock()
	// After a close frame gorilla refuses every further data write, so
	// nothing (a "complete" least of all) can reach the client after it.
	return c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(timeout))
}

// Subprotocol is the negotiated subprotocol.
func (c *Conn) Subprotocol() string { return c.c.Subprotocol() }

// SetReadLimit bounds one incoming message.
func (c *Conn) SetReadLimit(n int64) { c.c.SetReadLimit(n) }

// SetReadDeadline sets when a read gives up (gqlgen's pong deadline).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }
