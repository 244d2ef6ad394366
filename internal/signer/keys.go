package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/signingkey"
	"github.com/verifier/verifier/internal/database"
)

// key is one signing key as the signer uses it.
type key struct {
	kid string
	pub ed25519.PublicKey
	// signer is nil when this replica cannot sign with the key: a retired
	// key (its private half is erased), or a current key read from a file
	// this replica was not given.
	signer    jose.Signer
	retiredAt *time.Time
	// expiresBy is the row's tokens_expire_by (nil: not kept), and
	// covered the latest expiry it is known to cover, in unix seconds,
	// moved by cover; coverFailed is when cover's last write failed (unix
	// nanoseconds, 0: it did not).
	expiresBy   *time.Time
	covered     atomic.Int64
	coverFailed atomic.Int64
}

// kidLen is the length of a kid: base64url of a SHA-256 digest.
const kidLen = 43

// thumbprint is the RFC 7638 thumbprint of pub in base64url: the kid.
func thumbprint(pub ed25519.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("signer: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// newKey is priv ready to sign (or only its public half, priv nil).
func newKey(pub ed25519.PublicKey, priv ed25519.PrivateKey) (*key, error) {
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	k := &key{kid: kid, pub: pub}
	if priv != nil {
		sig, err := jose.NewSigner(
			jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"),
		)
		if err != nil {
			return nil, fmt.Errorf("signer: %w", err)
		}
		k.signer = sig
	}
	return k, nil
}

// sealedPrefix marks a private half stored sealed; a clear one is the
// 32-byte seed itself (keys stored before seeds were sealed, or without a
// seal box).
const sealedPrefix = "sealed:"

// errSealed: the private half is sealed under another key than this
// process's (TOKEN_SEAL_KEY changed), or this process has no seal box.
var errSealed = errors.New("the private key is sealed under another TOKEN_SEAL_KEY")

// stored is how seed is kept in kid's row: sealed, bound to the kid, when
// the signer has a seal box.
func (s *Signer) stored(kid string, seed []byte) []byte {
	if s.box == nil {
		return seed
	}
	return []byte(sealedPrefix + s.box.Seal(base64.RawURLEncoding.EncodeToString(seed), "signing key "+kid))
}

// seed opens what kid's row keeps of its private half.
func (s *Signer) seed(kid string, kept []byte) ([]byte, error) {
	rest, isSealed := bytes.CutPrefix(kept, []byte(sealedPrefix))
	if !isSealed {
		if len(kept) != ed25519.SeedSize {
			return nil, errors.New("private key of the wrong size")
		}
		return kept, nil
	}
	if s.box == nil {
		return nil, errSealed
	}
	plain, err := s.box.Open(string(rest), "signing key "+kid)
	if err != nil {
		return nil, errSealed
	}
	seed, err := base64.RawURLEncoding.DecodeString(plain)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("private key of the wrong size")
	}
	return seed, nil
}

// generate makes a new key; it returns the seed, the only part stored.
func generate() (*key, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(nil) // crypto/rand
	if err != nil {
		return nil, nil, fmt.Errorf("signer: generate key: %w", err)
	}
	k, err := newKey(pub, priv)
	return k, priv.Seed(), err
}

// readKeyFile reads SIGNING_KEY_FILE: one PEM "PRIVATE KEY" block
// (PKCS#8) holding an Ed25519 key, such as `openssl genpkey -algorithm
// ed25519` writes. Its errors name the setting and the file, never any of
// its content, so the start can report them as they are (config only
// checks that the file exists; New reads it).
func readKeyFile(path string) (ed25519.PrivateKey, error) {
	const want = `want one PKCS#8 Ed25519 private key in PEM ("-----BEGIN PRIVATE KEY-----", e.g. from "openssl genpkey -algorithm ed25519")`
	raw, err := os.ReadFile(path)
	if err != nil {
		// The os error names the path and the reason, nothing of the file.
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %w", err)
	}
	block, rest := pem.Decode(raw)
	switch {
	case block == nil:
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %q holds no PEM block; %s", path, want)
	case block.Type != "PRIVATE KEY":
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %q holds a PEM %q block; %s", path, block.Type, want)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %q holds more than one PEM block; %s", path, want)
	}
	// x509's parse errors name the format problem, never the key's bytes.
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %q is not a PKCS#8 private key (%v); %s", path, err, want)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("SIGNING_KEY_FILE: %q holds %s key; %s", path, keyKind(parsed), want)
	}
	return priv, nil
}

// keyKind names a parsed key's algorithm for an error message.
func keyKind(k any) string {
	switch k.(type) {
	case *rsa.PrivateKey:
		return "an RSA"
	case *ecdsa.PrivateKey:
		return "an ECDSA"
	case *ecdh.PrivateKey:
		return "an X25519 (key agreement, not signing)"
	default:
		return fmt.Sprintf("a %T", k)
	}
}

// retireCurrent marks the current key retired in tx, if it also matches
// ps, and erases its private half: a retired key never signs again.
func retireCurrent(ctx context.Context, tx *ent.Tx, now time.Time, ps ...predicate.SigningKey) error {
	err := tx.SigningKey.Update().Where(append(ps, signingkey.Current(true))...).
		ClearCurrent().SetRetiredAt(now).ClearPrivateKey().Exec(ctx)
	if err != nil {
		return fmt.Errorf("signer: retire the current key: %w", err)
	}
	return nil
}

// insertGenerated stores a new generated key as the current one, unless a
// current key exists by then (another replica won the race; ON CONFLICT on
// the unique index of current).
func (s *Signer) insertGenerated(ctx context.Context, tx *ent.Tx, now time.Time, k *key, seed []byte) error {
	err := tx.SigningKey.Create().
		SetKid(k.kid).SetPublicKey(k.pub).SetPrivateKey(s.stored(k.kid, seed)).SetCurrent(true).SetCreatedAt(now).
		OnConflictColumns(signingkey.FieldCurrent).DoNothing().Exec(ctx)
	// ent reports ErrNoRows on PostgreSQL when DO NOTHING kept the row out.
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("signer: store the generated key: %w", err)
	}
	return nil
}

// installFileKey makes the key of SIGNING_KEY_FILE the current one: any
// other current key is retired, and the file's key (new, or back after a
// while) is current and not retired. Replicas starting with the same file
// at once agree: the kid is the key's thumbprint, so they upsert one row.
func (s *Signer) installFileKey(ctx context.Context, k *key) error {
	return database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		now := s.clock()
		revoked, err := tx.SigningKey.Query().Where(signingkey.Kid(k.kid), signingkey.RevokedAtNotNil()).Exist(ctx)
		if err != nil {
			return fmt.Errorf("signer: read the key of SIGNING_KEY_FILE: %w", err)
		}
		if revoked {
			return fmt.Errorf("SIGNING_KEY_FILE: its key %s was revoked (signing-key rotate -revoke): put a new key in the file", k.kid)
		}
		if err := retireCurrent(ctx, tx, now, signingkey.KidNEQ(k.kid)); err != nil {
			return err
		}
		err = tx.SigningKey.Create().
			SetKid(k.kid).SetPublicKey(k.pub).SetCurrent(true).SetCreatedAt(now).
			OnConflictColumns(signingkey.FieldKid).
			Update(func(u *ent.SigningKeyUpsert) { u.SetCurrent(true).ClearRetiredAt() }).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("signer: register the key of SIGNING_KEY_FILE: %w", err)
		}
		return nil
	})
}

// ensureGeneratedKey makes sure the current key is one kept in the
// database. On the first start it generates one; several replicas starting
// at once each try, the unique index lets one in, and all read that one
// back. A current key without its private half (it came from a
// SIGNING_KEY_FILE that is no longer given) gives way to a generated one,
// and so does one sealed under another TOKEN_SEAL_KEY: it can no longer
// sign, and the tokens it signed verify until they expire. A key kept in
// clear from before seeds were sealed is sealed now.
func (s *Signer) ensureGeneratedKey(ctx context.Context) error {
	cur, err := s.db.SigningKey.Query().Where(signingkey.Current(true)).Only(ctx)
	retire := signingkey.PrivateKeyIsNil()
	switch {
	case err == nil && len(cur.PrivateKey) > 0:
		seed, serr := s.seed(cur.Kid, cur.PrivateKey)
		switch {
		case serr == nil && s.box != nil && !bytes.HasPrefix(cur.PrivateKey, []byte(sealedPrefix)):
			_, err := s.db.SigningKey.Update().Where(signingkey.ID(cur.ID), signingkey.Current(true)).
				SetPrivateKey(s.stored(cur.Kid, seed)).Save(ctx)
			if err != nil {
				return fmt.Errorf("signer: seal the current key: %w", err)
			}
			return nil
		case serr == nil:
			return nil // the usual start: nothing to write
		case errors.Is(serr, errSealed):
			s.log.Warn("the signing key kept in the database does not open with this TOKEN_SEAL_KEY (was it changed?): a new key signs from now on; tokens signed before still verify until they expire", "kid", cur.Kid)
			retire = signingkey.Kid(cur.Kid)
		default:
			return fmt.Errorf("signer: the current key %s: %w", cur.Kid, serr)
		}
	case err != nil && !ent.IsNotFound(err):
		return fmt.Errorf("signer: read the current key: %w", err)
	}
	k, seed, err := generate()
	if err != nil {
		return err
	}
	return database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		now := s.clock()
		if err := retireCurrent(ctx, tx, now, retire); err != nil {
			return err
		}
		return s.insertGenerated(ctx, tx, now, k, seed)
	})
}

// ErrKeyFromFile is why Rotate refuses when the signing key is a
// SIGNING_KEY_FILE's: given to this process, or installed in the table by
// a replica that was given one.
var ErrKeyFromFile = errors.New("the signing key comes from SIGNING_KEY_FILE: rotate by replacing the file and restarting the service")

// ErrNotNext is why Activate refuses a key that is no longer waiting to
// sign: another rotation replaced it, or made it current already.
var ErrNotNext = errors.New("the key is no longer the next one (another rotation replaced or activated it): run rotate again")

// next is the predicate of a published key that does not sign yet: neither
// current, retired nor revoked.
func next() predicate.SigningKey {
	return signingkey.And(signingkey.CurrentIsNil(), signingkey.RetiredAtIsNil(), signingkey.RevokedAtIsNil())
}

// rotatable reads the current key in tx and refuses a rotation that the
// replicas could not follow: the key is a SIGNING_KEY_FILE's, or its
// private half does not open with this process's TOKEN_SEAL_KEY (the new
// key, sealed under the same key, would not open on the replicas either,
// and they would go on signing with the retired one). It returns the
// current key's row, nil when there is none yet (the service never started
// here).
func (s *Signer) rotatable(ctx context.Context, tx *ent.Tx) (*ent.SigningKey, error) {
	if s.file != nil {
		return nil, fmt.Errorf("signer: %w", ErrKeyFromFile)
	}
	cur, err := tx.SigningKey.Query().Where(signingkey.Current(true)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("signer: read the current key: %w", err)
	case len(cur.PrivateKey) == 0:
		return nil, fmt.Errorf("signer: the current key %s was installed by a replica given SIGNING_KEY_FILE: %w", cur.Kid, ErrKeyFromFile)
	}
	if _, err := s.seed(cur.Kid, cur.PrivateKey); err != nil {
		return nil, fmt.Errorf("signer: the current key %s: %w: rotate with the TOKEN_SEAL_KEY the service runs with", cur.Kid, err)
	}
	return cur, nil
}

// Next is a key published ahead of signing (Publish).
type Next struct {
	Kid string
	// Wait is how long to wait before Activate so that every replica lists
	// the key first: PublishFor, or 0 when no key signs yet.
	Wait time.Duration
}

// Publish is the first step of a rotation: it generates a key, kept in the
// database, as the next one: listed in the JWKS and accepted by
// VerifySession on every replica within cacheFor, signing nothing. A next
// key left by a rotation that never finished (nobody holds a token of it)
// is replaced. It refuses as Rotate does, changing nothing.
func (s *Signer) Publish(ctx context.Context) (Next, error) {
	k, seed, err := generate()
	if err != nil {
		return Next{}, err
	}
	n := Next{Kid: k.kid}
	err = database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		cur, err := s.rotatable(ctx, tx)
		if err != nil {
			return err
		}
		if cur != nil {
			n.Wait = PublishFor
		}
		if _, err := tx.SigningKey.Delete().Where(next()).Exec(ctx); err != nil {
			return fmt.Errorf("signer: drop the unused next key: %w", err)
		}
		err = tx.SigningKey.Create().
			SetKid(k.kid).SetPublicKey(k.pub).SetPrivateKey(s.stored(k.kid, seed)).SetCreatedAt(s.clock()).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("signer: store the next key: %w", err)
		}
		return nil
	})
	if err != nil {
		return Next{}, err
	}
	s.log.Info("next signing key published", "kid", k.kid)
	return n, nil
}

// Activated is what Activate changed.
type Activated struct {
	// Retired is the kid of the key that signed before; empty if none did.
	Retired string
	// Revoked are the kids Activate revoked (revoke only): the key that
	// signed before and every retired key still listed.
	Revoked []string
}

// Activate is the second step of a rotation: it makes the next key kid
// current and retires the key that signed before, in one transaction; other
// replicas sign with kid within cacheFor. The retired key stays listed and
// accepted until every token it signed has expired, unless revoke: then it
// and every other key still listed is revoked, leaving the JWKS and
// refused by VerifySession within cacheFor (everyone signed in with them is
// signed out; their receipts no longer verify).
func (s *Signer) Activate(ctx context.Context, kid string, revoke bool) (Activated, error) {
	var a Activated
	err := database.InTx(ctx, s.db, func(tx *ent.Tx) error {
		now := s.clock()
		cur, err := s.rotatable(ctx, tx)
		if err != nil {
			return err
		}
		if cur != nil {
			a.Retired = cur.Kid
		}
		if err := retireCurrent(ctx, tx, now); err != nil {
			return err
		}
		if revoke {
			ps := []predicate.SigningKey{signingkey.KidNEQ(kid), signingkey.RevokedAtIsNil(), s.listable(now)}
			if a.Revoked, err = tx.SigningKey.Query().Where(ps...).
				Order(ent.Desc(signingkey.FieldCreatedAt), ent.Asc(signingkey.FieldKid)).
				Select(signingkey.FieldKid).Strings(ctx); err != nil {
				return fmt.Errorf("signer: read the keys to revoke: %w", err)
			}
			if err := tx.SigningKey.Update().Where(ps...).SetRevokedAt(now).ClearPrivateKey().Exec(ctx); err != nil {
				return fmt.Errorf("signer: revoke the old keys: %w", err)
			}
		}
		n, err := tx.SigningKey.Update().Where(signingkey.Kid(kid), next()).SetCurrent(true).Save(ctx)
		if ent.IsConstraintError(err) {
			// A rotation at the same moment made its own key current
			// (PostgreSQL: this transaction could not see it yet).
			return fmt.Errorf("signer: %s: %w", kid, ErrNotNext)
		}
		if err != nil {
			return fmt.Errorf("signer: make the next key current: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("signer: %s: %w", kid, ErrNotNext)
		}
		return nil
	})
	if err != nil {
		return Activated{}, err
	}
	s.log.Info("signing key rotated", "kid", kid, "retired_kid", a.Retired, "revoked_kids", a.Revoked)
	// The rotation is done whatever comes next: a caller told it failed
	// would rotate (and, with revoke, sign everyone out) again. This
	// Signer's own copy catches up at its next read if this one fails.
	if _, err := s.reload(ctx); err != nil {
		s.log.Warn("signing keys: rotated, but this replica could not read the key table again yet", "err", err)
	}
	return a, nil
}

// Rotate publishes a new key and makes it current at once, retiring the
// previous one (Publish, then Activate). It does not wait between the two:
// right where this Signer is the only copy of the key table (one replica,
// tests), since it reloads its own copy. With several replicas, operators
// rotate with `verifier signing-key rotate`, which waits PublishFor between
// the steps so that every replica lists the key before any signs with it.
// It returns the new key's kid.
func (s *Signer) Rotate(ctx context.Context) (string, error) {
	n, err := s.Publish(ctx)
	if err != nil {
		return "", err
	}
	if _, err := s.Activate(ctx, n.Kid, false); err != nil {
		return "", err
	}
	return n.Kid, nil
}
