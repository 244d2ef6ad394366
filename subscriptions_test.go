package main

// Status subscriptions over websockets: caps, origin checks, restarts
// that never complete a watch, and no goroutine left behind.

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
)

// TestSubscriptionCaps: beyond a cap that subscription or socket is
// refused with RATE_LIMITED (429 before the upgrade for a socket), and the
// socket and every other client carry on.
func TestSubscriptionCaps(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		opts.env = map[string]string{
			"WS_MAX_SUBSCRIPTIONS": "3",
			"WS_MAX_SOCKETS":       "3",
			"MAX_SUBSCRIPTIONS":    "5",
		}
		s := startService(t, opts)
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
		s.waitSubscriptions(t, 2)
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
		s.waitSubscriptions(t, 5)

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
			m, err := a.Read()
			require.NoError(t, err)
			if m.Type == "next" {
				require.Contains(t, string(m.Payload), `"status":"VERIFIED"`)
				got[m.ID] = true
			}
		}
		require.Equal(t, map[string]bool{"2": true, "3": true, "5": true}, got)

		// A closed socket frees its place.
		c.WS.Close()
		// The server notices the close on its own goroutine: a condition.
		testkit.Eventually(t, func() bool {
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
		}, "a place free after a socket closed")
	})
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
					m, err := w.Read()
					if err == nil {
						// Only keep-alives may come before the close.
						assert(t, m.Type != "complete" && m.Type != "next" && m.Type != "data",
							"restart %d, socket %d (%s): got %q %s before the close", i, j, w.Proto, m.Type, m.Payload)
						continue
					}
					var ce *websocket.CloseError
					assert(t, errors.As(err, &ce) && ce.Code == websocket.CloseServiceRestart,
						"restart %d, socket %d (%s): the connection ended with %v, not 1012", i, j, w.Proto, err)
					return
				}
			})
		}
		testkit.Wait(t, &wg, "end of every socket with 1012 at restart %d", i)
		testkit.Receive(t, s.stopped, "end of the service's stop at restart %d", i)
		if t.Failed() {
			return
		}
	}
}

// TestSubscriptionsLeaveNoGoroutines opens 200 subscriptions, drops them
// all, and checks the process is back to where it started. Not parallel:
// it counts the process's goroutines.
func TestSubscriptionsLeaveNoGoroutines(t *testing.T) {
	s := startService(t, svcOptions{})
	watch := s.register(t, "many@example.com")
	s.sink.Next(t, 30*time.Second)
	before := runtime.NumGoroutine()

	subs := make([]*sub, 200)
	for i := range subs {
		proto := transportWS
		if i%2 == 1 {
			proto = legacyWS
		}
		subs[i] = s.subscribe(t, proto, watch)
		subs[i].expect("UNVERIFIED")
	}
	require.Equal(t, 200.0, s.metric(t, "verifier_subscriptions_open"))
	// Each socket holds its read loop (a waiting subscription holds
	// nothing more): the count rose, so its return below means something.
	require.Greater(t, runtime.NumGoroutine(), before+150)
	for _, w := range subs {
		w.WS.Close()
	}
	s.waitSubscriptions(t, 0)
	// Goroutines end on their own schedule: a condition, not a signal.
	testkit.Eventually(t, func() bool { return runtime.NumGoroutine() <= before },
		"goroutines back to %d before (now %d)", before, runtime.NumGoroutine())
}

// TestWebsocketOrigin: browsers do not apply CORS to websockets, so the
// server checks Origin itself.
func TestWebsocketOrigin(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"ALLOWED_ORIGINS": "https://app.example.com"}})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"https://app.example.com", true},
		{publicURL, true},
		{"http://" + "127.0.0.1", false},
		{"https://evil.example.com", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		c, resp, err := s.dial(t, transportWS, h)
		if tt.ok {
			require.NoError(t, err, tt.origin)
			c.Close()
		} else {
			require.Error(t, err, tt.origin)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, tt.origin)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	// Same origin as the address the browser used.
	h := http.Header{"Origin": {"http://" + s.addr}}
	c, resp, err := s.dial(t, transportWS, h)
	require.NoError(t, err)
	resp.Body.Close()
	c.Close()
}

// TestOwnOriginAsBrowsersSendIt: the service's own origin is PUBLIC_URL's
// as a browser sends it in Origin (scheme and host in lower case, no
// default port), whatever the spelling of PUBLIC_URL: behind a proxy that
// sets its own Host, PUBLIC_URL is all that lets the service's own pages
// open websockets and event streams, and make credentialed requests.
func TestOwnOriginAsBrowsersSendIt(t *testing.T) {
	t.Parallel()
	for _, spelling := range []string{"http://Verifier.Test", "http://verifier.test:80"} {
		t.Run(spelling, func(t *testing.T) {
			t.Parallel()
			s := startService(t, svcOptions{env: map[string]string{"PUBLIC_URL": spelling}})
			h := http.Header{"Origin": {publicURL}}
			c, resp, err := s.dial(t, transportWS, h)
			require.NoError(t, err, "websocket from %s", publicURL)
			resp.Body.Close()
			c.Close()

			_, status := s.subscribeSSE(t, watchQ, map[string]any{"w": "x"}, publicURL)
			require.Equal(t, http.StatusOK, status, "event stream from %s", publicURL)

			req, err := http.NewRequest(http.MethodPost, s.url("/query"), strings.NewReader(`{"query":"{__typename}"}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", publicURL)
			resp, err = s.http.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, publicURL, resp.Header.Get("Access-Control-Allow-Origin"), "CORS for %s", publicURL)
		})
	}
}
