package main

// Registration and resend: repeated registrations, the resend cooldown,
// and the limits per client, per domain and in total.

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/account"
)

// TestRepeatedRegistration: a repeated registration of a VERIFIED address
// gets the same answer as a fresh one; the owner gets a notice, one inside
// the cooldown when the cooldown ends; the watch token never reports
// VERIFIED.
func TestRepeatedRegistration(t *testing.T) {
	t.Parallel()
	// The held-back notice is an outbox row due later: the relay brings it
	// out on either broker.
	eachBroker(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		real := s.register(t, "barbara@example.com")
		tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))
		rw := s.subscribe(t, transportWS, real)
		rw.expect("UNVERIFIED")
		require.Empty(t, s.gql(t, verifyQ, map[string]any{"t": tok}).Errors)
		rw.expect("VERIFIED")
		rw.expectComplete()
		s.clock.Advance(2 * time.Minute) // past the cooldown, so the notice goes out

		decoy := s.register(t, "Barbara@Example.com")
		require.NotEqual(t, real, decoy)
		notice := s.sink.Next(t, 30*time.Second)
		require.Equal(t, []string{"barbara@example.com"}, notice.To)
		require.NotContains(t, notice.Text, "verify-email?token=", "a notice, not a second link")
		require.Contains(t, notice.Text, "already has an account")

		// A third and a fourth attempt inside the cooldown answer the same;
		// their notice waits for the cooldown (one, the newest). Each
		// supersedes the one before, as for an UNVERIFIED address: an
		// earlier watch token answers INVALID_TOKEN either way.
		require.NotEmpty(t, s.register(t, "barbara@example.com"))
		latest := s.register(t, "barbara@example.com")
		require.NotEmpty(t, latest)
		require.Equal(t, "INVALID_TOKEN", s.gql(t, statusQ, map[string]any{"w": decoy}).code(), "superseded")

		dw := s.subscribe(t, transportWS, latest)
		dw.expect("UNVERIFIED")
		require.Equal(t, "UNVERIFIED", s.status(t, latest))
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
	})
}

// TestResendCooldown: one email per address (up to case) per
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
		// Another spelling of the inbox is another address, with a
		// cooldown of its own (unknown: true, nothing sent).
		{0, "Ken+promo@example.com", "", 0, false},
		{0, "ken+promo@example.com", "RATE_LIMITED", 90, false},
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

// TestClientLimitBehindProxy: behind TRUST_PROXY proxies the client is the
// address the proxy saw, and IPv6 clients count per /64.
func TestClientLimitBehindProxy(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"CLIENT_RATE_LIMIT": "2", "TRUST_PROXY": "1"}})
	s.clock.Freeze()
	n := 0
	resend := func(proxySaw string) gqlResponse {
		t.Helper()
		n++ // a new address each time: no cooldown in the way
		body, err := json.Marshal(map[string]any{"query": resendQ, "variables": map[string]any{"e": "x" + string(rune('a'+n)) + "@example.com"}})
		require.NoError(t, err)
		// The first entry is the client's own claim, ignored; the trusted
		// proxy appended the second.
		return s.postWith(t, body, http.Header{"X-Forwarded-For": {"192.0.2.66, " + proxySaw}})
	}
	require.Empty(t, resend("2001:db8:7:7::1").Errors)
	require.Empty(t, resend("2001:db8:7:7::2").Errors)
	r := resend("2001:db8:7:7:abcd::3")
	require.Equal(t, "RATE_LIMITED", r.code(), "a third address in the same /64")
	require.EqualValues(t, 30, r.Errors[0].Extensions["retryAfterSeconds"])
	require.Empty(t, resend("2001:db8:7:8::1").Errors, "another /64 is another client")
}

// TestEmailCaps: DOMAIN_EMAIL_LIMIT and GLOBAL_EMAIL_LIMIT bound the emails
// an hour; beyond them register and resend answer RATE_LIMITED until the
// hour ends, whatever the address.
func TestEmailCaps(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"DOMAIN_EMAIL_LIMIT": "2", "GLOBAL_EMAIL_LIMIT": "3"}})
	s.clock.Freeze()
	now := s.clock.Now()
	untilHour := float64(account.RetryAfterSeconds(now.Truncate(time.Hour).Add(time.Hour).Sub(now)))
	limited := func(r gqlResponse, why string) {
		t.Helper()
		require.Equal(t, "RATE_LIMITED", r.code(), "%s: %+v", why, r.Errors)
		require.Equal(t, untilHour, r.Errors[0].Extensions["retryAfterSeconds"], why)
	}

	s.register(t, "one@a.example")
	require.Empty(t, s.gql(t, resendQ, map[string]any{"e": "nobody@a.example"}).Errors)
	limited(s.gql(t, registerQ, map[string]any{"e": "three@a.example", "p": "long enough pw"}), "domain cap, register")
	limited(s.gql(t, resendQ, map[string]any{"e": "four@a.example"}), "domain cap, resend")
	s.register(t, "one@b.example")
	limited(s.gql(t, resendQ, map[string]any{"e": "two@c.example"}), "global cap")

	s.clock.Advance(time.Hour)
	s.register(t, "three@a.example")
	require.Len(t, s.sink.Collect(t, 3, 30*time.Second), 3)
}
