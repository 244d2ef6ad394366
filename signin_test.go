package main

// Step 5 through the public API: signIn, the bearer token, changeEmail and
// confirmEmailChange, and UNVERIFIED_TTL.

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
)

// signedIn registers email, confirms it and signs in: a session token.
func (s *svc) signedIn(t *testing.T, email string) string {
	t.Helper()
	s.registerAs(t, email, "correct horse battery", nil)
	tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	require.Empty(t, s.gql(t, verifyFullQ, map[string]any{"t": tok}).Errors)
	r := s.gql(t, signInQ, map[string]any{"e": email, "p": "correct horse battery"})
	require.Empty(t, r.Errors)
	p := r.Data["signIn"].(map[string]any)
	require.NotEmpty(t, p["expiresAt"])
	return p["token"].(string)
}

// TestSignIn: unknown address and wrong password answer alike; the right
// password of an unverified address learns EMAIL_NOT_VERIFIED; a verified
// one gets a token; repeated failures are RATE_LIMITED; a receipt is no
// bearer token.
func TestSignIn(t *testing.T) {
	t.Parallel()
	eachStack(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		session := s.signedIn(t, "in@example.com")
		s.registerAs(t, "pending@example.com", "correct horse battery", nil)

		for _, tt := range []struct{ email, password, code string }{
			{"nobody@example.com", "correct horse battery", "INVALID_CREDENTIALS"},
			{"in@example.com", "wrong horse battery", "INVALID_CREDENTIALS"},
			{"pending@example.com", "wrong horse battery", "INVALID_CREDENTIALS"},
			{"pending@example.com", "correct horse battery", "EMAIL_NOT_VERIFIED"},
		} {
			r := s.gql(t, signInQ, map[string]any{"e": tt.email, "p": tt.password})
			require.Equal(t, tt.code, r.code(), "%s / %s", tt.email, tt.password)
		}
		unknown := s.gql(t, signInQ, map[string]any{"e": "nobody@example.com", "p": "x"})
		wrong := s.gql(t, signInQ, map[string]any{"e": "in@example.com", "p": "x"})
		require.Equal(t, unknown.Errors, wrong.Errors, "the same answer")

		// The session token is a bearer token; a receipt is not.
		require.Empty(t, s.gqlAs(t, session, changeQ, map[string]any{"e": "in2@example.com"}).Errors)
		tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))
		receipt := payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": tok}), "verifyEmail").Receipt
		require.Equal(t, "UNAUTHENTICATED", s.gqlAs(t, receipt, changeQ, map[string]any{"e": "x@example.com"}).code(), "a receipt as bearer")
		require.Equal(t, "UNAUTHENTICATED", s.gql(t, changeQ, map[string]any{"e": "x@example.com"}).code(), "no bearer")
		require.Equal(t, "UNAUTHENTICATED", s.gqlAs(t, "not-a-jwt", confirmQ, map[string]any{"c": "123456"}).code())

		// Ten failures for one address in an hour, then RATE_LIMITED for it,
		// even with the right password.
		for range 10 {
			require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": "in2@example.com", "p": "guess"}).code())
		}
		r := s.gql(t, signInQ, map[string]any{"e": "in2@example.com", "p": "correct horse battery"})
		require.Equal(t, "RATE_LIMITED", r.code())
		require.Positive(t, r.Errors[0].Extensions["retryAfterSeconds"])
	})
}

// TestTokenClaims: a receipt's and a signIn token's exp - iat are
// RECEIPT_TTL and SESSION_TTL exactly, expiresAt is the token's exp, and
// both carry aud = JWT_AUDIENCE when it is set, as the contract lists the
// claims; such a token is still a bearer token for changeEmail.
func TestTokenClaims(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{
		"RECEIPT_TTL": "20m", "SESSION_TTL": "2h", "JWT_AUDIENCE": "https://app.example",
	}})
	s.registerAs(t, "claims@example.com", "correct horse battery", nil)
	tok := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	receipt := payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": tok}), "verifyEmail").Receipt
	c := s.verifyReceipt(t, receipt, "claims@example.com")
	require.Equal(t, "https://app.example", c["aud"])
	require.EqualValues(t, 20*60, c["exp"].(float64)-c["iat"].(float64), "exp - iat = RECEIPT_TTL")
	require.Positive(t, c["verified_at"])

	r := s.gql(t, signInQ, map[string]any{"e": "claims@example.com", "p": "correct horse battery"})
	require.Empty(t, r.Errors)
	p := r.Data["signIn"].(map[string]any)
	session := p["token"].(string)
	parsed, err := jwt.ParseSigned(session, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	sc := map[string]any{}
	require.NoError(t, parsed.UnsafeClaimsWithoutVerification(&sc))
	require.Equal(t, "session", sc["token_use"])
	require.Equal(t, "https://app.example", sc["aud"])
	require.Equal(t, c["sub"], sc["sub"])
	require.EqualValues(t, 2*60*60, sc["exp"].(float64)-sc["iat"].(float64), "exp - iat = SESSION_TTL")
	expiresAt, err := time.Parse(time.RFC3339Nano, p["expiresAt"].(string))
	require.NoError(t, err)
	require.Equal(t, time.Unix(int64(sc["exp"].(float64)), 0).UTC(), expiresAt.UTC(), "expiresAt is the token's exp")
	require.Empty(t, s.gqlAs(t, session, changeQ, map[string]any{"e": "claims2@example.com"}).Errors)
}

// TestChangeEmail: link and code to the new address and a notice to the
// old; confirming by code (with the session) or by link moves the account
// and answers a receipt for the new address. A taken address answers the
// same; its owner gets the notice.
func TestChangeEmail(t *testing.T) {
	t.Parallel()
	eachStack(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		session := s.signedIn(t, "before@example.com")
		s.signedIn(t, "taken@example.com")
		s.clock.Advance(2 * time.Minute) // past both addresses' cooldowns

		r := s.gqlAs(t, session, changeQ, map[string]any{"e": "after@example.com"})
		require.Empty(t, r.Errors)
		require.Equal(t, true, r.Data["changeEmail"])
		mails := s.sink.Collect(t, 2, 30*time.Second)
		byTo := map[string]string{}
		var link, code string
		for _, m := range mails {
			byTo[m.To[0]] = m.Text
			if m.To[0] == "after@example.com" {
				link, code = tokenFrom(t, m), codeFrom(t, m)
			}
		}
		require.Contains(t, byTo["before@example.com"], "a…@example.com")
		require.Contains(t, byTo["before@example.com"], "If this wasn't you")

		p := payloadOf(t, s.gqlAs(t, session, confirmQ, map[string]any{"c": code}), "confirmEmailChange")
		require.Equal(t, "after@example.com", p.Email)
		require.Equal(t, "VERIFIED", p.Status)
		s.verifyReceipt(t, p.Receipt, "after@example.com")
		p = payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": link}), "verifyEmail")
		require.True(t, p.AlreadyVerified, "the link of a confirmed change: already")
		require.Empty(t, s.gql(t, signInQ, map[string]any{"e": "after@example.com", "p": "correct horse battery"}).Errors)
		require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": "before@example.com", "p": "correct horse battery"}).code())

		// A taken address: the same answer, the owner is told, and so is
		// the requester's own address.
		s.clock.Advance(2 * time.Minute)
		r = s.gqlAs(t, session, changeQ, map[string]any{"e": "taken@example.com"})
		require.Empty(t, r.Errors)
		require.Equal(t, true, r.Data["changeEmail"])
		byTo = map[string]string{}
		for _, m := range s.sink.Collect(t, 2, 30*time.Second) {
			byTo[m.To[0]] = m.Text
		}
		require.Contains(t, byTo["taken@example.com"], "already has an account")
		require.NotContains(t, byTo["taken@example.com"], "verify-email?token=")
		require.Contains(t, byTo["after@example.com"], "t…@example.com")
	})
}

// TestChangeEmailByLink: the link alone confirms a change too, and an
// UNVERIFIED account holding the new address is deleted then.
func TestChangeEmailByLink(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	session := s.signedIn(t, "mover@example.com")
	squatter := s.registerAs(t, "wanted@example.com", "squatter password", nil)
	s.sink.Next(t, 30*time.Second)
	s.clock.Advance(2 * time.Minute)
	require.Empty(t, s.gqlAs(t, session, changeQ, map[string]any{"e": "wanted@example.com"}).Errors)
	var link string
	for _, m := range s.sink.Collect(t, 2, 30*time.Second) {
		if m.To[0] == "wanted@example.com" {
			link = tokenFrom(t, m)
		}
	}
	p := payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": link}), "verifyEmail")
	require.Equal(t, "wanted@example.com", p.Email)
	require.False(t, p.AlreadyVerified)
	require.Equal(t, "INVALID_TOKEN", s.gql(t, statusQ, map[string]any{"w": squatter}).code(), "the squatter's account is gone")
	require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": "wanted@example.com", "p": "squatter password"}).code())
	require.Empty(t, s.gql(t, signInQ, map[string]any{"e": "wanted@example.com", "p": "correct horse battery"}).Errors)
}

// TestUnverifiedTTL: the janitor deletes an unconfirmed account
// UNVERIFIED_TTL after its last registration and frees its address.
func TestUnverifiedTTL(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"UNVERIFIED_TTL": "1h"}})
	watch := s.registerAs(t, "gone@example.com", "correct horse battery", nil)
	link := tokenFrom(t, s.sink.Next(t, 30*time.Second))
	s.clock.Advance(2 * time.Hour)
	s.runJanitor(t)
	require.Equal(t, "INVALID_TOKEN", s.gql(t, verifyFullQ, map[string]any{"t": link}).code())
	require.Equal(t, "INVALID_TOKEN", s.gql(t, statusQ, map[string]any{"w": watch}).code())
	require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": "gone@example.com", "p": "correct horse battery"}).code())
	// Free: a new registration is a new account with a working link.
	s.registerAs(t, "gone@example.com", "another password", nil)
	require.Equal(t, "VERIFIED", payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": tokenFrom(t, s.sink.Next(t, 30*time.Second))}), "verifyEmail").Status)
}
