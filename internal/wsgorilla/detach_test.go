package wsgorilla

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// A websocket outlives net/http's handler under Detach, with a live
// context; a refused upgrade and plain requests are answered as usual.
func TestDetach(t *testing.T) {
	t.Parallel()
	impl := Implementation{Upgrader: websocket.Upgrader{ReadBufferSize: ReadBufferSize, WriteBufferPool: NewWriteBufferPool()}}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		if r.URL.Path == "/plain" {
			_, _ = w.Write([]byte("plain"))
			return
		}
		c, err := impl.Accept(w, r, transport.WebsocketAcceptOptions{})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.NextReader(); err != nil {
				return
			}
			// Answers whether the request's context still lives.
			if err := c.WriteJSON(r.Context().Err() == nil); err != nil {
				return
			}
		}
	})
	returned := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Detach(next).ServeHTTP(w, r)
		returned <- r.URL.Path
	}))
	t.Cleanup(srv.Close)
	wait := func() string {
		t.Helper()
		select {
		case p := <-returned:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("net/http's handler did not return")
			return ""
		}
	}
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	c, resp, err := websocket.DefaultDialer.Dial(url+"/ws", nil)
	require.NoError(t, err)
	resp.Body.Close()
	defer c.Close()
	require.Equal(t, "/ws", wait(), "returns once hijacked")
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("?")))
	var alive bool
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	require.NoError(t, c.ReadJSON(&alive))
	require.True(t, alive, "the websocket's context outlives net/http's handler")

	_, resp, err = websocket.DefaultDialer.Dial(url+"/refuse", nil)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp.Body.Close()
	require.Equal(t, "/refuse", wait())

	resp, err = http.Get(srv.URL + "/plain")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "/plain", wait())
}
