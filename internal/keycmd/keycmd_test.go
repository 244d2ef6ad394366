package keycmd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/migration"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

type testBundle struct {
	url   string
	clock *testkit.Clock
	// sleep is how the command waits: by default it moves the clock on
	// and calls tick, if set, as requests reaching the replicas would.
	sleep func(ctx context.Context, d time.Duration) error
	tick  func()
}

// eachDB runs f once per database the service supports.
func eachDB(t *testing.T, f func(t *testing.T, b *testBundle)) {
	databasetest.Each(t, func(t *testing.T, url string) {
		f(t, &testBundle{url: url, clock: testkit.NewFrozenClock(time.Now().UTC().Truncate(time.Second))})
	})
}

// env is the bundle's database with more settings.
func (b *testBundle) env(more map[string]string) func(string) string {
	env := map[string]string{"DATABASE_URL": b.url}
	maps.Copy(env, more)
	return func(k string) string { return env[k] }
}

// run runs the command as `verifier signing-key args...` with the
// bundle's database and more settings.
func (b *testBundle) run(t *testing.T, more map[string]string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var stdoutBuf, errOut bytes.Buffer
	sleep := b.sleep
	if sleep == nil {
		sleep = func(_ context.Context, d time.Duration) error {
			b.clock.Advance(d)
			if b.tick != nil {
				b.tick()
			}
			return nil
		}
	}
	status = runWith(context.Background(), args, b.env(more), out{stdout: &stdoutBuf, stderr: &errOut, sleep: sleep})
	return status, stdoutBuf.String(), errOut.String()
}

// service starts a Signer as a replica of the service with these settings
// does (server.go), on a connection of its own, on the bundle's clock.
func (b *testBundle) service(t *testing.T, more map[string]string) *signer.Signer {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(b.env(more))
	require.NoError(t, err)
	db, err := database.Open(ctx, b.url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	key, err := seal.KeyFor(ctx, db.Ent, cfg.TokenSealKey)
	require.NoError(t, err)
	box, err := seal.New(key)
	require.NoError(t, err)
	s, err := signer.New(ctx, signer.Options{
		DB: db.Ent, Issuer: cfg.PublicURL, KeyFile: cfg.SigningKeyFile, Seal: box,
		ReceiptTTL: cfg.ReceiptTTL, SessionTTL: cfg.SessionTTL,
		Now: b.clock.Now, Log: testkit.Discard(),
	})
	require.NoError(t, err)
	return s
}

// secrets counts the rows of the secrets table (the seal key kept in the
// database is one).
func (b *testBundle) secrets(t *testing.T) int {
	t.Helper()
	db, err := database.Open(context.Background(), b.url)
	require.NoError(t, err)
	defer db.Close()
	return db.Ent.Secret.Query().CountX(context.Background())
}

var ada = signer.Claims{UserID: uuid.New(), Email: "ada@example.com", VerifiedAt: time.Now()}

// session signs a sign-in token with s and returns it and its kid.
func session(t *testing.T, s *signer.Signer) (token, kid string) {
	t.Helper()
	token, _, err := s.Session(context.Background(), ada)
	require.NoError(t, err)
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	return token, parsed.Headers[0].KeyID
}

// jwks is the kids s lists at /.well-known/jwks.json, in order.
func jwks(t *testing.T, s *signer.Signer) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// listed is what `signing-key list` shows: a row per key, under the
// header, as its columns (kid, created, state, retired at, listed until).
func listed(t *testing.T, b *testBundle, more map[string]string) [][]string {
	t.Helper()
	status, out, errOut := b.run(t, more, "list")
	require.Zero(t, status, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Regexp(t, `^KID\s+CREATED\s+STATE\s+RETIRED AT\s+LISTED UNTIL$`, lines[0])
	var rows [][]string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "(") {
			continue // a note
		}
		rows = append(rows, regexp.MustCompile(`\s{2,}`).Split(l, -1))
	}
	return rows
}

func writeKeyFile(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "signing.pem")
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return path
}

func sealKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, seal.KeyLen))
}

// A database the service has started on once lists one key, current;
// listing writes nothing, so before that start it lists none.
func TestList(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		for range 2 {
			status, out, _ := b.run(t, nil, "list")
			require.Zero(t, status)
			require.Contains(t, out, "no signing key yet", "and the first list made none")
			require.Empty(t, listed(t, b, nil))
		}

		_, kid := session(t, b.service(t, nil))
		rows := listed(t, b, nil)
		require.Len(t, rows, 1)
		require.Equal(t, kid, rows[0][0])
		require.Equal(t, []string{"current", "-", "while current"}, rows[0][2:])
		created, err := time.Parse(time.RFC3339, rows[0][1])
		require.NoError(t, err)
		require.Equal(t, b.clock.Now(), created)
	})
}

// rotate makes a new key current on a running service without a restart:
// each replica signs with it once its copy of the key table is
// signer.ReloadWithin old, tokens signed before keep verifying, and the
// JWKS lists the new key and the old one. The command seals the new key
// as the service does, with TOKEN_SEAL_KEY or the key kept in the
// database: else the replicas could not sign with it.
func TestRotate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"seal key kept in the database", nil},
		{"TOKEN_SEAL_KEY", map[string]string{"TOKEN_SEAL_KEY": sealKey(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				running, replica := b.service(t, tt.env), b.service(t, tt.env)
				before, old := session(t, running)
				// Requests keep reaching the replicas while rotate waits.
				b.tick = func() {
					for _, s := range []*signer.Signer{running, replica} {
						jwks(t, s)
					}
				}

				status, out, errOut := b.run(t, tt.env, "rotate")
				require.Zero(t, status, errOut)
				m := regexp.MustCompile(`(?m)^new current key (\S{43}): running replicas sign with it within 5s`).FindStringSubmatch(out)
				require.NotNil(t, m, out)
				kid := m[1]
				require.NotEqual(t, old, kid)
				require.Regexp(t, `(?m)^retired `+old+`: listed in the JWKS, and its tokens accepted, until \S+Z$`, out)

				rows := listed(t, b, tt.env)
				require.Len(t, rows, 2)
				require.Equal(t, []string{kid, "current"}, []string{rows[0][0], rows[0][2]})
				require.Equal(t, []string{old, "retired"}, []string{rows[1][0], rows[1][2]})
				until, err := time.Parse(time.RFC3339, rows[1][4])
				require.NoError(t, err)
				require.True(t, until.After(time.Now().Add(time.Hour)), "listed for the tokens' lifetime: %s", rows[1][4])
				require.Contains(t, out, "until "+rows[1][4], "rotate and list agree")

				_, signs := session(t, replica)
				require.Equal(t, old, signs, "within its cache period a replica signs on with the old key")
				b.clock.Advance(signer.ReloadWithin)
				for _, s := range []*signer.Signer{running, replica} {
					after, signs := session(t, s)
					require.Equal(t, kid, signs, "after its reload a replica signs with the new key")
					require.Equal(t, []string{kid, old}, jwks(t, s))
					for _, tok := range []string{before, after} {
						_, err := s.VerifySession(ctx, tok)
						require.NoError(t, err)
					}
				}
			})
		})
	}
}

// signsWith is the kid each of ss signs with now.
func signsWith(t *testing.T, ss ...*signer.Signer) []string {
	t.Helper()
	kids := make([]string, len(ss))
	for i, s := range ss {
		_, kids[i] = session(t, s)
	}
	return kids
}

// rotate publishes the new key before any replica signs with it: at every
// moment of the rotation, and after it, a replica signs with the new key
// only once every replica lists it in its JWKS, a lagging one (whose copy
// of the key table is younger than the others') included. An app that
// fetches the JWKS from any replica on meeting the new kid finds it.
func TestRotatePublishesBeforeSigning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		lag  time.Duration // how much younger the lagging replica's copy is
	}{
		{"lagging by 1s", time.Second},
		{"lagging by 3s", 3 * time.Second},
		{"lagging by almost the cache period", signer.ReloadWithin - time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				first := b.service(t, nil)
				before, old := session(t, first)
				b.clock.Advance(tt.lag)
				lagging := b.service(t, nil) // its copy is read now
				replicas := []*signer.Signer{first, lagging}

				var kid string // the new key, once published
				check := func(when string) {
					t.Helper()
					signs := signsWith(t, replicas...)
					if kid == "" {
						for _, s := range signs {
							require.Equal(t, old, s, "%s: nothing new signs before rotate publishes", when)
						}
						return
					}
					for i, s := range replicas {
						if signs[0] == kid || signs[1] == kid {
							require.Contains(t, jwks(t, s), kid, "%s: replica %d signs %v, yet lists %v", when, i, signs, jwks(t, s))
						}
					}
				}
				b.tick = func() {
					if kid == "" {
						ks, err := signer.NewAdmin(signer.Options{DB: openEnt(t, b.url), Issuer: "x", ReceiptTTL: time.Minute, SessionTTL: time.Minute})
						require.NoError(t, err)
						list, err := ks.List(ctx)
						require.NoError(t, err)
						for _, k := range list {
							if k.Kid != old {
								kid = k.Kid
							}
						}
					}
					check("while rotate waits")
				}
				status, out, errOut := b.run(t, nil, "rotate")
				require.Zero(t, status, errOut)
				m := regexp.MustCompile(`(?m)^new current key (\S{43}):`).FindStringSubmatch(out)
				require.NotNil(t, m, out)
				require.True(t, kid == "" || kid == m[1], "the key published is the one made current")
				kid = m[1]
				for range 2 * signer.ReloadWithin / time.Second {
					check("after rotate")
					b.clock.Advance(time.Second)
				}
				require.Equal(t, []string{kid, kid}, signsWith(t, replicas...))
				for _, s := range replicas {
					require.Equal(t, []string{kid, old}, jwks(t, s))
					for _, r := range replicas {
						tok, _ := session(t, r)
						_, err := s.VerifySession(ctx, tok)
						require.NoError(t, err, "a token signed after the switch verifies on every replica")
					}
					_, err := s.VerifySession(ctx, before)
					require.NoError(t, err, "and so does one signed before")
				}
			})
		})
	}
}

// openEnt opens url for a look at the key table.
func openEnt(t *testing.T, url string) *ent.Client {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db.Ent
}

// A rotate interrupted while it waits leaves its key listed and unused:
// the replicas sign with the old key and verify as before, and the next
// rotate replaces the unused key with a new one and completes.
func TestRotateInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		after int // seconds waited before the interruption
	}{
		{"at once", 0},
		{"halfway", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				running := b.service(t, nil)
				before, old := session(t, running)

				waited := 0
				b.sleep = func(_ context.Context, d time.Duration) error {
					if waited == tt.after {
						return context.Canceled
					}
					waited++
					b.clock.Advance(d)
					return nil
				}
				status, out, errOut := b.run(t, nil, "rotate")
				require.Equal(t, 1, status, out)
				m := regexp.MustCompile(`^published (\S{43}) as the next key`).FindStringSubmatch(out)
				require.NotNil(t, m, out)
				next := m[1]
				require.Contains(t, errOut, next+" is listed but does not sign: run rotate again")
				require.NotContains(t, out, "new current key")

				rows := listed(t, b, nil)
				require.Len(t, rows, 2)
				require.Equal(t, []string{next, "next", "-", "while next"}, []string{rows[0][0], rows[0][2], rows[0][3], rows[0][4]})
				require.Equal(t, []string{old, "current"}, []string{rows[1][0], rows[1][2]})

				b.clock.Advance(signer.ReloadWithin)
				after, signs := session(t, running)
				require.Equal(t, old, signs, "the unused key never signs")
				require.Equal(t, []string{old, next}, jwks(t, running), "listed after the current key")
				for _, tok := range []string{before, after} {
					_, err := running.VerifySession(ctx, tok)
					require.NoError(t, err)
				}

				b.sleep = nil
				status, out, errOut = b.run(t, nil, "rotate")
				require.Zero(t, status, errOut)
				m = regexp.MustCompile(`(?m)^new current key (\S{43}):`).FindStringSubmatch(out)
				require.NotNil(t, m, out)
				kid := m[1]
				require.NotEqual(t, next, kid, "the unused key is replaced")
				require.Contains(t, out, "retired "+old)
				rows = listed(t, b, nil)
				require.Len(t, rows, 2, "the unused key is gone")
				require.Equal(t, []string{kid, "current"}, []string{rows[0][0], rows[0][2]})
				require.Equal(t, []string{old, "retired"}, []string{rows[1][0], rows[1][2]})
				b.clock.Advance(signer.ReloadWithin)
				require.Equal(t, []string{kid}, signsWith(t, running))
				require.Equal(t, []string{kid, old}, jwks(t, running))
			})
		})
	}
}

// rotate -revoke drops the old keys at once (a leak): after one reload,
// tokens they signed no longer verify, even unexpired, and the JWKS no
// longer lists them; the command says what it revoked and what that does.
func TestRotateRevoke(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		rotations  int // plain rotations before the revoking one
		wantRevoke int
	}{
		{"the current key", 0, 1},
		{"and a retired one still listed", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				running, replica := b.service(t, nil), b.service(t, nil)
				var tokens []string
				for i := 0; ; i++ {
					tok, _ := session(t, running)
					tokens = append(tokens, tok)
					if i == tt.rotations {
						break
					}
					status, _, errOut := b.run(t, nil, "rotate")
					require.Zero(t, status, errOut)
					b.clock.Advance(signer.ReloadWithin)
				}
				oldKids := jwks(t, running)
				require.Len(t, oldKids, tt.wantRevoke)

				b.sleep = func(context.Context, time.Duration) error { return errors.New("-revoke waited") }
				status, out, errOut := b.run(t, nil, "rotate", "-revoke")
				require.Zero(t, status, errOut)
				require.Contains(t, out, "-revoke: no wait")
				m := regexp.MustCompile(`(?m)^new current key (\S{43}):`).FindStringSubmatch(out)
				require.NotNil(t, m, out)
				kid := m[1]
				for _, old := range oldKids {
					require.Regexp(t, `(?m)^revoked `+old+`: it leaves every replica's JWKS, and its tokens stop verifying, within 5s$`, out)
				}
				require.Contains(t, out, "everyone signed in with a revoked key is signed out")
				require.NotContains(t, out, "retired ")

				b.clock.Advance(signer.ReloadWithin)
				for _, s := range []*signer.Signer{running, replica} {
					require.Equal(t, []string{kid}, jwks(t, s))
					for _, tok := range tokens {
						_, err := s.VerifySession(ctx, tok)
						require.ErrorIs(t, err, signer.ErrInvalid, "a token of a revoked key, unexpired")
					}
					tok, signs := session(t, s)
					require.Equal(t, kid, signs)
					_, err := s.VerifySession(ctx, tok)
					require.NoError(t, err)
				}
				rows := listed(t, b, nil)
				require.Equal(t, []string{kid, "current"}, []string{rows[0][0], rows[0][2]})
				for _, r := range rows[1:] {
					require.Equal(t, "revoked", r[2])
					require.Contains(t, r[4], "(no longer listed)")
				}
			})
		})
	}
}

// rotate refuses, changing nothing, where replicas could not sign with a
// new key or would not keep it.
func TestRotateRefuses(t *testing.T) {
	t.Parallel()
	file := writeKeyFile(t)
	tests := []struct {
		name         string
		service, cmd map[string]string
		want         string
	}{
		{
			name:    "SIGNING_KEY_FILE set",
			service: map[string]string{"SIGNING_KEY_FILE": file},
			cmd:     map[string]string{"SIGNING_KEY_FILE": file},
			want:    "signing-key rotate: the signing key comes from SIGNING_KEY_FILE: rotate by replacing the file and restarting the service",
		},
		{
			name:    "the service runs with SIGNING_KEY_FILE",
			service: map[string]string{"SIGNING_KEY_FILE": file},
			want:    "was installed by a replica given SIGNING_KEY_FILE",
		},
		{
			name:    "TOKEN_SEAL_KEY left out",
			service: map[string]string{"TOKEN_SEAL_KEY": sealKey(5)},
			want:    "rotate with the TOKEN_SEAL_KEY the service runs with",
		},
		{
			name:    "another TOKEN_SEAL_KEY",
			service: map[string]string{"TOKEN_SEAL_KEY": sealKey(5)},
			cmd:     map[string]string{"TOKEN_SEAL_KEY": sealKey(6)},
			want:    "rotate with the TOKEN_SEAL_KEY the service runs with",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				s := b.service(t, tt.service)
				_, kid := session(t, s)
				rows, secrets := listed(t, b, nil), b.secrets(t)
				status, out, errOut := b.run(t, tt.cmd, "rotate")
				require.Equal(t, 1, status, "%s%s", out, errOut)
				require.Contains(t, errOut, tt.want)
				require.Equal(t, rows, listed(t, b, nil), "nothing changed")
				require.Equal(t, secrets, b.secrets(t), "no seal key stored")
				b.clock.Advance(signer.ReloadWithin)
				_, signs := session(t, s)
				require.Equal(t, kid, signs)
			})
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	keyFile := writeKeyFile(t)
	tests := []struct {
		args   []string
		env    map[string]string
		status int
		want   string
	}{
		{nil, nil, 2, "verifier signing-key rotate"},
		{[]string{"-help"}, nil, 0, "verifier signing-key list"},
		{[]string{"list", "-h"}, nil, 0, "verifier signing-key list"},
		{[]string{"rotate", "-help"}, nil, 0, "verifier signing-key list"},
		{[]string{"list", "extra"}, nil, 2, `signing-key list takes no arguments, got "extra"`},
		{[]string{"rotate", "now"}, nil, 2, `signing-key rotate takes no arguments, got "now"`},
		{[]string{"rotate", "-force"}, nil, 2, "flag provided but not defined: -force"},
		{[]string{"revoke"}, nil, 2, `unknown signing-key command "revoke"`},
		{[]string{"list"}, map[string]string{"SESSION_TTL": "soon"}, 2, "SESSION_TTL"},
		// Refused before the database is opened, too.
		{[]string{"rotate"}, map[string]string{"SIGNING_KEY_FILE": keyFile}, 1, "rotate by replacing the file"},
	}
	for _, tt := range tests {
		b := &testBundle{url: databasetest.SQLite(t)}
		status, _, errOut := b.run(t, tt.env, tt.args...)
		require.Equal(t, tt.status, status, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.want, "%v", tt.args)
		// A typo is reported before the database is opened: opening
		// creates and migrates it.
		_, err := os.Stat(strings.TrimPrefix(b.url, "sqlite:"))
		require.ErrorIs(t, err, fs.ErrNotExist, "%v opened the database", tt.args)
	}
}

// With MIGRATE=off, as for the service, the command refuses a database
// behind this release instead of migrating it.
func TestMigrateOff(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"list", "rotate"} {
		b := &testBundle{url: databasetest.SQLite(t)}
		status, out, errOut := b.run(t, map[string]string{"MIGRATE": "off"}, cmd)
		require.Equal(t, 1, status, "%s%s", out, errOut)
		require.Contains(t, errOut, "verifier migrate")
		_, err := database.OpenWith(context.Background(), b.url, database.Options{CheckSchema: true})
		require.ErrorIs(t, err, migration.ErrBehind, "nothing was applied")
	}
}
