package wsgorilla

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"

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
func Detach(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		hw := &hijackWatch{ResponseWriter: w, hijacked: make(chan struct{})}
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

// hijackWatch tells Detach when the connection was taken over.
type hijackWatch struct {
	http.ResponseWriter
	hijacked chan struct{}
	once     sync.Once
}

// Hijack takes the connection over, as gorilla's Upgrade asks.
func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.once.Do(func() { close(h.hijacked) })
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (h *hijackWatch) Unwrap() http.ResponseWriter { return h.ResponseWriter }
