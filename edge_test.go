package main

// Tests of the HTTP and websocket edge: nothing a client sends is logged,
// every cap answers with a contract code while the rest carries on, and a
// restart closes websockets with 1012 before any subscription could end.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/mail/mailtest"
)

// logBuffer collects a service's log; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// instanceOptions configure startInstance.
type instanceOptions struct {
	// database is a SQLite file, shared by the instances of one test.
	database string
	sink     *mailtest.Sink
	// log receives the service's log at LOG_LEVEL (env), or the test's
	// output at warn.
	log io.Writer
	env map[string]string
}

// instance is one run() that the test stops itself, for tests of shutdown
// and of the log; startService stops its service only at cleanup.
type instance struct {
	*svc
	stopped chan struct{}
	stop    func()
}

func startInstance(t *testing.T, o instanceOptions) *instance {
	t.Helper()
	if o.sink == nil {
		o.sink = mailtest.Start(t)
	}
	if o.database == "" {
		o.database = filepath.Join(t.TempDir(), "verifier.db")
	}
	env := map[string]string{
		"HTTP_ADDR":         "127.0.0.1:0",
		"DATABASE_URL":      "sqlite:" + o.database,
		"SMTP_URL":          o.sink.URL(),
		"PUBLIC_URL":        publicURL,
		"SHUTDOWN_GRACE":    "5s",
		"CLIENT_RATE_LIMIT": "0",
		"LOG_LEVEL":         "warn",
	}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	var level slog.Level
	require.NoError(t, level.UnmarshalText([]byte(cfg.LogLevel)))
	if o.log == nil {
		o.log = t.Output()
	}
	log := slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: level}))

	in := &instance{
		svc:     &svc{sink: o.sink, clock: &clock{}, http: &http.Client{Timeout: 30 * time.Second}},
		stopped: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, log, hooks{listening: func(a string) { listening <- a }, now: in.clock.Now})
	}()
	select {
	case in.addr = <-listening:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	}
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				// Not require: stop may run on another goroutine.
				assert(t, err == nil, "graceful shutdown: %v", err)
			case <-time.After(30 * time.Second):
				t.Error("service did not stop within 30s")
			}
			in.http.CloseIdleConnections()
			close(in.stopped)
		})
	}
	t.Cleanup(in.stop)
	return in
}

// rawPost sends body to /query as contentType and returns the status and
// the answer.
func (s *svc) rawPost(t *testing.T, contentType string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := s.http.Post(s.url("/query"), contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, raw
}

// wsClient is a websocket that may carry several subscriptions.
type wsClient struct {
	t     *testing.T
	c     *websocket.Conn
	proto string
}

type wsMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// connect opens and initialises a websocket.
func (s *svc) connect(t *testing.T, proto string) *wsClient {
	t.Helper()
	c, resp, err := s.dial(t, proto, nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	w := &wsClient{t: t, c: c, proto: proto}
	w.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	m, err := w.read()
	require.NoError(t, err)
	require.Equal(t, "connection_ack", m.Type)
	return w
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	require.NoError(w.t, w.c.SetWriteDeadline(time.Now().Add(10*time.Second)))
	require.NoError(w.t, w.c.WriteJSON(v))
}

// subscribe starts the status subscription id for watch.
func (w *wsClient) subscribe(id, watch string) {
	w.t.Helper()
	start := "subscribe"
	if w.proto == legacyWS {
		start = "start"
	}
	w.send(map[string]any{"id": id, "type": start, "payload": map[string]any{"query": watchQ, "variables": map[string]any{"w": watch}}})
}

// read returns the next message that is not a keep-alive, answering
// pings, or the error that ended the connection.
func (w *wsClient) read() (wsMessage, error) {
	for {
		if err := w.c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			return wsMessage{}, err
		}
		var m wsMessage
		if err := w.c.ReadJSON(&m); err != nil {
			return m, err
		}
		switch m.Type {
		case "ka":
			continue
		case "ping":
			w.send(map[string]any{"type": "pong"})
			continue
		}
		return m, nil
	}
}

// expectStatus reads the next event of subscription id.
func (w *wsClient) expectStatus(id, status string) {
	w.t.Helper()
	m, err := w.read()
	require.NoError(w.t, err)
	require.Contains(w.t, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	require.Equal(w.t, id, m.ID)
	require.Contains(w.t, string(m.Payload), fmt.Sprintf(`"status":%q`, status))
}

// expectLimited reads RATE_LIMITED then complete for subscription id.
func (w *wsClient) expectLimited(id string) {
	w.t.Helper()
	m, err := w.read()
	require.NoError(w.t, err)
	require.Contains(w.t, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	require.Equal(w.t, id, m.ID)
	require.Contains(w.t, string(m.Payload), `"code":"RATE_LIMITED"`)
	require.Contains(w.t, string(m.Payload), `"retryAfterSeconds":10`)
	m, err = w.read()
	require.NoError(w.t, err)
	require.Equal(w.t, "complete", m.Type)
	require.Equal(w.t, id, m.ID)
}

// stopSub ends subscription id from the client side; the server confirms
// with complete once the subscription no longer counts.
func (w *wsClient) stopSub(id string) {
	w.t.Helper()
	typ := "complete"
	if w.proto == legacyWS {
		typ = "stop"
	}
	w.send(map[string]any{"id": id, "type": typ})
	m, err := w.read()
	require.NoError(w.t, err)
	require.Equal(w.t, "complete", m.Type)
	require.Equal(w.t, id, m.ID)
}

// alive checks the socket still answers (graphql-transport-ws ping).
func (w *wsClient) alive() {
	w.t.Helper()
	require.Equal(w.t, transportWS, w.proto)
	w.send(map[string]any{"type": "ping"})
	m, err := w.read()
	require.NoError(w.t, err)
	require.Equal(w.t, "pong", m.Type)
}

// TestNothingSentIsLogged sends a password, a verification token and a
// watch token in every malformed shape we could think of, at debug level,
// and checks that none of them reaches the log; bodies that are not one
// GraphQL request answer 400 BAD_USER_INPUT without quoting the body.
func TestNothingSentIsLogged(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	s := startInstance(t, instanceOptions{log: logs, env: map[string]string{"LOG_LEVEL": "debug"}})

	const password = "Hunter2-SuperSecret-Pw"
	r := s.gql(t, registerQ, map[string]any{"e": "secret@example.com", "p": password})
	require.Empty(t, r.Errors)
	watch := r.Data["register"].(map[string]any)["watchToken"].(string)
	token := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	secrets := []string{password, token, watch}
	fill := func(shape string) []byte {
		return []byte(strings.NewReplacer("PASSWORD", password, "TOKEN", token, "WATCH", watch).Replace(shape))
	}
	q := func(query string) string { b, _ := json.Marshal(query); return string(b) }

	decodeFailures := []struct{ name, body string }{
		{"batch array (Apollo BatchHttpLink)", `[{"query":` + q(registerQ) + `,"variables":{"e":"a@example.com","p":"PASSWORD"}},{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}]`},
		{"operationName a number", `{"query":` + q(registerQ) + `,"variables":{"e":"b@example.com","p":"PASSWORD"},"operationName":7}`},
		{"operationName an object", `{"query":` + q(statusQ) + `,"operationName":{"w":"WATCH"}}`},
		{"operationName a boolean", `{"query":` + q(statusQ) + `,"variables":{"w":"WATCH"},"operationName":true}`},
		{"variables a string", `{"query":` + q(verifyQ) + `,"variables":"TOKEN PASSWORD"}`},
		{"variables an array", `{"query":` + q(statusQ) + `,"variables":["WATCH"]}`},
		{"variables a number", `{"query":` + q(verifyQ) + `,"variables":5,"extensions":{"t":"TOKEN"}}`},
		{"query a number", `{"query":5,"variables":{"t":"TOKEN","p":"PASSWORD"}}`},
		{"query an object", `{"query":{"text":"PASSWORD"}}`},
		{"query an array", `{"query":["TOKEN"]}`},
		{"extensions a string", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"},"extensions":"PASSWORD"}`},
		{"extensions an array", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"},"extensions":["PASSWORD"]}`},
		{"a JSON string", `"PASSWORD TOKEN"`},
		{"an array of strings", `["TOKEN","WATCH"]`},
		{"null", `null`},
		{"a number", `7`},
		{"truncated JSON", `{"query":` + q(registerQ) + `,"variables":{"e":"c@example.com","p":"PASSWORD"}`},
		{"trailing garbage", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}} PASSWORD`},
		{"not JSON at all", `email=d@example.com&password=PASSWORD&token=TOKEN`},
		{"empty batch", `[]`},
		{"nested batch", `[[{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}]]`},
	}
	for _, tt := range decodeFailures {
		status, body := s.rawPost(t, "application/json", fill(tt.body))
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tt.name, body)
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(body, &resp), tt.name)
		require.Equal(t, "BAD_USER_INPUT", resp.code(), "%s: %s", tt.name, body)
		for _, secret := range secrets {
			require.NotContains(t, string(body), secret, "%s: the answer quotes the body", tt.name)
		}
		if strings.HasPrefix(tt.body, "[{") {
			require.Contains(t, resp.Errors[0].Message, "batching is not supported", tt.name)
		}
	}

	// Other refusals: each answers with a contract or gqlgen code; the log
	// is checked below.
	others := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"wrong content type", "text/plain", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}`, http.StatusUnsupportedMediaType, "BAD_USER_INPUT"},
		{"form body", "application/x-www-form-urlencoded", `password=PASSWORD`, http.StatusUnsupportedMediaType, "BAD_USER_INPUT"},
		{"oversized", "application/json", `{"query":"` + strings.Repeat("PASSWORD ", 8000) + `"}`, http.StatusRequestEntityTooLarge, "BAD_USER_INPUT"},
		{"parse error", "application/json", `{"query":` + q(`mutation{register(input:{email:"e@example.com",password:"PASSWORD"}){watchToken`) + `}`, http.StatusUnprocessableEntity, "GRAPHQL_PARSE_FAILED"},
		{"secret as a field name", "application/json", `{"query":"{ Hunter2_SuperSecret_Pw }"}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"variables of the wrong type", "application/json", `{"query":` + q(registerQ) + `,"variables":{"e":{"x":"PASSWORD"},"p":["PASSWORD"]}}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown operation name", "application/json", `{"query":` + q(statusQ) + `,"operationName":"PASSWORD","variables":{"w":"WATCH"}}`, http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
		{"unknown variables", "application/json", `{"query":` + q(statusQ) + `,"variables":{"w":"WATCH","extra":"PASSWORD"}}`, http.StatusOK, ""},
		{"bad email with the password", "application/json", `{"query":` + q(registerQ) + `,"variables":{"e":"not an address PASSWORD","p":"PASSWORD"}}`, http.StatusOK, "BAD_USER_INPUT"},
		{"password as a token", "application/json", `{"query":` + q(verifyQ) + `,"variables":{"t":"PASSWORD"}}`, http.StatusOK, "INVALID_TOKEN"},
		{"token as a watch token", "application/json", `{"query":` + q(statusQ) + `,"variables":{"w":"TOKEN"}}`, http.StatusOK, "INVALID_TOKEN"},
		{"the real thing", "application/json", `{"query":` + q(verifyQ) + `,"variables":{"t":"TOKEN"}}`, http.StatusOK, ""},
	}
	for _, tt := range others {
		status, body := s.rawPost(t, tt.contentType, fill(tt.body))
		require.Equal(t, tt.status, status, "%s: %s", tt.name, body)
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(body, &resp), tt.name)
		require.Equal(t, tt.code, resp.code(), "%s: %s", tt.name, body)
	}

	// In the URL and in headers.
	req, err := http.NewRequest(http.MethodGet, s.url("/query?query="+password+"&token="+token), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// Over websockets: each shape on a socket of its own, as several of
	// them end the connection.
	frames := []string{
		`{"type":"connection_init","payload":{"authorization":"TOKEN","password":"PASSWORD"}}`,
		`{"type":"PASSWORD"}`,
		`{"type":"subscribe","id":"1","payload":{"query":5,"variables":{"w":"WATCH"}}}`,
		`{"type":"subscribe","id":"2","payload":{"query":` + q(watchQ) + `,"variables":"PASSWORD"}}`,
		`{"type":"subscribe","id":"PASSWORD","payload":{"query":` + q(watchQ) + `,"variables":{"w":"PASSWORD"}}}`,
		`{"type":"subscribe","id":"3","payload":{"query":"subscription { TOKEN }"}}`,
		`{"PASSWORD TOKEN`,
		`{"type":"complete","id":"TOKEN"}`,
	}
	for _, proto := range []string{transportWS, legacyWS} {
		for _, frame := range frames {
			c, resp, err := s.dial(t, proto, http.Header{"Authorization": {"Bearer " + token}})
			require.NoError(t, err)
			resp.Body.Close()
			if !strings.Contains(frame, "connection_init") {
				require.NoError(t, c.WriteJSON(map[string]any{"type": "connection_init"}))
			}
			require.NoError(t, c.WriteMessage(websocket.TextMessage, fill(frame)))
			// The server reads in order: once it answers the close, it
			// has handled the frame (or closed the socket over it).
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					require.True(t, errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF), "%s %s: %v", proto, frame, err)
					break
				}
			}
			c.Close()
		}
	}

	// A normal close, so every debug line of the sockets is written.
	s.stop()
	log := logs.String()
	require.Contains(t, log, `msg="http request"`, "the log is at debug level")
	for _, secret := range secrets {
		require.NotContains(t, log, secret, "a secret reached the log")
	}
	require.NotContains(t, log, "Hunter2_SuperSecret_Pw")
}

// appQueries are the requests of the web app; each must pass every limit.
var appQueries = []string{
	registerQ, verifyQ, resendQ, statusQ,
	`mutation($i:RegisterInput!){register(input:$i){watchToken status}}`,
}

// TestQueryLimits: a request does a few dozen lookups at most, and every
// answer to a request of at most 64 KiB stays within a few KiB.
func TestQueryLimits(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	watch := s.register(t, "limits@example.com")

	aliases := func(n int) string {
		var b strings.Builder
		b.WriteString("query($w:String!){")
		for i := range n {
			fmt.Fprintf(&b, " a%d:verificationStatus(watchToken:$w)", i)
		}
		return b.String() + "}"
	}
	r := s.gql(t, aliases(30), map[string]any{"w": watch})
	require.Empty(t, r.Errors, "30 lookups pass")
	require.Len(t, r.Data, 30)
	r = s.gql(t, aliases(50), map[string]any{"w": watch})
	require.Equal(t, "BAD_USER_INPUT", r.code())
	require.Contains(t, r.Errors[0].Message, "costs 500, more than the limit of 300")
	require.Nil(t, r.Data)

	for _, query := range appQueries {
		r := s.gql(t, query, map[string]any{})
		for _, e := range r.Errors {
			require.NotContains(t, e.Message, "smaller requests", query)
		}
	}
	r = s.gql(t, introspectionQuery, nil)
	require.Empty(t, r.Errors, "GraphiQL's introspection query passes")

	// Documents built to make validation or its answer large, each as
	// close to 64 KiB of body as it gets.
	fill := func(unit func(i int) string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; ; i++ {
			u := unit(i)
			if b.Len()+len(u) > 60<<10 {
				break
			}
			b.WriteString(u)
		}
		return b.String() + "}"
	}
	pair := func(n int, unit func(i int) string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			b.WriteString(unit(i))
		}
		return b.String() + "}"
	}
	conflicting := func(i int) string { return fmt.Sprintf(`verificationStatus(watchToken:"%d") `, i) }
	unknown := func(i int) string { return fmt.Sprintf("f%d ", i) }
	same := func(int) string { return "x " }
	tests := []struct {
		name, query string
		code        string
		// errors is the exact count, or 0 for any up to the cap.
		errors int
	}{
		// Every pair conflicts: before the limits, 1,665 of these made a
		// 340 MB answer in 10 s. Now past the parser's token limit.
		{"62 KiB of one field with different arguments", fill(conflicting), "GRAPHQL_PARSE_FAILED", 1},
		{"60 KiB of unknown fields", fill(unknown), "GRAPHQL_PARSE_FAILED", 1},
		{"60 KiB of one token", "{" + strings.Repeat("(", 60<<10) + "}", "GRAPHQL_PARSE_FAILED", 1},
		// Within the token limit, more fields than validation may compare.
		{"2,000 fields", pair(2000, same), "BAD_USER_INPUT", 1},
		{"a million fields from nested fragments", nestedFragments(20), "BAD_USER_INPUT", 1},
		// Within both, validation errors are capped.
		{"400 conflicting fields", pair(400, conflicting), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1},
		{"400 unknown fields", pair(400, unknown), "GRAPHQL_VALIDATION_FAILED", maxValidationErrors + 1},
		{"one 60 KiB field name", "{" + strings.Repeat("x", 60<<10) + "}", "GRAPHQL_VALIDATION_FAILED", 1},
		{"a fragment cycle", `{...A} fragment A on Query {...B verificationStatus(watchToken:"x")} fragment B on Query {...A}`, "GRAPHQL_VALIDATION_FAILED", 0},
	}
	for _, tt := range tests {
		body, err := json.Marshal(map[string]any{"query": tt.query})
		require.NoError(t, err)
		require.LessOrEqual(t, len(body), 64<<10, tt.name)
		status, answer := s.rawPost(t, "application/json", body)
		require.Less(t, status, 500, tt.name)
		require.LessOrEqual(t, len(answer), 4<<10, "%s: a %d-byte answer", tt.name, len(answer))
		var resp gqlResponse
		require.NoError(t, json.Unmarshal(answer, &resp), tt.name)
		if tt.errors > 0 {
			require.Len(t, resp.Errors, tt.errors, "%s: %s", tt.name, answer)
		} else {
			require.NotEmpty(t, resp.Errors, tt.name)
			require.LessOrEqual(t, len(resp.Errors), maxValidationErrors+1, tt.name)
		}
		require.Equal(t, tt.code, resp.code(), "%s: %s", tt.name, answer)
		if tt.errors == maxValidationErrors+1 {
			require.Contains(t, resp.Errors[maxValidationErrors].Message, "too many validation errors")
		}
	}
}

// maxValidationErrors mirrors graph's cap, which the answers show.
const maxValidationErrors = 10

// nestedFragments doubles the fields at each level: 2^n fields expanded
// from a few hundred bytes.
func nestedFragments(n int) string {
	var b strings.Builder
	b.WriteString("{...F0} fragment F0 on Query { a:verificationStatus(watchToken:\"x\") }")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i-1, i-1)
	}
	return strings.Replace(b.String(), "...F0}", fmt.Sprintf("...F%d}", n-1), 1)
}

// TestSubscriptionCaps: beyond a cap that subscription or socket is
// refused with RATE_LIMITED (429 before the upgrade for a socket), and the
// socket and every other client carry on.
func TestSubscriptionCaps(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{
		"WS_MAX_SUBSCRIPTIONS": "3",
		"WS_MAX_SOCKETS":       "3",
		"MAX_SUBSCRIPTIONS":    "5",
	}})
	watch := s.register(t, "caps@example.com")

	// Per socket.
	a := s.connect(t, transportWS)
	for _, id := range []string{"1", "2", "3"} {
		a.subscribe(id, watch)
		a.expectStatus(id, "UNVERIFIED")
	}
	a.subscribe("4", watch)
	a.expectLimited("4")
	a.alive()
	a.stopSub("1")
	s.waitMetric(t, "verifier_subscriptions_open", 2)
	a.subscribe("5", watch)
	a.expectStatus("5", "UNVERIFIED")

	// In total: a's 3 and b's 2 make 5.
	b := s.connect(t, legacyWS)
	b.subscribe("1", watch)
	b.expectStatus("1", "UNVERIFIED")
	b.subscribe("2", watch)
	b.expectStatus("2", "UNVERIFIED")
	c := s.connect(t, transportWS)
	c.subscribe("1", watch)
	c.expectLimited("1")
	c.alive()
	s.waitMetric(t, "verifier_subscriptions_open", 5)

	// Per client address: a, b and c are 3.
	_, resp, err := s.dial(t, transportWS, nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "10", resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), `"code":"RATE_LIMITED"`)

	// Everyone else carries on: a's subscriptions see VERIFIED.
	r := s.gql(t, verifyQ, map[string]any{"t": tokenFrom(t, s.sink.Next(t, 30*time.Second))})
	require.Empty(t, r.Errors)
	got := map[string]bool{}
	for len(got) < 3 {
		m, err := a.read()
		require.NoError(t, err)
		if m.Type == "next" {
			require.Contains(t, string(m.Payload), `"status":"VERIFIED"`)
			got[m.ID] = true
		}
	}
	require.Equal(t, map[string]bool{"2": true, "3": true, "5": true}, got)

	// A closed socket frees its place.
	c.c.Close()
	require.Eventually(t, func() bool {
		d, resp, err := s.dial(t, transportWS, nil)
		if err != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return false
		}
		resp.Body.Close()
		d.Close()
		return true
	}, 30*time.Second, 20*time.Millisecond)
}

// TestRestartNeverCompletes shuts the service down again and again with
// subscriptions open on both protocols: every client gets close code 1012
// ("service restart", which graphql-ws retries) and none ever gets
// "complete" for a watch that is still UNVERIFIED.
func TestRestartNeverCompletes(t *testing.T) {
	t.Parallel()
	const (
		restarts = 12
		sockets  = 8
	)
	database := filepath.Join(t.TempDir(), "verifier.db")
	sink := mailtest.Start(t)
	first := startInstance(t, instanceOptions{database: database, sink: sink})
	watch := first.register(t, "restart@example.com")
	first.stop()

	for i := range restarts {
		s := startInstance(t, instanceOptions{database: database, sink: sink})
		clients := make([]*wsClient, sockets)
		for j := range clients {
			proto := transportWS
			if j%2 == 1 {
				proto = legacyWS
			}
			clients[j] = s.connect(t, proto)
			clients[j].subscribe("1", watch)
			clients[j].expectStatus("1", "UNVERIFIED")
		}
		go s.stop()
		var wg sync.WaitGroup
		for j, w := range clients {
			wg.Go(func() {
				for {
					m, err := w.read()
					if err == nil {
						// Only keep-alives may come before the close.
						assert(t, m.Type != "complete" && m.Type != "next" && m.Type != "data",
							"restart %d, socket %d (%s): got %q %s before the close", i, j, w.proto, m.Type, m.Payload)
						continue
					}
					var ce *websocket.CloseError
					assert(t, errors.As(err, &ce) && ce.Code == websocket.CloseServiceRestart,
						"restart %d, socket %d (%s): the connection ended with %v, not 1012", i, j, w.proto, err)
					return
				}
			})
		}
		wg.Wait()
		<-s.stopped
		if t.Failed() {
			return
		}
	}
}

// assert fails the test from any goroutine.
func assert(t *testing.T, ok bool, format string, args ...any) {
	if !ok {
		t.Errorf(format, args...)
	}
}

// introspectionQuery is GraphiQL's.
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description
  type { ...TypeRef }
  defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`
