package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/verifier/verifier/internal/bearer"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/testkit"
)

// reached is a handler that records whether a request got through.
type reached struct {
	ok     bool
	client string
	body   string
}

func (h *reached) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ok = true
	h.client = ratelimit.Client(r.Context())
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		h.body = string(b)
	}
	w.WriteHeader(http.StatusOK)
}

func upgradeRequest(origin string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "http://svc.example/query", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

func TestClientAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		trustProxy int
		forwarded  string
		want       string
	}{
		{"peer address without proxies", 0, "203.0.113.9", "192.0.2.1"},
		{"the address the trusted proxy saw", 1, "203.0.113.9", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := &reached{}
			req := httptest.NewRequest(http.MethodPost, "/query", nil)
			req.RemoteAddr = "192.0.2.1:4711"
			req.Header.Set("X-Forwarded-For", tt.forwarded)
			clientAddress(tt.trustProxy)(next).ServeHTTP(httptest.NewRecorder(), req)
			require.Equal(t, tt.want, next.client)
		})
	}
}

// gqlgen's POST and GET transports take no request with an Upgrade
// header: one that asks for anything but a websocket where websockets
// are served (curl --http2's h2c) reaches them without it.
func TestIgnoreUpgrade(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, upgrade string
		websockets    bool
		kept          string
	}{
		{"h2c", "h2c", true, ""},
		{"a websocket", "websocket", true, "websocket"},
		{"a websocket where none are served", "websocket", false, ""},
		{"none", "", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.Header.Get("Upgrade") })
			req := httptest.NewRequest(http.MethodPost, "/query", nil)
			req.Header.Set("Connection", "Upgrade")
			if tt.upgrade != "" {
				req.Header.Set("Upgrade", tt.upgrade)
			}
			ignoreUpgrade(tt.websockets)(next).ServeHTTP(httptest.NewRecorder(), req)
			require.Equal(t, tt.kept, got)
		})
	}
}

// The Authorization: Bearer credential reaches the handler through the
// context; any other scheme, or none, leaves it empty.
func TestBearerToken(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]string{
		"Bearer abc.def.ghi": "abc.def.ghi",
		"bearer  xyz ":       "xyz",
		"Basic dXNlcjpwdw==": "",
		"Bearer":             "",
		"":                   "",
	} {
		var got string
		h := bearerToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = bearer.Token(r.Context()) }))
		r := httptest.NewRequest(http.MethodPost, "/query", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		require.Equal(t, want, got, "%q", header)
	}
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	const tok = "0123456789abcdefghijklmnopqrstuvwxyz"
	for _, tt := range []struct {
		header string
		status int
	}{
		{"Bearer " + tok, http.StatusOK},
		{"bearer " + tok, http.StatusOK},
		{"", http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
		{"Bearer " + tok[:len(tok)-1], http.StatusUnauthorized},
		{"Bearer " + tok + "x", http.StatusUnauthorized},
		{"Basic " + tok, http.StatusUnauthorized},
	} {
		h := adminToken(tok)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		r := httptest.NewRequest(http.MethodPost, "/admin/query", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, tt.status, w.Code, "%q", tt.header)
		if tt.status == http.StatusUnauthorized {
			require.Equal(t, `Bearer realm="verifier admin"`, w.Header().Get("WWW-Authenticate"))
			require.Contains(t, w.Body.String(), `"code":"UNAUTHENTICATED"`)
			require.NotContains(t, w.Body.String(), tok[:8], "the token is never echoed")
		}
	}
}

// eventStreamRequest is a graphql-sse subscription request from origin.
func eventStreamRequest(origin string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "http://svc.example/query", strings.NewReader(`{"query":"subscription{x}"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return req
}

// TestNegotiateStream: a POST is an event stream only when its Accept
// ranks text/event-stream above the JSON types; then it is one for the
// origin check as for gqlgen (which takes any Accept that contains the
// type), and otherwise for neither.
func TestNegotiateStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		accept []string
		stream bool
	}{
		{"graphql-sse", []string{"text/event-stream"}, true},
		{"urql's query or mutation", []string{"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"}, false},
		{"urql's subscription", []string{"text/event-stream, multipart/mixed"}, true},
		{"not acceptable", []string{"text/event-stream;q=0, application/json"}, false},
		{"alone and not acceptable", []string{"text/event-stream;q=0"}, false},
		{"JSON preferred", []string{"text/event-stream;q=0.5, application/json"}, false},
		{"the stream preferred", []string{"application/json;q=0.9, text/event-stream"}, true},
		{"in capitals", []string{"Text/Event-Stream"}, true},
		{"beside a wildcard", []string{"text/event-stream, */*"}, true},
		{"on a second line", []string{"application/json;q=0.1", "text/event-stream"}, true},
		{"in a parameter", []string{`application/json;x="text/event-stream"`}, false},
		{"a malformed q", []string{"text/event-stream;q=high"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var seen string
			gql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = strings.Join(r.Header.Values("Accept"), ",")
			})
			h := newTestHandler(gql, Options{})
			req := eventStreamRequest("")
			req.Header["Accept"] = tt.accept
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, tt.stream, strings.Contains(seen, "text/event-stream"), "what gqlgen's SSE transport goes by: %q", seen)

			req = eventStreamRequest("https://evil.example")
			req.Header["Accept"] = tt.accept
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.stream, rec.Code == http.StatusForbidden, "an event stream is under the origin rule, %d", rec.Code)
		})
	}
}

func TestCheckOrigin(t *testing.T) {
	t.Parallel()
	allowed := origins{public: "https://app.example", allowed: []string{"https://partner.example"}}
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"no origin: not a browser", upgradeRequest(""), http.StatusOK},
		{"same host", upgradeRequest("https://svc.example"), http.StatusOK},
		{"public URL", upgradeRequest("https://app.example"), http.StatusOK},
		{"allowed origin", upgradeRequest("https://partner.example"), http.StatusOK},
		{"foreign origin", upgradeRequest("https://evil.example"), http.StatusForbidden},
		{"malformed origin", upgradeRequest("://"), http.StatusForbidden},
		{"event stream from the same host", eventStreamRequest("https://svc.example"), http.StatusOK},
		{"event stream from an allowed origin", eventStreamRequest("https://partner.example"), http.StatusOK},
		{"event stream from a foreign origin", eventStreamRequest("https://evil.example"), http.StatusForbidden},
		{"POST is CORS's business", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/query", nil)
			r.Header.Set("Origin", "https://evil.example")
			return r
		}(), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := &reached{}
			rec := httptest.NewRecorder()
			checkOrigin(allowed)(next).ServeHTTP(rec, tt.req)
			require.Equal(t, tt.status, rec.Code)
			require.Equal(t, tt.status == http.StatusOK, next.ok)
			if tt.status == http.StatusForbidden {
				// A refusal like the edge's others: a GraphQL error
				// with the contract's code, not a line of text.
				require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				require.JSONEq(t, `{"errors":[{"message":"this page's origin may not open websockets or event streams here (see ALLOWED_ORIGINS)","extensions":{"code":"BAD_USER_INPUT"}}]}`, rec.Body.String())
			}
		})
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	allowed := origins{public: "https://app.example", allowed: []string{"https://partner.example"}}
	// What Apollo Client, urql and an OpenTelemetry-instrumented fetch send,
	// sorted and lower-case as browsers send them (Fetch standard).
	const clientHeaders = "apollo-require-preflight,apollographql-client-name,apollographql-client-version,authorization,content-type,traceparent,tracestate,x-request-id"
	tests := []struct {
		name       string
		method     string
		origin     string
		preflight  string // Access-Control-Request-Headers of a preflight
		status     int
		allowOrig  string
		passedDown bool
	}{
		{"allowed origin gets credentials", http.MethodPost, "https://partner.example", "", http.StatusOK, "https://partner.example", true},
		{"GET too", http.MethodGet, "https://partner.example", "", http.StatusOK, "https://partner.example", true},
		{"public URL is allowed", http.MethodPost, "https://app.example", "", http.StatusOK, "https://app.example", true},
		{"foreign origin gets no CORS headers", http.MethodPost, "https://evil.example", "", http.StatusOK, "", true},
		{"preflight is answered here", http.MethodOptions, "https://partner.example", clientHeaders, http.StatusNoContent, "https://partner.example", false},
		{"preflight from a foreign origin", http.MethodOptions, "https://evil.example", "content-type", http.StatusNoContent, "", false},
		{"preflight asking for another header", http.MethodOptions, "https://partner.example", "content-type,x-secret", http.StatusNoContent, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := &reached{}
			req := httptest.NewRequest(tt.method, "/query", nil)
			req.Header.Set("Origin", tt.origin)
			if tt.method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", http.MethodPost)
				req.Header.Set("Access-Control-Request-Headers", tt.preflight)
			}
			rec := httptest.NewRecorder()
			cors(allowed)(next).ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code)
			require.Equal(t, tt.passedDown, next.ok)
			require.Equal(t, tt.allowOrig, rec.Header().Get("Access-Control-Allow-Origin"))
			if tt.allowOrig == "" {
				return
			}
			require.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
			if tt.method == http.MethodOptions {
				require.Equal(t, "600", rec.Header().Get("Access-Control-Max-Age"))
				require.Equal(t, tt.preflight, rec.Header().Get("Access-Control-Allow-Headers"))
			} else {
				require.Equal(t, "Retry-After", rec.Header().Get("Access-Control-Expose-Headers"))
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	t.Parallel()
	const max = 64
	tests := []struct {
		name    string
		body    string
		chunked bool
		status  int
	}{
		{"small request passes whole", `{"query":"{a}"}`, false, http.StatusOK},
		{"declared too large", `{"query":"` + strings.Repeat("a", max) + `"}`, false, http.StatusRequestEntityTooLarge},
		{"chunked too large", `{"query":"` + strings.Repeat("a", max) + `"}`, true, http.StatusRequestEntityTooLarge},
		{"not a request", `[1]`, false, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := &reached{}
			req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(tt.body))
			if tt.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			limitBody(max)(next).ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, tt.status == http.StatusOK, next.ok)
			if next.ok {
				require.Equal(t, tt.body, next.body, "the body reaches GraphQL intact")
			}
		})
	}
}

func TestCapSockets(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	held := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	h := chain(held, clientAddress(0), capSockets(1))
	first := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		req := upgradeRequest("")
		req.RemoteAddr = "192.0.2.1:1"
		h.ServeHTTP(rec, req)
		first <- rec.Code
	}()
	testkit.Receive(t, entered, "the first socket in")
	// Refused, or let in were the cap broken: either way the test goes on
	// to fail, instead of hanging in the held handler.
	refused := func(req *http.Request, what string) *httptest.ResponseRecorder {
		t.Helper()
		answered := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			answered <- rec
		}()
		select {
		case rec := <-answered:
			return rec
		case <-entered:
			close(release)
			t.Fatalf("%s got in beside the first", what)
			return nil
		}
	}
	req := upgradeRequest("")
	req.RemoteAddr = "192.0.2.1:2"
	rec := refused(req, "a second socket")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "10", rec.Header().Get("Retry-After"))
	// An event stream counts with the websockets.
	stream := eventStreamRequest("")
	stream.RemoteAddr = "192.0.2.1:3"
	rec = refused(stream, "an event stream")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	close(release)
	require.Equal(t, http.StatusOK, testkit.Receive(t, first, "answer of the first socket once released"))
	// The socket was released: the client may open another.
	go func() { <-entered }()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestCloseOnShutdown(t *testing.T) {
	t.Parallel()
	shutting := make(chan struct{})
	h := closeOnShutdown(shutting)(&reached{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Empty(t, rec.Header().Get("Connection"), "keep-alive while serving")
	close(shutting)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, "close", rec.Header().Get("Connection"))
}

func newTestServer(addr string, sockets *gqlws.Conns, gql http.Handler) *Server {
	return NewServer(ServerOptions{Addr: addr, Grace: 5 * time.Second, Sockets: sockets, Log: testkit.Discard()},
		Options{GraphQL: gql, Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: testkit.Discard()})
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	s := newTestServer("127.0.0.1:0", nil, &reached{})
	s.Stop() // before Start: nothing to do
	require.NoError(t, s.Start(context.Background()))
	resp, err := http.Get("http://" + s.Addr() + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, resp.Body.Close())

	// A second server cannot take the same address: its Start says why.
	other := newTestServer(s.Addr(), nil, &reached{})
	require.ErrorContains(t, other.Start(context.Background()), "listen on")
	require.Error(t, other.Err())

	s.Stop()
	s.Stop()
	require.NoError(t, s.Err())
	_, err = http.Get("http://" + s.Addr() + "/healthz")
	require.Error(t, err, "no longer listening")
}

// socketsOnly stands in for the GraphQL handler: gqlgen's server with
// only the websocket transport, on a schema of nothing.
func socketsOnly(tr gqlws.Transport) http.Handler {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: "type Query { a: Int }"})
	srv := handler.New(&graphql.ExecutableSchemaMock{SchemaFunc: func() *ast.Schema { return schema }})
	srv.AddTransport(tr)
	return srv
}

// Stop tells every websocket 1012 "service restart", so clients come back.
func TestServerStopClosesWebsocketsWith1012(t *testing.T) {
	t.Parallel()
	sockets := gqlws.NewConns()
	gql := socketsOnly(DefaultWebsocketPolicy(0, 0, 0).Transport(sockets))
	s := newTestServer("127.0.0.1:0", sockets, gql)
	require.NoError(t, s.Start(context.Background()))
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/query", nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	defer c.Close()
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Stop() }()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, _, err = c.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseServiceRestart), "%v", err)
	testkit.Receive(t, stopped, "return of Stop")
	require.Zero(t, sockets.Len())
}

// Through the real server, where the websocket leaves net/http's goroutine
// at the hijack, the per-client cap still holds until the socket closes.
func TestSocketCapHoldsAfterHijack(t *testing.T) {
	t.Parallel()
	gql := socketsOnly(DefaultWebsocketPolicy(0, 0, 1).Transport(nil))
	s := NewServer(ServerOptions{Addr: "127.0.0.1:0", Grace: 5 * time.Second, Log: testkit.Discard()},
		Options{GraphQL: gql, Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: testkit.Discard(),
			Websocket: WebsocketPolicy{MaxSocketsPerClient: 1}})
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(s.Stop)
	url := "ws://" + s.Addr() + "/query"
	dial := func() (*websocket.Conn, int) {
		c, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if resp == nil {
			require.NoError(t, err)
		}
		require.NoError(t, resp.Body.Close())
		return c, resp.StatusCode
	}

	first, code := dial()
	require.Equal(t, http.StatusSwitchingProtocols, code)
	_, code = dial()
	require.Equal(t, http.StatusTooManyRequests, code, "the open socket still counts")

	require.NoError(t, first.Close())
	// The place frees once the server has seen the close.
	var second *websocket.Conn
	testkit.Eventually(t, func() bool {
		second, code = dial()
		return code == http.StatusSwitchingProtocols
	}, "a closed socket frees its place")
	require.NoError(t, second.Close())
}

func TestGetQuery(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-SuperSecret"
	const max = 256
	tests := []struct {
		name, rawQuery string
		status         int
		message        string // "" when the request passes
	}{
		{"a query", "query=%7Bx%7D&variables=%7B%22p%22%3A%22" + secret + "%22%7D", 200, ""},
		{"a persisted query by hash", `extensions={"persistedQuery":{"version":1,"sha256Hash":"ab"}}`, 200, ""},
		{"no query", "", 400, "a GET needs a query parameter (or extensions with a persisted query)"},
		{"extensions without a persisted query", `extensions={"p":"` + secret + `"}`, 400, "a GET needs a query parameter (or extensions with a persisted query)"},
		{"not URL-encoded", "query=%zz" + secret, 400, "the query string is not URL-encoded"},
		{"variables not UTF-8", "query=%7Bx%7D&variables=%7B%22p%22%3A%22%FF" + secret + "%22%7D", 400, "the query string is not UTF-8 text"},
		{"operationName not UTF-8", "query=%7Bx%7D&operationName=%C3" + secret, 400, "the query string is not UTF-8 text"},
		{"variables not JSON", "query=%7Bx%7D&variables=" + secret, 400, "variables must be a JSON object"},
		{"variables an array", "query=%7Bx%7D&variables=%5B%22" + secret + "%22%5D", 400, "variables must be a JSON object"},
		{"extensions not JSON", "query=%7Bx%7D&extensions=" + secret, 400, "extensions must be a JSON object"},
		{"variables with more after the object", `query=%7Bx%7D&variables={"p":"a"}{"p":"` + secret + `"}`, 400, "variables must be a JSON object"},
		{"extensions with more after the object", `query=%7Bx%7D&extensions={}` + secret, 400, "extensions must be a JSON object"},
		{"too long", "query=" + strings.Repeat("x", max) + secret, 414, "query string too long: send the request as a POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next := &reached{}
			req := httptest.NewRequest(http.MethodGet, "/query", nil)
			req.URL.RawQuery = tt.rawQuery
			rec := httptest.NewRecorder()
			getQuery(max)(next).ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"), "kept by no cache")
			require.Equal(t, tt.message == "", next.ok)
			if tt.message == "" {
				return
			}
			requireRefused(t, rec, tt.message, secret)
		})
	}
}

// Stop ends an event stream without the "complete" the subscription's end
// would send, so graphql-sse clients reconnect, and Stop does not wait for
// the grace.
func TestServerStopEndsEventStreams(t *testing.T) {
	t.Parallel()
	gql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: next\ndata: {}\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the subscription ends with the request
		_, _ = io.WriteString(w, "event: complete\n\n")
	})
	s := NewServer(ServerOptions{Addr: "127.0.0.1:0", Grace: time.Minute, Log: testkit.Discard()},
		Options{GraphQL: gql, Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: testkit.Discard()})
	require.NoError(t, s.Start(context.Background()))
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/query", strings.NewReader(`{"query":"subscription{x}"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	first := make([]byte, len("event: next\ndata: {}\n\n"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)

	stopped := make(chan struct{})
	go func() { defer close(stopped); s.Stop() }()
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream ends cleanly")
	require.Empty(t, string(rest), "no complete: the client reconnects")
	testkit.Receive(t, stopped, "Stop returns once the stream ended, well within the grace")
}

// A write to an event stream after its handler returned is dropped:
// gqlgen's SSE keep-alive pings from a goroutine of its own, which can
// tick after the "complete" event, once net/http has finished the
// response and may have handed its buffer to another one.
func TestEventStreamMutedOnceServed(t *testing.T) {
	t.Parallel()
	var late io.Writer
	gql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		late = w
		_, _ = io.WriteString(w, "event: complete\n\n")
	})
	rec := httptest.NewRecorder()
	endStreams(context.Background())(gql).ServeHTTP(rec, eventStreamRequest(""))

	_, err := io.WriteString(late, ": ping\n\n")
	require.ErrorIs(t, err, errStreamEnded)
	require.Equal(t, "event: complete\n\n", rec.Body.String())
}

// echoItem answers each request with its own query and the client address
// it saw, as GraphQL would answer it.
func echoItem(w http.ResponseWriter, r *http.Request) {
	var p struct{ Query string }
	_ = json.NewDecoder(r.Body).Decode(&p)
	w.Header().Set("Content-Type", "application/graphql-response+json")
	w.WriteHeader(http.StatusUnprocessableEntity) // an item's status stays the item's
	_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]string{"query": p.Query, "client": ratelimit.Client(r.Context())}})
}

func TestBatch(t *testing.T) {
	t.Parallel()
	h := chain(http.HandlerFunc(echoItem), clientAddress(0), limitBody(1<<10), batch)
	post := func(body string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1"
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := post(`[{"query":"{a}"}, {"query":"{b}"} ,{"query":"{c}"}]`, nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var results []struct{ Data map[string]string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &results))
	require.Len(t, results, 3)
	for i, q := range []string{"{a}", "{b}", "{c}"} {
		require.Equal(t, q, results[i].Data["query"], "in order, each its own request")
		require.Equal(t, "192.0.2.1", results[i].Data["client"], "with the request's context")
	}

	rec = post(`{"query":"{a}"}`, nil)
	require.Equal(t, http.StatusUnprocessableEntity, rec.Code, "one request passes as it is")
	require.JSONEq(t, `{"data":{"query":"{a}","client":"192.0.2.1"}}`, rec.Body.String())

	rec = post(`[{"query":"subscription{a}"}]`, http.Header{"Accept": {"text/event-stream"}})
	requireRefused(t, rec, "an event stream carries one operation: send a batch without Accept: text/event-stream", "subscription{a}")
}
