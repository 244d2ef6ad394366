package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/mail/mailtest"
)

func TestMain(m *testing.M) {
	testkit.VerifyTestMain(m)
}

// clock is real time plus an offset the test can advance, shared by every
// part of the service, so expiry and cooldowns are tested without waiting.
// Frozen, it stands still but for Advance, for tests that check exact
// remaining times.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.offset)
	}
	return time.Now().Add(c.offset)
}

// Freeze stops the clock at the current instant.
func (c *clock) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = time.Now()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// svc is a running service with its own database and SMTP sink.
type svc struct {
	addr  string
	sink  *mailtest.Sink
	clock *clock
	http  *http.Client
}

type svcOptions struct {
	amqpURL, amqpPrefix string
	// devOutbox leaves SMTP_URL empty.
	devOutbox bool
	// sink, if set, is shared with other services (replicas).
	sink *mailtest.Sink
	env  map[string]string
}

const publicURL = "http://verifier.test"

func startService(t testing.TB, o svcOptions) *svc {
	t.Helper()
	s := &svc{sink: o.sink, clock: &clock{}, http: &http.Client{Timeout: 30 * time.Second}}
	if s.sink == nil {
		s.sink = mailtest.Start(t)
	}
	env := map[string]string{
		"HTTP_ADDR":      "127.0.0.1:0",
		"DATABASE_URL":   "sqlite:" + filepath.Join(t.TempDir(), "verifier.db"),
		"SMTP_URL":       s.sink.URL(),
		"PUBLIC_URL":     publicURL,
		"AMQP_URL":       o.amqpURL,
		"SHUTDOWN_GRACE": "5s",
		// Tests register from one address far faster than a person;
		// TestClientRateLimit turns the limit on.
		"CLIENT_RATE_LIMIT": "0",
		"VERIFY_RATE_LIMIT": "0",
		// and open far more websockets from it (TestSubscriptionCaps
		// tests the cap).
		"WS_MAX_SOCKETS": "100000",
	}
	if o.devOutbox {
		// PUBLIC_URL is not loopback: the dev outbox needs consent.
		env["SMTP_URL"], env["DEV_MAILBOX"] = "", "true"
	}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, log, hooks{
			listening:  func(a string) { listening <- a },
			now:        s.clock.Now,
			amqpPrefix: o.amqpPrefix,
		})
	}()
	select {
	case s.addr = <-listening:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("service did not start within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "graceful shutdown")
		case <-time.After(30 * time.Second):
			t.Error("service did not stop within 30s")
		}
		s.http.CloseIdleConnections()
	})
	return s
}

func (s *svc) url(path string) string { return "http://" + s.addr + path }

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Status int
	Data   map[string]any `json:"data"`
	Errors []gqlError     `json:"errors"`
}

// code is the first error's extensions.code, or "".
func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func (s *svc) post(t testing.TB, body []byte) gqlResponse {
	t.Helper()
	resp, err := s.http.Post(s.url("/query"), "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Less(t, resp.StatusCode, 500, "never a 5xx: %s", raw)
	out := gqlResponse{Status: resp.StatusCode}
	require.NoError(t, json.Unmarshal(raw, &out), "JSON body: %s", raw)
	return out
}

func (s *svc) gql(t testing.TB, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return s.post(t, body)
}

const (
	registerQ = `mutation($e:String!,$p:String!){register(input:{email:$e,password:$p}){watchToken status}}`
	verifyQ   = `mutation($t:String!){verifyEmail(token:$t){email status verifiedAt alreadyVerified}}`
	resendQ   = `mutation($e:String!){resendVerificationEmail(email:$e)}`
	statusQ   = `query($w:String!){verificationStatus(watchToken:$w)}`
	watchQ    = `subscription($w:String!){verificationStatus(watchToken:$w){status at}}`
)

func (s *svc) register(t testing.TB, email string) string {
	t.Helper()
	r := s.gql(t, registerQ, map[string]any{"e": email, "p": "correct horse battery"})
	require.Empty(t, r.Errors)
	p := r.Data["register"].(map[string]any)
	require.Equal(t, "UNVERIFIED", p["status"])
	return p["watchToken"].(string)
}

func (s *svc) status(t testing.TB, watch string) string {
	t.Helper()
	r := s.gql(t, statusQ, map[string]any{"w": watch})
	require.Empty(t, r.Errors)
	return r.Data["verificationStatus"].(string)
}

var linkLine = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(publicURL) + `/verify-email\?token=([A-Za-z0-9_-]+)$`)

// tokenFrom checks a verification email against the contract and returns
// the token in its link.
func tokenFrom(t testing.TB, m mailtest.Mail) string {
	t.Helper()
	require.Contains(t, m.Subject, "Verify")
	require.NotEmpty(t, m.HTML, "an HTML part")
	match := linkLine.FindStringSubmatch(m.Text)
	require.NotNil(t, match, "text part has the link on a line of its own:\n%s", m.Text)
	require.Contains(t, m.HTML, match[0], "HTML part links the same URL")
	return match[1]
}

// sub is one subscription over a real websocket client.
type sub struct {
	t     testing.TB
	c     *websocket.Conn
	proto string
}

const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
)

func (s *svc) dial(t testing.TB, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 10 * time.Second}
	return d.Dial("ws://"+s.addr+"/query", header)
}

func (s *svc) subscribe(t testing.TB, proto, watch string) *sub {
	t.Helper()
	c, resp, err := s.dial(t, proto, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, proto, c.Subprotocol())
	t.Cleanup(func() { c.Close() })
	w := &sub{t: t, c: c, proto: proto}
	w.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	typ, _ := w.next()
	require.Equal(t, "connection_ack", typ)
	start := "subscribe"
	if proto == legacyWS {
		start = "start"
	}
	w.send(map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": watchQ, "variables": map[string]any{"w": watch}}})
	return w
}

func (w *sub) send(v any) {
	w.t.Helper()
	require.NoError(w.t, w.c.SetWriteDeadline(time.Now().Add(10*time.Second)))
	require.NoError(w.t, w.c.WriteJSON(v))
}

// next returns the next message that is not a keep-alive, answering pings.
func (w *sub) next() (string, json.RawMessage) {
	w.t.Helper()
	for {
		require.NoError(w.t, w.c.SetReadDeadline(time.Now().Add(20*time.Second)))
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(w.t, w.c.ReadJSON(&m))
		switch m.Type {
		case "ka":
			continue
		case "ping":
			w.send(map[string]any{"type": "pong"})
			continue
		}
		return m.Type, m.Payload
	}
}

// expect reads the next event and checks its status.
func (w *sub) expect(status string) time.Time {
	w.t.Helper()
	typ, payload := w.next()
	want := "next"
	if w.proto == legacyWS {
		want = "data"
	}
	require.Equal(w.t, want, typ, "payload %s", payload)
	var p struct {
		Data struct {
			VerificationStatus struct {
				Status string    `json:"status"`
				At     time.Time `json:"at"`
			} `json:"verificationStatus"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	require.NoError(w.t, json.Unmarshal(payload, &p))
	require.Empty(w.t, p.Errors)
	require.Equal(w.t, status, p.Data.VerificationStatus.Status)
	require.False(w.t, p.Data.VerificationStatus.At.IsZero())
	return p.Data.VerificationStatus.At
}

// expectError reads a resolver error (gqlgen sends it as a result with
// errors) followed by completion.
func (w *sub) expectError(code string) {
	w.t.Helper()
	typ, payload := w.next()
	require.Contains(w.t, []string{"next", "data"}, typ, "payload %s", payload)
	require.Contains(w.t, string(payload), fmt.Sprintf(`"code":%q`, code))
	w.expectComplete()
}

func (w *sub) expectComplete() {
	w.t.Helper()
	typ, payload := w.next()
	require.Equal(w.t, "complete", typ, "payload %s", payload)
}

// expectQuiet checks that nothing is pending: a ping (graphql-transport-ws)
// is answered by a pong with no event before it.
func (w *sub) expectQuiet() {
	w.t.Helper()
	require.Equal(w.t, transportWS, w.proto)
	w.send(map[string]any{"type": "ping"})
	require.NoError(w.t, w.c.SetReadDeadline(time.Now().Add(20*time.Second)))
	var m struct {
		Type string `json:"type"`
	}
	require.NoError(w.t, w.c.ReadJSON(&m))
	require.Equal(w.t, "pong", m.Type)
}
