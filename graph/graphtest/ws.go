// Package graphtest is the GraphQL client of tests: one implementation of
// the websocket transport's (gqlws) graphql-transport-ws and legacy
// graphql-ws handshakes, so the graph package's tests and the service
// tests speak the protocol the same way, and an in-process POST to a
// handler (the public API's or the admin API's).
package graphtest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// The two subprotocols the websocket transport speaks.
const (
	TransportWS = "graphql-transport-ws"
	LegacyWS    = "graphql-ws"
)

// Deadlines on one websocket operation: generous, since a 2-core machine
// running the race detector can stall a peer for seconds, yet bounded so a
// lost message fails the test instead of hanging it.
const (
	handshakeTimeout = 10 * time.Second
	writeTimeout     = 10 * time.Second
	readTimeout      = 20 * time.Second
)

// Message is one protocol message as the server sends it.
type Message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// Client is one initialised websocket that may carry several subscriptions.
type Client struct {
	T     testing.TB
	WS    *websocket.Conn
	Proto string
}

// Dial opens a websocket to url offering proto, without the protocol's
// handshake, for tests of the upgrade itself.
func Dial(url, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: handshakeTimeout}
	return d.Dial(url, header)
}

// Connect dials url with proto, checks the server chose proto, and completes
// connection_init / connection_ack. The socket closes when the test ends.
func Connect(t testing.TB, url, proto string) *Client {
	t.Helper()
	c, resp, err := Dial(url, proto, nil)
	require.NoError(t, err)
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	require.Equal(t, proto, c.Subprotocol())
	w := &Client{T: t, WS: c, Proto: proto}
	w.Send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	require.Equal(t, "connection_ack", w.Next().Type)
	return w
}

// Send writes v as one JSON message.
func (w *Client) Send(v any) {
	w.T.Helper()
	require.NoError(w.T, w.WS.SetWriteDeadline(time.Now().Add(writeTimeout)))
	require.NoError(w.T, w.WS.WriteJSON(v))
}

// Subscribe starts subscription id running query with vars, in the start
// message of the client's protocol.
func (w *Client) Subscribe(id, query string, vars map[string]any) {
	w.T.Helper()
	start := "subscribe"
	if w.Proto == LegacyWS {
		start = "start"
	}
	w.Send(map[string]any{"id": id, "type": start, "payload": map[string]any{"query": query, "variables": vars}})
}

// Read returns the next message that is not a keep-alive, answering pings,
// or the error that ended the connection.
func (w *Client) Read() (Message, error) {
	for {
		if err := w.WS.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
			return Message{}, err
		}
		var m Message
		if err := w.WS.ReadJSON(&m); err != nil {
			return m, err
		}
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			w.Send(map[string]any{"type": "pong"})
			continue
		}
		return m, nil
	}
}

// Next is Read for a connection that must stay open.
func (w *Client) Next() Message {
	w.T.Helper()
	m, err := w.Read()
	require.NoError(w.T, err)
	return m
}

// Ping sends a graphql-transport-ws ping and requires its pong before any
// other message: proof that the socket answers and nothing was pending.
func (w *Client) Ping() {
	w.T.Helper()
	require.Equal(w.T, TransportWS, w.Proto, "graphql-ws has no client ping")
	w.Send(map[string]any{"type": "ping"})
	for {
		require.NoError(w.T, w.WS.SetReadDeadline(time.Now().Add(readTimeout)))
		var m Message
		require.NoError(w.T, w.WS.ReadJSON(&m))
		switch m.Type {
		case "ka":
			continue
		case "ping":
			w.Send(map[string]any{"type": "pong"})
			continue
		}
		require.Equal(w.T, "pong", m.Type, "payload %s", m.Payload)
		return
	}
}
