package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// SigningKey is an Ed25519 key that signs receipts and sign-in tokens, or
// did until it was retired, or will once a rotation makes it current (a
// key neither current nor retired is published ahead of signing). Public keys stay until every token they signed
// has expired, so the JWKS can list them and tokens signed before a key
// change keep verifying.
type SigningKey struct{ ent.Schema }

// Fields of SigningKey.
func (SigningKey) Fields() []ent.Field {
	return []ent.Field{
		// The RFC 7638 thumbprint of the public key (base64url of SHA-256):
		// the same key always gets the same kid on every replica, so a key
		// read from a file on several replicas is one row.
		field.String("kid").NotEmpty().MaxLen(64).Unique().Immutable(),
		field.Bytes("public_key").NotEmpty().Immutable(),
		// The 32-byte Ed25519 seed of a key the service generated (embedded
		// defaults). Absent for a key read from SIGNING_KEY_FILE, which
		// never leaves its file, and erased when a key is retired: a
		// retired key never signs again.
		field.Bytes("private_key").Optional().Sensitive(),
		// True for the one key that signs now, NULL for every other (see
		// Indexes).
		field.Bool("current").Optional().Nillable(),
		// Set by the service's clock, like retired_at, so tests can move
		// time.
		field.Time("created_at").Immutable(),
		field.Time("retired_at").Optional().Nillable(),
		// No token the key signed expires after this: each replica that
		// signs with the key moves it ahead of the tokens it signs (see
		// Signer.cover), so a retired key stays listed until the last of
		// them has expired, whatever the lifetimes of the replica that
		// retired it. Unset on keys that signed before it was kept: then
		// retired_at plus the reading replica's longest token lifetime.
		field.Time("tokens_expire_by").Optional().Nillable(),
		// Set by `verifier signing-key rotate -revoke` (a leaked key): the
		// key leaves the JWKS and its tokens stop verifying at once, not
		// when they expire.
		field.Time("revoked_at").Optional().Nillable(),
	}
}

// Indexes of SigningKey.
func (SigningKey) Indexes() []ent.Index {
	return []ent.Index{
		// A unique index holds any number of NULLs but one true: the
		// database itself keeps replicas that start or rotate at once from
		// making two current keys.
		index.Fields("current").Unique(),
	}
}
