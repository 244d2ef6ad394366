package httpapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// eventStream is the media type of Server-Sent Events.
const eventStream = "text/event-stream"

// jsonTypes are the response types of GraphQL over HTTP (and the legacy
// one urql still lists).
var jsonTypes = []string{"application/graphql-response+json", "application/json", "application/graphql+json"}

// negotiateStream settles once, for the rest of the chain and for gqlgen,
// whether a POST gets an event stream: only when its Accept ranks
// text/event-stream above every JSON type (graphql-sse sends it alone).
// gqlgen's SSE transport takes any Accept that contains the string, so
// urql, which lists it after the JSON types for every query and mutation,
// had each mutation answered as a stream: muted, its context cancelled,
// when a shutdown began, and counted in the per-client cap; and q=0 ("not
// acceptable") asked for one too. The Accept header is rewritten to say
// the outcome: text/event-stream alone, or without it.
func negotiateStream(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept := strings.Join(r.Header.Values("Accept"), ",")
		if r.Method != http.MethodPost || !strings.Contains(strings.ToLower(accept), eventStream) {
			next.ServeHTTP(w, r)
			return
		}
		var streamQ, jsonQ float64
		var rest []string
		for part := range strings.SplitSeq(accept, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
					continue
				}
			}
			switch {
			case mt == eventStream:
				streamQ = max(streamQ, q)
				continue
			case strings.Contains(strings.ToLower(part), eventStream):
				continue // in a parameter: dropped, so nothing downstream sees it
			case slices.Contains(jsonTypes, mt):
				jsonQ = max(jsonQ, q)
			}
			rest = append(rest, strings.TrimSpace(part))
		}
		r = r.Clone(r.Context())
		switch {
		case streamQ > 0 && streamQ > jsonQ:
			r.Header.Set("Accept", eventStream)
		case len(rest) > 0:
			r.Header.Set("Accept", strings.Join(rest, ", "))
		default:
			r.Header.Del("Accept")
		}
		next.ServeHTTP(w, r)
	})
}

// isEventStream reports whether r asks for a subscription over Server-Sent
// Events (graphql-sse, distinct connections): a POST that accepts
// text/event-stream, as gqlgen's SSE transport takes it (negotiateStream
// has left the type in Accept only where a stream is the answer).
func isEventStream(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.Contains(r.Header.Get("Accept"), eventStream)
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
