package wsgorilla

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// serve accepts websockets as gqlgen does: read until the connection
// ends, then write its own close frame and close.
func serve(t *testing.T, impl Implementation) (url string, ended <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := impl.Accept(w, r, transport.WebsocketAcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			return
		}
		for {
			if _, _, err := c.NextReader(); err != nil {
				_ = c.WriteClose(websocket.CloseNormalClosure, "terminated")
				_ = c.Close()
				errs <- err
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), errs
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
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

func TestCloseAll(t *testing.T) {
	t.Parallel()
	conns := NewConns()
	url, ended := serve(t, Implementation{Conns: conns})
	clients := []*websocket.Conn{dial(t, url), dial(t, url), dial(t, url)}
	testkit.Eventually(t, func() bool { return conns.Len() == 3 }, "three connections registered")

	closed := make(chan error, len(clients))
	for _, c := range clients {
		go func() { closed <- closeError(c) }()
	}
	conns.CloseAll(context.Background(), websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, conns.Len(), "every connection closed when CloseAll returns")
	for range clients {
		// The server's own close frame after the shutdown's is not sent.
		requireClose(t, <-closed, websocket.CloseServiceRestart, "service restart")
		require.ErrorIs(t, <-ended, transport.ErrWebsocketClosed, "the client's echo of 1012 is a normal end")
	}

	// Late arrivals are told the same at once.
	requireClose(t, closeError(dial(t, url)), websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, conns.Len())

	// A second call only waits.
	conns.CloseAll(context.Background(), websocket.CloseGoingAway, "again")
}

func TestCloseAllDropsSilentClients(t *testing.T) {
	t.Parallel()
	conns := NewConns()
	url, ended := serve(t, Implementation{Conns: conns})
	dial(t, url) // never reads, so never answers the close frame
	testkit.Eventually(t, func() bool { return conns.Len() == 1 }, "the connection registered")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time to wait: dropped at once
	conns.CloseAll(ctx, websocket.CloseServiceRestart, "service restart")
	require.Equal(t, 0, conns.Len())
	require.Error(t, <-ended)
}

func TestWithoutConns(t *testing.T) {
	t.Parallel()
	url, ended := serve(t, Implementation{})
	c := dial(t, url)
	require.NoError(t, c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "")))
	require.ErrorIs(t, <-ended, transport.ErrWebsocketClosed)
}

// A client that answers pings (every client does, while it reads) stays
// connected past the pong deadline; one that stops answering is dropped.
func TestPings(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond
	url, ended := serve(t, Implementation{PingInterval: interval})

	pings := make(chan struct{}, 16)
	alive := dial(t, url)
	alive.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	go func() { _ = closeError(alive) }()
	// Three pings span more than the two intervals a pong buys.
	for i := range 3 {
		select {
		case <-pings:
		case err := <-ended:
			t.Fatalf("dropped after %d pings: %v", i, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("ping %d never came", i+1)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("a client that answers was dropped: %v", err)
	default:
	}

	silent := dial(t, url)
	silent.SetPingHandler(func(string) error { return nil })
	go func() { _ = closeError(silent) }()
	select {
	case err := <-ended:
		var ne interface{ Timeout() bool }
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "ended by the pong deadline: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a client that never answers was kept")
	}
}

// gqlgen keeps the request's headers for the socket's life; Accept leaves
// it none to keep.
func TestAcceptDropsHeaders(t *testing.T) {
	t.Parallel()
	headers := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Implementation{}.Accept(w, r, transport.WebsocketAcceptOptions{})
		headers <- r.Header
		if err != nil {
			return
		}
		_ = c.Close()
	}))
	t.Cleanup(srv.Close)
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	require.Nil(t, <-headers)
	_ = c.Close()
}
