// Package seal keeps verification secrets unusable while they travel.
//
// A verification token exists in clear only in the email. On its way there
// it sits in the outbox, in the broker's queues and perhaps in a dead-letter
// queue, any of which an operator, a backup or a broker admin UI may read.
// So the event carries the token sealed with AES-256-GCM under a key that
// only the service holds; the mailer opens it just before rendering. The
// sealed form is bound to the address it was issued for, so a tampered
// event cannot send one address's token to another.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/secret"
)

// KeyLen is the length of a key: AES-256.
const KeyLen = 32

// SecretName is the Secret row that holds the generated key.
const SecretName = "token-seal-key"

// Box seals and opens secrets with one key.
type Box struct {
	aead cipher.AEAD
}

// ErrOpen is returned for anything that does not open: a wrong key, a
// tampered or truncated value, or another address.
var ErrOpen = errors.New("seal: cannot open")

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeyLen {
		return nil, fmt.Errorf("seal: want a %d-byte key, got %d bytes", KeyLen, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plain, bound to context (the address), as unpadded
// base64url.
func (b *Box) Seal(plain, context string) string {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	_, _ = rand.Read(nonce) // never fails; see crypto/rand.Read
	out := b.aead.Seal(nonce, nonce, []byte(plain), []byte(context))
	return base64.RawURLEncoding.EncodeToString(out)
}

// Open reverses Seal for the same context.
func (b *Box) Open(sealed, context string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize()+b.aead.Overhead() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// ParseKey decodes a key given in the settings: 32 bytes in base64
// (standard or URL alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeyLen {
				return nil, fmt.Errorf("want %d bytes of base64, got %d bytes", KeyLen, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("not base64")
}

// LoadOrCreate returns the key kept in the database, generating and
// storing one on first use. Replicas racing at first start all end up with
// the one that was stored first.
func LoadOrCreate(ctx context.Context, db *ent.Client) ([]byte, error) {
	k := make([]byte, KeyLen)
	_, _ = rand.Read(k)
	err := db.Secret.Create().SetName(SecretName).SetValue(k).
		OnConflictColumns(secret.FieldName).DoNothing().Exec(ctx)
	if err != nil && !isNoRows(err) {
		return nil, fmt.Errorf("seal: store generated key: %w", err)
	}
	s, err := db.Secret.Query().Where(secret.Name(SecretName)).Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal: read key: %w", err)
	}
	return s.Value, nil
}

// Load returns the key kept in the database, or nil when none is: unlike
// LoadOrCreate it writes nothing.
func Load(ctx context.Context, db *ent.Client) ([]byte, error) {
	s, err := db.Secret.Query().Where(secret.Name(SecretName)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read key: %w", err)
	}
	return s.Value, nil
}

// KeyFor is the key the service seals with: configured (TOKEN_SEAL_KEY)
// when given, else the one kept in db (LoadOrCreate). Every process that
// seals what another opens (the service, an operator's command) gets its
// key here.
func KeyFor(ctx context.Context, db *ent.Client, configured []byte) ([]byte, error) {
	if configured != nil {
		return configured, nil
	}
	return LoadOrCreate(ctx, db)
}

// isNoRows is what ent's DoNothing upsert reports on PostgreSQL when the
// row already existed.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
