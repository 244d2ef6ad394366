package main

// Public events as other services see them: CloudEvents on verifier.public
// (RabbitMQ) and signed webhooks (either broker), and the README's two
// worked examples run against the real service and broker.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/webhook/webhooktest"
)

// testWebhookSecret is whsec_ + base64 of 32 bytes.
const testWebhookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

const testPassword = "correct horse battery"

// secretish matches every name a secret could travel under.
var secretish = regexp.MustCompile(`(?i)token|code|password|hash|secret|seal|key|otp`)

// publicEvent checks that body is a valid CloudEvent from this service
// that carries none of secrets, and returns it.
func publicEvent(t *testing.T, body []byte, secrets ...string) cloudevents.Event {
	t.Helper()
	var ev cloudevents.Event
	require.NoError(t, json.Unmarshal(body, &ev), "%s", body)
	require.NoError(t, ev.Validate())
	require.Equal(t, publicURL, ev.Source())
	require.Equal(t, "application/json", ev.DataContentType())
	require.Contains(t, publicevent.Types, ev.Type())
	var data map[string]any
	require.NoError(t, json.Unmarshal(ev.Data(), &data))
	require.Equal(t, ev.Subject(), data["userId"], "subject is the user's id")
	for k := range data {
		require.NotRegexp(t, secretish, k)
	}
	for _, s := range secrets {
		require.NotContains(t, string(body), s, "no token, code or password in a public event")
	}
	return ev
}

// signUp registers email and verifies it through the link, and returns
// the secrets the flow handled (watch token, link token, password).
func (s *svc) signUp(t *testing.T, email string) []string {
	t.Helper()
	watch := s.register(t, email)
	tok := tokenFrom(t, s.sink.Next(t, testkit.Timeout))
	r := s.gql(t, verifyQ, map[string]any{"t": tok})
	require.Empty(t, r.Errors)
	return []string{watch, tok, testPassword}
}

// bindPublic binds a queue of its own to the public exchange of a
// service on opts, as another service would, before the service publishes
// anything.
func bindPublic(t *testing.T, opts svcOptions) (*amqp.Channel, amqp.Queue) {
	t.Helper()
	conn, err := amqp.Dial(opts.amqpURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	exchange := opts.amqpPrefix + ".public"
	require.NoError(t, ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil))
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q.Name, "#", exchange, false, nil))
	return ch, q
}

func TestPublicEventsOnRabbitMQ(t *testing.T) {
	t.Parallel()
	opts := rabbitOptions(t, rabbitmqtest.URL(t))
	ch, q := bindPublic(t, opts)
	s := startService(t, opts)
	secrets := s.signUp(t, "ada@example.com")
	s.waitMetric(t, "verifier_outbox_backlog", 0)

	// Everything is published and confirmed, so routed: the queue holds
	// exactly what verifier.public got.
	var got []amqp.Delivery
	for {
		d, ok, err := ch.Get(q.Name, false)
		require.NoError(t, err)
		if !ok {
			break
		}
		got = append(got, d)
	}
	require.Len(t, got, 2, "registered and verified, no internal event")
	// Public events promise no order between them: a publish retried
	// (here, one made before the broker connected) can land after a later
	// event's. Told apart by routing key, checked against the type below.
	if got[0].RoutingKey != publicevent.UserRegisteredType {
		got[0], got[1] = got[1], got[0]
	}
	require.NoError(t, got[0].Nack(false, true))
	again, ok, err := ch.Get(q.Name, true)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, again.Redelivered)
	require.NoError(t, got[1].Ack(false))

	registered := publicEvent(t, got[0].Body, secrets...)
	verified := publicEvent(t, got[1].Body, secrets...)
	require.Equal(t, publicevent.UserRegisteredType, registered.Type())
	require.Equal(t, publicevent.UserVerifiedType, verified.Type())
	require.Equal(t, registered.Subject(), verified.Subject(), "one user id")
	require.Equal(t, registered.ID(), publicEvent(t, again.Body, secrets...).ID(), "a redelivery has the same id")
	for _, d := range got {
		require.Equal(t, "application/cloudevents+json", d.ContentType)
		require.Equal(t, uint8(amqp.Persistent), d.DeliveryMode)
		require.Equal(t, d.RoutingKey, publicEvent(t, d.Body).Type(), "routing key = type")
		require.Equal(t, d.MessageId, publicEvent(t, d.Body).ID(), "message id = event id")
	}
	var data publicevent.UserVerified
	require.NoError(t, json.Unmarshal(verified.Data(), &data))
	require.Equal(t, "ada@example.com", data.Email)
}

// TestPublicEventSequence follows one user through every public fact on
// verifier.public: registered, verified, email_changed (signIn,
// changeEmail, the code from the email), deleted (admin deleteUser), each
// under the one id the receipts and the admin API show, none carrying a
// token, code, password or hash the test handled; and a refused address
// is verifier.email.failed.v1.
func TestPublicEventSequence(t *testing.T) {
	t.Parallel()
	opts := rabbitOptions(t, rabbitmqtest.URL(t))
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	opts.env = map[string]string{"DATABASE_URL": dbURL}
	ch, q := bindPublic(t, opts)
	s := startAdmin(t, opts)
	s.sink.Refuse(func(to string) error {
		if to == "bounce@example.com" {
			return mailtest.PermFail
		}
		return nil
	})
	const before, after = "ada@example.com", "ada.lovelace@example.com"

	watch := s.registerAs(t, before, testPassword, nil)
	m := s.sink.Next(t, testkit.Timeout)
	link, code := tokenFrom(t, m), codeFrom(t, m)
	receipt := payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": link}), "verifyEmail").Receipt
	sub := s.verifyReceipt(t, receipt, before)["sub"]
	r := s.gql(t, signInQ, map[string]any{"e": before, "p": testPassword})
	require.Empty(t, r.Errors)
	session := r.Data["signIn"].(map[string]any)["token"].(string)
	s.clock.Advance(2 * time.Minute) // past the address's cooldown
	require.Empty(t, s.gqlAs(t, session, changeQ, map[string]any{"e": after}).Errors)
	var changeLink, changeCode string
	for _, m := range s.sink.Collect(t, 2, testkit.Timeout) { // the link and the notice
		if m.To[0] == after {
			changeLink, changeCode = tokenFrom(t, m), codeFrom(t, m)
		}
	}
	require.NotEmpty(t, changeCode)
	changed := payloadOf(t, s.gqlAs(t, session, confirmQ, map[string]any{"c": changeCode}), "confirmEmailChange")
	require.Equal(t, sub, s.verifyReceipt(t, changed.Receipt, after)["sub"], "one id across the change")
	id := s.userID(t, after)
	require.Equal(t, sub, id, "receipt sub = admin User.id")

	db, err := database.Open(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	u, err := db.Ent.User.Query().Where(user.Email(after)).Only(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, u.PasswordHash)
	secrets := []string{watch, link, code, changeLink, changeCode, session, testPassword, u.PasswordHash}

	// Published before the deletion: deleteUser erases what is still in
	// the outbox about the user, public events included (a CI-like run
	// lost email_changed to it one time in six).
	s.waitMetric(t, "verifier_outbox_backlog", 0)
	require.Equal(t, true, s.adminOK(t, deleteUserQ, map[string]any{"u": id})["deleteUser"])
	s.register(t, "bounce@example.com")

	deliveries, err := ch.Consume(q.Name, "sequence", true, true, false, false, nil)
	require.NoError(t, err)
	bySubject := map[string][]cloudevents.Event{}
	for range 6 { // ada's four, bounce's registered and failed
		d := testkit.Receive(t, deliveries, "a public event")
		ev := publicEvent(t, d.Body, secrets...)
		require.Equal(t, ev.Type(), d.RoutingKey)
		bySubject[ev.Subject()] = append(bySubject[ev.Subject()], ev)
	}
	// Published and confirmed means routed: nothing else may follow.
	s.waitMetric(t, "verifier_outbox_backlog", 0)
	require.NoError(t, ch.Cancel("sequence", false))
	for d := range deliveries {
		t.Errorf("an extra event: %s", d.Body)
	}

	// In the order of their facts: the README tells consumers to order a
	// user's events by time, as their arrival promises none.
	for _, evs := range bySubject {
		slices.SortStableFunc(evs, func(a, b cloudevents.Event) int { return a.Time().Compare(b.Time()) })
	}
	ada := bySubject[id]
	var types []string
	for _, ev := range ada {
		types = append(types, ev.Type())
	}
	require.Equal(t, []string{publicevent.UserRegisteredType, publicevent.UserVerifiedType,
		publicevent.EmailChangedType, publicevent.UserDeletedType}, types, "one each")
	var chg publicevent.EmailChanged
	require.NoError(t, json.Unmarshal(ada[2].Data(), &chg))
	require.Equal(t, before, chg.OldEmail)
	require.Equal(t, after, chg.Email)
	var deleted map[string]any
	require.NoError(t, json.Unmarshal(ada[3].Data(), &deleted))
	require.NotContains(t, deleted, "email")
	raw, err := json.Marshal(ada[3])
	require.NoError(t, err)
	require.NotContains(t, string(raw), "@", "no address in deleted")

	delete(bySubject, id)
	require.Len(t, bySubject, 1, "one other user: bounce")
	for _, evs := range bySubject {
		require.Len(t, evs, 2)
		require.Equal(t, publicevent.UserRegisteredType, evs[0].Type())
		require.Equal(t, publicevent.EmailFailedType, evs[1].Type())
		var failed publicevent.EmailFailed
		require.NoError(t, json.Unmarshal(evs[1].Data(), &failed))
		require.Equal(t, "bounce@example.com", failed.Email)
		require.Contains(t, failed.Reason, "550")
	}
}

// Every public event reaches the webhook, signed, on either broker; a
// refused email is verifier.email.failed.v1. The document of it all is
// served as committed.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		rc := webhooktest.Start(t, nil)
		opts.env = map[string]string{"WEBHOOK_URL": rc.URL, "WEBHOOK_SECRET": testWebhookSecret}
		s := startService(t, opts)
		s.sink.Refuse(func(to string) error {
			if to == "bounce@example.com" {
				return mailtest.PermFail
			}
			return nil
		})
		secrets := s.signUp(t, "ada@example.com")
		s.register(t, "bounce@example.com")

		want := map[string]string{ // type + email → reason or ""
			publicevent.UserRegisteredType + " ada@example.com":    "",
			publicevent.UserVerifiedType + " ada@example.com":      "",
			publicevent.UserRegisteredType + " bounce@example.com": "",
			publicevent.EmailFailedType + " bounce@example.com":    "550 5.1.1 no such user",
		}
		var reqs []webhooktest.Request
		for range want {
			r := testkit.Receive(t, rc.Got, "a webhook request")
			reqs = append(reqs, r)
			require.Equal(t, "application/cloudevents+json", r.Header.Get("Content-Type"))
			ev := publicEvent(t, r.Body, secrets...)
			require.Equal(t, ev.ID(), r.Header.Get("webhook-id"))
			var data struct{ Email, Reason string }
			require.NoError(t, json.Unmarshal(ev.Data(), &data))
			reason, ok := want[ev.Type()+" "+data.Email]
			require.True(t, ok, "unexpected %s for %s", ev.Type(), data.Email)
			require.Contains(t, data.Reason, reason)
		}
		webhooktest.VerifyWithNode(t, testWebhookSecret, reqs)
		s.waitMetric(t, "verifier_webhooks_delivered_total", float64(len(want)))

		resp, err := s.http.Get(s.url("/asyncapi.yaml"))
		require.NoError(t, err)
		served, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		committed, err := os.ReadFile("docs/asyncapi.yaml")
		require.NoError(t, err)
		require.Equal(t, committed, served, "byte for byte")
	})
}

// The README's examples, built and run as an integrator would: the
// consumer keeps its flag from verifier.public, the receiver believes
// only signed requests.
func TestExamples(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	bin := t.TempDir()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "build", "-o", bin+string(os.PathSeparator), "./examples/consumer", "./examples/webhook-receiver").CombinedOutput()
	require.NoError(t, err, "%s", out)

	receiver := startExample(t, filepath.Join(bin, "webhook-receiver"), "WEBHOOK_SECRET="+testWebhookSecret, "ADDR=127.0.0.1:0")
	addr := strings.TrimPrefix(testkit.Receive(t, receiver, "the receiver listening"), "listening on ")

	opts := rabbitOptions(t, url)
	opts.env = map[string]string{"WEBHOOK_URL": "http://" + addr + "/hook", "WEBHOOK_SECRET": testWebhookSecret}
	s := startService(t, opts)
	s.waitReady(t, http.StatusOK) // verifier.public is declared
	queue := opts.amqpPrefix + ".crm"
	t.Cleanup(func() { deleteQueue(url, queue) })
	consumer := startExample(t, filepath.Join(bin, "consumer"), "AMQP_URL="+url, "EXCHANGE="+opts.amqpPrefix+".public", "QUEUE="+queue)
	require.Equal(t, "waiting for events on "+queue, testkit.Receive(t, consumer, "the consumer bound"))

	s.signUp(t, "ada@example.com")
	line := testkit.Receive(t, consumer, "the consumer's verified line")
	require.Regexp(t, `^verifier\.user\.verified\.v1 [0-9a-f-]{36} verified: true$`, line)
	user := strings.Fields(line)[1]
	require.Equal(t, publicevent.UserRegisteredType+" "+user, testkit.Receive(t, receiver, "registered at the receiver"))
	require.Equal(t, publicevent.UserVerifiedType+" "+user, testkit.Receive(t, receiver, "verified at the receiver"))

	// The README shows the examples' code as it is.
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, example := range []string{"examples/consumer/main.go", "examples/webhook-receiver/main.go"} {
		src, err := os.ReadFile(example)
		require.NoError(t, err)
		main := string(src[strings.Index(string(src), "func main() {"):])
		main = main[:strings.Index(main, "\n}\n")+2]
		require.Contains(t, string(readme), main, "README shows %s's main as it is", example)
	}

	resp, err := http.Post("http://"+addr+"/hook", publicevent.ContentType, strings.NewReader(`{"type":"verifier.user.verified.v1"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an unsigned request is not believed")
}

// startExample runs an example binary until the test ends and returns its
// output, line by line.
func startExample(t *testing.T, path string, env ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t}
	require.NoError(t, cmd.Start())
	lines := make(chan string, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		testkit.Receive(t, done, "end of %s's output once killed", path)
		_ = cmd.Wait()
	})
	return lines
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func deleteQueue(url, name string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(name, false, false, false)
	}
}

// An endpoint that never answers holds up neither the mail nor the
// verification: its request is open while the email goes out and the
// address is verified.
func TestHungWebhookDelaysNoMail(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		release := make(chan struct{})
		held := make(chan *http.Request, 1)
		rc := webhooktest.Start(t, func(n int, r *http.Request) int {
			if n == 1 {
				held <- r
			}
			<-release
			return http.StatusOK
		})
		opts.env = map[string]string{"WEBHOOK_URL": rc.URL, "WEBHOOK_SECRET": testWebhookSecret}
		s := startService(t, opts)
		t.Cleanup(func() { close(release) }) // runs first: the receiver's Close waits for its handlers
		s.register(t, "ada@example.com")
		testkit.Receive(t, rc.Got, "the registered event, held by the endpoint")
		req := testkit.Receive(t, held, "the held request")
		tok := tokenFrom(t, s.sink.Next(t, testkit.Timeout))
		r := s.gql(t, verifyQ, map[string]any{"t": tok})
		require.Empty(t, r.Errors)
		// The service's side of the request: had it given up on the
		// endpoint (or never waited), the request's context would have
		// ended, and the mail would prove nothing about a hung endpoint.
		// (The release channel is the test's own: it cannot tell.)
		require.NoError(t, req.Context().Err(), "the webhook request is still open while the email went out and the address was verified")
	})
}
