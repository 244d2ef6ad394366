package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// echoGraphQL stands in for gqlgen and records that a request reached it.
type echoGraphQL struct{ reached bool }

func (e *echoGraphQL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.reached = true
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"data":{}}`)
}

func newTestHandler(gql http.Handler, o Options) http.Handler {
	o.GraphQL = gql
	o.Web = http.NotFoundHandler()
	o.Metrics = metrics.New()
	o.Log = testkit.Discard()
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 64 << 10
	}
	return New(o)
}

type answer struct {
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// requireRefused checks that rec is one BAD_USER_INPUT error with message,
// quoting nothing of secret.
func requireRefused(t *testing.T, rec *httptest.ResponseRecorder, message, secret string) {
	t.Helper()
	require.NotContains(t, rec.Body.String(), secret)
	var a answer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
	require.Len(t, a.Errors, 1)
	require.Equal(t, message, a.Errors[0].Message)
	require.Equal(t, "BAD_USER_INPUT", a.Errors[0].Extensions["code"])
}

func TestQueryBody(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-SuperSecret"
	tests := []struct {
		name, contentType, body string
		status                  int
		message                 string // "" when the request reaches GraphQL
	}{
		{"a request", "application/json", `{"query":"{x}","variables":{"p":"` + secret + `"},"operationName":null,"extensions":{}}`, 200, ""},
		{"charset parameter", "application/json; charset=utf-8", `{"query":"{x}"}`, 200, ""},
		{"numbers stay exact", "application/json", `{"query":"{x}","variables":{"n":1e400}}`, 200, ""},
		{"batch", "application/json", `[{"query":"{x}","variables":{"p":"` + secret + `"}},{"query":"{y}"}]`, 200, ""},
		{"empty batch", "application/json", ` []`, 400, "an empty batch: send at least one operation"},
		{"eleven in a batch", "application/json", `[` + strings.Repeat(`{"query":"{x}"},`, 10) + `{"query":"{x}","variables":{"p":"` + secret + `"}}]`, 400, "at most 10 operations per batch, got 11"},
		{"batch of strings", "application/json", `[{"query":"{x}"},"` + secret + `"]`, 400, "batch item 2 must be a JSON object with query, operationName, variables and extensions"},
		{"batch item's variables a string", "application/json", `[{"query":"{x}","variables":"` + secret + `"}]`, 400, "batch item 1: variables must be an object"},
		{"nested batch", "application/json", `[[{"query":"{x}","variables":{"p":"` + secret + `"}}]]`, 400, "batch item 1 must be a JSON object with query, operationName, variables and extensions"},
		{"operationName a number", "application/json", `{"query":"{x}","operationName":7,"variables":{"p":"` + secret + `"}}`, 400, "operationName must be a string"},
		{"query an object", "application/json", `{"query":{"p":"` + secret + `"}}`, 400, "query must be a string"},
		{"variables a string", "application/json", `{"query":"{x}","variables":"` + secret + `"}`, 400, "variables must be an object"},
		{"extensions an array", "application/json", `{"query":"{x}","extensions":["` + secret + `"]}`, 400, "extensions must be an object"},
		{"a string", "application/json", `"` + secret + `"`, 400, "request body must be a JSON object with query, operationName, variables and extensions"},
		{"null", "application/json", `null`, 400, "request body must be a JSON object with query, operationName, variables and extensions"},
		{"not JSON", "application/json", `{"p":"` + secret + `"`, 400, "request body is not valid JSON"},
		{"empty", "application/json", ``, 400, "request body is not valid JSON"},
		{"not UTF-8", "application/json", `{"query":"{x}","variables":{"e":"a` + "\xff" + `@example.com","p":"` + secret + `"}}`, 400, "request body is not valid JSON: it is not UTF-8 text"},
		{"Latin-1 declared", "application/json; charset=iso-8859-1", `{"query":"{x}","variables":{"p":"` + "\xe4" + secret + `"}}`, 400, "request body is not valid JSON: it is not UTF-8 text"},
		{"batch item not UTF-8", "application/json", `[{"query":"{x}"},{"query":"{x}","variables":{"p":"` + "\xc3" + secret + `"}}]`, 400, "request body is not valid JSON: it is not UTF-8 text"},
		{"no content type", "", `{"query":"{x}"}`, 400, errNotJSON},
		{"text", "text/plain", `{"query":"{x}"}`, 400, errNotJSON},
		{"a form", "application/x-www-form-urlencoded", `password=` + secret, 400, errNotJSON},
		{"GraphQL text", "application/graphql", `{x}`, 400, errNotJSON},
		{"a malformed type", "application/", `{"query":"{x}"}`, 400, errNotJSON},
		{"no query", "application/json", `{"variables":{"p":"` + secret + `"}}`, 400, "request body has no query (nor extensions with a persisted query)"},
		{"an empty object", "application/json", `{}`, 400, "request body has no query (nor extensions with a persisted query)"},
		{"query null", "application/json", `{"query":null}`, 400, "request body has no query (nor extensions with a persisted query)"},
		{"query empty", "application/json", `{"query":""}`, 400, "request body has no query (nor extensions with a persisted query)"},
		{"batch item without query", "application/json", `[{"query":"{x}"},{"operationName":"A"}]`, 400, "batch item 2 has no query (nor extensions with a persisted query)"},
		{"extensions without a persisted query", "application/json", `{"extensions":{"p":"` + secret + `"}}`, 400, "request body has no query (nor extensions with a persisted query)"},
		{"a persisted query alone", "application/json", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, 200, ""},
		{"too large", "application/json", `{"query":"` + strings.Repeat("x", 64<<10) + `"}`, 413, "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gql := &echoGraphQL{}
			h := newTestHandler(gql, Options{})
			req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, tt.message == "", gql.reached)
			if tt.message == "" {
				return
			}
			requireRefused(t, rec, tt.message, secret)
		})
	}
}

// TestQueryMethods: /query answers OPTIONS (not a CORS preflight) with
// the methods it takes, as its 405s list them, and refuses the others.
func TestQueryMethods(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-SuperSecret"
	tests := []struct {
		method string
		status int
	}{
		{http.MethodOptions, http.StatusNoContent},
		{http.MethodPut, http.StatusMethodNotAllowed},
		{http.MethodDelete, http.StatusMethodNotAllowed},
		{http.MethodHead, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			t.Parallel()
			gql := &echoGraphQL{}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tt.method, "/query", strings.NewReader(`{"query":"{x}","variables":{"p":"`+secret+`"}}`))
			req.Header.Set("Content-Type", "application/json")
			newTestHandler(gql, Options{}).ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, "GET, POST, OPTIONS", rec.Header().Get("Allow"))
			require.False(t, gql.reached)
			if tt.status == http.StatusNoContent {
				require.Empty(t, rec.Body.String())
				return
			}
			requireRefused(t, rec, "use POST (or GET for queries); for subscriptions a websocket or POST with Accept: text/event-stream", secret)
		})
	}
}

// TestAdminBody: the admin API takes one GraphQL request per body; a
// batch, which /query takes, is refused with a message that says so
// rather than reaching gqlgen (which answered "the request could not be
// read" and logged a warning).
func TestAdminBody(t *testing.T) {
	t.Parallel()
	const tok = "0123456789abcdefghijklmnopqrstuvwxyz"
	const secret = "Hunter2-SuperSecret"
	tests := []struct {
		name, body string
		status     int
		message    string // "" when the request reaches the admin API
	}{
		{"a request", `{"query":"{x}","variables":{"p":"` + secret + `"}}`, 200, ""},
		{"batch", `[{"query":"{x}","variables":{"p":"` + secret + `"}}]`, 400, "a batch is not taken here: send one GraphQL request per body"},
		{"batch after white space", " \n[{\"query\":\"{x}\"}]", 400, "a batch is not taken here: send one GraphQL request per body"},
		{"not JSON", `[{"p":"` + secret + `"`, 400, "request body is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			admin := &echoGraphQL{}
			h := newTestHandler(&echoGraphQL{}, Options{Admin: admin, AdminToken: tok})
			req := httptest.NewRequest(http.MethodPost, "/admin/query", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Equal(t, tt.message == "", admin.reached)
			if tt.message != "" {
				requireRefused(t, rec, tt.message, secret)
			}
		})
	}
}

// blockingGraphQL holds each websocket request open until its remote
// address is released, as gqlgen does for the life of a connection.
type blockingGraphQL struct {
	entered chan struct{}
	release map[string]chan struct{}
}

func (b *blockingGraphQL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	<-b.release[r.RemoteAddr]
}

// upgradeFrom sends h a websocket upgrade request from remote.
func upgradeFrom(h http.Handler, remote string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/query", nil)
	req.RemoteAddr = remote
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSocketsPerClient(t *testing.T) {
	t.Parallel()
	remotes := []string{"192.0.2.1:1000", "192.0.2.1:1001", "192.0.2.1:1002", "198.51.100.7:1000", "192.0.2.1:1003"}
	gql := &blockingGraphQL{entered: make(chan struct{}), release: map[string]chan struct{}{}}
	for _, r := range remotes {
		gql.release[r] = make(chan struct{})
	}
	h := newTestHandler(gql, Options{Websocket: WebsocketPolicy{MaxSocketsPerClient: 2}})
	upgrade := func(remote string) *httptest.ResponseRecorder { return upgradeFrom(h, remote) }
	// open starts a websocket request that stays in GraphQL until released;
	// the returned channel is closed when the handler has returned.
	open := func(remote string) <-chan struct{} {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			upgrade(remote)
		}()
		testkit.Receive(t, gql.entered, "socket from %s in GraphQL", remote)
		return done
	}
	first := open(remotes[0])
	second := open(remotes[1])

	// Refused, or let into GraphQL were the cap broken: either way the
	// test goes on to fail, instead of hanging in the handler.
	refused := make(chan *httptest.ResponseRecorder, 1)
	go func() { refused <- upgrade(remotes[2]) }()
	var rec *httptest.ResponseRecorder
	select {
	case rec = <-refused:
	case <-gql.entered:
		close(gql.release[remotes[2]])
		t.Fatal("a third socket from the same client got in")
	}
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "10", rec.Header().Get("Retry-After"))
	var a answer
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
	require.Equal(t, "RATE_LIMITED", a.Errors[0].Extensions["code"])
	require.InDelta(t, 10, a.Errors[0].Extensions["retryAfterSeconds"], 0)

	// Another client is not affected.
	other := open(remotes[3])

	// A closed socket frees its place.
	close(gql.release[remotes[0]])
	testkit.Receive(t, first, "end of the first socket's request once released")
	fourth := open(remotes[4])

	for _, r := range remotes[1:] {
		if r != remotes[2] {
			close(gql.release[r])
		}
	}
	testkit.Receive(t, second, "end of the second socket's request once released")
	testkit.Receive(t, other, "end of the other client's socket's request once released")
	testkit.Receive(t, fourth, "end of the fourth socket's request once released")
}

// The socket cap counts an IPv6 /64 as one client, as the rate limits do:
// a subscriber holds a whole /64 and could rotate through it.
func TestSocketsPerIPv6Prefix(t *testing.T) {
	t.Parallel()
	held, elsewhere, sibling := "[2001:db8::1]:1000", "[2001:db8:0:1::1]:1000", "[2001:db8::2]:1000"
	gql := &blockingGraphQL{entered: make(chan struct{}), release: map[string]chan struct{}{}}
	for _, r := range []string{held, elsewhere, sibling} {
		gql.release[r] = make(chan struct{})
	}
	h := newTestHandler(gql, Options{Websocket: WebsocketPolicy{MaxSocketsPerClient: 1}})
	upgrade := func(remote string, code chan<- int) { code <- upgradeFrom(h, remote).Code }
	codes := make(chan int, 3)
	for _, remote := range []string{held, elsewhere} {
		go upgrade(remote, codes)
		testkit.Receive(t, gql.entered, "socket from %s in GraphQL", remote) // another /64 is another client
	}
	go upgrade(sibling, codes)
	pending := 3 // handlers that have not returned
	select {
	case code := <-codes:
		pending--
		require.Equal(t, http.StatusTooManyRequests, code, "same /64 as the open socket")
	case <-gql.entered:
		t.Error("a second socket from the same /64 got in")
	}
	for _, c := range gql.release {
		close(c)
	}
	for range pending {
		testkit.Receive(t, codes, "answer of a released socket")
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp db.internal:5432: refused") }
	tests := []struct {
		name   string
		checks []Check
		status int
		want   map[string]string
	}{
		{"all ok", []Check{{Name: "database", Ping: ok}, {Name: "broker", Ping: ok}}, 200, map[string]string{"database": "ok", "broker": "ok"}},
		{"one down", []Check{{Name: "database", Ping: down}, {Name: "broker", Ping: ok}}, 503, map[string]string{"database": "unavailable", "broker": "ok"}},
		{"advisory down", []Check{{Name: "database", Ping: ok}, {Name: "mail", Ping: down, Advisory: true}}, 200, map[string]string{"database": "ok", "mail": "degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newTestHandler(&echoGraphQL{}, Options{Ready: tt.checks})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			require.Equal(t, tt.status, rec.Code)
			require.NotContains(t, rec.Body.String(), "db.internal", "/readyz is public")
			var got struct{ Checks map[string]string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			require.Equal(t, tt.want, got.Checks)
		})
	}
}

// A worker's HTTP side (HealthOnly) answers health, readiness and metrics,
// and 404 on every path of the API, even those a full handler serves.
func TestHealthOnly(t *testing.T) {
	t.Parallel()
	h := newTestHandler(&echoGraphQL{}, Options{
		HealthOnly: true,
		DevOutbox:  mail.NewDevOutbox(nil, testkit.Discard(), ""),
		Ready:      []Check{{Name: "mail", Ping: func(context.Context) error { return errors.New("refused") }, Advisory: true}},
	})
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodPost, "/query", http.StatusNotFound},
		{http.MethodGet, "/query", http.StatusNotFound},
		{http.MethodGet, "/playground", http.StatusNotFound},
		{http.MethodGet, "/dev/mail", http.StatusNotFound},
		{http.MethodGet, "/asyncapi.yaml", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"query":"{__typename}"}`))
		req.RemoteAddr = "127.0.0.1:4000"
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		require.Equal(t, tt.status, rec.Code, tt.method+" "+tt.path)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Contains(t, rec.Body.String(), `"mail":"degraded"`, "a worker reports its SMTP state")
}

// With DEV_MAILBOX=auto the dev mailbox is for this machine only, even
// when the client claims otherwise; both views obey the same rule.
func TestDevMailLoopbackOnly(t *testing.T) {
	t.Parallel()
	h := newTestHandler(&echoGraphQL{}, Options{
		DevOutbox:           mail.NewDevOutbox(nil, testkit.Discard(), ""),
		DevMailLoopbackOnly: true,
	})
	for _, path := range []string{"/dev/mail", "/dev/mail.json"} {
		for _, peer := range []string{"192.0.2.7:4000", "[2001:db8::1]:4000", "garbage"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.RemoteAddr = peer
			req.Header.Set("X-Forwarded-For", "127.0.0.1")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusNotFound, rec.Code, path+" from "+peer)
		}
	}
	for _, peer := range []string{"127.0.0.1:4000", "[::1]:4000", "[::ffff:127.0.0.1]:4000"} {
		req := httptest.NewRequest(http.MethodGet, "/dev/mail", nil)
		req.RemoteAddr = peer
		require.True(t, loopbackPeer(req), peer)
	}
	// From this machine, but under another name: a page whose name was
	// made to point at 127.0.0.1 (DNS rebinding), or a proxy on this
	// machine passing on requests from elsewhere. Either would read every
	// live link.
	for _, host := range []string{"localhost:8080", "LOCALHOST:8080", "localhost", "127.0.0.1:8080", "[::1]:8080"} {
		req := httptest.NewRequest(http.MethodGet, "/dev/mail", nil)
		req.Host = host
		require.True(t, loopbackHost(req), host)
	}
	for _, host := range []string{"rebound.example:8080", "localhost.rebound.example:8080", "verify.example.com", ""} {
		req := httptest.NewRequest(http.MethodGet, "/dev/mail.json", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:4000", host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusNotFound, rec.Code, "Host %q", host)
	}
}

// The dev mailbox is a view of the delivery records: what was written and
// what became of it, as HTML for people and JSON for tests.
func TestDevMailViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.SQLite(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	records := delivery.New(db.Ent, nil)
	outbox := mail.NewDevOutbox(records, testkit.Discard(), "")
	h := newTestHandler(&echoGraphQL{}, Options{DevOutbox: outbox, DevMailLoopbackOnly: true})

	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr, req.Host = "127.0.0.1:4000", "localhost:8080"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"), path)
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), path)
		return rec
	}
	require.JSONEq(t, `[]`, get("/dev/mail.json").Body.String(), "no mail yet")

	const link = "https://verify.example.com/verify-email?token=tok_abc"
	for i, m := range []mail.Message{
		{ID: "e1", To: "ada@example.com", Subject: "Verify your email address", Text: "Hello,\n\nYour code: 042917\n\n" + link + "\n\nSee https://example.com/help\n"},
		{ID: "e2", To: "bob@example.com", Subject: "Someone tried to sign up with your email address", Text: "Read https://example.com/help\n"},
	} {
		rec, err := records.Begin(ctx, delivery.Event{ID: m.ID, Kind: "verification", Address: m.To, Topic: "user.registered"})
		require.NoError(t, err)
		require.NoError(t, outbox.Send(ctx, m))
		if i == 0 {
			require.NoError(t, records.MarkSent(ctx, rec, true))
		}
	}

	rec := get("/dev/mail.json")
	require.Equal(t, "application/json", strings.Split(rec.Header().Get("Content-Type"), ";")[0])
	var got []struct{ To, Subject, Text, Link, Code, State, At string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got, 2)
	require.Equal(t, "bob@example.com", got[0].To, "newest first")
	require.Equal(t, "https://example.com/help", got[0].Link, "no verification link: the first one")
	require.Equal(t, "QUEUED", got[0].State)
	require.Equal(t, "ada@example.com", got[1].To)
	require.Equal(t, "Verify your email address", got[1].Subject)
	require.Equal(t, link, got[1].Link, "the verification link, though not the only one")
	require.Equal(t, "042917", got[1].Code)
	require.Empty(t, got[0].Code, "a notice has no code")
	require.Equal(t, "SENT", got[1].State)
	require.Contains(t, got[1].Text, link)
	_, err = time.Parse(time.RFC3339Nano, got[1].At)
	require.NoError(t, err)

	pageRec := get("/dev/mail")
	// Live links: never framed by another site, no script run.
	require.Equal(t, "DENY", pageRec.Header().Get("X-Frame-Options"))
	csp := pageRec.Header().Get("Content-Security-Policy")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, csp, "default-src 'none'")
	require.NotContains(t, csp, "script-src")
	page := pageRec.Body.String()
	require.Contains(t, page, `<a href="`+link+`">`)
	require.Contains(t, page, "SENT")
}

// /asyncapi.yaml serves the document byte for byte.
func TestAsyncAPI(t *testing.T) {
	t.Parallel()
	doc := []byte("asyncapi: 3.1.0\n# ünïcode and all\n")
	h := newTestHandler(&echoGraphQL{}, Options{AsyncAPI: doc})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/asyncapi.yaml", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/yaml", rec.Header().Get("Content-Type"))
	require.Equal(t, doc, rec.Body.Bytes())
}

// Every answer says nosniff: one that quotes a client (a GraphQL error
// naming a field it asked for) is never read as a script or a page.
func TestNoSniff(t *testing.T) {
	t.Parallel()
	h := newTestHandler(&echoGraphQL{}, Options{AsyncAPI: []byte("asyncapi: 3.1.0\n")})
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/query?query=%7B__typename%7D"},
		{http.MethodPost, "/query"},
		{http.MethodPut, "/query"},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/asyncapi.yaml"},
		{http.MethodGet, "/nope"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(`{"query":"{__typename}"}`))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), tt.method+" "+tt.path)
	}
	ops := NewOps(Options{Metrics: metrics.New(), Log: testkit.Discard()})
	rec := httptest.NewRecorder()
	ops.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), "METRICS_ADDR")
}

// TestDevMailCode: /dev/mail.json's code is the one every built-in
// template mails, in every locale and case, and "" where an email has
// none (a dead code, a notice).
func TestDevMailCode(t *testing.T) {
	t.Parallel()
	tmpl := mail.BuiltinTemplates()
	exp := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	for _, locale := range tmpl.Locales() {
		tests := []struct {
			name string
			data mail.VerificationData
			want string
		}{
			{"sign-up", mail.VerificationData{Code: "042917"}, "042917"},
			{"resend", mail.VerificationData{Code: "123456", Resend: true}, "123456"},
			{"new address", mail.VerificationData{Code: "987650", ChangeEmail: true}, "987650"},
			{"dead code", mail.VerificationData{}, ""},
		}
		for _, tt := range tests {
			t.Run(locale+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				d := tt.data
				d.Link, d.Expires, d.CodeExpires, d.Locale = "http://localhost:8080/verify-email?token=tok", exp, exp, locale
				m, err := tmpl.Verification("e1", "ada@example.com", d)
				require.NoError(t, err)
				require.Equal(t, tt.want, mailCode(m.Text), m.Text)
			})
		}
		t.Run(locale+" notice", func(t *testing.T) {
			t.Parallel()
			m, err := tmpl.AlreadyRegistered("e2", "ada@example.com", locale, false)
			require.NoError(t, err)
			require.Empty(t, mailCode(m.Text), m.Text)
		})
	}
	for text, want := range map[string]string{
		"Your code: 123 456\n": "123456",
		"code:123-456\n":       "123456",
		"Code: 1234567\n":      "",
		"no code here 123456":  "",
	} {
		require.Equal(t, want, mailCode(text), text)
	}
}
