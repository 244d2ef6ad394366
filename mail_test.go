package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/deadletter"
	"github.com/verifier/verifier/internal/mail/mailtest"
)

// TestDeadLetterReplay: an email the server refused for good is a dead
// letter in the database; once the cause is fixed, an operator lists it and
// replays it with `verifier dead-letters` while the service runs, and it
// arrives with a working link.
func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	s := startService(t, svcOptions{env: map[string]string{"DATABASE_URL": dbURL}})
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
	// service's clock: no need to wait out the 30 s.
	s.clock.Advance(time.Minute)
	require.Equal(t, []string{"held@example.com"}, s.sink.Next(t, 30*time.Second).To)
	s.waitMetric(t, "verifier_mail_server_problem", 0)
	s.waitReady(t, http.StatusOK)
}
