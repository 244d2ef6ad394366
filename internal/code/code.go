// Package code makes the 6-digit one-time codes of verification emails and
// their keyed hashes.
//
// A code has only a million values, so a plain hash of it is no secret: a
// copy of the database would give every live code away in a second.
// Codes are therefore stored only as HMAC-SHA256 under a server key, bound
// to their registration, and a stolen table yields nothing without the key.
//
// The key is derived with HKDF-SHA256 from the token seal key
// (TOKEN_SEAL_KEY, or the one generated once and kept in the database)
// under its own label, rather than being a second setting or a second
// generated secret: it needs the same protection and the same lifetime as
// the seal key, an operator has one secret to manage instead of two, and
// HKDF makes the two keys independent (neither says anything about the
// other). Changing the seal key kills the codes in flight, which live
// CODE_TTL (minutes) anyway.
package code

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/google/uuid"
)

// Digits is the length of a code.
const Digits = 6

// space is the number of codes: 10^Digits.
var space = big.NewInt(1_000_000)

// hkdfInfo labels the derived key, so it differs from any other key
// derived from the same seal key.
const hkdfInfo = "verifier one-time code hmac v1"

// New returns a fresh code: Digits decimal digits, uniform over all of
// them (crypto/rand's Int draws without modulo bias).
func New() string {
	n, err := rand.Int(rand.Reader, space)
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("code: crypto/rand: %v", err))
	}
	return fmt.Sprintf("%0*d", Digits, n.Int64())
}

// WellFormed reports whether s has the shape of a code.
func WellFormed(s string) bool {
	if len(s) != Digits {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Hasher hashes codes under the server's key.
type Hasher struct{ key []byte }

// NewHasher derives the code key from the seal key.
func NewHasher(sealKey []byte) (*Hasher, error) {
	key, err := hkdf.Key(sha256.New, sealKey, nil, hkdfInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("code: derive key: %w", err)
	}
	return &Hasher{key: key}, nil
}

// Hash is the stored form of code for registration: hex HMAC-SHA256. The
// registration is part of the message, so a code is worth nothing with
// another registration's watch token.
func (h *Hasher) Hash(registration uuid.UUID, code string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write(registration[:])
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// Match reports whether code is the one stored as hash, in constant time.
func (h *Hasher) Match(registration uuid.UUID, code, hash string) bool {
	return hmac.Equal([]byte(h.Hash(registration, code)), []byte(hash))
}
