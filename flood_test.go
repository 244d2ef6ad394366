package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/account"
)

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
		req, err := http.NewRequest(http.MethodPost, s.url("/query"), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		// The first entry is the client's own claim, ignored; the trusted
		// proxy appended the second.
		req.Header.Set("X-Forwarded-For", "192.0.2.66, "+proxySaw)
		resp, err := s.http.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out gqlResponse
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		return out
	}
	require.Empty(t, resend("2001:db8:7:7::1").Errors)
	require.Empty(t, resend("2001:db8:7:7::2").Errors)
	r := resend("2001:db8:7:7:abcd::3")
	require.Equal(t, "RATE_LIMITED", r.code(), "a third address in the same /64")
	require.EqualValues(t, 30, r.Errors[0].Extensions["retryAfterSeconds"])
	require.Empty(t, resend("2001:db8:7:8::1").Errors, "another /64 is another client")
}
