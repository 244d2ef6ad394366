// Package httpapi assembles the HTTP surface of the public contract:
// /query (GraphQL over POST, GET, Server-Sent Events and websockets),
// /admin/query (the admin API, behind ADMIN_TOKEN), /playground, /healthz,
// /readyz, /metrics, /asyncapi.yaml, /dev/mail and the web app.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
)

// Options configure the handler.
type Options struct {
	GraphQL http.Handler
	// Admin is the admin API, served at /admin/query only while AdminToken
	// is set; without it the path answers 404, as if absent.
	Admin      http.Handler
	AdminToken string
	Web        http.Handler
	// Playground serves GraphiQL at /playground and its assets under
	// /playground/assets/ (web.Playground).
	Playground http.Handler
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
	// PublicOrigin, PUBLIC_URL's origin as browsers send it
	// (config.Config's), is always allowed, besides AllowedOrigins.
	PublicOrigin   string
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
	// HealthOnly serves /healthz, /readyz and /metrics and nothing else
	// (ROLE=worker, which has no GraphQL to serve): every other path
	// answers 404.
	HealthOnly bool

	// shutting is done when the server's Stop begins, which ends the
	// event streams (endStreams); set by NewServer.
	shutting context.Context
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
	if o.shutting == nil {
		o.shutting = context.Background()
	}
	o.health(mux)
	if !o.MetricsElsewhere {
		o.metrics(mux)
	}
	if o.HealthOnly {
		return chain(mux, noSniff, requestID(o.TrustProxy), accessLog(o, mux))
	}
	mux.Handle("/query", o.query())
	if o.Admin != nil && o.AdminToken != "" {
		mux.Handle("/admin/query", o.admin())
	}
	if o.Playground != nil {
		mux.Handle("GET /playground", o.Playground)
		mux.Handle("GET /playground/assets/", o.Playground)
	}
	if o.JWKS != nil {
		mux.Handle("GET /.well-known/jwks.json", o.JWKS)
	}
	mux.HandleFunc("GET /asyncapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		// RFC 9512's type; the document describes the public events.
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(o.AsyncAPI)
	})
	if o.DevOutbox != nil {
		mux.HandleFunc("GET /dev/mail", o.devMail)
		mux.HandleFunc("GET /dev/mail.json", o.devMailJSONList)
	}
	mux.Handle("/", o.Web)
	o.Metrics.Routes([2]string{"/query", http.MethodPost}, [2]string{"GET /healthz", http.MethodGet}, [2]string{"GET /readyz", http.MethodGet})
	if o.Trace {
		return chain(mux, noSniff, traced, requestID(o.TrustProxy), accessLog(o, mux))
	}
	return chain(mux, noSniff, requestID(o.TrustProxy), accessLog(o, mux))
}

// NewOps returns the handler of the METRICS_ADDR listener: /metrics,
// /healthz and /readyz only, for a port that only the orchestrator and
// Prometheus reach.
func NewOps(o Options) http.Handler {
	mux := http.NewServeMux()
	o.health(mux)
	o.metrics(mux)
	return chain(mux, noSniff, requestID(o.TrustProxy), accessLog(o, mux))
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

// query serves /query: websocket upgrades and event streams after an
// origin check and the per-client cap, GET and POST after CORS, a size
// limit and a check that the query string or body is one GraphQL request
// (or a batch of them, each answered as a request of its own).
//
// A websocket leaves this chain once upgraded (gqlws serves it on a
// goroutine of its own), so none of these frames stays on an idle
// socket's stack; the cap keeps its place until the socket closes
// (gqlws.KeepWhileOpen).
func (o Options) query() http.Handler {
	allowed := origins{public: o.PublicOrigin, allowed: o.AllowedOrigins}
	return chain(o.GraphQL,
		ignoreUpgrade(true),
		// Before everything that asks isStream, and gqlgen.
		negotiateStream,
		clientAddress(o.TrustProxy),
		bearerToken,
		checkOrigin(allowed),
		cors(allowed),
		getQuery(o.MaxBodyBytes),
		postJSON,
		limitBody(o.MaxBodyBytes),
		batch,
		endStreams(o.shutting),
		capSockets(o.Websocket.MaxSocketsPerClient),
	)
}

// admin serves /admin/query: the token first, so that nothing else about
// the endpoint answers a caller without it; then POST of one JSON GraphQL
// request only, never a batch (noBatch). No CORS (its callers are
// servers, not pages) and no websocket.
func (o Options) admin() http.Handler {
	return chain(o.Admin,
		ignoreUpgrade(false),
		adminToken(o.AdminToken),
		postOnly,
		postJSON,
		limitBody(o.MaxBodyBytes),
		noBatch,
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
