package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

const (
	issuer     = "https://verify.example.com"
	receiptTTL = 15 * time.Minute
	sessionTTL = time.Hour
)

type testBundle struct {
	url   string
	db    *ent.Client
	clock *testkit.Clock
}

// eachDB runs f once per database the service supports.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle)) {
	databasetest.Each(t, func(t *testing.T, url string) {
		b := &testBundle{url: url, clock: testkit.NewFrozenClock(time.Now().UTC().Truncate(time.Second))}
		b.db = b.open(t)
		f(t, b)
	})
}

// open opens the bundle's database once more, as another replica would.
func (b *testBundle) open(t *testing.T) *ent.Client {
	t.Helper()
	db, err := database.Open(context.Background(), b.url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db.Ent
}

// sealKey is the TOKEN_SEAL_KEY of the tests' signers.
var sealKey = bytes.Repeat([]byte{7}, 32)

func mustBox(key []byte) *seal.Box {
	b, err := seal.New(key)
	if err != nil {
		panic(err)
	}
	return b
}

func (b *testBundle) options(mods ...func(*Options)) Options {
	o := Options{
		DB: b.db, Issuer: issuer, ReceiptTTL: receiptTTL, SessionTTL: sessionTTL,
		Now: b.clock.Now, Log: testkit.Discard(), Seal: mustBox(sealKey),
	}
	for _, m := range mods {
		m(&o)
	}
	return o
}

func (b *testBundle) signer(t *testing.T, mods ...func(*Options)) *Signer {
	t.Helper()
	s, err := New(context.Background(), b.options(mods...))
	require.NoError(t, err)
	return s
}

func withAudience(aud string) func(*Options) { return func(o *Options) { o.Audience = aud } }

var ada = Claims{
	UserID:     uuid.MustParse("0b6f8d8e-7c2a-4f3e-9a51-3f1f2b0c9d11"),
	Email:      "ada@example.com",
	VerifiedAt: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
}

// fetchJWKS gets the JWKS over HTTP as an app would, checks its headers
// and that each key has exactly the public members, and parses it with
// go-jose.
func fetchJWKS(t *testing.T, s *Signer) jose.JSONWebKeySet {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/.well-known/jwks.json", s)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/.well-known/jwks.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "public, max-age=60", resp.Header.Get("Cache-Control"))

	var raw struct{ Keys []map[string]any }
	require.NoError(t, json.Unmarshal(body, &raw))
	for _, k := range raw.Keys {
		names := make([]string, 0, len(k))
		for n := range k {
			names = append(names, n)
		}
		require.ElementsMatch(t, []string{"kty", "crv", "x", "kid", "alg", "use"}, names, "only public members")
		require.Equal(t, "OKP", k["kty"])
		require.Equal(t, "Ed25519", k["crv"])
		require.Equal(t, "EdDSA", k["alg"])
		require.Equal(t, "sig", k["use"])
	}
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(body, &set))
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// verifyWithJWKS checks token as an app would, knowing only the JWKS:
// pick the key by kid, check the signature, and return the claims.
func verifyWithJWKS(t *testing.T, set jose.JSONWebKeySet, token string) (jose.Header, map[string]any) {
	t.Helper()
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	require.Len(t, tok.Headers, 1)
	h := tok.Headers[0]
	keys := set.Key(h.KeyID)
	require.Len(t, keys, 1, "the token's kid is listed once")
	require.True(t, keys[0].IsPublic())
	tp, err := keys[0].Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	require.Equal(t, base64.RawURLEncoding.EncodeToString(tp), h.KeyID, "kid is the RFC 7638 thumbprint")
	claims := map[string]any{}
	require.NoError(t, tok.Claims(keys[0], &claims))
	return h, claims
}

func TestReceiptVerifiesWithTheJWKS(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		for _, aud := range []string{"", "https://app.example.com"} {
			s := b.signer(t, withAudience(aud))
			receipt, err := s.Receipt(context.Background(), ada)
			require.NoError(t, err)

			h, c := verifyWithJWKS(t, fetchJWKS(t, s), receipt)
			require.Equal(t, "EdDSA", h.Algorithm)
			require.Equal(t, "JWT", h.ExtraHeaders[jose.HeaderType])
			iat := float64(b.clock.Now().Unix())
			want := map[string]any{
				"iss":            issuer,
				"sub":            ada.UserID.String(),
				"email":          ada.Email,
				"email_verified": true,
				"verified_at":    float64(ada.VerifiedAt.Unix()),
				"iat":            iat,
				"exp":            iat + receiptTTL.Seconds(),
				"token_use":      "receipt",
				"jti":            c["jti"],
			}
			if aud != "" {
				want["aud"] = aud
			}
			require.Equal(t, want, c, "audience %q", aud)
			require.NotEmpty(t, c["jti"])

			_, err = s.VerifySession(context.Background(), receipt)
			require.ErrorIs(t, err, ErrInvalid, "a receipt is never a credential")
			require.ErrorContains(t, err, "not a session token")
		}
	})
}

func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		s := b.signer(t, withAudience("app"))
		tok, exp, err := s.Session(context.Background(), ada)
		require.NoError(t, err)
		require.Equal(t, b.clock.Now().Add(sessionTTL), exp)

		got, err := s.VerifySession(context.Background(), tok)
		require.NoError(t, err)
		require.Equal(t, ada, got)

		_, c := verifyWithJWKS(t, fetchJWKS(t, s), tok)
		require.Equal(t, "session", c["token_use"])
		require.Equal(t, sessionTTL.Seconds(), c["exp"].(float64)-c["iat"].(float64))

		// Until exp, and the leeway for other replicas' clocks, no further.
		b.clock.Advance(sessionTTL + leeway)
		_, err = s.VerifySession(context.Background(), tok)
		require.NoError(t, err)
		b.clock.Advance(time.Second)
		_, err = s.VerifySession(context.Background(), tok)
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorIs(t, err, jwt.ErrExpired)
	})
}

// segments splits a compact JWS.
func segments(t *testing.T, tok string) (header, payload, sig string) {
	t.Helper()
	p := strings.Split(tok, ".")
	require.Len(t, p, 3)
	return p[0], p[1], p[2]
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestVerifySessionRefuses(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		s := b.signer(t, withAudience("app"))
		good, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		header, payload, sig := segments(t, good)
		kid := s.own.kid

		// The payload with one claim changed, signature kept.
		var claims map[string]any
		raw, err := base64.RawURLEncoding.DecodeString(payload)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &claims))
		claims["email"] = "mallory@example.com"
		tamperedPayload := header + "." + b64json(t, claims) + "." + sig

		rawSig, err := base64.RawURLEncoding.DecodeString(sig)
		require.NoError(t, err)
		rawSig[10] ^= 1
		tamperedSig := header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(rawSig)

		none := b64json(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + payload + "."

		// HMAC with the public key as the secret: the classic confusion.
		hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte(s.own.pub), KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		require.NoError(t, err)
		hmac, err := jwt.Signed(hs).Claims(claims).Serialize()
		require.NoError(t, err)

		// Another key, under its own kid and under ours.
		_, otherPriv, err := ed25519.GenerateKey(nil)
		require.NoError(t, err)
		foreign := func(kid string) string {
			sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: otherPriv, KeyID: kid}},
				(&jose.SignerOptions{}).WithType("JWT"))
			require.NoError(t, err)
			tok, err := jwt.Signed(sg).Claims(claims).Serialize()
			require.NoError(t, err)
			return tok
		}
		otherKID, err := thumbprint(otherPriv.Public().(ed25519.PublicKey))
		require.NoError(t, err)

		// Same keys (same database), other settings.
		sign := func(mods ...func(*Options)) string {
			tok, _, err := b.signer(t, mods...).Session(ctx, ada)
			require.NoError(t, err)
			return tok
		}
		receipt, err := s.Receipt(ctx, ada)
		require.NoError(t, err)

		tests := []struct{ name, token, why string }{
			{"tampered payload", tamperedPayload, "bad signature"},
			{"tampered signature", tamperedSig, "bad signature"},
			{"alg none", none, "not a compact EdDSA JWS"},
			{"HS256 with the public key", hmac, "not a compact EdDSA JWS"},
			{"another key, its kid", foreign(otherKID), "unknown or expired kid"},
			{"another key, our kid", foreign(kid), "bad signature"},
			{"garbage kid", foreign("../../etc/passwd"), "unknown or expired kid"},
			{"no typ", b64json(t, map[string]any{"alg": "EdDSA", "kid": kid}) + "." + payload + "." + sig, "typ"},
			{"foreign issuer", sign(withAudience("app"), func(o *Options) { o.Issuer = "https://evil.example.com" }), "issuer"},
			{"other audience", sign(withAudience("other-app")), "audience"},
			{"no audience", sign(), "audience"},
			{"receipt", receipt, "not a session token"},
			{"empty", "", "not a compact"},
			{"garbage", "not.a.token", "not a compact"},
			{"too long", good + strings.Repeat("A", maxTokenLen), "too long"},
		}
		for _, tt := range tests {
			_, err := s.VerifySession(ctx, tt.token)
			require.ErrorIs(t, err, ErrInvalid, tt.name)
			require.ErrorContains(t, err, tt.why, tt.name)
		}

		// A verifier without an audience refuses tokens made for one.
		_, err = b.signer(t).VerifySession(ctx, good)
		require.ErrorIs(t, err, ErrInvalid)
		require.ErrorContains(t, err, "audience")

		_, err = s.VerifySession(ctx, good)
		require.NoError(t, err, "the untouched token still verifies")
	})
}

func TestClaimsAreRequired(t *testing.T) {
	t.Parallel()
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewClock()}
	b.db = b.open(t)
	s := b.signer(t)
	for _, c := range []Claims{
		{Email: ada.Email, VerifiedAt: ada.VerifiedAt},
		{UserID: ada.UserID, VerifiedAt: ada.VerifiedAt},
		{UserID: ada.UserID, Email: ada.Email},
	} {
		_, err := s.Receipt(context.Background(), c)
		require.Error(t, err)
	}
	for _, o := range []Options{
		{Issuer: issuer, ReceiptTTL: time.Minute, SessionTTL: time.Minute},
		{DB: b.db, ReceiptTTL: time.Minute, SessionTTL: time.Minute},
		{DB: b.db, Issuer: issuer, SessionTTL: time.Minute},
	} {
		_, err := New(context.Background(), o)
		require.Error(t, err)
	}
}

func TestJWKSMethods(t *testing.T) {
	t.Parallel()
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewClock()}
	b.db = b.open(t)
	s := b.signer(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(m, "/.well-known/jwks.json", nil))
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, m)
		require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/.well-known/jwks.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Body.String())
}
