package signer

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/signingkey"
)

// ReloadWithin is how soon after a rotation every running replica signs
// with the new key: the time it trusts its copy of the key table. Tokens
// of the new key verify on every replica at once (an unknown kid is looked
// up).
const ReloadWithin = cacheFor

// Admin is the key table as an operator's command (verifier signing-key)
// works on it: it lists the keys and rotates them. Unlike New, making one
// installs no key: a command run before the service's first start, or
// without the service's SIGNING_KEY_FILE, changes nothing by starting.
type Admin struct{ s *Signer }

// NewAdmin returns an Admin over o.DB. o is read as New reads it: the
// lifetimes say how long a retired key stays listed, Seal seals the keys
// Rotate makes (it must be the service's), and with KeyFile Rotate
// refuses.
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
	// RetiredAt is when the key stopped signing; nil while current.
	RetiredAt *time.Time
	// ListedUntil is when a retired key leaves the JWKS and its tokens
	// stop verifying (every token it signed has expired by then); nil
	// while current.
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
			RetiredAt: utc(r.RetiredAt),
		}
		if until, ok := a.s.listedUntil(r.RetiredAt, r.TokensExpireBy); ok {
			k.ListedUntil = &until
		}
		out = append(out, k)
	}
	return out, nil
}

// Rotate is Signer.Rotate: a new current key, the previous one retired.
func (a *Admin) Rotate(ctx context.Context) (string, error) { return a.s.Rotate(ctx) }

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
