// Package httpapi assembles the HTTP surface of the public contract:
// /query (GraphQL over POST and websockets), /playground, /healthz,
// /readyz, /metrics, /dev/mail and the web app.
package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/ratelimit"
)

// Options configure the handler.
type Options struct {
	GraphQL http.Handler
	Web     http.Handler
	Metrics *metrics.Metrics
	// DevOutbox, when not nil, is listed at /dev/mail (and /dev/mail.json).
	DevOutbox *mail.DevOutbox
	// DevMailLoopbackOnly serves /dev/mail to loopback clients only: with
	// DEV_MAILBOX=auto the service is someone's laptop, which still
	// listens on every interface by default.
	DevMailLoopbackOnly bool
	Ready               []Check
	// PublicURL's origin is always allowed, besides AllowedOrigins.
	PublicURL      string
	AllowedOrigins []string
	Log            *slog.Logger
	// MaxBodyBytes bounds a POST /query body.
	MaxBodyBytes int64
	// TrustProxy is how many reverse proxies append to X-Forwarded-For.
	TrustProxy int
	// MaxSocketsPerClient caps the websockets one client address holds
	// open; 0 is no cap. Shutdown closes open websockets elsewhere
	// (wsgorilla.Conns): http.Server.Shutdown does not track them.
	MaxSocketsPerClient int
}

// New returns the service's HTTP handler.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/query", o.query(newSocketCount(o.MaxSocketsPerClient)))
	mux.Handle("GET /playground", playground.Handler("verifier", "/query"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", o.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	if o.DevOutbox != nil {
		mux.HandleFunc("GET /dev/mail", o.devMail)
		mux.HandleFunc("GET /dev/mail.json", o.devMailJSONList)
	}
	mux.Handle("/", o.Web)
	return o.instrument(mux)
}

// query serves /query: websocket upgrades after an origin check and the
// per-client cap, POST after CORS, a size limit and a check that the body
// is one GraphQL request.
func (o Options) query(sockets *socketCount) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := ratelimit.ClientAddress(r, o.TrustProxy)
		r = r.WithContext(ratelimit.WithClient(r.Context(), client))
		origin := r.Header.Get("Origin")
		if websocket.IsWebSocketUpgrade(r) {
			if !o.sameOrAllowed(r, origin) {
				// Without this check any web page could subscribe with a
				// watch token it obtained; browsers do not apply CORS to
				// websockets.
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			// Counted like the rate limits: an IPv6 /64 is one client.
			key := ratelimit.Key(client)
			if !sockets.acquire(key) {
				w.Header().Set("Retry-After", strconv.Itoa(int(socketRetryAfter/time.Second)))
				writeGraphQLError(w, http.StatusTooManyRequests, apperr.Limited(socketRetryAfter,
					"at most %d websockets per client; close one first", o.MaxSocketsPerClient))
				return
			}
			// gqlgen serves the connection until it closes.
			defer sockets.release(key)
			o.GraphQL.ServeHTTP(w, r)
			return
		}
		if origin != "" && o.allowedCrossOrigin(origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Add("Vary", "Origin")
		}
		switch r.Method {
		case http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "POST, OPTIONS")
			writeGraphQLError(w, http.StatusMethodNotAllowed, apperr.Errorf(apperr.BadUserInput, "use POST for queries and mutations, or a websocket for subscriptions"))
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeGraphQLError(w, http.StatusUnsupportedMediaType, apperr.Errorf(apperr.BadUserInput, "send the request as Content-Type: application/json"))
			return
		}
		if r.ContentLength > o.MaxBodyBytes {
			writeGraphQLError(w, http.StatusRequestEntityTooLarge, apperr.Errorf(apperr.BadUserInput, "request body too large"))
			return
		}
		// Read up front: a chunked body has no Content-Length, and an
		// oversized one must get the contract's error, not a decode failure.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, o.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeGraphQLError(w, http.StatusRequestEntityTooLarge, apperr.Errorf(apperr.BadUserInput, "request body too large"))
			} else {
				writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "could not read the request body"))
			}
			return
		}
		if err := checkRequest(body); err != nil {
			writeGraphQLError(w, http.StatusBadRequest, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		o.GraphQL.ServeHTTP(w, r)
	})
}

// sameOrAllowed reports whether a websocket from origin may connect: no
// Origin (not a browser), the service's own origin, or an allowed one.
func (o Options) sameOrAllowed(r *http.Request, origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return u.Host == r.Host || o.allowedCrossOrigin(origin)
}

func (o Options) allowedCrossOrigin(origin string) bool {
	if pu, err := url.Parse(o.PublicURL); err == nil && origin == pu.Scheme+"://"+pu.Host {
		return true
	}
	return slices.Contains(o.AllowedOrigins, origin)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeGraphQLError answers with one GraphQL error carrying the contract's
// code (and retryAfterSeconds when rate limited).
func writeGraphQLError(w http.ResponseWriter, status int, e *apperr.Error) {
	ext := map[string]any{"code": string(e.Code)}
	if e.Code == apperr.RateLimited {
		ext["retryAfterSeconds"] = max(1, int(math.Ceil(e.RetryAfter.Seconds())))
	}
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"message": e.Message, "extensions": ext}}})
}

// instrument counts and times requests by route pattern (never by raw
// path, which would let clients mint label values) and logs them at debug.
func (o Options) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		o.Metrics.Requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
		if !rec.hijacked {
			o.Metrics.Duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		o.Log.Debug("http request", "method", r.Method, "route", route, "code", rec.code, "took", time.Since(start).Round(time.Microsecond))
	})
}

// recorder remembers the status code, and lets websockets hijack.
type recorder struct {
	http.ResponseWriter
	code     int
	wrote    bool
	hijacked bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked, r.code = true, http.StatusSwitchingProtocols
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
