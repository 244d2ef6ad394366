package main

// The mail path: SMTP and broker outages lose nothing, refused mail is a
// dead letter an operator replays, and a mail server problem shows.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/broker/rabbitmq/rabbitmqtest"
	"github.com/verifier/verifier/internal/deadletter"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

// TestSMTPOutage: while the SMTP server refuses with 4xx, mail waits and is
// retried; nothing is lost. A 5xx is dead-lettered, not retried forever,
// and does not hold up other mail.
func TestSMTPOutage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		s.sink.Refuse(func(string) error { return mailtest.TempFail })
		s.register(t, "temp@example.com")
		testkit.WaitUntil(t, s.settled, func() bool {
			return s.metric(t, `verifier_email_retries_total{kind="verification"}`) >= 2
		}, "two retries")
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
		s.waitMetric(t, `verifier_emails_failed_total{kind="verification"}`, 1)
	})
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
	require.Equal(t, float64(2*n), s.metric(t, "verifier_outbox_backlog"), "events wait in the outbox (each its email's and its public registered event)")
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

// TestDeadLetterReplay: an email the server refused for good is a dead
// letter in the database; once the cause is fixed, an operator lists it and
// replays it with `verifier dead-letters` while the service runs, and it
// arrives with a working link.
func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		dbURL := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
		opts.env = map[string]string{"DATABASE_URL": dbURL}
		s := startService(t, opts)
		s.sink.Refuse(func(to string) error {
			if strings.HasPrefix(to, "gone@") {
				return mailtest.PermFail
			}
			return nil
		})
		watch := s.register(t, "gone@example.com")
		s.waitMetric(t, `verifier_email_deliveries{state="FAILED"}`, 1)
		require.Equal(t, 1.0, s.metric(t, `verifier_emails_failed_total{kind="verification"}`))
		require.Empty(t, s.sink.Pending())
		// Until the relay has settled the failed trip, a replay answers
		// "still being settled" (tested in internal/deadletter).
		s.waitMetric(t, "verifier_outbox_backlog", 0)

		command := func(args ...string) string {
			t.Helper()
			var out, errOut bytes.Buffer
			env := map[string]string{"DATABASE_URL": dbURL}
			status := deadletter.Main(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
			require.Zero(t, status, "%v: %s", args, errOut.String())
			return out.String()
		}
		list := command("list")
		require.Contains(t, list, "gone@example.com")
		require.Contains(t, list, "550 5.1.1 no such user")

		s.sink.Refuse(nil) // the mailbox exists now
		require.Equal(t, "replayed 1 dead letters\n", command("replay", "--all"))
		m := s.sink.Next(t, 30*time.Second)
		require.Equal(t, []string{"gone@example.com"}, m.To)
		r := s.gql(t, verifyQ, map[string]any{"t": tokenFrom(t, m)})
		require.Empty(t, r.Errors, "the replayed link works")
		require.Equal(t, "VERIFIED", s.status(t, watch))
		s.waitMetric(t, `verifier_email_deliveries{state="FAILED"}`, 0)
		require.NotContains(t, command("list"), "gone@example.com")
	})
}

// TestMailServerProblem: a server that refuses our sender (530 at MAIL
// FROM) holds mail back, never dead-letters it, and says so on /metrics
// until mail goes out again.
func TestMailServerProblem(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	s.sink.RefuseMail(func(string) error { return mailtest.AuthRequired })
	s.register(t, "held@example.com")
	s.waitMetric(t, "verifier_mail_server_problem", 1)
	s.waitMetric(t, `verifier_email_deliveries{state="DEFERRED"}`, 1)
	require.Zero(t, s.metric(t, `verifier_email_deliveries{state="FAILED"}`))

	s.sink.RefuseMail(nil)
	// The in-process broker's retry is the outbox row, due on the
	// service's clock: no need to wait out the 30 s. The clock moves a
	// minute at each of the relay's turns until the email is out, so it
	// does not matter which turn put the retry on the clock.
	var got []mailtest.Mail
	testkit.WaitUntil(t, s.settled, func() bool {
		if got = append(got, s.sink.Pending()...); len(got) > 0 {
			return true
		}
		s.clock.Advance(time.Minute)
		return false
	}, "the held email, once the server takes mail again")
	require.Len(t, got, 1)
	require.Equal(t, []string{"held@example.com"}, got[0].To)
	s.waitMetric(t, "verifier_mail_server_problem", 0)
	s.waitReady(t, http.StatusOK)
}

// Emails speak the registration's language end to end (GraphQL → outbox →
// broker → mailer → SMTP): German for de-AT, an operator's French
// template from TEMPLATES_DIR for fr-CA, English otherwise; the contract
// holds in each (a link line of its own, an HTML part).
func TestEmailsInTheRegistrationsLanguage(t *testing.T) {
	t.Parallel()
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "fr"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "fr", "verify.txt"),
			[]byte("{{define \"subject\"}}Vérifiez votre adresse{{end}}\nBonjour,\n{{.Link}}\n"), 0o644))
		opts.env = map[string]string{"TEMPLATES_DIR": dir}
		s := startService(t, opts)
		const q = `mutation($e:String!,$l:String){register(input:{email:$e,password:"correct horse battery",locale:$l}){watchToken}}`
		for _, tt := range []struct{ locale, subject, text, html string }{
			{"de-AT", "Bitte bestätige deine E-Mail-Adresse", "Hallo,", `<html lang="de">`},
			{"fr-CA", "Vérifiez votre adresse", "Bonjour,", `<html lang="en">`}, // verify.html: the built-in English one
			{"", "Verify your email address", "Hello,", `<html lang="en">`},
			// Well-formed, but no templates (pt-BR) or no such language
			// (zz): English, not a refused registration.
			{"pt-BR", "Verify your email address", "Hello,", `<html lang="en">`},
			{"zz", "Verify your email address", "Hello,", `<html lang="en">`},
			{"zz-AT", "Verify your email address", "Hello,", `<html lang="en">`},
			{"de-AT-foobar", "Bitte bestätige deine E-Mail-Adresse", "Hallo,", `<html lang="de">`},
		} {
			r := s.gql(t, q, map[string]any{"e": "lang-" + tt.locale + "@example.com", "l": tt.locale})
			require.Empty(t, r.Errors, tt.locale)
			m := s.sink.Next(t, 10*time.Second)
			require.Equal(t, tt.subject, m.Subject, tt.locale)
			require.True(t, strings.HasPrefix(m.Text, tt.text), m.Text)
			require.Contains(t, m.HTML, tt.html)
			require.NotNil(t, linkLine.FindStringSubmatch(m.Text), "the link on a line of its own:\n%s", m.Text)
		}
	})
}
