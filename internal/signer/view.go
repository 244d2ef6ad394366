package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/signingkey"
)

// cacheFor is how long a replica trusts its copy of the key table. It
// bounds how long after a rotation elsewhere this replica still signs with
// the retired key (retireMargin covers it) and how long its JWKS lags.
const cacheFor = 5 * time.Second

// publishMargin is how much longer than cacheFor a rotation waits between
// publishing the next key and making it current: room for a read that
// was under way when the key was published, and for scheduling.
const publishMargin = 2 * time.Second

// PublishFor is how long after Publish every running replica lists the
// next key (JWKS, VerifySession), and every app or proxy that keeps the
// JWKS as long as its Cache-Control allows (jwksMaxAge) has fetched it
// again: the wait between the two steps of a rotation, so that no token
// is signed with a key a verifier may not know. A JOSE library that
// refetches on an unknown kid but then waits (jose's createRemoteJWKSet,
// 30 s) would otherwise refuse new tokens for that long.
const PublishFor = cacheFor + jwksMaxAge*time.Second + publishMargin

// forcedEvery bounds the re-reads that a kid missing from the copy
// triggers: a token signed with a key newer than the copy is verified at
// once, and a stream of tokens with made-up kids costs the database at
// most one read per forcedEvery per replica.
const forcedEvery = time.Second

// readTimeout bounds one read of the key table, shared by every caller
// waiting on it.
const readTimeout = 5 * time.Second

// view is a replica's copy of the key table: the keys that may still have
// signed a live token.
type view struct {
	// current signs new tokens; nil only if the table has no current key
	// (never after New, unless the row was deleted by hand).
	current *key
	// keys are current first, then the next one (listed ahead of
	// signing) and retired ones, newest first.
	keys   []*key
	loaded time.Time
}

// listed reports whether k may still have signed a live token at now:
// it is current, or retired less than the retention ago, or a token it
// signed may live yet (its row's tokens_expire_by, see cover).
func (s *Signer) listed(k *key, now time.Time) bool {
	until, retired := s.listedUntil(k.retiredAt, k.expiresBy)
	return !retired || now.Before(until)
}

// listedUntil is when a key retired at retiredAt, whose tokens expire by
// expiresBy, stops being listed; false for a key not retired, listed for
// as long as it is current.
func (s *Signer) listedUntil(retiredAt, expiresBy *time.Time) (time.Time, bool) {
	if retiredAt == nil {
		return time.Time{}, false
	}
	until := retiredAt.Add(s.retention)
	if expiresBy != nil && expiresBy.Add(retireMargin).After(until) {
		until = expiresBy.Add(retireMargin)
	}
	return until.UTC(), true
}

// find is the listed key kid, or nil.
func (s *Signer) find(v *view, kid string, now time.Time) *key {
	for _, k := range v.keys {
		if k.kid == kid && s.listed(k, now) {
			return k
		}
	}
	return nil
}

// keys is the view, read again once it is older than cacheFor. When the
// database does not answer, the old copy serves on (retired keys still
// drop out on time, since listed looks at the clock) and the next read is
// tried cacheFor later: a database blip stops neither signing nor
// verifying, and does not turn every request into a failing read.
func (s *Signer) keys(ctx context.Context) (*view, error) {
	v := s.view.Load()
	if v != nil {
		if age := s.clock().Sub(v.loaded); age >= 0 && age < cacheFor {
			return v, nil
		}
	}
	nv, err := s.reload(ctx)
	if err == nil {
		return nv, nil
	}
	if v == nil {
		return nil, err
	}
	if ctx.Err() != nil {
		// The caller left; the read goes on and stores what it finds.
		return v, nil
	}
	stale := *v
	stale.loaded = s.clock()
	if s.view.CompareAndSwap(v, &stale) { // one caller of those that shared the read
		s.log.Warn("signing keys: cannot read the key table, serving the copy read before", "loaded", v.loaded, "err", err)
	}
	return v, nil
}

// lookup is the listed key kid. A kid missing from the copy may belong to
// a key made since (by another replica's rotation or start): it triggers
// one read of the table, at most once per forcedEvery.
func (s *Signer) lookup(ctx context.Context, kid string) (*key, error) {
	v, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if k := s.find(v, kid, now); k != nil || !plausibleKID(kid) {
		return k, nil
	}
	s.mu.Lock()
	if !s.lastForced.IsZero() && now.Sub(s.lastForced) < forcedEvery && now.Sub(s.lastForced) >= 0 {
		s.mu.Unlock()
		return nil, nil
	}
	s.lastForced = now
	s.mu.Unlock()
	v, err = s.reload(ctx)
	if err != nil {
		return nil, err
	}
	return s.find(v, kid, now), nil
}

// plausibleKID reports whether kid could be one of ours (a thumbprint), so
// that obvious garbage never reaches the database.
func plausibleKID(kid string) bool {
	if len(kid) != kidLen {
		return false
	}
	for _, c := range []byte(kid) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// reload reads the key table into a new view. Callers at the same moment
// share one read, which one caller's cancellation does not end.
func (s *Signer) reload(ctx context.Context) (*view, error) {
	ch := s.loads.DoChan("keys", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		return s.read(ctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*view), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// listable are the rows that may be listed at now: current or next (not
// retired), or retired within the retention window, or with a token that
// may live yet. Revoked rows are left to the caller.
func (s *Signer) listable(now time.Time) predicate.SigningKey {
	return signingkey.Or(signingkey.RetiredAtIsNil(), signingkey.RetiredAtGT(now.Add(-s.retention)), signingkey.TokensExpireByGT(now.Add(-retireMargin)))
}

// read reads the current key, the next one, and those retired within the
// retention window, none revoked, and makes it the view.
func (s *Signer) read(ctx context.Context) (*view, error) {
	s.reads.Add(1)
	now := s.clock()
	rows, err := s.db.SigningKey.Query().
		Where(signingkey.RevokedAtIsNil(), s.listable(now)).
		Order(ent.Desc(signingkey.FieldCreatedAt), ent.Asc(signingkey.FieldKid)).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("signer: read the signing keys: %w", err)
	}
	v := &view{loaded: now}
	for _, r := range rows {
		k, err := s.fromRow(r)
		if err != nil {
			// Never the key itself: only which row and why.
			s.log.Error("signing keys: skipping a row that does not hold together", "kid", r.Kid, "err", err)
			continue
		}
		if r.Current != nil && *r.Current {
			v.current = k
			v.keys = append([]*key{k}, v.keys...)
		} else {
			v.keys = append(v.keys, k)
		}
	}
	s.view.Store(v)
	return v, nil
}

// fromRow checks a row (the kid is its public key's thumbprint, the
// private half matches) and makes it a key. A current key read from a file
// signs only on the replicas that were given that file.
func (s *Signer) fromRow(r *ent.SigningKey) (*key, error) {
	if len(r.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("public key of the wrong size")
	}
	pub := ed25519.PublicKey(r.PublicKey)
	var priv ed25519.PrivateKey
	switch {
	case r.RetiredAt != nil:
		// Retired keys only verify.
	case len(r.PrivateKey) > 0:
		seed, err := s.seed(r.Kid, r.PrivateKey)
		if errors.Is(err, errSealed) {
			// Sealed under another TOKEN_SEAL_KEY: it verifies here, and
			// signs where that key is given.
			break
		}
		if err != nil {
			return nil, err
		}
		priv = ed25519.NewKeyFromSeed(seed)
		if !bytes.Equal(priv.Public().(ed25519.PublicKey), pub) {
			return nil, errors.New("private key does not match the public key")
		}
	case s.file != nil && s.file.kid == r.Kid:
		priv = s.filePriv
	}
	k, err := newKey(pub, priv)
	if err != nil {
		return nil, err
	}
	if k.kid != r.Kid {
		return nil, errors.New("kid is not the public key's thumbprint")
	}
	k.retiredAt = r.RetiredAt
	k.expiresBy = r.TokensExpireBy
	if r.TokensExpireBy != nil {
		k.covered.Store(r.TokensExpireBy.Unix())
	}
	return k, nil
}
