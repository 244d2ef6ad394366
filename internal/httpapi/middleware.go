package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	rscors "github.com/rs/cors"

	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/bearer"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/ratelimit"
)

// A middleware wraps a handler; the /query chain is built from these in
// Options.query, each doing one thing.
type middleware func(http.Handler) http.Handler

// chain applies mws so that the first one sees the request first.
func chain(h http.Handler, mws ...middleware) http.Handler {
	for _, mw := range slices.Backward(mws) {
		h = mw(h)
	}
	return h
}

// noSniff has browsers take every answer for the type it says it is: an
// answer that quotes what a client sent (a GraphQL error naming a field)
// is never read as a script or a page, whoever links to it.
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// clientAddress puts the client's address (behind trustProxy reverse
// proxies) into the request context, for the rate limits and the socket
// cap.
func clientAddress(trustProxy int) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client := ratelimit.ClientAddress(r, trustProxy)
			next.ServeHTTP(w, r.WithContext(ratelimit.WithClient(r.Context(), client)))
		})
	}
}

// bearerToken puts the Authorization: Bearer credential, if any, into the
// request context for the account service to check (signIn tokens for
// changeEmail). Never logged, like everything a client sends.
func bearerToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := bearer.FromRequest(r); tok != "" {
			r = r.WithContext(bearer.WithToken(r.Context(), tok))
		}
		next.ServeHTTP(w, r)
	})
}

// adminToken lets through only requests whose Authorization: Bearer is
// token, and answers the others 401 with UNAUTHENTICATED. Both sides are
// hashed before the constant-time comparison, so neither the time taken
// nor an early exit on a length mismatch tells anything about the token.
func adminToken(token string) middleware {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := sha256.Sum256([]byte(bearer.FromRequest(r)))
			if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="verifier admin"`)
				writeGraphQLError(w, http.StatusUnauthorized, apperr.Errorf(apperr.Unauthenticated, "the admin API needs Authorization: Bearer <ADMIN_TOKEN>"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// ignoreUpgrade drops an Upgrade header that does not ask for a
// websocket where websockets are served (any, where none are), as a
// server may (RFC 9110, 7.8): curl --http2 asks for h2c on every
// plain-HTTP request, and gqlgen's POST and GET transports take no
// request with an Upgrade header at all, so such a request got 400
// "transport not supported" instead of its answer.
func ignoreUpgrade(websockets bool) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" && !(websockets && websocket.IsWebSocketUpgrade(r)) {
				r = r.Clone(r.Context())
				r.Header.Del("Upgrade")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// postOnly answers anything but a POST (a websocket upgrade included)
// 405: for endpoints that take queries and mutations only.
func postOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeGraphQLError(w, http.StatusMethodNotAllowed, apperr.Errorf(apperr.BadUserInput, "use POST"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// origins are the origins besides the service's own that may open
// websockets and make credentialed requests.
type origins struct {
	public  string // PUBLIC_URL's, as browsers send it
	allowed []string
}

// crossAllowed reports whether a request from origin, another site, is
// allowed.
func (o origins) crossAllowed(origin string) bool {
	return (o.public != "" && origin == o.public) || slices.Contains(o.allowed, origin)
}

// socketAllowed reports whether a websocket from origin may connect: no
// Origin (not a browser), the service's own origin, or an allowed one.
func (o origins) socketAllowed(r *http.Request, origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return u.Host == r.Host || o.crossAllowed(origin)
}

// checkOrigin refuses websocket upgrades and event streams from origins
// not allowed. Without it any web page could subscribe with a watch token
// it obtained: browsers do not apply CORS to websockets, and the same
// rule for both transports keeps one answer to "who may subscribe".
func checkOrigin(o origins) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isStream(r) && !o.socketAllowed(r, r.Header.Get("Origin")) {
				writeGraphQLError(w, http.StatusForbidden, apperr.Errorf(apperr.BadUserInput,
					"this page's origin may not open websockets or event streams here (see ALLOWED_ORIGINS)"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// socketRetryAfter is the Retry-After of a websocket refused by the
// per-client cap: a hint, as only the client can close one of its own.
const socketRetryAfter = 10 * time.Second

// capSockets refuses a websocket upgrade or an event stream from a client
// that holds max of them open already (0 is no cap). Counted like the
// rate limits: an IPv6 /64 is one client. It needs clientAddress before
// it. A websocket's handler returns once upgraded, so the place is handed
// to the socket, which gives it up when it closes (gqlws.KeepWhileOpen);
// an event stream stays on net/http's goroutine until it ends.
func capSockets(max int) middleware {
	count := newSocketCount(max)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isStream(r) {
				next.ServeHTTP(w, r)
				return
			}
			key := ratelimit.Key(ratelimit.Client(r.Context()))
			if !count.acquire(key) {
				w.Header().Set("Retry-After", strconv.Itoa(int(socketRetryAfter/time.Second)))
				writeGraphQLError(w, http.StatusTooManyRequests, apperr.Limited(socketRetryAfter,
					"at most %d websockets and event streams per client; close one first", max))
				return
			}
			ctx, kept := gqlws.KeepWhileOpen(r.Context(), func() { count.release(key) })
			next.ServeHTTP(w, r.WithContext(ctx))
			if !kept() {
				count.release(key)
			}
		})
	}
}

// corsMaxAge is how long a browser may cache a preflight answer: the
// allowed origins change only with a deployment.
const corsMaxAge = 10 * time.Minute

// corsHeaders are the request headers allowed cross-origin: what real
// clients send (Apollo's client awareness and CSRF-prevention headers,
// W3C trace context, a request id) besides the body's type and a signIn
// token.
var corsHeaders = []string{
	"Content-Type", "Authorization",
	"Apollographql-Client-Name", "Apollographql-Client-Version", "Apollo-Require-Preflight",
	"Traceparent", "Tracestate", "X-Request-Id",
}

// cors lets allowed origins make credentialed requests, and answers their
// preflight (github.com/rs/cors). Websocket upgrades pass untouched
// (checkOrigin guards them). Retry-After is readable by the page, so a
// rate-limited client can wait as told.
func cors(o origins) middleware {
	c := rscors.New(rscors.Options{
		AllowOriginFunc:  o.crossAllowed,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   corsHeaders,
		ExposedHeaders:   []string{"Retry-After"},
		AllowCredentials: true,
		MaxAge:           int(corsMaxAge / time.Second),
	})
	return func(next http.Handler) http.Handler {
		withCORS := c.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if websocket.IsWebSocketUpgrade(r) {
				next.ServeHTTP(w, r)
				return
			}
			withCORS.ServeHTTP(w, r)
		})
	}
}

// getQuery checks that a GET (not an upgrade) carries a GraphQL request
// in its query string, of at most max bytes, and answers anything else
// with the contract's error, quoting nothing: a query string can hold a
// password. It checks what gqlgen's GET transport decodes, as limitBody
// does for POST; whether the operation is a query is for GraphQL to say
// (graph.NewHandler answers 405 to the others).
//
// Every answer to a GET is marked no-store. A GET is cacheable by default
// (GraphQL over HTTP counts on it), but here its URL holds a watchToken
// and its answer changes when the address is verified: a browser or proxy
// that kept one would show a poller UNVERIFIED for good, and a shared
// cache would keep a secret's answer.
func getQuery(max int64) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || websocket.IsWebSocketUpgrade(r) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			if int64(len(r.URL.RawQuery)) > max {
				writeGraphQLError(w, http.StatusRequestURITooLong, apperr.Errorf(apperr.BadUserInput, "query string too long: send the request as a POST"))
				return
			}
			if err := checkQueryString(r.URL.RawQuery); err != nil {
				writeGraphQLError(w, http.StatusBadRequest, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// postJSON lets through websocket upgrades, GETs (getQuery checks them)
// and POSTs of JSON, answers OPTIONS with the methods taken, and anything
// else with the contract's error.
// A body of another type is not a GraphQL request at all, which the
// contract answers 400 BAD_USER_INPUT (not 415); application/json is the
// request type of GraphQL over HTTP and the one gqlgen's POST and SSE
// transports read (application/graphql-response+json is a response's).
func postJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) || r.Method == http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodOptions {
			// Not a CORS preflight (cors answers those): what the
			// 405s below list, answered.
			w.Header().Set("Allow", queryMethods)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", queryMethods)
			writeGraphQLError(w, http.StatusMethodNotAllowed, apperr.Errorf(apperr.BadUserInput, "use POST (or GET for queries); for subscriptions a websocket or POST with Accept: text/event-stream"))
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, errNotJSON))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// queryMethods are the methods /query takes, its Allow header.
const queryMethods = "GET, POST, OPTIONS"

// errNotJSON is the answer to a POST whose body is not declared JSON.
const errNotJSON = "the request body must be a GraphQL request in JSON, sent with Content-Type: application/json"

// DefaultMaxBodyBytes bounds a POST body: a GraphQL request of this
// service is a few hundred bytes; the parser's token limit and the cost
// limits stop what fits but is still abusive.
const DefaultMaxBodyBytes = 64 << 10

// limitBody reads a POST body of at most max bytes up front and checks it
// is one GraphQL request or a batch of them (checkBody): a chunked body
// has no Content-Length, and an oversized or malformed one must get the
// contract's error, not gqlgen's (which quotes the body, passwords
// included). Upgrades and GETs have no body.
func limitBody(max int64) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if websocket.IsWebSocketUpgrade(r) || r.Method == http.MethodGet {
				next.ServeHTTP(w, r)
				return
			}
			if r.ContentLength > max {
				writeGraphQLError(w, http.StatusRequestEntityTooLarge, apperr.Errorf(apperr.BadUserInput, "request body too large"))
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
			if err != nil {
				if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
					writeGraphQLError(w, http.StatusRequestEntityTooLarge, apperr.Errorf(apperr.BadUserInput, "request body too large"))
				} else {
					writeGraphQLError(w, http.StatusBadRequest, apperr.Errorf(apperr.BadUserInput, "could not read the request body"))
				}
				return
			}
			if err := checkBody(body); err != nil {
				writeGraphQLError(w, http.StatusBadRequest, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	}
}

// closeOnShutdown answers with "Connection: close" once shutting is
// closed, so a keep-alive client opens its next request elsewhere (another
// replica, or this one restarted) instead of on a connection about to go.
func closeOnShutdown(shutting <-chan struct{}) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-shutting:
				if !websocket.IsWebSocketUpgrade(r) {
					w.Header().Set("Connection", "close")
				}
			default:
			}
			next.ServeHTTP(w, r)
		})
	}
}
