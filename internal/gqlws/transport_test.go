package gqlws

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// The schema the transport is tested on, run by gqlgen's real executor:
// events streams what a test feeds, boom panics, socket answers the value
// OnInit put in the socket's context, ready streams what a test sends on
// a stream that notifies (Ready).
var testSchema = gqlparser.MustLoadSchema(&ast.Source{Input: `
	type Query { name: String! }
	type Subscription { events: String! boom: String! socket: String! ready: String! }
`})

type socketValue struct{}

// testBundle is a server with the transport and what a test drives it by.
type testBundle struct {
	url   string
	conns *Conns
	// feed sends the next event to one waiting "events" subscription.
	feed chan string
	// ended receives once for every socket that ended (KeepWhileOpen).
	ended chan struct{}
	// streams receives the stream of each "ready" subscription.
	streams chan *testStream
}

// testStream is a "ready" subscription's stream: it notifies before each
// value and before it closes, as the hub does.
type testStream struct {
	ready *Ready
	ch    chan string
	// ended is closed when the operation's context ends.
	ended <-chan struct{}
}

func (st *testStream) send(v string) {
	st.ready.Notify()
	st.ch <- v
}

func (st *testStream) close() {
	st.ready.Notify()
	close(st.ch)
}

func setup(t *testing.T, tr Transport) *testBundle {
	t.Helper()
	b := &testBundle{conns: NewConns(), feed: make(chan string), ended: make(chan struct{}, 256), streams: make(chan *testStream, 256)}
	tr.Conns = b.conns
	if tr.OnInit == nil {
		tr.OnInit = func(ctx context.Context) context.Context { return context.WithValue(ctx, socketValue{}, "hello") }
	}
	srv := handler.New(&graphql.ExecutableSchemaMock{
		SchemaFunc: func() *ast.Schema { return testSchema },
		ExecFunc:   b.exec,
	})
	srv.AddTransport(tr)
	// A code of its own for what has none, to show errors go through
	// the server's presenter.
	srv.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		e := graphql.DefaultErrorPresenter(ctx, err)
		if e.Extensions["code"] == nil {
			return &gqlerror.Error{Message: "presented", Extensions: map[string]any{"code": "PRESENTED"}}
		}
		return e
	})
	srv.SetRecoverFunc(func(context.Context, any) error { return errors.New("recovered") })
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](10)})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, _ := KeepWhileOpen(r.Context(), func() { b.ended <- struct{}{} })
		srv.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // drop whatever a test left open, at once
		b.conns.CloseAll(ctx, websocket.CloseGoingAway, "")
		hs.Close()
	})
	b.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	return b
}

func (b *testBundle) exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx).Operation
	switch op.SelectionSet[0].(*ast.Field).Name {
	case "boom":
		return func(context.Context) *graphql.Response { panic("boom") }
	case "socket":
		v, _ := ctx.Value(socketValue{}).(string)
		data, _ := json.Marshal(map[string]string{"socket": v})
		return graphql.OneShot(&graphql.Response{Data: data})
	case "ready":
		st := &testStream{ready: ReadyFrom(ctx), ch: make(chan string, 16), ended: ctx.Done()}
		st.send("first") // as the hub's first snapshot, before Arm
		st.ready.Arm()
		b.streams <- st
		return func(ctx context.Context) *graphql.Response {
			select {
			case <-ctx.Done():
				return nil
			case v, ok := <-st.ch:
				if !ok {
					return nil
				}
				data, _ := json.Marshal(map[string]string{"ready": v})
				return &graphql.Response{Data: data}
			}
		}
	}
	return func(ctx context.Context) *graphql.Response {
		select {
		case <-ctx.Done():
			return nil
		case v := <-b.feed:
			data, _ := json.Marshal(map[string]string{"events": v})
			return &graphql.Response{Data: data}
		}
	}
}

// dial opens a websocket offering protos (none when empty), without the
// protocol's handshake.
func (b *testBundle) dial(t *testing.T, protos ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(b.url, nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return c
}

// closeError reads until the connection ends and returns how.
func closeError(c *websocket.Conn) error {
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return err
	}
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
}

func requireClose(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, code, ce.Code)
	require.Equal(t, reason, ce.Text)
}

// Only websocket handshakes are the transport's: an upgrade to another
// protocol (curl --http2 asks for h2c on every plain-HTTP request) is a
// request for the other transports, which may ignore Upgrade.
func TestSupports(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, method, connection, upgrade string
		taken                             bool
	}{
		{"a websocket handshake", http.MethodGet, "Upgrade", "websocket", true},
		{"a browser's", http.MethodGet, "keep-alive, Upgrade", "websocket", true},
		{"a websocket handshake over POST, refused by Do", http.MethodPost, "Upgrade", "websocket", true},
		{"curl --http2 POST", http.MethodPost, "Upgrade, HTTP2-Settings", "h2c", false},
		{"curl --http2 GET", http.MethodGet, "Upgrade, HTTP2-Settings", "h2c", false},
		{"Upgrade without Connection: upgrade", http.MethodGet, "keep-alive", "websocket", false},
		{"no upgrade", http.MethodGet, "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tt.method, "/query", nil)
			if tt.connection != "" {
				r.Header.Set("Connection", tt.connection)
			}
			if tt.upgrade != "" {
				r.Header.Set("Upgrade", tt.upgrade)
			}
			require.Equal(t, tt.taken, Transport{}.Supports(r))
		})
	}
}

// A handshake gorilla refuses answers like every other refusal of the
// edge: a GraphQL error with the contract's code, and for one that is
// not a GET, 405 with "Allow: GET".
func TestRefusedHandshakes(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	url := "http" + strings.TrimPrefix(b.url, "ws")
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	for _, tt := range []struct {
		name, method, version, key, protocols string
		status                                int
		allow, says                           string
	}{
		{"over POST", http.MethodPost, "13", key, "", http.StatusMethodNotAllowed, "GET", "must be a GET"},
		{"an old version", http.MethodGet, "8", key, "", http.StatusBadRequest, "", "Sec-Websocket-Version"},
		{"no key", http.MethodGet, "13", "", "", http.StatusBadRequest, "", "Sec-WebSocket-Key"},
		// Served without one, the client would fail the handshake on
		// its side with no reason given.
		{"only subprotocols not served", http.MethodGet, "13", key, "graphql-sse, x-Secret-Sent", http.StatusBadRequest, "", "offer graphql-transport-ws, or the legacy graphql-ws"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, url, strings.NewReader(`{"query":"{name}"}`))
			require.NoError(t, err)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", tt.version)
			if tt.key != "" {
				req.Header.Set("Sec-WebSocket-Key", tt.key)
			}
			if tt.protocols != "" {
				req.Header.Set("Sec-WebSocket-Protocol", tt.protocols)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tt.status, resp.StatusCode)
			require.Equal(t, tt.allow, resp.Header.Get("Allow"))
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var body struct{ Errors gqlerror.List }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.Len(t, body.Errors, 1)
			require.Equal(t, "BAD_USER_INPUT", body.Errors[0].Extensions["code"])
			require.Contains(t, body.Errors[0].Message, tt.says)
			require.NotContains(t, body.Errors[0].Message, "Secret", "nothing the client sent is quoted")
		})
	}
}

// The handshake and one subscription's life on each protocol, and on no
// subprotocol at all (graphql-ws, as gqlgen does).
func TestHandshakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, offer, proto, next, stop string
		ka                             bool
	}{
		{"graphql-transport-ws", graphtest.TransportWS, graphtest.TransportWS, "next", "complete", false},
		{"graphql-ws", graphtest.LegacyWS, graphtest.LegacyWS, "data", "stop", true},
		{"no subprotocol", "", "", "data", "stop", true},
		{"an unknown one, then graphql-transport-ws", "x-unknown," + graphtest.TransportWS, graphtest.TransportWS, "next", "complete", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Transport{})
			var c *websocket.Conn
			if tt.offer == "" {
				c = b.dial(t)
			} else {
				c = b.dial(t, strings.Split(tt.offer, ",")...)
			}
			require.Equal(t, tt.proto, c.Subprotocol())
			w := &graphtest.Client{T: t, WS: c, Proto: tt.proto}
			w.Send(map[string]any{"type": "connection_init", "payload": map[string]any{"a": 1}})
			// Read skips keep-alives: read raw to see the legacy one.
			var m graphtest.Message
			require.NoError(t, c.ReadJSON(&m))
			require.Equal(t, "connection_ack", m.Type)
			if tt.ka {
				require.NoError(t, c.ReadJSON(&m))
				require.Equal(t, "ka", m.Type)
			}
			start := "subscribe"
			if tt.next == "data" {
				start = "start"
			}
			w.Send(map[string]any{"id": "s", "type": start, "payload": map[string]any{"query": "subscription{socket}"}})
			m = w.Next()
			require.Equal(t, tt.next, m.Type)
			require.Equal(t, "s", m.ID)
			require.JSONEq(t, `{"data":{"socket":"hello"}}`, string(m.Payload), "OnInit's context reaches the operation")
			require.Equal(t, "complete", w.Next().Type, "a stream that ends completes")

			w.Send(map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": "subscription{events}"}})
			b.feed <- "one"
			m = w.Next()
			require.Equal(t, tt.next, m.Type)
			require.Equal(t, "1", m.ID)
			require.JSONEq(t, `{"data":{"events":"one"}}`, string(m.Payload))
			w.Send(map[string]any{"id": "1", "type": tt.stop})
			m = w.Next()
			require.Equal(t, "complete", m.Type, "a stopped subscription confirms")
			require.Equal(t, "1", m.ID)
			w.Send(map[string]any{"id": "unknown", "type": tt.stop})
			if tt.proto == graphtest.TransportWS {
				w.Ping()
			}
		})
	}
}

// A client that never says hello is dropped with 4408.
func TestInitTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{InitTimeout: time.Millisecond})
	for _, proto := range []string{graphtest.TransportWS, graphtest.LegacyWS} {
		c := b.dial(t, proto)
		requireClose(t, closeError(c), closeInitTimeout, "Connection initialisation timeout")
		testkit.Receive(t, b.ended, "the socket ended")
	}
}

// graphql-transport-ws pings are answered with their payload, before and
// after connection_init; pongs are ignored.
func TestPingPong(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	c := b.dial(t, graphtest.TransportWS)
	w := &graphtest.Client{T: t, WS: c, Proto: graphtest.TransportWS}
	ping := func() {
		t.Helper()
		w.Send(map[string]any{"type": "pong"})
		w.Send(map[string]any{"type": "ping", "payload": map[string]any{"n": 7}})
		var m graphtest.Message
		require.NoError(t, c.ReadJSON(&m))
		require.Equal(t, "pong", m.Type)
		require.JSONEq(t, `{"n":7}`, string(m.Payload))
	}
	ping()
	w.Send(map[string]any{"type": "connection_init"})
	var m graphtest.Message
	require.NoError(t, c.ReadJSON(&m))
	require.Equal(t, "connection_ack", m.Type)
	ping()
}

// Each kind of failing operation: its errors, as the server's presenter
// made them, in an error message (parse and validation) or a result
// (anything else); a result is followed by complete, an error message by
// nothing (graphql-transport-ws: "This message terminates the operation
// and no further messages will be sent"); the socket carries on.
func TestOperationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload any
		typ     string
		code    string
	}{
		{"parse", map[string]any{"query": "subscription {"}, "error", "GRAPHQL_PARSE_FAILED"},
		{"validation", map[string]any{"query": "subscription{nothing}"}, "error", "GRAPHQL_VALIDATION_FAILED"},
		{"not a request", map[string]any{"query": 5}, "error", "BAD_USER_INPUT"},
		{"variables not an object", map[string]any{"query": "subscription{events}", "variables": []int{1}}, "error", "BAD_USER_INPUT"},
		{"persisted query not found", map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}}, "next", "PERSISTED_QUERY_NOT_FOUND"},
		{"panic", map[string]any{"query": "subscription{boom}"}, "error", "PRESENTED"},
	}
	b := setup(t, Transport{})
	w := graphtest.Connect(t, b.url, graphtest.TransportWS)
	for _, tt := range tests {
		w.Send(map[string]any{"id": tt.name, "type": "subscribe", "payload": tt.payload})
		m := w.Next()
		require.Equal(t, tt.typ, m.Type, "%s: %s", tt.name, m.Payload)
		require.Equal(t, tt.name, m.ID)
		var errs []gqlerror.Error
		if tt.typ == "next" {
			var resp struct{ Errors []gqlerror.Error }
			require.NoError(t, json.Unmarshal(m.Payload, &resp))
			errs = resp.Errors
		} else {
			require.NoError(t, json.Unmarshal(m.Payload, &errs))
		}
		require.Len(t, errs, 1, "%s: %s", tt.name, m.Payload)
		require.Equal(t, tt.code, errs[0].Extensions["code"], "%s: %s", tt.name, m.Payload)
		if tt.code == "BAD_USER_INPUT" {
			// Says what is wrong, through the server's presenter.
			require.Equal(t, "the subscribe message's payload is not a GraphQL request", errs[0].Message, tt.name)
		}
		if tt.typ == "error" {
			w.Ping() // a pong, and no complete before it
			continue
		}
		m = w.Next()
		require.Equal(t, "complete", m.Type, tt.name)
		require.Equal(t, tt.name, m.ID)
	}
	w.Ping()
}

// On legacy graphql-ws an error message is still followed by complete, as
// gqlgen's transport did, for the clients written against it.
func TestLegacyOperationErrorCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	w := graphtest.Connect(t, b.url, graphtest.LegacyWS)
	w.Send(map[string]any{"id": "1", "type": "start", "payload": map[string]any{"query": "subscription {"}})
	m := w.Next()
	require.Equal(t, "error", m.Type, "%s", m.Payload)
	m = w.Next()
	require.Equal(t, "complete", m.Type, "%s", m.Payload)
	require.Equal(t, "1", m.ID)
}

// Protocol errors close the socket with graphql-transport-ws's codes (on
// graphql-ws after a connection_error); connection_terminate closes it
// with 1000. Each ends the socket.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	sub := map[string]any{"query": "subscription{events}"}
	tests := []struct {
		name   string
		proto  string
		init   bool
		frames []string
		code   int
		reason string
	}{
		{"unknown type", graphtest.TransportWS, true, []string{`{"type":"start","id":"1"}`}, closeInvalidMessage, reasonInvalidMessage},
		{"unknown type, legacy", graphtest.LegacyWS, true, []string{`{"type":"subscribe","id":"1"}`}, closeInvalidMessage, reasonInvalidMessage},
		{"no type", graphtest.TransportWS, false, []string{`{}`}, closeInvalidMessage, reasonInvalidMessage},
		{"not JSON", graphtest.LegacyWS, true, []string{`{"type`}, closeInvalidMessage, reasonInvalidMessage},
		{"JSON, then more", graphtest.TransportWS, true, []string{`{"type":"ping"} zq`}, closeInvalidMessage, reasonInvalidMessage},
		{"JSON, then more, legacy", graphtest.LegacyWS, true, []string{`{"type":"stop","id":"1"}}`}, closeInvalidMessage, reasonInvalidMessage},
		{"subscribe without id", graphtest.TransportWS, true, []string{msg("subscribe", "", sub)}, closeInvalidMessage, reasonInvalidMessage},
		{"start without id, legacy", graphtest.LegacyWS, true, []string{msg("start", "", sub)}, closeInvalidMessage, reasonInvalidMessage},
		{"subscribe before init", graphtest.TransportWS, false, []string{msg("subscribe", "1", sub)}, closeUnauthorized, "Unauthorized"},
		{"start before init, legacy", graphtest.LegacyWS, false, []string{msg("start", "1", sub)}, closeUnauthorized, "Unauthorized"},
		{"second init", graphtest.TransportWS, true, []string{`{"type":"connection_init"}`}, closeTooManyInits, "Too many initialisation requests"},
		{"duplicate id", graphtest.TransportWS, true, []string{msg("subscribe", "1", sub), msg("subscribe", "1", sub)}, closeDuplicateID, "Subscriber for this id already exists"},
		{"terminate, legacy", graphtest.LegacyWS, true, []string{`{"type":"connection_terminate"}`}, websocket.CloseNormalClosure, "terminated"},
		{"not UTF-8", graphtest.TransportWS, true, []string{"{\"type\":\"ping\",\"payload\":{\"a\":\"\xff\"}}"}, websocket.CloseInvalidFramePayloadData, "Message is not UTF-8 text"},
		{"not UTF-8, legacy", graphtest.LegacyWS, true, []string{"{\"type\":\"connection_terminate\",\"payload\":\"\xfe\"}"}, websocket.CloseInvalidFramePayloadData, "Message is not UTF-8 text"},
		{"over the read limit", graphtest.TransportWS, true, []string{`{"type":"ping","payload":"` + strings.Repeat("x", 1024) + `"}`}, websocket.CloseMessageTooBig, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Transport{ReadLimit: 1024})
			c := b.dial(t, tt.proto)
			if tt.init {
				require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)))
			}
			for _, f := range tt.frames {
				require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(f)))
			}
			var last graphtest.Message
			var err error
			require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
			for {
				var m graphtest.Message
				if err = c.ReadJSON(&m); err != nil {
					break
				}
				require.NotEqual(t, "complete", m.Type, "nothing completes before the close")
				last = m
			}
			requireClose(t, err, tt.code, tt.reason)
			if tt.proto == graphtest.LegacyWS && tt.code >= 4000 {
				require.Equal(t, "connection_error", last.Type)
			}
			testkit.Receive(t, b.ended, "the socket ended")
		})
	}
}

func msg(typ, id string, payload any) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "id": id, "payload": payload})
	return string(b)
}

// graphql-ws lets a client reuse an id: the new operation replaces the
// old, which ends without a word.
func TestLegacyReusedID(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	w := graphtest.Connect(t, b.url, graphtest.LegacyWS)
	w.Subscribe("1", "subscription{events}", nil)
	w.Subscribe("1", "subscription{socket}", nil)
	m := w.Next()
	require.Equal(t, "data", m.Type)
	require.JSONEq(t, `{"data":{"socket":"hello"}}`, string(m.Payload))
	m = w.Next()
	require.Equal(t, "complete", m.Type)
	require.Equal(t, "1", m.ID)
	// Nothing of the replaced one comes before the next operation's.
	w.Subscribe("2", "subscription{socket}", nil)
	m = w.Next()
	require.Equal(t, "data", m.Type)
	require.Equal(t, "2", m.ID, "%s %s", m.Type, m.Payload)
}

// Shutdown: every socket gets the close code (and no complete for its
// subscriptions), waits for the clients' answer, then ends; late arrivals
// are told the same at once.
func TestCloseAll(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	clients := []*graphtest.Client{
		graphtest.Connect(t, b.url, graphtest.TransportWS),
		graphtest.Connect(t, b.url, graphtest.LegacyWS),
		graphtest.Connect(t, b.url, graphtest.TransportWS),
	}
	for _, w := range clients {
		w.Subscribe("1", "subscription{events}", nil)
	}
	clients[0].Ping() // the subscription is running

	closed := make(chan error, len(clients))
	for _, w := range clients {
		go func() {
			for {
				m, err := w.Read()
				if err != nil {
					closed <- err
					return
				}
				if m.Type == "complete" {
					closed <- errors.New("complete before the close")
					return
				}
			}
		}()
	}
	b.conns.CloseAll(context.Background(), websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, b.conns.Len(), "every connection closed when CloseAll returns")
	for range clients {
		requireClose(t, testkit.Receive(t, closed, "a client's end"), websocket.CloseServiceRestart, "service restart")
		testkit.Receive(t, b.ended, "a socket's end")
	}

	late := b.dial(t, graphtest.TransportWS)
	requireClose(t, closeError(late), websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, b.conns.Len())

	// A second call only waits.
	b.conns.CloseAll(context.Background(), websocket.CloseGoingAway, "again")
}

func TestCloseAllDropsSilentClients(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	b.dial(t, graphtest.TransportWS) // never reads, so never answers the close frame
	testkit.Eventually(t, func() bool { return b.conns.Len() == 1 }, "the connection registered")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time to wait: dropped at once
	b.conns.CloseAll(ctx, websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, b.conns.Len())
	testkit.Receive(t, b.ended, "the socket ended")
}

// A client that answers pings (every client does, while it reads) stays
// connected past the pong deadline; one that stops answering is dropped.
func TestPings(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond
	b := setup(t, Transport{PingInterval: interval})

	pings := make(chan struct{}, 16)
	alive := b.dial(t, graphtest.TransportWS)
	alive.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	go func() { _ = closeError(alive) }()
	// Three pings span more than the two intervals a pong buys.
	for i := range 3 {
		select {
		case <-pings:
		case <-b.ended:
			t.Fatalf("dropped after %d pings", i)
		case <-time.After(20 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	select {
	case <-b.ended:
		t.Fatal("a client that answers was dropped")
	default:
	}

	// graphql-ws clients see no websocket pings: each comes with a "ka".
	legacy := b.dial(t, graphtest.LegacyWS)
	require.NoError(t, legacy.WriteJSON(map[string]any{"type": "connection_init"}))
	require.NoError(t, legacy.SetReadDeadline(time.Now().Add(20*time.Second)))
	var m graphtest.Message
	require.NoError(t, legacy.ReadJSON(&m))
	require.Equal(t, "connection_ack", m.Type)
	for range 3 { // the first after the ack, then with the pings
		require.NoError(t, legacy.ReadJSON(&m))
		require.Equal(t, "ka", m.Type)
	}
	require.NoError(t, legacy.Close())
	testkit.Receive(t, b.ended, "the legacy socket ended")

	silent := b.dial(t, graphtest.TransportWS)
	silent.SetPingHandler(func(string) error { return nil })
	requireClose(t, closeError(silent), websocket.CloseNormalClosure, "terminated")
	testkit.Receive(t, b.ended, "the silent socket ended")
}

// A refused upgrade keeps nothing: the middleware releases what it held.
func TestKeepWhileOpenRefused(t *testing.T) {
	t.Parallel()
	srv := handler.New(&graphql.ExecutableSchemaMock{SchemaFunc: func() *ast.Schema { return testSchema }})
	srv.AddTransport(Transport{})
	released := false
	req := httptest.NewRequest(http.MethodGet, "/query", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket") // but no more of a handshake
	ctx, kept := KeepWhileOpen(req.Context(), func() { released = true })
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req.WithContext(ctx))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), `"code":"BAD_USER_INPUT"`)
	require.False(t, kept())
	require.False(t, released)
}

// An idle subscription holds two goroutines, its socket's read loop and
// its own, unless its stream notifies (Ready): then only the read loop.
// Not parallel: it counts the process's goroutines.
func TestIdleGoroutines(t *testing.T) {
	for _, tt := range []struct {
		field string
		per   int
	}{{"events", 2}, {"ready", 1}} {
		t.Run(tt.field, func(t *testing.T) {
			const n = 50
			b := setup(t, Transport{PingInterval: PingInterval, InitTimeout: time.Minute})
			before := runtime.NumGoroutine()
			clients := make([]*graphtest.Client, n)
			for i := range clients {
				clients[i] = graphtest.Connect(t, b.url, graphtest.TransportWS)
				clients[i].Subscribe("1", "subscription{"+tt.field+"}", nil)
				if tt.field == "ready" {
					require.Equal(t, "next", clients[i].Next().Type, "its first value")
				}
				clients[i].Ping() // handled after the subscribe: its goroutine runs
			}
			// net/http's connection goroutines end after the upgrade on
			// their own schedule: polled on this goroutine, which adds
			// none. An earlier test's server may still be ending one of
			// its own (its accept loop) meanwhile: hence the slack below.
			const slack = 3
			wait := func(want int) {
				t.Helper()
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				timeout := time.After(testkit.Timeout)
				for runtime.NumGoroutine()-before > want {
					select {
					case <-tick.C:
					case <-timeout:
						t.Fatalf("%d goroutines more than before, want %d", runtime.NumGoroutine()-before, want)
					}
				}
				require.GreaterOrEqual(t, runtime.NumGoroutine()-before, want-slack)
			}
			wait(tt.per * n)
			for _, w := range clients {
				w.WS.Close()
			}
			wait(0)
		})
	}
}

// A subscription whose stream notifies sends every value in order, and
// ends whichever way its end comes while it waits without a goroutine:
// the stream closes, the client stops it, the socket closes.
func TestReadyStream(t *testing.T) {
	t.Parallel()
	b := setup(t, Transport{})
	w := graphtest.Connect(t, b.url, graphtest.TransportWS)
	next := func(id, want string) {
		t.Helper()
		m := w.Next()
		require.Equal(t, "next", m.Type, "%s", m.Payload)
		require.Equal(t, id, m.ID)
		require.JSONEq(t, `{"data":{"ready":"`+want+`"}}`, string(m.Payload))
	}

	w.Subscribe("closes", "subscription{ready}", nil)
	st := testkit.Receive(t, b.streams, "the stream")
	next("closes", "first")
	for _, v := range []string{"a", "b", "c"} {
		st.send(v)
	}
	next("closes", "a")
	next("closes", "b")
	next("closes", "c")
	st.close()
	m := w.Next()
	require.Equal(t, "complete", m.Type)
	require.Equal(t, "closes", m.ID)

	w.Subscribe("stopped", "subscription{ready}", nil)
	st = testkit.Receive(t, b.streams, "the stream")
	next("stopped", "first")
	w.Send(map[string]any{"id": "stopped", "type": "complete"})
	testkit.Receive(t, st.ended, "the operation's end")
	m = w.Next()
	require.Equal(t, "complete", m.Type, "the stopped operation finished")
	require.Equal(t, "stopped", m.ID)
	// The id is free again.
	w.Subscribe("stopped", "subscription{ready}", nil)
	testkit.Receive(t, b.streams, "the stream")
	next("stopped", "first")

	w.WS.Close()
	testkit.Receive(t, b.ended, "the socket's end, with a parked operation")
}

// What goes wrong on a socket is logged without what the client sent.
func TestNothingSentIsLogged(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2-Secret"
	logs := &testkit.LogBuffer{}
	b := setup(t, Transport{ReadLimit: 64, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	frames := []string{
		`{"type":"` + secret + `"}`,
		`{"id":"` + secret + `","type`,
		`{"type":"ping","payload":"` + strings.Repeat(secret, 10) + `"}`,
	}
	for _, f := range frames {
		c := b.dial(t, graphtest.TransportWS)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte(f)))
		_ = closeError(c)
		testkit.Receive(t, b.ended, "the socket ended")
	}
	c := b.dial(t, graphtest.LegacyWS)
	require.NoError(t, c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, secret)))
	_ = closeError(c)
	testkit.Receive(t, b.ended, "the socket ended")
	require.Contains(t, logs.String(), "websocket read failed", "the message over the limit")
	require.NotContains(t, logs.String(), secret)
}
