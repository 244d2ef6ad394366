package signer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replicas starts two replicas, the other on a connection of its own,
// and signs a session token with the first.
func (b *testBundle) replicas(t *testing.T) (s, other *Signer, tok string) {
	t.Helper()
	s = b.signer(t)
	other = b.signer(t, func(o *Options) { o.DB = b.open(t) })
	tok, _, err := s.Session(context.Background(), ada)
	require.NoError(t, err)
	return s, other, tok
}

func (b *testBundle) admin(t *testing.T, mods ...func(*Options)) *Admin {
	t.Helper()
	a, err := NewAdmin(b.options(mods...))
	require.NoError(t, err)
	return a
}

// The list says what the JWKS does: the current key, then each retired
// one with the moment it leaves the JWKS (and its tokens, all expired by
// then, stop verifying).
func TestAdminListsWhatTheJWKSLists(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		a := b.admin(t)
		ks, err := a.List(ctx)
		require.NoError(t, err)
		require.Empty(t, ks, "making an Admin installs no key")

		s := b.signer(t)
		old := s.own.kid
		ks, err = a.List(ctx)
		require.NoError(t, err)
		require.Equal(t, []KeyInfo{{Kid: old, CreatedAt: b.clock.Now(), Current: true}}, ks)

		tok, _, err := s.Session(ctx, ada)
		require.NoError(t, err)
		b.clock.Advance(time.Minute)
		n, err := a.Publish(ctx)
		require.NoError(t, err)
		kid := n.Kid
		_, err = a.Activate(ctx, kid, false)
		require.NoError(t, err)
		ks, err = a.List(ctx)
		require.NoError(t, err)
		require.Len(t, ks, 2)
		require.Equal(t, KeyInfo{Kid: kid, CreatedAt: b.clock.Now(), Current: true}, ks[0], "newest first")
		require.Equal(t, old, ks[1].Kid)
		require.False(t, ks[1].Current)
		require.Equal(t, b.clock.Now(), *ks[1].RetiredAt)
		until := *ks[1].ListedUntil
		require.True(t, until.After(ks[1].RetiredAt.Add(s.retention)), "the token signed before covers it past the retention")

		_, err = s.VerifySession(ctx, tok)
		require.NoError(t, err, "a token signed before the rotation still verifies")

		b.clock.Set(until.Add(-time.Second))
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, s)))
		b.clock.Set(until)
		require.Equal(t, []string{kid}, kids(fetchJWKS(t, s)))
	})
}

// Publish refuses where the replicas could not sign with the new key, or
// would not keep it: the key is a SIGNING_KEY_FILE's (given here, or
// installed by a replica given one), or the current key does not open
// with this TOKEN_SEAL_KEY (the new one, sealed under it, would not open
// on the replicas either). The table is left as it was.
func TestRotateRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup makes the table; it returns how the Admin differs from
		// the service.
		setup   func(t *testing.T, b *testBundle) func(*Options)
		wantErr string
		file    bool // the error is ErrKeyFromFile
	}{
		{
			name: "SIGNING_KEY_FILE given",
			setup: func(t *testing.T, b *testBundle) func(*Options) {
				b.signer(t)
				path := writeKeyFile(t)
				return func(o *Options) { o.KeyFile = path }
			},
			file: true,
		},
		{
			name: "the current key is a file's",
			setup: func(t *testing.T, b *testBundle) func(*Options) {
				path := writeKeyFile(t)
				b.signer(t, func(o *Options) { o.KeyFile = path })
				return func(*Options) {}
			},
			wantErr: "was installed by a replica given SIGNING_KEY_FILE",
			file:    true,
		},
		{
			name: "another TOKEN_SEAL_KEY",
			setup: func(t *testing.T, b *testBundle) func(*Options) {
				b.signer(t)
				return func(o *Options) { o.Seal = mustBox(bytes.Repeat([]byte{9}, 32)) }
			},
			wantErr: "rotate with the TOKEN_SEAL_KEY the service runs with",
		},
		{
			name: "no seal box",
			setup: func(t *testing.T, b *testBundle) func(*Options) {
				b.signer(t)
				return func(o *Options) { o.Seal = nil }
			},
			wantErr: "sealed under another TOKEN_SEAL_KEY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				mod := tt.setup(t, b)
				before := rows(t, b.db)
				_, err := b.admin(t, mod).Publish(ctx)
				require.Error(t, err)
				require.Equal(t, tt.file, errors.Is(err, ErrKeyFromFile), "%v", err)
				require.ErrorContains(t, err, tt.wantErr)
				after := rows(t, b.db)
				require.Len(t, after, len(before))
				for i := range before {
					require.Equal(t, before[i].Kid, after[i].Kid)
					require.Equal(t, before[i].Current, after[i].Current)
					require.Equal(t, before[i].RetiredAt, after[i].RetiredAt)
				}
			})
		})
	}
}

// A rotation left after Publish (the command interrupted while it waits)
// breaks nothing: every replica lists the next key and accepts its tokens,
// none signs with it, and the next rotation replaces it and completes.
func TestPublishedKeyNeverActivated(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, b *testBundle) {
		ctx := context.Background()
		s, other, before := b.replicas(t)
		old := s.own.kid

		a := b.admin(t)
		b.clock.Advance(time.Minute)
		n, err := a.Publish(ctx)
		require.NoError(t, err)
		require.Equal(t, PublishFor, n.Wait)
		ks, err := a.List(ctx)
		require.NoError(t, err)
		require.Equal(t, KeyInfo{Kid: n.Kid, CreatedAt: b.clock.Now(), Next: true}, ks[0])

		b.clock.Advance(PublishFor)
		for _, r := range []*Signer{s, other} {
			require.Equal(t, []string{old, n.Kid}, kids(fetchJWKS(t, r)), "listed after the current key")
			tok, _, err := r.Session(ctx, ada)
			require.NoError(t, err)
			h, _ := verifyWithJWKS(t, fetchJWKS(t, r), tok)
			require.Equal(t, old, h.KeyID, "the next key signs nothing")
			for _, tok := range []string{before, tok} {
				_, err := r.VerifySession(ctx, tok)
				require.NoError(t, err)
			}
		}
		require.Equal(t, old, b.signer(t).own.kid, "a replica starting meanwhile keeps the current key")

		kid, err := s.Rotate(ctx)
		require.NoError(t, err)
		require.NotEqual(t, n.Kid, kid, "replaced")
		_, err = a.Activate(ctx, n.Kid, false)
		require.ErrorIs(t, err, ErrNotNext, "the replaced key cannot be activated")
		b.clock.Advance(cacheFor)
		require.Equal(t, []string{kid, old}, kids(fetchJWKS(t, other)))
		require.Len(t, rows(t, b.db), 2, "the unused key is gone")
	})
}

// Activate with revoke drops the old keys at once: after a reload no
// replica lists them or accepts their tokens, unexpired as they are.
func TestActivateRevokes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		revoke bool
	}{
		{"retire", false},
		{"revoke", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				s, other, tok := b.replicas(t)
				old := s.own.kid

				a := b.admin(t)
				n, err := a.Publish(ctx)
				require.NoError(t, err)
				b.clock.Advance(n.Wait)
				done, err := a.Activate(ctx, n.Kid, tt.revoke)
				require.NoError(t, err)
				require.Equal(t, old, done.Retired)
				b.clock.Advance(cacheFor)

				want, wantKids := error(nil), []string{n.Kid, old}
				if tt.revoke {
					require.Equal(t, []string{old}, done.Revoked)
					want, wantKids = ErrInvalid, []string{n.Kid}
				}
				for _, r := range []*Signer{s, other} {
					require.Equal(t, wantKids, kids(fetchJWKS(t, r)))
					_, err := r.VerifySession(ctx, tok)
					if want == nil {
						require.NoError(t, err)
					} else {
						require.ErrorIs(t, err, want)
					}
				}
				ks, err := a.List(ctx)
				require.NoError(t, err)
				for _, k := range ks {
					if k.Kid == old {
						require.Equal(t, tt.revoke, k.RevokedAt != nil)
					}
				}
			})
		})
	}
}
