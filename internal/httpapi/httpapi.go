// Package httpapi assembles the HTTP surface of the public contract:
// /query (GraphQL over POST and websockets), /playground, /healthz,
// /readyz, /metrics, /asyncapi.yaml, /dev/mail and the web app.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/wsgorilla"
)

// Options configure the handler.
type Options struct {
	GraphQL http.Handler
	Web     http.Handler
	// JWKS, if set, serves the public keys of receipts and signIn tokens
	// at /.well-known/jwks.json (signer.Signer).
	JWKS    http.Handler
	Metrics *metrics.Metrics
	// AsyncAPI is docs/asyncapi.yaml, served byte for byte at
	// /asyncapi.yaml.
	AsyncAPI []byte
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
	// MaxBodyBytes bounds a POST /query body (default
	// DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// TrustProxy is how many reverse proxies append to X-Forwarded-For.
	TrustProxy int
	// Websocket is every websocket setting; the handler applies the
	// per-client cap.
	Websocket WebsocketPolicy
	// Trace starts a span per request (otelhttp), continuing an incoming
	// traceparent; off, requests cost nothing of the kind.
	Trace bool
	// MetricsElsewhere leaves /metrics off the public handler: another
	// listener serves it (METRICS_ADDR, NewOps). /healthz and /readyz
	// stay, for load balancers that probe the serving port.
	MetricsElsewhere bool
}

// New returns the service's HTTP handler.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	mux.Handle("/query", o.query())
	mux.Handle("GET /playground", playground.Handler("verifier", "/query"))
	if o.JWKS != nil {
		mux.Handle("GET /.well-known/jwks.json", o.JWKS)
	}
	o.health(mux)
	mux.HandleFunc("GET /asyncapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		// RFC 9512's type; the document describes the public events.
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(o.AsyncAPI)
	})
	if !o.MetricsElsewhere {
		o.metrics(mux)
	}
	if o.DevOutbox != nil {
		mux.HandleFunc("GET /dev/mail", o.devMail)
		mux.HandleFunc("GET /dev/mail.json", o.devMailJSONList)
	}
	mux.Handle("/", o.Web)
	o.Metrics.Routes([2]string{"/query", http.MethodPost}, [2]string{"GET /healthz", http.MethodGet}, [2]string{"GET /readyz", http.MethodGet})
	if o.Trace {
		return chain(mux, traced, requestID, accessLog(o))
	}
	return chain(mux, requestID, accessLog(o))
}

// NewOps returns the handler of the METRICS_ADDR listener: /metrics,
// /healthz and /readyz only, for a port that only the orchestrator and
// Prometheus reach.
func NewOps(o Options) http.Handler {
	mux := http.NewServeMux()
	o.health(mux)
	o.metrics(mux)
	return chain(mux, requestID, accessLog(o))
}

// health serves /healthz (the process answers) and /readyz (it can do its
// work: o.Ready).
func (o Options) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", o.ready)
}

func (o Options) metrics(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
}

// query serves /query: websocket upgrades after an origin check and the
// per-client cap, POST after CORS, a size limit and a check that the body
// is one GraphQL request.
//
// wsgorilla.Detach comes last but the cap: an idle websocket's goroutine
// keeps every frame below it for the socket's whole life, and with the
// middlewares' frames on it the stack in use outgrew what the runtime
// shrinks to 8 KiB (16 KiB per idle socket; now 8). The cap, which must
// hold until the socket closes, runs on that goroutine after Detach.
func (o Options) query() http.Handler {
	allowed := newOrigins(o.PublicURL, o.AllowedOrigins)
	return chain(o.GraphQL,
		clientAddress(o.TrustProxy),
		bearerToken,
		checkOrigin(allowed),
		cors(allowed),
		postJSON,
		limitBody(o.MaxBodyBytes),
		wsgorilla.Detach,
		capSockets(o.Websocket.MaxSocketsPerClient),
	)
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
