package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/internal/logctx"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/token"
)

// logged returns a handler whose log (access lines and the GraphQL stand-
// in's own line, written with the request's context) goes to buf.
// logged serves a stand-in GraphQL handler that logs one line, behind
// trustProxy proxies.
func logged(buf *testkit.LogBuffer, trustProxy int) http.Handler {
	log := slog.New(logctx.NewHandler(slog.NewTextHandler(buf, nil)))
	gql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "resolver line")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{}}`)
	})
	return New(Options{GraphQL: gql, Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: log, MaxBodyBytes: 1 << 10, TrustProxy: trustProxy})
}

// TestRequestID: behind a trusted proxy a well-formed incoming id is kept
// and logged; with no proxy trusted the id is the client's text, and a
// request always gets one of ours.
func TestRequestID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, sent string
		trustProxy int
		kept       bool
	}{
		{"a proxy's uuid", "0f8fad5b-d9cb-469f-a165-70867728950e", 1, true},
		{"nginx's $request_id", "9f2b7c1e4d3a5b6c7d8e9f0a1b2c3d4e", 1, true},
		{"dotted and coloned", "edge-1:req.42_a", 2, true},
		{"an equals sign", "Root=1-67891233", 1, false},
		{"none", "", 1, false},
		{"a space", "two words", 1, false},
		{"a quote", `x"y`, 1, false},
		{"a newline", "a\nlevel=ERROR", 1, false},
		{"too long", strings.Repeat("a", maxRequestIDLen+1), 1, false},
		{"a client's uuid, no proxy trusted", "0f8fad5b-d9cb-469f-a165-70867728950e", 0, false},
		{"a client's word, no proxy trusted", "edge-1:req.42_a", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf testkit.LogBuffer
			h := logged(&buf, tt.trustProxy)
			req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(`{"query":"{x}"}`))
			req.Header.Set("Content-Type", "application/json")
			if tt.sent != "" {
				req.Header[RequestIDHeader] = []string{tt.sent}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			id := w.Header().Get(RequestIDHeader)
			if tt.kept {
				require.Equal(t, tt.sent, id, "the id round-trips")
			} else {
				require.Len(t, id, 26, "one of ours (crypto/rand.Text)")
				if tt.sent != "" {
					require.NotContains(t, buf.String(), tt.sent, "a refused id is not logged")
				}
			}
			require.Equal(t, 2, buf.Count("request_id="+id), "on the resolver's line and the access line: %s", buf.String())
		})
	}
}

// One line per request at info, with what an operator needs and nothing
// a client could have put a secret in: no query string, header or body.
func TestAccessLogLine(t *testing.T) {
	t.Parallel()
	const secret = "S3cretTok3n"
	var buf testkit.LogBuffer
	h := logged(&buf, 0)
	req := httptest.NewRequest(http.MethodPost, "/query?token="+secret+"&code=123456", strings.NewReader(`{"query":"{x}","variables":{"p":"`+secret+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Cookie", "session="+secret)
	req.RemoteAddr = "203.0.113.9:4711"
	h.ServeHTTP(httptest.NewRecorder(), req)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	line := lines[1]
	for _, want := range []string{"level=INFO", `msg="http request"`, "method=POST", "route=/query ", "status=200", "bytes=11", "took=", "client=203.0.113.9", "request_id="} {
		require.Contains(t, line, want)
	}
	require.NotContains(t, buf.String(), secret)
	require.NotContains(t, buf.String(), "?")
	require.NotContains(t, buf.String(), "123456")
}

// A path is the client's text, and a link mangled on its way (its "?"
// percent-encoded by a mail client or a scanner, or turned into a "/")
// puts the token in it: the access line names the route the path matched,
// never the path.
func TestAccessLogShowsTheRouteNotThePath(t *testing.T) {
	t.Parallel()
	tok, _ := token.New()
	for _, tt := range []struct{ name, path, shown, hidden string }{
		{"an encoded ?", "/verify-email%3Ftoken=" + tok, "route=/ ", tok},
		{"an encoded ? encoded again", "/verify-email%253Ftoken=" + tok, "route=/ ", tok},
		{"a token as a segment", "/verify-email/" + tok, "route=/ ", tok},
		{"the ? turned into ;", "/verify-email;token=" + tok, "route=/ ", tok},
		{"a path of the client's own", "/no-such-page-from-a-client", "route=/ ", "no-such-page"},
		{"a route with a method", "/asyncapi.yaml", `route="GET /asyncapi.yaml" `, ""},
		{"the API", "/query", "route=/query ", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf testkit.LogBuffer
			h := logged(&buf, 0)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tt.path, nil))
			require.Contains(t, buf.String(), tt.shown)
			require.NotContains(t, buf.String(), "path=")
			if tt.hidden != "" {
				require.NotContains(t, buf.String(), tt.hidden)
			}
		})
	}
}

// The server span's url.path is the route the path matched, as the
// access log shows it (a mangled link's token reached traces when OTLP
// was on), and probes make no span. The handlers still get the path as it
// came (the web app's 404 page, here the recorder's).
func TestTracedPathIsTheRoute(t *testing.T) {
	t.Parallel()
	tok, _ := token.New()
	var got string
	h := New(Options{GraphQL: http.NotFoundHandler(), Log: testkit.Discard(), Trace: true, Metrics: metrics.New(),
		Web: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.Path })})
	spans := tracetest.NewSpanRecorder()
	ctx, parent := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("test").Start(context.Background(), "client")
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/verify-email%3Ftoken="+tok, nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/healthz", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/asyncapi.yaml", nil))
	parent.End()

	require.Equal(t, "/verify-email?token="+tok, got, "the handler's path as it came")
	paths, servers := 0, 0
	var names []string
	for _, sp := range spans.Ended() {
		if sp.SpanKind() != trace.SpanKindServer {
			continue
		}
		servers++
		names = append(names, sp.Name())
		if sp.Name() != "GET /" {
			continue // the route with a method: its name is checked below
		}
		for _, a := range sp.Attributes() {
			require.NotContains(t, a.Value.Emit(), tok, "span %q, %s", sp.Name(), a.Key)
			require.NotContains(t, a.Value.Emit(), "verify-email", "span %q, %s", sp.Name(), a.Key)
			switch a.Key {
			case "url.path":
				paths++
				require.Equal(t, "/", a.Value.AsString())
			case "http.route":
				require.Equal(t, "/", a.Value.AsString())
			}
		}
	}
	require.Equal(t, 2, servers, "the probe has no span")
	require.ElementsMatch(t, []string{"GET /", "GET /asyncapi.yaml"}, names, "the method once, then the route")
	require.Equal(t, 1, paths, "the server span records the route as its path")
}

// A websocket's line comes when it closes, traced or not (otelhttp's
// response wrapper must let the upgrade hijack).
func TestAccessLogWebsocketAtItsEnd(t *testing.T) {
	t.Parallel()
	for _, traced := range []bool{false, true} {
		t.Run(map[bool]string{false: "untraced", true: "traced"}[traced], func(t *testing.T) {
			t.Parallel()
			var buf testkit.LogBuffer
			log := slog.New(logctx.NewHandler(slog.NewTextHandler(&buf, nil)))
			s := NewServer(ServerOptions{Addr: "127.0.0.1:0", Grace: 5 * time.Second, Log: testkit.Discard()},
				Options{GraphQL: socketsOnly(DefaultWebsocketPolicy(0, 0, 0).Transport(nil)), Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: log, Trace: traced, TrustProxy: 1})
			require.NoError(t, s.Start(context.Background()))
			t.Cleanup(s.Stop)
			c, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/query?watch=secret", http.Header{RequestIDHeader: {"ws-1"}, "X-Forwarded-For": {"203.0.113.9"}})
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, "ws-1", resp.Header.Get(RequestIDHeader))
			require.Zero(t, buf.Count("http request"), "not while open")
			require.NoError(t, c.Close())
			testkit.Eventually(t, func() bool { return buf.Count("http request") == 1 }, "the line once the server saw the close")
			require.Contains(t, buf.String(), "status=101")
			require.Contains(t, buf.String(), "request_id=ws-1")
			require.NotContains(t, buf.String(), "secret")
		})
	}
}

// With METRICS_ADDR, the public handler leaves /metrics to NewOps; health
// stays on both.
func TestMetricsElsewhere(t *testing.T) {
	t.Parallel()
	o := Options{GraphQL: http.NotFoundHandler(), Web: http.NotFoundHandler(), Metrics: metrics.New(), Log: testkit.Discard()}
	get := func(h http.Handler, path string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code
	}
	require.Equal(t, http.StatusOK, get(New(o), "/metrics"), "on the public port by default")
	o.MetricsElsewhere = true
	public, ops := New(o), NewOps(o)
	require.Equal(t, http.StatusNotFound, get(public, "/metrics"))
	require.Equal(t, http.StatusOK, get(public, "/healthz"))
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, get(ops, p), p)
	}
	require.Equal(t, http.StatusNotFound, get(ops, "/query"), "nothing else on the metrics port")
}

// Every counter is there from the start, at 0, so rate() and alerts see
// the first event; and the build says what it is.
func TestCountersFromTheStart(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.MailKinds("verification")
	h := New(Options{GraphQL: http.NotFoundHandler(), Web: http.NotFoundHandler(), Metrics: m, Log: testkit.Discard()})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := w.Body.String()
	for _, series := range []string{
		`verifier_emails_sent_total{kind="verification"} 0`,
		`verifier_emails_failed_total{kind="verification"} 0`,
		`verifier_email_retries_total{kind="verification"} 0`,
		`verifier_emails_skipped_total{kind="verification"} 0`,
		`verifier_http_requests_total{code="200",method="POST",route="/query"} 0`,
		`verifier_outbox_published_total 0`,
		`verifier_webhooks_delivered_total 0`,
		`verifier_build_info{goversion="go`,
	} {
		require.Contains(t, body, series)
	}
}

// A method is the client's text: one it invents is counted, named in the
// span and logged as OTHER, so it neither mints a metric series (memory
// that grows with every new method) nor reaches the log as sent.
func TestAccessLogMethodIsBounded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ sent, shown string }{
		{http.MethodGet, "GET"},
		{http.MethodPost, "POST"},
		{http.MethodPatch, "PATCH"},
		{http.MethodOptions, "OPTIONS"},
		{"SECRETMETHOD1", "OTHER"},
		{"get", "OTHER"},
	} {
		t.Run(tt.sent, func(t *testing.T) {
			t.Parallel()
			var buf testkit.LogBuffer
			m := metrics.New()
			h := New(Options{GraphQL: http.NotFoundHandler(), Web: http.NotFoundHandler(), Metrics: m,
				Log: slog.New(slog.NewTextHandler(&buf, nil))})
			spans := tracetest.NewSpanRecorder()
			ctx, span := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("test").Start(context.Background(), "http request")
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, tt.sent, "/query", nil))
			span.End()

			require.Contains(t, buf.String(), "method="+tt.shown+" ")
			require.Len(t, spans.Ended(), 1)
			require.Equal(t, tt.shown+" /query", spans.Ended()[0].Name())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			require.Regexp(t, `verifier_http_requests_total\{code="\d+",method="`+tt.shown+`",route="/query"\} 1`, w.Body.String())
			if tt.sent != tt.shown {
				require.NotContains(t, buf.String(), tt.sent)
				require.NotContains(t, w.Body.String(), `method="`+tt.sent+`"`)
			}
		})
	}
}
