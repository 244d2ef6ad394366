// Package token makes and checks the secrets in verification links and
// watch tokens: 256 random bits, base64url without padding, stored only as
// a SHA-256 hash. A fast hash is enough because the input has 256 bits of
// entropy; a slow one would only slow down every lookup.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Len is the length of every token: 32 bytes in unpadded base64url.
const Len = 43

// New returns a fresh token and the hash to store.
func New() (tok, hash string) {
	var b [32]byte
	// crypto/rand.Read never returns an error; it crashes the program
	// rather than hand out weak randomness.
	_, _ = rand.Read(b[:])
	tok = base64.RawURLEncoding.EncodeToString(b[:])
	return tok, Hash(tok)
}

// Hash is the form in which a token is stored and looked up.
func Hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether s could be a token, so malformed input is
// rejected before it reaches the database.
func WellFormed(s string) bool {
	if len(s) != Len {
		return false
	}
	// The decoder skips \r and \n, so a 43-character string holding one
	// decodes without error to fewer bytes: check the length too (found
	// by FuzzWellFormed).
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}
