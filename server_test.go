package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

// rabbitOptions returns options for a service on the test RabbitMQ with
// names of its own, deleted when the test ends.
func rabbitOptions(t testing.TB, url string) svcOptions {
	return svcOptions{amqpURL: url, amqpPrefix: rabbitmqtest.Prefix(t, url)}
}

// TestFlow is the whole path through the public API: register, receive the
// email over SMTP, open the link (which alone changes nothing), watch the
// status over a websocket, confirm, see VERIFIED live and the subscription
// complete.
func TestFlow(t *testing.T) {
	t.Parallel()
	brokers := []struct {
		name string
		opts func(t *testing.T) svcOptions
	}{
		{"in-process broker", func(*testing.T) svcOptions { return svcOptions{} }},
		{"RabbitMQ", func(t *testing.T) svcOptions { return rabbitOptions(t, rabbitmqtest.URL(t)) }},
	}
	for _, b := range brokers {
		for _, proto := range []string{transportWS, legacyWS} {
			t.Run(b.name+"/"+proto, func(t *testing.T) {
				t.Parallel()
				s := startService(t, b.opts(t))

				watch := s.register(t, "  Ada.Lovelace@Example.COM ")
				m := s.sink.Next(t, 30*time.Second)
				require.Equal(t, []string{"ada.lovelace@example.com"}, m.To)
				tok := tokenFrom(t, m)

				w := s.subscribe(t, proto, watch)
				w.expect("UNVERIFIED")

				// Opening the link shows the confirm page and changes nothing:
				// mail scanners fetch links.
				resp, err := s.http.Get(s.url("/verify-email?token=" + tok))
				require.NoError(t, err)
				page, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Contains(t, string(page), `<main id="app"`)
				require.Equal(t, "UNVERIFIED", s.status(t, watch))

				r := s.gql(t, verifyQ, map[string]any{"t": tok})
				require.Empty(t, r.Errors)
				v := r.Data["verifyEmail"].(map[string]any)
				require.Equal(t, "ada.lovelace@example.com", v["email"])
				require.Equal(t, "VERIFIED", v["status"])
				require.Equal(t, false, v["alreadyVerified"])
				verifiedAt, err := time.Parse(time.RFC3339Nano, v["verifiedAt"].(string))
				require.NoError(t, err)

				at := w.expect("VERIFIED")
				require.WithinDuration(t, verifiedAt, at, time.Millisecond)
				w.expectComplete()
				require.Equal(t, "VERIFIED", s.status(t, watch))

				// A later subscriber gets VERIFIED at once, then completion.
				late := s.subscribe(t, proto, watch)
				late.expect("VERIFIED")
				late.expectComplete()
			})
		}
	}
}

// TestReplicas runs two replicas on one PostgreSQL and one RabbitMQ: a
// registration made on one is confirmed through it while the "check your
// inbox" subscription is open on the other, which sees VERIFIED live; the
// replicas share the outbox and the mail queue without sending twice.
func TestReplicas(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	opts := rabbitOptions(t, url)
	opts.sink = mailtest.Start(t)
	opts.env = map[string]string{"DATABASE_URL": databasetest.Postgres(t)}
	a, b := startService(t, opts), startService(t, opts)
	a.waitReady(t, http.StatusOK)
	b.waitReady(t, http.StatusOK)

	watch := a.register(t, "replica@example.com")
	tok := tokenFrom(t, opts.sink.Next(t, 30*time.Second))
	w := b.subscribe(t, transportWS, watch)
	w.expect("UNVERIFIED")
	require.Empty(t, a.gql(t, verifyQ, map[string]any{"t": tok}).Errors)
	w.expect("VERIFIED")
	w.expectComplete()
	require.Equal(t, "VERIFIED", b.status(t, watch))

	const n = 10
	for i := range n {
		replica := []*svc{a, b}[i%2]
		replica.register(t, fmt.Sprintf("spread-%d@example.com", i))
	}
	got := map[string]int{}
	for _, m := range opts.sink.Collect(t, n, 30*time.Second) {
		got[m.To[0]]++
	}
	require.Len(t, got, n, "one email per registration")
	a.waitMetric(t, "verifier_outbox_backlog", 0)
	require.Empty(t, opts.sink.Pending(), "no duplicates")
}

// TestVerifyIsIdempotent: every unexpired token of a verified address
// answers success again, and no second change is published.
func TestVerifyIsIdempotent(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"RESEND_COOLDOWN": "1s"}})
	watch := s.register(t, "grace@example.com")
	first := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	s.clock.Advance(2 * time.Second)
	r := s.gql(t, resendQ, map[string]any{"e": "grace@example.com"})
	require.Empty(t, r.Errors)
	second := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	require.NotEqual(t, first, second)

	w := s.subscribe(t, transportWS, watch)
	w.expect("UNVERIFIED")

	// Double click, concurrently, with the older link.
	var wg sync.WaitGroup
	results := make([]gqlResponse, 8)
	for i := range results {
		wg.Go(func() { results[i] = s.gql(t, verifyQ, map[string]any{"t": first}) })
	}
	wg.Wait()
	var at string
	fresh := 0
	for _, r := range results {
		require.Empty(t, r.Errors)
		v := r.Data["verifyEmail"].(map[string]any)
		require.Equal(t, "VERIFIED", v["status"])
		if at == "" {
			at = v["verifiedAt"].(string)
		}
		if v["alreadyVerified"] == false {
			fresh++
		}
		require.Equal(t, at, v["verifiedAt"], "one verification, reported the same to every click")
	}
	require.Equal(t, 1, fresh, "exactly one click verified; the others report alreadyVerified")
	// The newer token works too, with the same verifiedAt.
	r = s.gql(t, verifyQ, map[string]any{"t": second})
	require.Empty(t, r.Errors)
	require.Equal(t, at, r.Data["verifyEmail"].(map[string]any)["verifiedAt"])
	require.Equal(t, true, r.Data["verifyEmail"].(map[string]any)["alreadyVerified"])

	w.expect("VERIFIED")
	w.expectComplete()
	// The counter moves when the relay settles, just after the push.
	s.waitMetric(t, "verifier_outbox_published_total", 3) // register, resend and exactly one change event
	require.Equal(t, 3.0, s.metric(t, "verifier_outbox_published_total"), "no second change event")
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

// waitMetric polls /metrics until name has value want.
func (s *svc) waitMetric(t *testing.T, name string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return s.metric(t, name) == want }, 30*time.Second, 20*time.Millisecond,
		"%s never reached %v", name, want)
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"TOKEN_TTL": "1h"}})
	s.clock.Freeze() // exact retryAfterSeconds however long the table takes
	watch := s.register(t, "linus@example.com")
	valid := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	unknown := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	long := strings.Repeat("x", 300)

	tests := []struct {
		name  string
		query string
		vars  map[string]any
		code  string
	}{
		{"malformed email", registerQ, map[string]any{"e": "not-an-email", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"email with display name", registerQ, map[string]any{"e": "Bob <bob@example.com>", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"email without domain dot", registerQ, map[string]any{"e": "bob@localhost", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"empty email", registerQ, map[string]any{"e": "", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"oversized email", registerQ, map[string]any{"e": long + "@example.com", "p": "long enough pw"}, "BAD_USER_INPUT"},
		{"password of 7", registerQ, map[string]any{"e": "a@example.com", "p": "1234567"}, "BAD_USER_INPUT"},
		{"password of 257", registerQ, map[string]any{"e": "a@example.com", "p": strings.Repeat("p", 257)}, "BAD_USER_INPUT"},
		{"empty token", verifyQ, map[string]any{"t": ""}, "BAD_USER_INPUT"},
		{"oversized token", verifyQ, map[string]any{"t": strings.Repeat("A", 5000)}, "BAD_USER_INPUT"},
		{"unknown token", verifyQ, map[string]any{"t": unknown}, "INVALID_TOKEN"},
		{"malformed token", verifyQ, map[string]any{"t": "not a token!"}, "INVALID_TOKEN"},
		{"watch token as verification token", verifyQ, map[string]any{"t": watch}, "INVALID_TOKEN"},
		{"verification token as watch token", statusQ, map[string]any{"w": valid}, "INVALID_TOKEN"},
		{"unknown watch token", statusQ, map[string]any{"w": unknown}, "INVALID_TOKEN"},
		{"empty watch token", statusQ, map[string]any{"w": ""}, "BAD_USER_INPUT"},
		{"resend malformed email", resendQ, map[string]any{"e": "@@"}, "BAD_USER_INPUT"},
		{"parse error", "mutation {", nil, "GRAPHQL_PARSE_FAILED"},
		{"unknown field", "{ nope }", nil, "GRAPHQL_VALIDATION_FAILED"},
		{"missing variable", verifyQ, nil, "GRAPHQL_VALIDATION_FAILED"},
		{"too many mutations", `mutation{a:resendVerificationEmail(email:"a@b.co") b:resendVerificationEmail(email:"a@b.co") c:resendVerificationEmail(email:"a@b.co") d:resendVerificationEmail(email:"a@b.co") e:resendVerificationEmail(email:"a@b.co") f:resendVerificationEmail(email:"a@b.co")}`, nil, "BAD_USER_INPUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.gql(t, tt.query, tt.vars)
			require.Equal(t, tt.code, r.code(), "errors: %+v", r.Errors)
			require.NotContains(t, strings.ToLower(r.Errors[0].Message), "sql")
		})
	}

	t.Run("rate limited", func(t *testing.T) {
		r := s.gql(t, resendQ, map[string]any{"e": "linus@example.com"})
		require.Equal(t, "RATE_LIMITED", r.code())
		require.EqualValues(t, 60, r.Errors[0].Extensions["retryAfterSeconds"])
	})

	t.Run("oversized body", func(t *testing.T) {
		r := s.post(t, []byte(`{"query":"`+strings.Repeat("x", 100<<10)+`"}`))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})

	t.Run("not JSON", func(t *testing.T) {
		r := s.post(t, []byte(`{"query":`))
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Equal(t, "BAD_USER_INPUT", r.code())
	})

	t.Run("subscription with a bad watch token", func(t *testing.T) {
		w := s.subscribe(t, transportWS, unknown)
		w.expectError("INVALID_TOKEN")
	})

	// Last: moves the clock past the token's lifetime.
	t.Run("expired token", func(t *testing.T) {
		s.clock.Advance(time.Hour + time.Second)
		r := s.gql(t, verifyQ, map[string]any{"t": valid})
		require.Equal(t, "TOKEN_EXPIRED", r.code())
		r = s.gql(t, statusQ, map[string]any{"w": watch})
		require.Equal(t, "INVALID_TOKEN", r.code(), "an expired watch token")
	})
}

// TestResendCooldown: one email per inbox (address up to case and +tag) per
// RESEND_COOLDOWN, the registration email included, registered or not;
// RATE_LIMITED says when.
func TestResendCooldown(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"RESEND_COOLDOWN": "90s"}})
	s.clock.Freeze() // the remaining times below are exact
	s.register(t, "ken@example.com")
	first := tokenFrom(t, s.sink.Next(t, 30*time.Second))

	steps := []struct {
		advance   time.Duration
		email     string
		code      string
		retry     float64
		wantEmail bool
	}{
		{0, "ken@example.com", "RATE_LIMITED", 90, false},
		{30 * time.Second, "KEN@example.com", "RATE_LIMITED", 60, false},
		{60 * time.Second, "ken@example.com", "", 0, true},
		{time.Second, "ken@example.com", "RATE_LIMITED", 89, false},
		// Another spelling of the same inbox shares its cooldown.
		{0, "Ken+promo@example.com", "RATE_LIMITED", 89, false},
		// An unknown address answers true, sends nothing, and is limited too.
		{0, "nobody@example.com", "", 0, false},
		{0, "nobody@example.com", "RATE_LIMITED", 90, false},
	}
	for i, st := range steps {
		s.clock.Advance(st.advance)
		r := s.gql(t, resendQ, map[string]any{"e": st.email})
		require.Equal(t, st.code, r.code(), "step %d: %+v", i, r.Errors)
		if st.code == "RATE_LIMITED" {
			require.EqualValues(t, st.retry, r.Errors[0].Extensions["retryAfterSeconds"], "step %d", i)
		} else {
			require.Equal(t, true, r.Data["resendVerificationEmail"])
		}
		if st.wantEmail {
			m := s.sink.Next(t, 30*time.Second)
			require.Equal(t, []string{"ken@example.com"}, m.To)
			require.NotEqual(t, first, tokenFrom(t, m))
		}
	}
	// Every email that went out was expected: no unexpected one arrives
	// before this probe, sent after all of the steps.
	s.clock.Advance(2 * time.Minute)
	require.Empty(t, s.gql(t, resendQ, map[string]any{"e": "ken@example.com"}).Errors)
	m := s.sink.Next(t, 30*time.Second)
	tokenFrom(t, m)
	require.Empty(t, s.sink.Pending())
}

// TestClientRateLimit: one client gets CLIENT_RATE_LIMIT register and
// resend calls a minute, whatever addresses it uses, and VERIFY_RATE_LIMIT
// verifyEmail calls besides.
func TestClientRateLimit(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"CLIENT_RATE_LIMIT": "3", "VERIFY_RATE_LIMIT": "2"}})
	s.register(t, "one@example.com")
	require.Empty(t, s.gql(t, resendQ, map[string]any{"e": "two@example.com"}).Errors)
	s.register(t, "three@example.com")
	for _, r := range []gqlResponse{
		s.gql(t, registerQ, map[string]any{"e": "four@example.com", "p": "long enough pw"}),
		s.gql(t, resendQ, map[string]any{"e": "five@example.com"}),
	} {
		require.Equal(t, "RATE_LIMITED", r.code())
		// A token every 20 s at 3 a minute, less what refilled while the
		// calls above ran.
		retry := r.Errors[0].Extensions["retryAfterSeconds"].(float64)
		require.True(t, retry >= 1 && retry <= 20, "retryAfterSeconds %v", retry)
	}
	// Reading status is not limited.
	r := s.gql(t, statusQ, map[string]any{"w": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	require.Equal(t, "INVALID_TOKEN", r.code())
	// verifyEmail has a budget of its own.
	for range 2 {
		require.Equal(t, "INVALID_TOKEN", s.gql(t, verifyQ, map[string]any{"t": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}).code())
	}
	r = s.gql(t, verifyQ, map[string]any{"t": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	require.Equal(t, "RATE_LIMITED", r.code())
	retry := r.Errors[0].Extensions["retryAfterSeconds"].(float64)
	require.True(t, retry >= 1 && retry <= 30, "retryAfterSeconds %v", retry)

	s.clock.Advance(20 * time.Second)
	s.register(t, "four@example.com")
}

// TestRepeatedRegistration: the same answer as a fresh one; the owner gets a
// notice, one inside the cooldown when the cooldown ends; the watch token
// never reports VERIFIED.
func TestRepeatedRegistration(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	real := s.register(t, "barbara@example.com")
	tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	s.clock.Advance(2 * time.Minute) // past the cooldown, so the notice goes out

	decoy := s.register(t, "Barbara@Example.com")
	require.NotEqual(t, real, decoy)
	notice := s.sink.Next(t, 30*time.Second)
	require.Equal(t, []string{"barbara@example.com"}, notice.To)
	require.NotContains(t, notice.Text, "verify-email?token=", "a notice, not a second link")
	require.Contains(t, notice.Text, "already has an account")

	// A third and a fourth attempt inside the cooldown answer the same;
	// their notice waits for the cooldown (one, the newest).
	require.NotEmpty(t, s.register(t, "barbara@example.com"))
	require.NotEmpty(t, s.register(t, "barbara@example.com"))

	dw := s.subscribe(t, transportWS, decoy)
	dw.expect("UNVERIFIED")
	rw := s.subscribe(t, transportWS, real)
	rw.expect("UNVERIFIED")
	require.Empty(t, s.gql(t, verifyQ, map[string]any{"t": tok}).Errors)
	rw.expect("VERIFIED")
	rw.expectComplete()

	require.Equal(t, "UNVERIFIED", s.status(t, decoy))
	dw.expectQuiet()
	require.Empty(t, s.sink.Pending(), "the notice waits for the cooldown")

	s.clock.Advance(time.Minute)
	notice = s.sink.Next(t, 30*time.Second)
	require.Equal(t, []string{"barbara@example.com"}, notice.To)
	require.Contains(t, notice.Text, "already has an account")
	// One notice for the two attempts: nothing else arrives before a probe
	// mail queued after it.
	s.register(t, "probe@example.com")
	require.Equal(t, []string{"probe@example.com"}, s.sink.Next(t, 30*time.Second).To)
	require.Empty(t, s.sink.Pending())
}

// TestBrokerOutage: with the RabbitMQ connection cut, registrations still
// succeed; their events wait in the outbox and every email goes out once
// the broker is reachable again, with no restart.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	url := rabbitmqtest.URL(t)
	proxy := tcpproxy.Start(t, rabbitmqtest.Host(url))
	opts := rabbitOptions(t, url)
	opts.amqpURL = rabbitmqtest.Via(url, proxy.Addr())
	s := startService(t, opts)
	s.waitReady(t, http.StatusOK)

	proxy.Cut()
	s.waitReady(t, http.StatusServiceUnavailable)
	const n = 20
	for i := range n {
		s.register(t, fmt.Sprintf("outage-%02d@example.com", i))
	}
	require.Equal(t, float64(n), s.metric(t, "verifier_outbox_backlog"), "events wait in the outbox")
	require.Empty(t, s.sink.Pending())

	proxy.Restore()
	mails := s.sink.Collect(t, n, 60*time.Second)
	got := map[string]bool{}
	for _, m := range mails {
		tokenFrom(t, m)
		got[m.To[0]] = true
	}
	require.Len(t, got, n, "every registration got its email")
	s.waitMetric(t, "verifier_outbox_backlog", 0)
	s.waitReady(t, http.StatusOK)
}

func (s *svc) waitReady(t testing.TB, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := s.http.Get(s.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == want
	}, 30*time.Second, 20*time.Millisecond, "/readyz never answered %d", want)
}

// TestSMTPOutage: while the SMTP server refuses with 4xx, mail waits and is
// retried; nothing is lost. A 5xx is dead-lettered, not retried forever,
// and does not hold up other mail.
func TestSMTPOutage(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		opts func(t *testing.T) svcOptions
	}{
		{"in-process broker", func(*testing.T) svcOptions { return svcOptions{} }},
		{"RabbitMQ", func(t *testing.T) svcOptions { return rabbitOptions(t, rabbitmqtest.URL(t)) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := startService(t, b.opts(t))
			s.sink.Refuse(func(string) error { return mailtest.TempFail })
			s.register(t, "temp@example.com")
			require.Eventually(t, func() bool {
				return s.metric(t, `verifier_email_retries_total{kind="verification"}`) >= 2
			}, 30*time.Second, 20*time.Millisecond)
			require.Empty(t, s.sink.Pending())
			s.sink.Refuse(func(to string) error {
				if strings.HasPrefix(to, "gone@") {
					return mailtest.PermFail
				}
				return nil
			})
			m := s.sink.Next(t, 60*time.Second)
			require.Equal(t, []string{"temp@example.com"}, m.To)

			s.register(t, "gone@example.com")
			s.register(t, "after@example.com")
			m = s.sink.Next(t, 30*time.Second)
			require.Equal(t, []string{"after@example.com"}, m.To)
			require.Eventually(t, func() bool {
				return s.metric(t, `verifier_emails_failed_total{kind="verification"}`) == 1
			}, 30*time.Second, 20*time.Millisecond)
		})
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
	require.Greater(t, runtime.NumGoroutine(), before+200)
	for _, w := range subs {
		w.c.Close()
	}
	s.waitMetric(t, "verifier_subscriptions_open", 0)
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before }, 30*time.Second, 20*time.Millisecond,
		"goroutines: %d before, %d after", before, runtime.NumGoroutine())
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

func TestHTTPSurface(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{devOutbox: true, env: map[string]string{"ALLOWED_ORIGINS": "https://app.example.com"}})
	s.register(t, "dev@example.com")

	tests := []struct {
		method, path string
		header       map[string]string
		code         int
		contains     string
	}{
		{"GET", "/healthz", nil, 200, "ok"},
		{"GET", "/readyz", nil, 200, `"database":"ok"`},
		{"GET", "/metrics", nil, 200, "verifier_http_requests_total"},
		{"GET", "/playground", nil, 200, "graphiql"},
		{"GET", "/", nil, 200, `<main id="app"`},
		{"GET", "/verify-email?token=x", nil, 200, `<main id="app"`},
		{"GET", "/query", nil, 405, "BAD_USER_INPUT"},
		{"OPTIONS", "/query", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, 204, ""},
		{"GET", "/nope", nil, 404, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, s.url(tt.path), nil)
		require.NoError(t, err)
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		resp, err := s.http.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, tt.code, resp.StatusCode, "%s %s: %s", tt.method, tt.path, body)
		require.Contains(t, strings.ToLower(string(body)), strings.ToLower(tt.contains), tt.path)
		if tt.method == "OPTIONS" {
			require.Equal(t, "https://app.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
			require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		}
	}

	// The dev outbox lists the mail with a clickable link.
	require.Eventually(t, func() bool {
		resp, err := s.http.Get(s.url("/dev/mail"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && regexp.MustCompile(`<a href="http://verifier.test/verify-email\?token=[A-Za-z0-9_-]{43}">`).Match(body)
	}, 30*time.Second, 20*time.Millisecond)
}

// TestDevMailOffWithSMTP: /dev/mail exists only while the dev outbox is on.
func TestDevMailOffWithSMTP(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	resp, err := s.http.Get(s.url("/dev/mail"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}
