//go:build faults

package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database/databasetest"
)

// TestTopology runs the deployment of the README's "Deploy" section with
// the real binary: `verifier migrate` once, then two ROLE=api (without
// SMTP_URL) and one ROLE=worker on one PostgreSQL and one RabbitMQ, all
// with MIGRATE=off. The apis start first: an address signed up before
// the worker's first start gets its email. A bounded load signs up
// through both apis; the worker is SIGKILLed mid-load and restarted.
// Every accepted registration gets its email (none lost, duplicates
// counted in the table), every click reaches its subscription, and a
// subscription opened on one api sees a confirmation made through the
// other.
func TestTopology(t *testing.T) {
	amqpURL := dedicatedRabbit(t)
	dbURL := databasetest.Postgres(t)
	apiAddrs := []string{freeAddr(t), freeAddr(t)}
	// Links in emails go to one address, as they would to the proxy in
	// front of the apis.
	public := "http://" + apiAddrs[0]
	smtp := startSMTP(t, public, killLatency)

	migrate := exec.Command(binaryPath, "migrate")
	migrate.Env = []string{"DATABASE_URL=" + dbURL, "PATH=/usr/bin:/bin"}
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, "verifier migrate: %s", out)
	require.Contains(t, string(out), "applied ")

	common := map[string]string{"PUBLIC_URL": public, "MIGRATE": "off"}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for _, m := range []map[string]string{common, extra} {
			for k, v := range m {
				env[k] = v
			}
		}
		return env
	}
	worker := newService(t, serviceOptions{
		addr: freeAddr(t), databaseURL: dbURL, amqpURL: amqpURL, smtpURL: smtp.URL(),
		extraEnv: with(map[string]string{"ROLE": "worker"}),
	})
	var apis []*service
	for _, addr := range apiAddrs {
		apis = append(apis, newService(t, serviceOptions{
			addr: addr, databaseURL: dbURL, amqpURL: amqpURL,
			// An api sends nothing: no SMTP_URL, and no dev outbox.
			extraEnv: with(map[string]string{"ROLE": "api", "DEV_MAILBOX": "false"}),
		}))
	}
	// The apis first, and a sign-up before any worker ever connected to
	// this fresh vhost: its email waits in the mailer's queue, which the
	// apis declare too, and goes out once the worker comes.
	for _, s := range apis {
		s.Start()
		s.WaitReady()
	}
	early := signUpBeforeWorker(t, apis[0])
	worker.Start()
	worker.WaitReady()
	select {
	case <-smtp.Delivered(early):
	case <-time.After(drainDeadline):
		t.Fatal("the email of a sign-up made before the worker's first start never went out")
	}
	for path, want := range map[string]int{"/query": http.StatusNotFound, "/": http.StatusNotFound, "/metrics": http.StatusOK} {
		resp, err := http.Get(worker.publicURL() + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "worker %s", path)
	}

	crossAPIConfirmation(t, apis, smtp)

	loads := make([]*load, len(apis))
	for i, api := range apis {
		loads[i] = startLoad(t, api, smtp, loadOptions{target: registrations / 2, crashDupBound: smtpConnections})
	}
	loads[0].awaitAccepted(registrations / 4)
	worker.Kill()
	worker.Start()
	recovered := time.Now()
	for i, l := range loads {
		l.finish("worker SIGKILLed mid-load, restarted (2 api + worker, PostgreSQL, RabbitMQ): through api "+string(rune('A'+i)), recovered)
	}
}

// signUpBeforeWorker registers a fresh address through api and returns it.
func signUpBeforeWorker(t *testing.T, api *service) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drainDeadline)
	defer cancel()
	c := newClient(api.publicURL(), 1)
	defer c.close()
	email := "early-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") + "@example.com"
	_, err := c.register(ctx, email)
	require.NoError(t, err)
	return email
}

// crossAPIConfirmation signs up through the first api, watches there, and
// confirms through the second: the status change crosses processes.
func crossAPIConfirmation(t *testing.T, apis []*service, smtp *faultSMTP) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), drainDeadline)
	defer cancel()
	first, second := newClient(apis[0].publicURL(), 1), newClient(apis[1].publicURL(), 1)
	defer first.close()
	defer second.close()
	email := "cross-" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") + "@example.com"
	watch, err := first.register(ctx, email)
	require.NoError(t, err)

	watching := make(chan struct{})
	ended := make(chan watchEnd, 1)
	go func() {
		end, _ := watchOnce(ctx, apis[0].addr, watch, sync.OnceFunc(func() { close(watching) }))
		ended <- end
	}()
	select {
	case <-watching:
	case <-ctx.Done():
		t.Fatal("the subscription on the first api never answered UNVERIFIED")
	}
	select {
	case <-smtp.Delivered(email):
	case <-ctx.Done():
		t.Fatal("the worker never sent the email")
	}
	_, err = second.verify(ctx, smtp.Mails(email)[0].Token)
	require.NoError(t, err)
	select {
	case end := <-ended:
		require.Equal(t, watchVerified, end, "the first api's subscription sees the second's confirmation")
	case <-ctx.Done():
		t.Fatal("VERIFIED never reached the subscription on the first api")
	}
}
