package gqlws

import (
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// writeTimeout bounds one write, so a client that stops reading cannot
// hold a writer (and the subscription behind it) forever.
const writeTimeout = 10 * time.Second

// Settings that keep an idle connection cheap, for Transport.Upgrader. An
// idle subscription holds its read buffer for its whole life, so it is
// small: clients send only short control messages, and a longer message
// just takes more reads. Write buffers come from a pool and are held only
// while a message is written.
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

// errClosing is what a write returns once the connection's close frame
// went out.
var errClosing = errors.New("websocket closing")

// Conn is an accepted connection: gorilla's, with one data writer at a
// time, pings from a timer, and the rule that nothing follows the first
// close frame.
type Conn struct {
	c   *websocket.Conn
	set *Conns

	// write serialises data messages: gorilla allows one writer at a time
	// (control frames excepted), and subscriptions write from their own
	// goroutines.
	write sync.Mutex

	mu sync.Mutex
	// closing is set once a close frame went out: the first close frame is
	// the one the client acts on (a shutdown's 1012 must not be followed by
	// a protocol close, nor by a "complete").
	closing bool
	closed  bool
	// pinger sends the next ping (keepAlive); nil without pings.
	pinger *time.Timer
}

// keepAlive pings c every interval from a timer, and sets the read
// deadline that each pong (answered within the socket's read loop) pushes
// back, so a peer that vanished without a close is noticed. A timer costs
// no goroutine between pings, where a ticker loop would cost one per
// connection for its whole life. also, when not nil, runs after each
// ping: what the subprotocol sends to keep alive.
func (c *Conn) keepAlive(interval time.Duration, also func()) {
	wait := 2 * interval
	_ = c.c.SetReadDeadline(time.Now().Add(wait))
	c.c.SetPongHandler(func(string) error { return c.c.SetReadDeadline(time.Now().Add(wait)) })
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinger = time.AfterFunc(interval, func() {
		// Safe beside a data writer: gorilla allows one WriteControl
		// concurrently with other writes. An error means the connection is
		// closing; the read loop ends it.
		if err := c.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
			return
		}
		if also != nil {
			also()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			c.pinger.Reset(interval)
		}
	})
}

// writeJSON writes v as one text message, unless a close frame went out.
func (c *Conn) writeJSON(v any) error {
	c.write.Lock()
	defer c.write.Unlock()
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return errClosing
	}
	if err := c.c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return c.c.WriteJSON(v)
}

// writeClose sends a close frame with code and reason, unless one was
// sent already.
func (c *Conn) writeClose(code int, reason string, timeout time.Duration) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.mu.Unlock()
	// After a close frame gorilla refuses every further data write too.
	return c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(timeout))
}

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
