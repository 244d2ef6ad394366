package wsgorilla

import (
	"bufio"
	"context"
	"net"
	"net/http"

	"github.com/gorilla/websocket"
)

// Detach serves websocket upgrade requests on a goroutine of their own and
// lets net/http's connection goroutine end as soon as the connection is
// hijacked; other requests pass straight to next.
//
// A websocket's handler runs for the connection's whole life. On net/http's
// own goroutine it keeps that goroutine's stack, grown by reading the
// request, and the connection's buffered reader and writer and response
// buffer (about 10 KiB) alive until the socket closes, none of which the
// websocket uses once it has its own small buffers (ReadBufferSize,
// NewWriteBufferPool). The goroutine count stays the same: one replaces
// the other.
//
// next sees the request with a context that the end of net/http's handler
// does not cancel (it ends right after the hijack); the websocket's own end
// ends it. Everything next does before the hijack (middlewares, an error
// answer) is done while net/http's goroutine waits for it.
//
// Wrap the websocket's handler as closely as possible: every frame between
// Detach and a parked read stays on the idle socket's stack, and the
// runtime shrinks a stack only while less than a quarter of it is in use.
// Only what must last as long as the socket (a count of open sockets)
// belongs inside.
func Detach(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		hw := &hijackWatch{w: w, hijacked: make(chan struct{})}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer cancel()
			next.ServeHTTP(hw, r.WithContext(ctx))
		}()
		select {
		case <-hw.hijacked:
		case <-done:
		}
	})
}

// hijackWatch tells Detach when the connection was taken over, and then
// lets go of net/http's response: held by the websocket's handler for the
// socket's life, it would keep the connection's buffers reachable.
type hijackWatch struct {
	// w is nil once hijacked. Only the websocket's goroutine uses it.
	w        http.ResponseWriter
	hijacked chan struct{}
}

// Header is the response's header; after the hijack an empty one.
func (h *hijackWatch) Header() http.Header {
	if h.w == nil {
		return http.Header{}
	}
	return h.w.Header()
}

// Write writes to the response, which ends at the hijack.
func (h *hijackWatch) Write(b []byte) (int, error) {
	if h.w == nil {
		return 0, http.ErrHijacked
	}
	return h.w.Write(b)
}

// WriteHeader writes the response's status, unless it was hijacked.
func (h *hijackWatch) WriteHeader(code int) {
	if h.w != nil {
		h.w.WriteHeader(code)
	}
}

// Hijack takes the connection over, as gorilla's Upgrade asks.
func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h.w == nil {
		return nil, nil, http.ErrHijacked
	}
	c, rw, err := http.NewResponseController(h.w).Hijack()
	if err == nil {
		h.w = nil
		close(h.hijacked)
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the response before the hijack.
func (h *hijackWatch) Unwrap() http.ResponseWriter { return h.w }
