package main

// Step 5 through the public API: registrations that hold (pre-hijacking),
// the one-time code, receipts checked against the live JWKS, redirectTo.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/graph/graphtest"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit"
)

const (
	registerFullQ = `mutation($e:String!,$p:String!,$r:String,$l:String){register(input:{email:$e,password:$p,redirectTo:$r,locale:$l}){watchToken status}}`
	codeQ         = `mutation($w:String!,$c:String!){verifyEmailWithCode(watchToken:$w,code:$c){email status verifiedAt alreadyVerified receipt redirectTo}}`
	verifyFullQ   = `mutation($t:String!){verifyEmail(token:$t){email status verifiedAt alreadyVerified receipt redirectTo}}`
	watchFullQ    = `subscription($w:String!){verificationStatus(watchToken:$w){status at receipt redirectTo}}`
	signInQ       = `mutation($e:String!,$p:String!){signIn(email:$e,password:$p){token expiresAt}}`
	changeQ       = `mutation($e:String!){changeEmail(newEmail:$e)}`
	confirmQ      = `mutation($c:String!){confirmEmailChange(code:$c){email status verifiedAt alreadyVerified receipt redirectTo}}`
)

var codeLine = regexp.MustCompile(`(?m)^Your code: (\d{6})$`)

// codeFrom returns the one-time code of a verification email, shown in
// both parts.
func codeFrom(t testing.TB, m mailtest.Mail) string {
	t.Helper()
	match := codeLine.FindStringSubmatch(m.Text)
	require.NotNil(t, match, "text part shows the code:\n%s", m.Text)
	require.Contains(t, m.HTML, ">"+match[1]+"<", "HTML part shows the same code")
	return match[1]
}

// registerAs registers email with password and optional redirectTo.
func (s *svc) registerAs(t testing.TB, email, password string, redirectTo any) string {
	t.Helper()
	r := s.gql(t, registerFullQ, map[string]any{"e": email, "p": password, "r": redirectTo})
	require.Empty(t, r.Errors)
	return r.Data["register"].(map[string]any)["watchToken"].(string)
}

// gqlAs posts a GraphQL request with Authorization: Bearer token.
func (s *svc) gqlAs(t testing.TB, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	return s.postWith(t, body, http.Header{"Authorization": {"Bearer " + token}})
}

// verifyReceipt checks a receipt against the live /.well-known/jwks.json
// with go-jose, as an app's backend would, and returns its claims.
func (s *svc) verifyReceipt(t testing.TB, receipt, email string) map[string]any {
	t.Helper()
	resp, err := s.http.Get(s.url("/.well-known/jwks.json"))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var set jose.JSONWebKeySet
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	tok, err := jwt.ParseSigned(receipt, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	keys := set.Key(tok.Headers[0].KeyID)
	require.Len(t, keys, 1, "the receipt's kid is listed")
	var std jwt.Claims
	claims := map[string]any{}
	require.NoError(t, tok.Claims(keys[0].Key, &std, &claims))
	require.NoError(t, std.ValidateWithLeeway(jwt.Expected{Issuer: publicURL, Time: s.clock.Now()}, 0))
	require.Equal(t, "receipt", claims["token_use"])
	require.Equal(t, email, claims["email"])
	require.Equal(t, true, claims["email_verified"])
	return claims
}

// payload is a VerifyEmailPayload as JSON.
type payload struct {
	Email           string  `json:"email"`
	Status          string  `json:"status"`
	AlreadyVerified bool    `json:"alreadyVerified"`
	Receipt         string  `json:"receipt"`
	RedirectTo      *string `json:"redirectTo"`
}

func payloadOf(t testing.TB, r gqlResponse, field string) payload {
	t.Helper()
	require.Empty(t, r.Errors)
	raw, err := json.Marshal(r.Data[field])
	require.NoError(t, err)
	var p payload
	require.NoError(t, json.Unmarshal(raw, &p))
	return p
}

// statusEvent reads the next event of a watchFullQ subscription.
func (w *sub) statusEvent() (status string, receipt, redirectTo *string) {
	w.T.Helper()
	m := w.Next()
	require.Contains(w.T, []string{"next", "data"}, m.Type, "payload %s", m.Payload)
	var p struct {
		Data struct {
			VerificationStatus struct {
				Status     string
				Receipt    *string
				RedirectTo *string
			} `json:"verificationStatus"`
		} `json:"data"`
		Errors []gqlError `json:"errors"`
	}
	require.NoError(w.T, json.Unmarshal(m.Payload, &p))
	require.Empty(w.T, p.Errors)
	e := p.Data.VerificationStatus
	return e.Status, e.Receipt, e.RedirectTo
}

func (s *svc) subscribeFull(t testing.TB, watch string) *sub {
	t.Helper()
	w := &sub{graphtest.Connect(t, "ws://"+s.addr+"/query", transportWS)}
	w.Subscribe("1", watchFullQ, map[string]any{"w": watch})
	return w
}

// TestPreHijack: an attacker registers the owner's address with password
// A; the owner registers with B and confirms. Sign-in works with B only;
// the attacker's link, code and watch token answer INVALID_TOKEN, and the
// attacker's open subscription completes without VERIFIED.
func TestPreHijack(t *testing.T) {
	t.Parallel()
	eachStack(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		const addr = "owner@example.com"
		attackerWatch := s.registerAs(t, addr, "attacker password A", nil)
		m := s.sink.Next(t, 30*time.Second)
		attackerLink, attackerCode := tokenFrom(t, m), codeFrom(t, m)
		aw := s.subscribeFull(t, attackerWatch)
		st, _, _ := aw.statusEvent()
		require.Equal(t, "UNVERIFIED", st)

		s.clock.Advance(2 * time.Minute) // past the cooldown: the new email goes at once
		ownerWatch := s.registerAs(t, addr, "owner password B", nil)
		aw.expectComplete() // no VERIFIED, on every replica's hub
		m = s.sink.Next(t, 30*time.Second)
		ownerLink := tokenFrom(t, m)

		ow := s.subscribeFull(t, ownerWatch)
		st, _, _ = ow.statusEvent()
		require.Equal(t, "UNVERIFIED", st)
		p := payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": ownerLink}), "verifyEmail")
		require.Equal(t, "VERIFIED", p.Status)
		s.verifyReceipt(t, p.Receipt, addr)
		st, receipt, _ := ow.statusEvent()
		require.Equal(t, "VERIFIED", st)
		require.NotNil(t, receipt, "the owner's watcher gets a receipt")
		s.verifyReceipt(t, *receipt, addr)
		ow.expectComplete()

		require.Empty(t, s.gql(t, signInQ, map[string]any{"e": addr, "p": "owner password B"}).Errors)
		require.Equal(t, "INVALID_CREDENTIALS", s.gql(t, signInQ, map[string]any{"e": addr, "p": "attacker password A"}).code())
		require.Equal(t, "INVALID_TOKEN", s.gql(t, verifyFullQ, map[string]any{"t": attackerLink}).code())
		require.Equal(t, "INVALID_TOKEN", s.gql(t, codeQ, map[string]any{"w": attackerWatch, "c": attackerCode}).code())
		require.Equal(t, "INVALID_TOKEN", s.gql(t, statusQ, map[string]any{"w": attackerWatch}).code())
	})
}

// TestCode: the code from the email confirms with its watch token; wrong
// codes count down; a code of another registration is wrong here; an
// expired code is dead; the sixth try finds it dead; the link still works;
// the subscription's VERIFIED carries a receipt and redirectTo, also for a
// watcher that subscribes afterwards; a decoy's watcher never gets one.
func TestCode(t *testing.T) {
	t.Parallel()
	eachStack(t, func(t *testing.T, opts svcOptions) {
		s := startService(t, opts)
		redirect := publicURL + "/welcome?from=verifier"
		watch := s.registerAs(t, "coder@example.com", "correct horse battery", redirect)
		c := codeFrom(t, s.sink.Next(t, 30*time.Second))
		other := s.registerAs(t, "other@example.com", "correct horse battery", nil)
		otherMail := s.sink.Next(t, 30*time.Second)
		w := s.subscribeFull(t, watch)
		st, _, _ := w.statusEvent()
		require.Equal(t, "UNVERIFIED", st)

		wrong := "000000"
		if c == wrong {
			wrong = "000001"
		}
		for _, left := range []float64{4, 3} {
			r := s.gql(t, codeQ, map[string]any{"w": watch, "c": wrong})
			require.Equal(t, "INVALID_CODE", r.code())
			require.Equal(t, left, r.Errors[0].Extensions["attemptsLeft"])
		}
		r := s.gql(t, codeQ, map[string]any{"w": watch, "c": codeFrom(t, otherMail)})
		require.Equal(t, "INVALID_CODE", r.code(), "another registration's code")
		require.Equal(t, float64(2), r.Errors[0].Extensions["attemptsLeft"])
		require.Equal(t, "BAD_USER_INPUT", s.gql(t, codeQ, map[string]any{"w": watch, "c": "12 34"}).code())

		p := payloadOf(t, s.gql(t, codeQ, map[string]any{"w": watch, "c": c}), "verifyEmailWithCode")
		require.Equal(t, "VERIFIED", p.Status)
		require.Equal(t, &redirect, p.RedirectTo)
		claims := s.verifyReceipt(t, p.Receipt, "coder@example.com")
		require.NotEmpty(t, claims["sub"])

		st, receipt, to := w.statusEvent()
		require.Equal(t, "VERIFIED", st)
		require.Equal(t, &redirect, to)
		require.NotNil(t, receipt)
		s.verifyReceipt(t, *receipt, "coder@example.com")
		w.expectComplete()

		late := s.subscribeFull(t, watch)
		st, receipt, to = late.statusEvent()
		require.Equal(t, "VERIFIED", st)
		require.Equal(t, &redirect, to)
		require.NotNil(t, receipt, "a watcher after the verification gets a fresh receipt")
		s.verifyReceipt(t, *receipt, "coder@example.com")
		late.expectComplete()

		// The other registration: its code dies of age, its link lives on.
		s.clock.Advance(15 * time.Minute)
		r = s.gql(t, codeQ, map[string]any{"w": other, "c": codeFrom(t, otherMail)})
		require.Equal(t, "INVALID_CODE", r.code(), "expired")
		require.Equal(t, float64(0), r.Errors[0].Extensions["attemptsLeft"])
		p = payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": tokenFrom(t, otherMail)}), "verifyEmail")
		require.Equal(t, "VERIFIED", p.Status)
		require.Nil(t, p.RedirectTo)
		s.verifyReceipt(t, p.Receipt, "other@example.com")

		// A decoy (the address is verified now): UNVERIFIED, no receipt, ever.
		decoy := s.registerAs(t, "coder@example.com", "another password", nil)
		dw := s.subscribeFull(t, decoy)
		st, receipt, _ = dw.statusEvent()
		require.Equal(t, "UNVERIFIED", st)
		require.Nil(t, receipt)
		require.Equal(t, "INVALID_CODE", s.gql(t, codeQ, map[string]any{"w": decoy, "c": c}).code())
		dw.expectQuiet()
	})
}

// TestCodeTries: after five wrong tries the sixth, right or not, finds the
// code dead; the link still works. 50 parallel wrong tries on another
// registration are counted exactly five times.
func TestCodeTries(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{})
	watch := s.registerAs(t, "six@example.com", "correct horse battery", nil)
	m := s.sink.Next(t, 30*time.Second)
	c := codeFrom(t, m)
	wrong := "000000"
	if c == wrong {
		wrong = "000001"
	}
	for range 5 {
		require.Equal(t, "INVALID_CODE", s.gql(t, codeQ, map[string]any{"w": watch, "c": wrong}).code())
	}
	r := s.gql(t, codeQ, map[string]any{"w": watch, "c": c})
	require.Equal(t, "INVALID_CODE", r.code(), "the sixth try, right, is dead")
	require.Equal(t, float64(0), r.Errors[0].Extensions["attemptsLeft"])
	require.Equal(t, "VERIFIED", payloadOf(t, s.gql(t, verifyFullQ, map[string]any{"t": tokenFrom(t, m)}), "verifyEmail").Status, "the link still works")

	brute := s.registerAs(t, "brute@example.com", "correct horse battery", nil)
	c = codeFrom(t, s.sink.Next(t, 30*time.Second))
	wrong = "000000"
	if c == wrong {
		wrong = "000001"
	}
	var wg sync.WaitGroup
	lefts := make([]float64, 50)
	for i := range lefts {
		wg.Go(func() {
			r, err := s.gqlAside(codeQ, map[string]any{"w": brute, "c": wrong})
			assert(t, err == nil && r.code() == "INVALID_CODE", "try %d: %v %v", i, err, r.Errors)
			if err == nil && r.code() == "INVALID_CODE" {
				lefts[i] = r.Errors[0].Extensions["attemptsLeft"].(float64)
			}
		})
	}
	testkit.Wait(t, &wg, "the %d parallel tries' answers", len(lefts))
	// Every try after the fifth counted one answers 0; so at least 46 do.
	zero := 0
	for _, l := range lefts {
		if l == 0 {
			zero++
		}
	}
	require.GreaterOrEqual(t, zero, 46, "attemptsLeft %v", lefts)
	r = s.gql(t, codeQ, map[string]any{"w": brute, "c": c})
	require.Equal(t, float64(0), r.Errors[0].Extensions["attemptsLeft"], "five counted: the right code is dead too")
}

// TestRedirectTo: an origin other than PUBLIC_URL's and REDIRECT_ALLOWLIST's,
// a non-http(s) URL or one with user info answers BAD_USER_INPUT.
func TestRedirectTo(t *testing.T) {
	t.Parallel()
	s := startService(t, svcOptions{env: map[string]string{"REDIRECT_ALLOWLIST": "https://app.example.com, http://localhost:5173"}})
	for i, tt := range []struct {
		to string
		ok bool
	}{
		{publicURL + "/done", true},
		{"https://app.example.com/welcome?step=2", true},
		{"https://app.example.com/welcome#x", false}, // clients append #receipt=…
		{"https://APP.example.com:443/w", true},
		{"http://localhost:5173/", true},
		{"https://evil.example/", false},
		{"https://app.example.com.evil.example/", false},
		{"javascript:alert(1)", false},
		{"//app.example.com/x", false},
		{"https://user:pw@app.example.com/", false},
		{"http://app.example.com/", false},
	} {
		r := s.gql(t, registerFullQ, map[string]any{"e": fmt.Sprintf("r%d@example.com", i), "p": "correct horse battery", "r": tt.to})
		if tt.ok {
			require.Empty(t, r.Errors, tt.to)
		} else {
			require.Equal(t, "BAD_USER_INPUT", r.code(), tt.to)
		}
	}
	require.Equal(t, "BAD_USER_INPUT", s.gql(t, registerFullQ, map[string]any{"e": "l@example.com", "p": "correct horse battery", "l": "not a tag!"}).code())
	require.Empty(t, s.gql(t, registerFullQ, map[string]any{"e": "l@example.com", "p": "correct horse battery", "l": "de-CH"}).Errors, "unknown languages fall back to English")
}
