// Package code makes the 6-digit one-time codes of verification emails and
// the form they are stored in.
//
// A code has only a million values, so a plain hash of it is no secret: a
// copy of the database would give every live code away in a second.
// A code is therefore derived, with HMAC-SHA256 under a server key, from
// a random seed and its registration, and only the seed is stored: a
// stolen table yields nothing without the key. The seed, unlike a hash,
// lets the service mail the same code again: every email of a
// registration carries its live code, so the code of the first email
// still works after a resend, as long as the code lives.
//
// The key is derived with HKDF-SHA256 from the token seal key
// (TOKEN_SEAL_KEY, or the one generated once and kept in the database)
// under its own label, rather than being a second setting or a second
// generated secret: it needs the same protection and the same lifetime as
// the seal key, an operator has one secret to manage instead of two, and
// HKDF makes the two keys independent (neither says anything about the
// other). Changing the seal key kills the codes in flight, which live
// CODE_TTL (minutes) anyway.
//
// Earlier releases stored the HMAC of the code itself (Hash); such a code
// still matches, but cannot be mailed again.
package code

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Digits is the length of a code.
const Digits = 6

// space is the number of codes: 10^Digits.
const space = 1_000_000

// hkdfInfo labels the derived key, so it differs from any other key
// derived from the same seal key.
const hkdfInfo = "verifier one-time code hmac v1"

// seedInfo labels the key codes are derived from seeds with, apart from
// the key of Hash.
const seedInfo = "verifier one-time code seed v1"

// seedPrefix and seedLen make a stored seed: "s" and 32 hex digits (16
// random bytes), never the 64 hex digits of a Hash.
const (
	seedPrefix = "s"
	seedLen    = 16
)

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

// Hasher makes codes and their stored forms under the server's keys.
type Hasher struct{ key, seedKey []byte }

// NewHasher derives the code keys from the seal key.
func NewHasher(sealKey []byte) (*Hasher, error) {
	key, err := hkdf.Key(sha256.New, sealKey, nil, hkdfInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("code: derive key: %w", err)
	}
	seedKey, err := hkdf.Key(sha256.New, sealKey, nil, seedInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("code: derive seed key: %w", err)
	}
	return &Hasher{key: key, seedKey: seedKey}, nil
}

// Issue returns a fresh code for registration and the form to store: a
// random seed the code is derived from. Codes are uniform over all
// Digits-digit values (up to a bias of 2^-44: a 64-bit value reduced
// modulo 10^6).
func (h *Hasher) Issue(registration uuid.UUID) (code, stored string) {
	seed := make([]byte, seedLen)
	_, _ = rand.Read(seed) // crypto/rand does not fail on supported platforms
	return h.derive(registration, seed), seedPrefix + hex.EncodeToString(seed)
}

// Recall returns the code stored stands for. It reports false for a form
// no code can be had from again: a Hash (an earlier release's, or of the
// empty string, the code nobody can give) or nothing.
func (h *Hasher) Recall(registration uuid.UUID, stored string) (string, bool) {
	rest, ok := strings.CutPrefix(stored, seedPrefix)
	if !ok || len(rest) != 2*seedLen {
		return "", false
	}
	seed, err := hex.DecodeString(rest)
	if err != nil {
		return "", false
	}
	return h.derive(registration, seed), true
}

func (h *Hasher) derive(registration uuid.UUID, seed []byte) string {
	m := hmac.New(sha256.New, h.seedKey)
	m.Write(registration[:])
	m.Write(seed)
	n := binary.BigEndian.Uint64(m.Sum(nil)) % space
	return fmt.Sprintf("%0*d", Digits, n)
}

// Hash is the stored form of a code of an earlier release, and of the
// code nobody can give (the empty string, which no well-formed code
// matches): hex HMAC-SHA256. The registration is part of the message, so a
// code is worth nothing with another registration's watch token.
func (h *Hasher) Hash(registration uuid.UUID, code string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write(registration[:])
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// Match reports whether code is the one stored (a seed or a Hash) stands
// for, in constant time.
func (h *Hasher) Match(registration uuid.UUID, code, stored string) bool {
	if want, ok := h.Recall(registration, stored); ok {
		return subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1
	}
	return hmac.Equal([]byte(h.Hash(registration, code)), []byte(stored))
}
