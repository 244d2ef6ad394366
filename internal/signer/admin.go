package signer

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/signingkey"
)

// ReloadWithin is how soon after a change of the key table every running
// replica follows it: signs with a new current key, lists a next one,
// drops a revoked one. It is the time a replica trusts its copy of the
// table. Tokens of a key it has not seen yet verify on every replica at
// once (an unknown kid is looked up).
const ReloadWithin = cacheFor

// Admin is the key table as an operator's command (verifier signing-key)
// works on it: it lists the keys and rotates them in two steps, Publish
// and, PublishFor later, Activate. Unlike New, making one installs no key:
// a command run before the service's first start, or without the service's
// SIGNING_KEY_FILE, changes nothing by starting.
type Admin struct{ s *Signer }

// NewAdmin returns an Admin over o.DB. o is read as New reads it: the
// lifetimes say how long a retired key stays listed, Seal seals the keys
// Publish makes (it must be the service's), and with KeyFile Publish and
// Activate refuse.
func NewAdmin(o Options) (*Admin, error) {
	s, err := newSigner(o)
	if err != nil {
		return nil, err
	}
	return &Admin{s: s}, nil
}

// KeyInfo is what an operator may see of a key: never its private half.
type KeyInfo struct {
	Kid       string
	CreatedAt time.Time
	// Current is true for the key that signs new tokens.
	Current bool
	// Next is true for a key published ahead of signing: listed, signing
	// nothing until a rotation makes it current.
	Next bool
	// RetiredAt is when the key stopped signing; nil while current or
	// next.
	RetiredAt *time.Time
	// RevokedAt is when the key was revoked (rotate -revoke): it left the
	// JWKS and its tokens stopped verifying then, expired or not.
	RevokedAt *time.Time
	// ListedUntil is when a retired key leaves the JWKS and its tokens
	// stop verifying (every token it signed has expired by then, unless
	// it was revoked); nil while current or next.
	ListedUntil *time.Time
}

// List is every key in the table, newest first, those no longer listed
// included.
func (a *Admin) List(ctx context.Context) ([]KeyInfo, error) {
	rows, err := a.s.db.SigningKey.Query().
		Order(ent.Desc(signingkey.FieldCreatedAt), ent.Asc(signingkey.FieldKid)).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("signer: read the signing keys: %w", err)
	}
	out := make([]KeyInfo, 0, len(rows))
	for _, r := range rows {
		k := KeyInfo{
			Kid:       r.Kid,
			CreatedAt: r.CreatedAt.UTC(),
			Current:   r.Current != nil && *r.Current,
			Next:      r.Current == nil && r.RetiredAt == nil && r.RevokedAt == nil,
			RetiredAt: utc(r.RetiredAt),
			RevokedAt: utc(r.RevokedAt),
		}
		if until, ok := a.s.listedUntil(r.RetiredAt, r.TokensExpireBy); ok {
			k.ListedUntil = &until
		}
		if k.RevokedAt != nil && (k.ListedUntil == nil || k.RevokedAt.Before(*k.ListedUntil)) {
			k.ListedUntil = k.RevokedAt
		}
		out = append(out, k)
	}
	return out, nil
}

// Publish is Signer.Publish: a new key, listed but not signing yet. Wait
// Next.Wait, then Activate it.
func (a *Admin) Publish(ctx context.Context) (Next, error) { return a.s.Publish(ctx) }

// Activate is Signer.Activate: the next key kid becomes current, the
// previous one retired, or with revoke, every other key revoked.
func (a *Admin) Activate(ctx context.Context, kid string, revoke bool) (Activated, error) {
	return a.s.Activate(ctx, kid, revoke)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
