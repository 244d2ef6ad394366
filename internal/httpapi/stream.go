package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// isEventStream reports whether r asks for a subscription over Server-Sent
// Events (graphql-sse, distinct connections): a POST that accepts
// text/event-stream, as gqlgen's SSE transport takes it.
func isEventStream(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// isStream reports whether r opens a connection that lasts as long as its
// subscriptions: a websocket or an event stream. Both get the same origin
// rule (checkOrigin) and count in the same per-client cap (capSockets).
func isStream(r *http.Request) bool {
	return websocket.IsWebSocketUpgrade(r) || isEventStream(r)
}

// errStreamEnded is what a write to an event stream returns once the
// server is shutting down or the stream's handler has returned.
var errStreamEnded = errors.New("event stream ended")

// endStreams serves event streams past the server's read and write
// timeouts (which bound ordinary requests, not a subscription that lasts
// until its address is verified), and ends them when shutting is done the
// way websockets end with 1012: the response stops without the final
// "complete" event, so graphql-sse and EventSource clients take it as a
// dropped connection and reconnect (to another replica, or this one
// restarted), instead of taking a watch that is still UNVERIFIED as
// finished.
//
// A stream is muted as well once its handler returns: gqlgen's SSE
// transport pings from a goroutine that can still tick after the last
// event, and a write then would land in a response net/http has finished
// (its buffer back in a pool, or the connection's next response).
func endStreams(shutting context.Context) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isEventStream(r) {
				next.ServeHTTP(w, r)
				return
			}
			rc := http.NewResponseController(w)
			// Errors mean the writer cannot set deadlines (a test
			// recorder): then there are none to lift.
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			sw := &stream{ResponseWriter: w}
			stop := context.AfterFunc(shutting, func() {
				// Mute first: the subscription's end, which cancel
				// brings, must not reach the client as "complete".
				sw.end()
				cancel()
			})
			defer stop()
			// Waits for a ping being written, and drops later ones.
			defer sw.end()
			next.ServeHTTP(sw, r.WithContext(ctx))
		})
	}
}

// stream is an event stream's writer that drops everything once ended.
// gqlgen's SSE transport asserts http.Flusher on it.
type stream struct {
	http.ResponseWriter
	mu    sync.Mutex
	ended bool
}

func (s *stream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
}

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return 0, errStreamEnded
	}
	return s.ResponseWriter.Write(p)
}

func (s *stream) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		_ = http.NewResponseController(s.ResponseWriter).Flush()
	}
}

func (s *stream) Unwrap() http.ResponseWriter { return s.ResponseWriter }
