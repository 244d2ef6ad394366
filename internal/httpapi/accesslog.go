package httpapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/internal/logctx"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/tracing"
)

// RequestIDHeader carries a request's id in and out: a proxy in front
// that sets it finds its id in our log; a request without one gets ours
// back.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an incoming id: ids from proxies (UUIDs, nginx's
// 32 hex digits, Heroku's and Envoy's) fit; a longer one is replaced.
const maxRequestIDLen = 64

// validRequestID reports whether an incoming id may be kept: short, and of
// characters that read the same, unquoted, in any log format (no spaces,
// quotes, = or control characters a client could forge log lines with).
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':':
		default:
			return false
		}
	}
	return true
}

// requestID keeps a valid incoming X-Request-Id or makes one, returns it
// as X-Request-Id, and puts it in the request's context, whence
// logctx.Handler adds it to every log line of the request.
//
// The incoming id is kept only behind trustProxy proxies, as their
// X-Forwarded-For is: there it is the operator's proxy's (which sets it,
// or passes on what it was told to), and the log joins the proxy's. With
// no proxy trusted it is whatever the client chose to write, and nothing
// a client sends is logged as sent: it gets an id of ours.
func requestID(trustProxy int) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(RequestIDHeader)
			if trustProxy == 0 || !validRequestID(id) {
				id = rand.Text()
			}
			w.Header().Set(RequestIDHeader, id)
			next.ServeHTTP(w, r.WithContext(logctx.WithRequestID(r.Context(), id)))
		})
	}
}

// route is the pattern mux matches r to ("GET /dev/mail", "/query", "/"
// for the web app's pages), or "unmatched": the access log, metrics and
// traces name a request by it. The path is the client's text (a link
// mangled on its way even puts its token there), and none of that is
// logged; the route is ours. It is asked of the mux before the request
// is served, so a websocket's line, written from another goroutine when
// it closes, reads nothing of the request.
func route(mux *http.ServeMux, r *http.Request) string {
	if _, pattern := mux.Handler(r); pattern != "" {
		return pattern
	}
	return "unmatched"
}

// routePath is a route without its method, as OpenTelemetry's http.route.
func routePath(route string) string {
	if _, after, ok := strings.Cut(route, " "); ok {
		return after
	}
	return route
}

// accessLog counts and times requests by route (never by raw path, which
// would let clients mint label values) and method (knownMethod, for the
// same reason), and logs one line per request at info: method, route,
// status, bytes, duration, client address (behind TRUST_PROXY proxies)
// and the request id. Not the path, the client's text: a link mangled on
// its way puts its token there. A websocket is logged when it closes,
// with the bytes of its upgrade answer; nothing it carried is. Headers
// and bodies are never logged: they hold passwords, codes and bearer
// tokens.
func accessLog(o Options, mux *http.ServeMux) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &recorder{ResponseWriter: w, code: http.StatusOK}
			// line captures no request or response: for a websocket it
			// lives as long as the socket, which must not keep net/http's
			// buffers. The mux has matched by the time it runs.
			ctx, method, client := r.Context(), knownMethod(r.Method), ratelimit.ClientAddress(r, o.TrustProxy)
			matched := route(mux, r)
			line := func(code int, bytes int64) {
				o.Log.LogAttrs(ctx, slog.LevelInfo, "http request",
					slog.String("method", method), slog.String("route", matched),
					slog.Int("status", code), slog.Int64("bytes", bytes),
					slog.Duration("took", time.Since(start).Round(time.Microsecond)),
					slog.String("client", client))
			}
			rec.closed = line
			// url.path, the client's text, becomes the route too (traced).
			span := trace.SpanFromContext(r.Context())
			path := routePath(matched)
			span.SetName(method + " " + path)
			span.SetAttributes(attribute.String("url.path", path), attribute.String("http.route", path))
			next.ServeHTTP(rec, r)
			o.Metrics.Requests.WithLabelValues(matched, method, strconv.Itoa(rec.code)).Inc()
			if !rec.hijacked {
				// An event stream lasts as long as its subscription: not
				// a request duration.
				if !isEventStream(r) {
					o.Metrics.Duration.WithLabelValues(matched).Observe(time.Since(start).Seconds())
				}
				line(rec.code, rec.bytes)
			}
		})
	}
}

// knownMethod returns m if it is one of the methods of RFC 9110 and
// RFC 5789, else "OTHER". A method is the client's text: as a metric
// label each invented one would be a new series kept for the life of the
// process, and in a log line or span name it would be client text
// written verbatim.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// traced starts each request's server span (continuing a traceparent the
// client or a proxy sent), but for probes and scrapes, which would drown
// the traces that matter. otelhttp records the path (url.path), the
// client's text, so it is shown "/" until accessLog puts the route in its
// place (a mangled link puts a token in the path); the handlers get the
// request as it came.
func traced(next http.Handler) http.Handler {
	span := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := r.Context().Value(sentURL{}).(*url.URL); ok {
			r.URL = u // r is otelhttp's copy of the request
		}
		next.ServeHTTP(w, r)
	}), "http request",
		otelhttp.WithPropagators(tracing.Propagator),
		otelhttp.WithFilter(func(r *http.Request) bool {
			path := r.URL.Path
			if u, ok := r.Context().Value(sentURL{}).(*url.URL); ok {
				path = u.Path // not the "/" shown
			}
			switch path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shown := *r.URL
		shown.Path, shown.RawPath, shown.RawQuery = "/", "", ""
		traced := r.WithContext(context.WithValue(r.Context(), sentURL{}, r.URL))
		traced.URL = &shown
		span.ServeHTTP(w, traced)
	})
}

// sentURL keys the request's URL as it came, while otelhttp sees another.
type sentURL struct{}

// recorder remembers the status code and the bytes written, and lets
// websockets hijack (closed is then called once the connection closes,
// with the code and bytes of the upgrade's answer).
type recorder struct {
	http.ResponseWriter
	code     int
	bytes    int64
	wrote    bool
	hijacked bool
	closed   func(code int, bytes int64)
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked, r.code = true, http.StatusSwitchingProtocols
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err != nil || r.closed == nil {
		return c, rw, err
	}
	closed, bytes := r.closed, r.bytes
	return &closeConn{Conn: c, closed: func() { closed(http.StatusSwitchingProtocols, bytes) }}, rw, nil
}

func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// closeConn calls closed once, when a hijacked connection closes, so a
// websocket's access-log line comes at its end.
type closeConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *closeConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.closed)
	return err
}
