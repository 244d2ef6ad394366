package graph

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

// okAccounts answers every call successfully.
// okAccounts answers the calls this test makes; the Step 5 ones it never
// makes are left to the embedded nil interface.
type okAccounts struct{ Accounts }

func (okAccounts) Register(context.Context, account.RegisterInput) (string, error) { return "w", nil }
func (okAccounts) VerifyEmail(context.Context, string) (account.Verification, error) {
	return account.Verification{Email: "a@b.co", VerifiedAt: time.Unix(0, 0)}, nil
}
func (okAccounts) Resend(context.Context, string) error { return nil }
func (okAccounts) Status(context.Context, string) (status.Status, error) {
	return status.Unverified, nil
}
func (okAccounts) Watch(context.Context, string, bool, func()) (<-chan *status.Change, error) {
	return nil, nil
}

// limitedClient serves the schema with per-client limits of register and
// resend (perMinute) and of verifyEmail (verifyPerMinute), keyed by the
// request's peer address as the HTTP layer does, on a frozen clock.
func limitedClient(perMinute, verifyPerMinute int) *client.Client {
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	h := NewHandler(&Resolver{
		Accounts:    okAccounts{},
		ClientLimit: ratelimit.New(perMinute, now),
		VerifyLimit: ratelimit.New(verifyPerMinute, now),
	}, HandlerOptions{
		Log:       testkit.Discard(),
		Websocket: gqlws.Transport{},
	})
	return client.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(ratelimit.WithClient(r.Context(), ratelimit.ClientAddress(r, 0))))
	}))
}

func from(addr string) client.Option {
	return func(r *client.Request) { r.HTTP.RemoteAddr = addr }
}

// call runs query and returns the retryAfterSeconds of each RATE_LIMITED
// error, keyed by path.
func call(t *testing.T, c *client.Client, query, addr string) map[string]float64 {
	t.Helper()
	var resp map[string]any
	err := c.Post(query, &resp, from(addr))
	limited := map[string]float64{}
	if err == nil {
		return limited
	}
	var raw client.RawJsonError
	require.ErrorAs(t, err, &raw)
	var errs []struct {
		Path       []any
		Extensions map[string]any
	}
	require.NoError(t, json.Unmarshal(raw.RawMessage, &errs))
	for _, e := range errs {
		require.Equal(t, "RATE_LIMITED", e.Extensions["code"], "%s", raw.RawMessage)
		limited[e.Path[0].(string)] = e.Extensions["retryAfterSeconds"].(float64)
	}
	return limited
}

const (
	registerM = `mutation{register(input:{email:"a@b.co",password:"12345678"}){watchToken}}`
	resendM   = `mutation{resendVerificationEmail(email:"a@b.co")}`
	verifyM   = `mutation{verifyEmail(token:"t"){status}}`
)

// Every mutation is limited per client; verifyEmail has its own, more
// generous budget; IPv6 clients count per /64.
func TestClientLimitsEveryMutation(t *testing.T) {
	t.Parallel()
	c := limitedClient(2, 3)
	const (
		host1 = "[2001:db8:1:2::1]:5000"
		host2 = "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5001" // same /64
		other = "[2001:db8:1:3::1]:5002"                  // next /64
	)
	require.Empty(t, call(t, c, registerM, host1))
	require.Empty(t, call(t, c, resendM, host2))
	require.Equal(t, map[string]float64{"register": 30}, call(t, c, registerM, host1), "2 a minute: one every 30 s")
	require.Equal(t, map[string]float64{"resendVerificationEmail": 30}, call(t, c, resendM, host2))
	require.Empty(t, call(t, c, registerM, other))

	for range 3 {
		require.Empty(t, call(t, c, verifyM, host1), "verifyEmail has its own budget")
	}
	require.Equal(t, map[string]float64{"verifyEmail": 20}, call(t, c, verifyM, host2))
	require.Empty(t, call(t, c, verifyM, "198.51.100.7:4000"))

	require.Empty(t, call(t, c, `query{verificationStatus(watchToken:"w")}`, host1), "queries are not limited")
}

// Aliases in one request each spend a token.
func TestClientLimitCountsAliases(t *testing.T) {
	t.Parallel()
	c := limitedClient(2, 0)
	got := call(t, c, `mutation{a:resendVerificationEmail(email:"a@b.co") b:resendVerificationEmail(email:"a@b.co") c:resendVerificationEmail(email:"a@b.co")}`, "203.0.113.5:1")
	require.Equal(t, map[string]float64{"c": 30}, got)
}
