package signer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/signingkey"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/testkit"
)

// rows is the key table, oldest first.
func rows(t *testing.T, db *ent.Client) []*ent.SigningKey {
	t.Helper()
	rs, err := db.SigningKey.Query().Order(ent.Asc(signingkey.FieldCreatedAt), ent.Asc(signingkey.FieldID)).All(context.Background())
	require.NoError(t, err)
	return rs
}

func TestRotationKeepsOldTokensUntilTheyExpire(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		s := b.signer(t)
		// A replica with a longer SESSION_TTL (a setting shortened with
		// the key change, or changed while rolling out) signs a token
		// that outlives s's own retention window: the key stays listed
		// for it all the same, until it has expired.
		long := b.signer(t, func(o *Options) { o.SessionTTL = 10 * time.Hour })
		old := s.own.kid
		before, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		outliving, outlivingExp, err := long.Session(ctx, ada)
		require.NoError(t, err)

		b.clock.Advance(time.Minute)
		kid, err := s.Rotate(ctx)
		require.NoError(t, err)
		require.NotEqual(t, old, kid)

		after, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		h, _ := verifyWithJWKS(t, fetchJWKS(t, s), after)
		require.Equal(t, kid, h.KeyID, "new tokens are signed with the new key")
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, s)), "the retired key stays listed, after the current one")
		for _, tok := range []string{before, outliving, after} {
			_, err = s.VerifySession(ctx, tok)
			require.NoError(t, err)
		}

		rs := rows(t, b.db)
		require.Len(t, rs, 2)
		require.Nil(t, rs[0].Current)
		require.Empty(t, rs[0].PrivateKey, "a retired key's private half is erased")
		require.Equal(t, 1, b.db.SigningKey.Query().Where(signingkey.PrivateKeyNotNil()).CountX(ctx), "NULL, not only empty")
		require.Equal(t, b.clock.Now(), rs[0].RetiredAt.UTC())
		require.True(t, *rs[1].Current)
		expiresBy := rs[0].TokensExpireBy.UTC()
		require.False(t, expiresBy.Before(outlivingExp), "the row covers the longest token the key signed")
		require.LessOrEqual(t, expiresBy.Sub(outlivingExp), coverAhead)

		// Past s's own retention, still listed: a token it signed lives.
		b.clock.Advance(s.retention)
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, s)))
		_, err = s.VerifySession(ctx, outliving)
		require.NoError(t, err)

		// Listed until the last token it signed has expired, plus the margin.
		b.clock.Advance(expiresBy.Add(retireMargin).Sub(b.clock.Now()) - time.Second)
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, s)))
		b.clock.Advance(time.Second)
		require.Equal(t, []string{kid}, kids(fetchJWKS(t, s)))
		_, err = s.VerifySession(ctx, outliving)
		require.ErrorIs(t, err, ErrInvalid)
	})
}

// A key retired by another replica (a rolling change of SIGNING_KEY_FILE)
// that a replica still signs with stays listed for the tokens it signs
// after its retirement, not only for those signed before.
func TestTokensOfARetiredKeyKeepItListed(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		old := b.signer(t)
		file := writeKeyFile(t)
		b.clock.Advance(time.Minute)
		fresh := b.signer(t, func(o *Options) { o.KeyFile = file })
		require.NotEqual(t, old.own.kid, fresh.own.kid)

		// Long after the retirement, the old replica signs on with its own.
		b.clock.Advance(old.retention)
		tok, exp, err := old.Session(ctx, ada)
		require.NoError(t, err)
		b.clock.Advance(exp.Sub(b.clock.Now()) - time.Minute)
		_, err = fresh.VerifySession(ctx, tok)
		require.NoError(t, err, "a token of the retired key, signed after its retirement, verifies until it expires")
		require.Contains(t, kids(fetchJWKS(t, fresh)), old.own.kid)
	})
}

// The record of how late a key's tokens may expire speaks for every token
// the key signs, not for one caller's: a caller that is gone (its client
// left mid-request) neither fails the write, with a warning, nor keeps the
// callers after it from covering their tokens for cacheFor.
func TestAGoneCallerStillCoversTheKey(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		var logs testkit.LogBuffer
		s := b.signer(t, func(o *Options) { o.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		_, exp, err := s.Session(gone, ada)
		require.NoError(t, err, "signed all the same")

		b.clock.Advance(time.Second) // within cacheFor: no retry of a failed write
		_, later, err := s.Session(context.Background(), ada)
		require.NoError(t, err)
		require.True(t, later.After(exp))
		by := rows(t, b.db)[0].TokensExpireBy
		require.NotNil(t, by, "the key's row records its tokens' expiry: %s", logs.String())
		require.False(t, by.Before(later), "covers the token signed after the gone caller's")
		require.Zero(t, logs.Count("could not record how long"), "%s", logs.String())
	})
}

// Replicas read the key table: another replica's rotation is seen within
// cacheFor, and a token with a kid it has not seen yet verifies at once.
func TestReplicasFollowARotation(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		a := b.signer(t)
		other := b.signer(t, func(o *Options) { o.DB = b.open(t) })
		old := a.own.kid
		require.Equal(t, old, other.own.kid, "one key for every replica")

		kid, err := a.Rotate(ctx)
		require.NoError(t, err)
		tok, _, err := a.Session(ctx, ada)
		require.NoError(t, err)
		_, err = other.VerifySession(ctx, tok)
		require.NoError(t, err, "an unknown kid is looked up at once")

		b.clock.Advance(cacheFor)
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, other)))
		mine, _, err := other.Session(ctx, ada)
		require.NoError(t, err)
		h, _ := verifyWithJWKS(t, fetchJWKS(t, other), mine)
		require.Equal(t, kid, h.KeyID, "the other replica signs with the new key")

		// A restart after the rotation keeps the rotated key.
		require.Equal(t, kid, b.signer(t).own.kid)
	})
}

// Tokens with made-up kids cost the database at most one read per
// forcedEvery.
func TestUnknownKIDsAreLookedUpSparingly(t *testing.T) {
	t.Parallel()
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewFrozenClock(time.Now())}
	b.db = b.open(t)
	s := b.signer(t)
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	// A fresh plausible kid (a thumbprint of nothing stored) each time.
	forge := func() string {
		var seed [32]byte
		_, _ = rand.Read(seed[:])
		kid, err := thumbprint(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
		require.NoError(t, err)
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		require.NoError(t, err)
		tok, err := jwt.Signed(sg).Claims(jwt.Claims{Issuer: issuer, Subject: ada.UserID.String()}).Serialize()
		require.NoError(t, err)
		return tok
	}
	reads := func() int64 { return s.reads.Load() }
	start := reads()
	for range 20 {
		_, err := s.VerifySession(context.Background(), forge())
		require.ErrorIs(t, err, ErrInvalid)
	}
	require.Equal(t, start+1, reads())
	b.clock.Advance(forcedEvery)
	_, err = s.VerifySession(context.Background(), forge())
	require.ErrorIs(t, err, ErrInvalid)
	require.Equal(t, start+2, reads())
}

// Replicas starting at once on one database agree on one key.
func TestConcurrentStartsAgree(t *testing.T) {
	t.Parallel()
	const replicas = 4
	eachDB(t, func(t *testing.T, b *testBundle) {
		keyFile := writeKeyFile(t)
		for _, file := range []string{"", keyFile} {
			dbs := make([]*ent.Client, replicas)
			for i := range dbs {
				dbs[i] = b.open(t)
			}
			kids := make([]string, replicas)
			errs := atOnce(t, replicas, func(i int) error {
				s, err := New(context.Background(), b.options(func(o *Options) { o.DB, o.KeyFile = dbs[i], file }))
				if err == nil {
					kids[i] = s.own.kid
				}
				return err
			})
			for i := range replicas {
				require.NoError(t, errs[i], "replica %d, key file %q", i, file)
				require.Equal(t, kids[0], kids[i], "replica %d", i)
			}
			current, err := b.db.SigningKey.Query().Where(signingkey.Current(true)).All(context.Background())
			require.NoError(t, err)
			require.Len(t, current, 1)
			require.Equal(t, kids[0], current[0].Kid)
		}
		rs := rows(t, b.db)
		require.Len(t, rs, 2, "one generated key, then the file's: nothing more")
	})
}

// atOnce runs f(0) … f(n-1) in goroutines released together, as replicas
// starting at once, and returns their errors.
func atOnce(t testing.TB, n int, f func(i int) error) []error {
	t.Helper()
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	testkit.Wait(t, &wg, "end of %d calls released together", n)
	return errs
}

// writeKeyFile writes a new Ed25519 key as openssl would and returns its
// path.
func writeKeyFile(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	return writePEM(t, "PRIVATE KEY", priv)
}

func writePEM(t *testing.T, typ string, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "signing.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return path
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		generated := b.signer(t).own.kid
		before, _, err := b.signer(t).Session(ctx, ada)
		require.NoError(t, err)

		path := writeKeyFile(t)
		priv, err := readKeyFile(path)
		require.NoError(t, err)
		fileKID, err := thumbprint(priv.Public().(ed25519.PublicKey))
		require.NoError(t, err)

		b.clock.Advance(time.Minute)
		s := b.signer(t, func(o *Options) { o.KeyFile = path })
		require.Equal(t, fileKID, s.own.kid)
		tok, err := s.Receipt(ctx, ada)
		require.NoError(t, err)
		h, _ := verifyWithJWKS(t, fetchJWKS(t, s), tok)
		require.Equal(t, fileKID, h.KeyID)
		require.Equal(t, []string{fileKID, generated}, kids(fetchJWKS(t, s)), "the generated key is retired, still listed")
		_, err = s.VerifySession(ctx, before)
		require.NoError(t, err, "tokens of the retired key still verify")

		rs := rows(t, b.db)
		require.Len(t, rs, 2)
		require.Empty(t, rs[1].PrivateKey, "a file's key never reaches the database")
		require.Empty(t, rs[0].PrivateKey, "the retired key's private half is erased")
		require.Zero(t, b.db.SigningKey.Query().Where(signingkey.PrivateKeyNotNil()).CountX(ctx))

		_, err = s.Rotate(ctx)
		require.ErrorContains(t, err, "SIGNING_KEY_FILE")

		// The same file again: nothing changes.
		require.Equal(t, fileKID, b.signer(t, func(o *Options) { o.KeyFile = path }).own.kid)
		require.Len(t, rows(t, b.db), 2)

		// The setting removed: a generated key takes over, the file's key
		// is retired and still listed.
		b.clock.Advance(time.Minute)
		back := b.signer(t)
		require.NotEqual(t, fileKID, back.own.kid)
		require.NotEqual(t, generated, back.own.kid)
		require.Equal(t, []string{back.own.kid, fileKID, generated}, kids(fetchJWKS(t, back)))
		_, err = back.VerifySession(ctx, before)
		require.NoError(t, err)

		// The file given again: its key is current (and no longer retired).
		again := b.signer(t, func(o *Options) { o.KeyFile = path })
		require.Equal(t, fileKID, again.own.kid)
		cur, err := b.db.SigningKey.Query().Where(signingkey.Kid(fileKID)).Only(ctx)
		require.NoError(t, err)
		require.True(t, *cur.Current)
		require.Nil(t, cur.RetiredAt)
	})
}

func TestKeyFileErrors(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	require.NoError(t, err)
	edPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})

	file := func(content []byte) string {
		path := filepath.Join(t.TempDir(), "key.pem")
		require.NoError(t, os.WriteFile(path, content, 0o600))
		return path
	}
	tests := []struct{ name, path, want string }{
		{"RSA", writePEM(t, "PRIVATE KEY", rsaKey), "holds an RSA key"},
		{"ECDSA", writePEM(t, "PRIVATE KEY", ecKey), "holds an ECDSA key"},
		{"PKCS#1 RSA", file(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})), `a PEM "RSA PRIVATE KEY" block`},
		{"garbage", file([]byte("this is not a key\n")), "holds no PEM block"},
		{"empty", file(nil), "holds no PEM block"},
		{"bad DER", file(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")})), "is not a PKCS#8 private key"},
		{"two keys", file(append(append([]byte{}, edPEM...), edPEM...)), "more than one PEM block"},
		{"missing", filepath.Join(t.TempDir(), "absent.pem"), "no such file"},
	}
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewClock()}
	b.db = b.open(t)
	for _, tt := range tests {
		_, err := New(context.Background(), b.options(func(o *Options) { o.KeyFile = tt.path }))
		require.Error(t, err, tt.name)
		msg := err.Error()
		require.True(t, strings.HasPrefix(msg, "SIGNING_KEY_FILE: "), "%s: %s", tt.name, msg)
		require.Contains(t, msg, tt.want, tt.name)
		if raw, err := os.ReadFile(tt.path); err == nil {
			// Nothing of the file's body (past the BEGIN line) is shown.
			if lines := strings.SplitN(string(raw), "\n", 3); len(lines) > 1 && len(lines[1]) >= 8 {
				require.NotContains(t, msg, lines[1][:8], tt.name)
			}
		}
	}
	require.Empty(t, rows(t, b.db), "a bad file registers nothing")
}

// Replicas rotating at once leave one current key, and every kid they
// report is listed. A rotation whose next key another one replaced or beat
// to current says so (ErrNotNext) and changes nothing; one of them wins.
func TestConcurrentRotationsLeaveOneCurrent(t *testing.T) {
	t.Parallel()
	const replicas = 4
	eachDB(t, func(t *testing.T, b *testBundle) {
		signers := make([]*Signer, replicas)
		for i := range signers {
			signers[i] = b.signer(t, func(o *Options) { o.DB = b.open(t) })
		}
		got := make([]string, replicas)
		errs := atOnce(t, replicas, func(i int) (err error) {
			got[i], err = signers[i].Rotate(context.Background())
			return err
		})
		listed := kids(fetchJWKS(t, b.signer(t)))
		won := 0
		for i := range replicas {
			if errors.Is(errs[i], ErrNotNext) {
				continue
			}
			require.NoError(t, errs[i], "replica %d", i)
			require.Contains(t, listed, got[i])
			won++
		}
		require.NotZero(t, won)
		require.Equal(t, 1, b.db.SigningKey.Query().Where(signingkey.Current(true)).CountX(context.Background()))
	})
}

// With the database gone, a replica keeps signing, verifying and listing
// from the copy it read before, retired keys still drop out on time, and
// the failing read is tried (and logged) once per cacheFor, not per call.
func TestServesItsCopyWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewFrozenClock(time.Now().UTC().Truncate(time.Second))}
	b.db = b.open(t)
	var logs testkit.LogBuffer
	ctx := context.Background()
	own, err := database.Open(ctx, b.url)
	require.NoError(t, err)
	s := b.signer(t, func(o *Options) {
		o.DB = own.Ent
		o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	old := s.own.kid
	tok, _, err := s.Session(ctx, ada)
	require.NoError(t, err)
	kid, err := s.Rotate(ctx)
	require.NoError(t, err)
	require.NoError(t, own.Close())

	b.clock.Advance(cacheFor)
	for range 3 {
		_, err = s.VerifySession(ctx, tok)
		require.NoError(t, err)
		fresh, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		_, err = s.VerifySession(ctx, fresh)
		require.NoError(t, err)
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, s)))
	}
	require.Equal(t, 1, logs.Count("cannot read the key table"))
	require.Equal(t, 1, logs.Count("could not record how long"), "the new key's first token: tried once per cacheFor, and signed all the same")

	// Past the last token's expiry (with cover's lead) and the margin.
	b.clock.Advance(s.retention + coverAhead)
	require.Equal(t, []string{kid}, kids(fetchJWKS(t, s)))
	require.Equal(t, 2, logs.Count("cannot read the key table"))
}

// No log line holds a private key, in any encoding, nor the key file's
// content.
func TestLogsHoldNoKey(t *testing.T) {
	t.Parallel()
	b := &testBundle{url: databasetest.SQLite(t), clock: testkit.NewClock()}
	b.db = b.open(t)
	var logs testkit.LogBuffer
	logged := func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx := context.Background()
	seed := func() []byte {
		r := b.db.SigningKey.Query().Where(signingkey.Current(true)).OnlyX(ctx)
		sd, err := (&Signer{box: mustBox(sealKey)}).seed(r.Kid, r.PrivateKey)
		require.NoError(t, err)
		return sd
	}
	s := b.signer(t, logged)
	seeds := [][]byte{seed()}
	_, err := s.Rotate(ctx)
	require.NoError(t, err)
	seeds = append(seeds, seed())
	path := writeKeyFile(t)
	b.signer(t, logged, func(o *Options) { o.KeyFile = path })
	priv, err := readKeyFile(path)
	require.NoError(t, err)
	seeds = append(seeds, priv.Seed())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)

	out := logs.String()
	require.Contains(t, out, "signing key rotated")
	for _, sd := range seeds {
		require.Len(t, sd, ed25519.SeedSize)
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(sd)[:20], base64.RawURLEncoding.EncodeToString(sd)[:20],
			hex.EncodeToString(sd)[:20], fmt.Sprint(sd)[1:20],
		} {
			require.NotContains(t, out, enc)
		}
	}
	require.NotContains(t, out, strings.SplitN(string(raw), "\n", 3)[1][:20])
}

// A generated key's private half is kept sealed under TOKEN_SEAL_KEY, bound
// to its kid: the row alone signs nothing, and another replica with the
// same key signs with it.
func TestGeneratedKeyIsSealed(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		s := b.signer(t)
		rs := rows(t, b.db)
		require.Len(t, rs, 1)
		require.True(t, bytes.HasPrefix(rs[0].PrivateKey, []byte(sealedPrefix)), "kept sealed")
		seed, err := s.seed(rs[0].Kid, rs[0].PrivateKey)
		require.NoError(t, err)
		require.False(t, bytes.Contains(rs[0].PrivateKey, seed), "the seed is not in the row")
		_, err = s.seed("another kid", rs[0].PrivateKey)
		require.ErrorIs(t, err, errSealed, "bound to its kid")

		other := b.signer(t, func(o *Options) { o.DB = b.open(t) })
		require.Equal(t, s.own.kid, other.own.kid)
		tok, _, err := other.Session(ctx, ada)
		require.NoError(t, err)
		h, _ := verifyWithJWKS(t, fetchJWKS(t, s), tok)
		require.Equal(t, s.own.kid, h.KeyID)
	})
}

// A key kept in clear (from before seeds were sealed) is sealed at the next
// start and keeps signing: no rotation.
func TestClearKeyIsSealedAtStart(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		clear := b.signer(t, func(o *Options) { o.Seal = nil })
		require.Len(t, rows(t, b.db)[0].PrivateKey, ed25519.SeedSize, "kept in clear without a seal box")

		s := b.signer(t)
		require.Equal(t, clear.own.kid, s.own.kid, "the same key")
		rs := rows(t, b.db)
		require.Len(t, rs, 1)
		require.True(t, bytes.HasPrefix(rs[0].PrivateKey, []byte(sealedPrefix)))
		tok, _, err := s.Session(context.Background(), ada)
		require.NoError(t, err)
		_, err = clear.VerifySession(context.Background(), tok)
		require.NoError(t, err)
	})
}

// With another TOKEN_SEAL_KEY the kept key cannot sign: a new one does, and
// tokens signed with the old one still verify until they expire.
func TestKeySealedUnderAnotherKey(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		old := b.signer(t)
		before, _, err := old.Session(ctx, ada)
		require.NoError(t, err)

		b.clock.Advance(time.Minute)
		var logs testkit.LogBuffer
		s := b.signer(t, func(o *Options) {
			o.Seal = mustBox(bytes.Repeat([]byte{9}, 32))
			o.Log = slog.New(slog.NewTextHandler(&logs, nil))
		})
		require.NotEqual(t, old.own.kid, s.own.kid)
		require.Contains(t, logs.String(), "does not open with this TOKEN_SEAL_KEY")
		_, err = s.VerifySession(ctx, before)
		require.NoError(t, err, "the old key still verifies")
		after, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		h, _ := verifyWithJWKS(t, fetchJWKS(t, s), after)
		require.Equal(t, s.own.kid, h.KeyID)
		rs := rows(t, b.db)
		require.Len(t, rs, 2)
		require.NotNil(t, rs[0].RetiredAt, "the old key is retired")
		require.Empty(t, rs[0].PrivateKey)
	})
}
