package main

// The shared harness of the end-to-end tests in this package: a real
// service (run(), as main calls it) on its own SQLite file and SMTP sink,
// reached over HTTP and websockets like any client, on each broker of the
// one broker matrix. The tests are split by concern: flow_test.go
// (verification), registration_test.go, subscriptions_test.go,
// mail_test.go, edge_test.go and startup_test.go.

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
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// brokers is the one broker matrix of the end-to-end tests and the
// benchmarks: every concern's tests whose outcome depends on the broker
// run on each with eachBroker. opts makes fresh options for one service
// (on RabbitMQ, exchange and queue names of its own).
var brokers = []struct {
	name string
	opts func(t testing.TB) svcOptions
}{
	{"inproc", func(testing.TB) svcOptions { return svcOptions{} }},
	{"rabbitmq", func(t testing.TB) svcOptions { return rabbitOptions(t, rabbitmqtest.URL(t)) }},
}

// eachBroker runs f as a parallel subtest per broker of the matrix, with
// options for a service on that broker.
func eachBroker(t *testing.T, f func(t *testing.T, opts svcOptions)) {
	t.Helper()
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b.opts(t))
		})
	}
}

// eachStack is eachBroker plus the production stack, PostgreSQL and
// RabbitMQ, for the tests of what a registration means (Step 5): their
// outcome depends on the database's isolation and locking too.
func eachStack(t *testing.T, f func(t *testing.T, opts svcOptions)) {
	t.Helper()
	eachBroker(t, f)
	t.Run("postgres+rabbitmq", func(t *testing.T) {
		t.Parallel()
		opts := rabbitOptions(t, rabbitmqtest.URL(t))
		opts.env = map[string]string{"DATABASE_URL": databasetest.Postgres(t)}
		f(t, opts)
	})
}

// rabbitOptions returns options for a service on the test RabbitMQ with
// names of its own, deleted when the test ends.
func rabbitOptions(t testing.TB, url string) svcOptions {
	return svcOptions{amqpURL: url, amqpPrefix: rabbitmqtest.Prefix(t, url)}
}

// svc is a running service with its own database and SMTP sink.
type svc struct {
	addr string
	// metricsAddr is METRICS_ADDR's bound address, when set.
	metricsAddr string
	sink        *mailtest.Sink
	clock       *testkit.Clock
	http        *http.Client
	// settled fires each time the service's relay settles a batch or its
	// mailer handles an event: what moves the outbox and mail metrics.
	settled *testkit.Signal
	// cleanUp runs the janitor's tasks once.
	cleanUp func(context.Context)
}

// runJanitor runs every clean-up task now.
func (s *svc) runJanitor(t testing.TB) {
	t.Helper()
	require.NotNil(t, s.cleanUp)
	s.cleanUp(context.Background())
}

func newSvc(sink *mailtest.Sink) *svc {
	return &svc{sink: sink, clock: testkit.NewClock(), http: &http.Client{Timeout: 30 * time.Second}, settled: testkit.NewSignal()}
}

// hooks are the service's test hooks for s.
func (s *svc) hooks(listening chan<- string, amqpPrefix string) hooks {
	return hooks{
		listening:        func(a string) { listening <- a },
		metricsListening: func(a string) { s.metricsAddr = a },
		now:              s.clock.Now,
		amqpPrefix:       amqpPrefix,
		settled:          s.settled.Fire,
		janitor:          func(run func(context.Context)) { s.cleanUp = run },
	}
}

type svcOptions struct {
	amqpURL, amqpPrefix string
	// devOutbox leaves SMTP_URL empty.
	devOutbox bool
	// sink, if set, is shared with other services (replicas).
	sink *mailtest.Sink
	// settled, if set, is shared with other services (replicas on one
	// database): a wait on one replica's metrics wakes on either's work.
	settled *testkit.Signal
	env     map[string]string
	// traced turns tracing on, into the provider the test installed.
	traced bool
}

const publicURL = "http://verifier.test"

func startService(t testing.TB, o svcOptions) *svc {
	t.Helper()
	s := newSvc(o.sink)
	if o.settled != nil {
		s.settled = o.settled
	}
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
	log := testkit.Logger(t, slog.LevelWarn)

	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	hk := s.hooks(listening, o.amqpPrefix)
	hk.traced = o.traced
	go func() { done <- run(ctx, cfg, log, hk) }()
	select {
	case s.addr = <-listening:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	case <-time.After(testkit.Timeout):
		cancel()
		t.Fatalf("service did not start within %s", testkit.Timeout)
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, testkit.Receive(t, done, "graceful shutdown"), "graceful shutdown")
		s.http.CloseIdleConnections()
	})
	return s
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
	log := testkit.Logger(t, level)
	if o.log != nil {
		log = slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: level}))
	}

	in := &instance{svc: newSvc(o.sink), stopped: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log, in.hooks(listening, "")) }()
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
			case <-time.After(testkit.Timeout):
				t.Errorf("service did not stop within %s", testkit.Timeout)
			}
			in.http.CloseIdleConnections()
			close(in.stopped)
		})
	}
	t.Cleanup(in.stop)
	return in
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
	return s.postWith(t, body, nil)
}

// postWith posts a GraphQL request body with extra headers.
func (s *svc) postWith(t testing.TB, body []byte, header http.Header) gqlResponse {
	t.Helper()
	out, err := s.send(body, header)
	require.NoError(t, err)
	return out
}

// send posts a GraphQL request body with extra headers and reads the
// answer; a 5xx or an answer that is not JSON is an error.
func (s *svc) send(body []byte, header http.Header) (gqlResponse, error) {
	req, err := http.NewRequest(http.MethodPost, s.url("/query"), bytes.NewReader(body))
	if err != nil {
		return gqlResponse{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	if resp.StatusCode >= 500 {
		return gqlResponse{}, fmt.Errorf("never a 5xx: %d %s", resp.StatusCode, raw)
	}
	out := gqlResponse{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &out); err != nil {
		return gqlResponse{}, fmt.Errorf("JSON body: %w: %s", err, raw)
	}
	return out, nil
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

func (s *svc) gql(t testing.TB, query string, vars map[string]any) gqlResponse {
	t.Helper()
	out, err := s.gqlAside(query, vars)
	require.NoError(t, err)
	return out
}

// gqlAside is gql for a goroutine other than the test's: require may stop
// only the test's own goroutine, so it returns what went wrong for the
// test to check once its goroutines are done.
func (s *svc) gqlAside(query string, vars map[string]any) (gqlResponse, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return gqlResponse{}, err
	}
	return s.send(body, nil)
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

// metric reads one sample (a series such as `name` or `name{label="v"}`)
// from /metrics; 0 when it has not been recorded yet.
func (s *svc) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := s.http.Get(s.url("/metrics"))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

// waitMetric waits until name has value want on /metrics, reading it
// again each time the relay or the mailer has settled something: the
// outbox and mail metrics move only then.
func (s *svc) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	testkit.WaitUntil(t, s.settled, func() bool { return s.metric(t, name) == want }, "%s at %v (last %v)", name, want, s.metric(t, name))
}

// waitSubscriptions waits until n subscriptions are open. The hub offers
// no hook, and a subscription ends on the server's own goroutine after the
// client went: a condition check, not a signal.
func (s *svc) waitSubscriptions(t *testing.T, n float64) {
	t.Helper()
	testkit.Eventually(t, func() bool { return s.metric(t, "verifier_subscriptions_open") == n }, "%v subscriptions open", n)
}

// waitReady waits for /readyz to answer want. Readiness follows
// connections to outside services (the broker), which no hook signals.
func (s *svc) waitReady(t testing.TB, want int) {
	t.Helper()
	testkit.Eventually(t, func() bool {
		resp, err := s.http.Get(s.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	}, "/readyz answering %d", want)
}

// sub is one subscription over a real websocket client.
type sub struct{ *graphtest.Client }

const (
	transportWS = graphtest.TransportWS
	legacyWS    = graphtest.LegacyWS
)

func (s *svc) dial(t testing.TB, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	return graphtest.Dial("ws://"+s.addr+"/query", proto, header)
}

func (s *svc) subscribe(t testing.TB, proto, watch string) *sub {
	t.Helper()
	w := &sub{graphtest.Connect(t, "ws://"+s.addr+"/query", proto)}
	w.Subscribe("1", watchQ, map[string]any{"w": watch})
	return w
}

// expect reads the next event and checks its status.
func (w *sub) expect(status string) time.Time {
	w.T.Helper()
	m := w.Next()
	want := "next"
	if w.Proto == legacyWS {
		want = "data"
	}
	require.Equal(w.T, want, m.Type, "payload %s", m.Payload)
	var p struct {
		Data struct {
			VerificationStatus struct {
				Status string    `json:"status"`
				At     time.Time `json:"at"`
			} `json:"verificationStatus"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	require.NoError(w.T, json.Unmarshal(m.Payload, &p))
	require.Empty(w.T, p.Errors)
	require.Equal(w.T, status, p.Data.VerificationStatus.Status)
	require.False(w.T, p.Data.VerificationStatus.At.IsZero())
	return p.Data.VerificationStatus.At
}

// expectError reads a resolver error (gqlgen sends it as a result with
// errors) followed by completion.
func (w *sub) expectError(code string) {
	w.T.Helper()
	m := w.Next()
	require.Contains(w.T, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	require.Contains(w.T, string(m.Payload), fmt.Sprintf(`"code":%q`, code))
	w.expectComplete()
}

func (w *sub) expectComplete() {
	w.T.Helper()
	m := w.Next()
	require.Equal(w.T, "complete", m.Type, "payload %s", m.Payload)
}

// expectQuiet checks that nothing is pending: a ping (graphql-transport-ws)
// is answered by a pong with no event before it.
func (w *sub) expectQuiet() {
	w.T.Helper()
	w.Ping()
}

// wsClient is a websocket that may carry several subscriptions.
type wsClient struct{ *graphtest.Client }

// connect opens and initialises a websocket.
func (s *svc) connect(t *testing.T, proto string) *wsClient {
	t.Helper()
	return &wsClient{graphtest.Connect(t, "ws://"+s.addr+"/query", proto)}
}

// subscribe starts the status subscription id for watch.
func (w *wsClient) subscribe(id, watch string) {
	w.T.Helper()
	w.Subscribe(id, watchQ, map[string]any{"w": watch})
}

// expectStatus reads the next event of subscription id.
func (w *wsClient) expectStatus(id, status string) {
	w.T.Helper()
	m := w.Next()
	require.Contains(w.T, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	require.Equal(w.T, id, m.ID)
	require.Contains(w.T, string(m.Payload), fmt.Sprintf(`"status":%q`, status))
}

// expectLimited reads RATE_LIMITED then complete for subscription id.
func (w *wsClient) expectLimited(id string) {
	w.T.Helper()
	m := w.Next()
	require.Contains(w.T, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	require.Equal(w.T, id, m.ID)
	require.Contains(w.T, string(m.Payload), `"code":"RATE_LIMITED"`)
	require.Contains(w.T, string(m.Payload), `"retryAfterSeconds":10`)
	m = w.Next()
	require.Equal(w.T, "complete", m.Type)
	require.Equal(w.T, id, m.ID)
}

// stopSub ends subscription id from the client side; the server confirms
// with complete once the subscription no longer counts.
func (w *wsClient) stopSub(id string) {
	w.T.Helper()
	typ := "complete"
	if w.Proto == legacyWS {
		typ = "stop"
	}
	w.Send(map[string]any{"id": id, "type": typ})
	m := w.Next()
	require.Equal(w.T, "complete", m.Type)
	require.Equal(w.T, id, m.ID)
}

// alive checks the socket still answers (graphql-transport-ws ping).
func (w *wsClient) alive() {
	w.T.Helper()
	w.Ping()
}

// assert fails the test from any goroutine.
func assert(t *testing.T, ok bool, format string, args ...any) {
	if !ok {
		t.Errorf(format, args...)
	}
}
