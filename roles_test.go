package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
)

// TestRoles splits the service as a deployment does: two api and one
// worker on one database and one RabbitMQ. Registrations through either
// api are mailed by the worker alone (the apis' own SMTP servers never see
// a connection), a subscription on one api sees a confirmation made
// through the other, and the worker answers only health, readiness and
// metrics on HTTP.
func TestRoles(t *testing.T) {
	t.Parallel()
	amqpURL := rabbitmqtest.URL(t)
	shared := rabbitOptions(t, amqpURL)
	db := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	sink := mailtest.Start(t)
	role := func(role string, sink *mailtest.Sink) *svc {
		o := shared
		o.sink = sink
		o.env = map[string]string{"ROLE": role, "DATABASE_URL": db}
		return startService(t, o)
	}
	worker := role("worker", sink)
	apiSinks := []*mailtest.Sink{mailtest.Start(t), mailtest.Start(t)}
	apis := []*svc{role("api", apiSinks[0]), role("api", apiSinks[1])}

	// Ready once its RabbitMQ link is up, which no hook signals.
	worker.waitReady(t, http.StatusOK)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := worker.http.Get(worker.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "worker %s", path)
	}
	for _, path := range []string{"/query", "/playground", "/", "/asyncapi.yaml", "/.well-known/jwks.json"} {
		resp, err := worker.http.Get(worker.url(path))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, "worker %s", path)
	}
	code, _ := worker.rawPost(t, "application/json", []byte(`{"query":"{__typename}"}`))
	require.Equal(t, http.StatusNotFound, code, "worker POST /query")

	const n = 6
	watches := map[string]string{}
	for i := range n {
		email := fmt.Sprintf("role%d@example.com", i)
		watches[email] = apis[i%2].register(t, email)
	}
	mails := sink.Collect(t, n, testkit.Timeout)
	tokens := map[string]string{}
	for _, m := range mails {
		require.Len(t, m.To, 1)
		tokens[m.To[0]] = tokenFrom(t, m)
	}
	require.Len(t, tokens, n, "one email per registration")

	// Registered through apis[0], watched on apis[0], confirmed through
	// apis[1]: the status change crosses processes through RabbitMQ.
	email := "role0@example.com"
	w := apis[0].subscribe(t, transportWS, watches[email])
	w.expect("UNVERIFIED")
	r := apis[1].gql(t, verifyQ, map[string]any{"t": tokens[email]})
	require.Empty(t, r.Errors)
	w.expect("VERIFIED")

	for i, s := range apiSinks {
		require.Zero(t, s.Sessions(), "api %d never connects to SMTP", i)
	}
}
