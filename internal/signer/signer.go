package signer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/signingkey"
	"github.com/verifier/verifier/internal/seal"
)

// Token uses: the token_use claim.
const (
	useReceipt = "receipt"
	useSession = "session"
)

// leeway is how far VerifySession lets exp and iat miss its clock: the
// replicas' clocks differ a little.
const leeway = 30 * time.Second

// retireMargin is how long past its last token's expiry a retired key
// stays listed and accepted. It covers leeway, the cacheFor during which
// another replica may still sign with a key it has not yet seen retired,
// and the one-minute leeway common in apps' JWT libraries (go-jose's
// default), with room to spare.
const retireMargin = 2 * time.Minute

// maxTokenLen bounds what VerifySession parses: our tokens are about 500
// bytes, so anything much larger is not one of ours.
const maxTokenLen = 4096

// ErrInvalid is wrapped by every error VerifySession returns for a token
// that is not a valid session token. The text after it says why, for the
// logs; a client is only told it is not signed in.
var ErrInvalid = errors.New("signer: invalid token")

// Claims are what a receipt or a session token says about a user.
type Claims struct {
	UserID     uuid.UUID // sub
	Email      string
	VerifiedAt time.Time // verified_at (unix seconds)
}

// Options configure New.
type Options struct {
	DB         *ent.Client      // keys are kept here (embedded defaults) and listed from here
	Issuer     string           // iss = PUBLIC_URL
	Audience   string           // aud when non-empty (JWT_AUDIENCE)
	KeyFile    string           // SIGNING_KEY_FILE: PEM (PKCS#8) Ed25519 private key; empty = generate once, keep in DB
	ReceiptTTL time.Duration    // RECEIPT_TTL
	SessionTTL time.Duration    // SESSION_TTL
	Now        func() time.Time // nil = time.Now
	Log        *slog.Logger     // nil = slog.Default()
	// Seal seals the private half of the keys kept in the database (the
	// box of TOKEN_SEAL_KEY), so a copy of the database alone signs
	// nothing when that key is given; nil keeps them in clear.
	Seal *seal.Box
}

// Signer signs receipts and session tokens with the current key, verifies
// session tokens against every listed key, and serves the JWKS. Safe for
// concurrent use.
type Signer struct {
	db                     *ent.Client
	iss, aud               string
	receiptTTL, sessionTTL time.Duration
	// retention is how long a retired key stays listed: the longest a
	// token lives, plus retireMargin.
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
	box       *seal.Box

	// file and filePriv are SIGNING_KEY_FILE's key; nil on embedded
	// defaults.
	file     *key
	filePriv ed25519.PrivateKey
	// own is the key New settled on. It signs only while the current key
	// is one this replica cannot sign with (another replica installed a
	// key from a file this one was not given).
	own *key

	view  atomic.Pointer[view]
	loads singleflight.Group
	reads atomic.Int64 // reads of the key table, for tests

	mu         sync.Mutex
	lastForced time.Time // last re-read for an unknown kid
	warnedKID  string    // current kid last warned about signing with own
}

var _ http.Handler = (*Signer)(nil)

// New loads or creates the current key: with KeyFile, the file's key
// (registered in the table, the previous current key retired); otherwise
// the key kept in the database, generated on first start. It is safe when
// several replicas start on one database at once: they agree on one key.
func New(ctx context.Context, o Options) (*Signer, error) {
	s, err := newSigner(o)
	if err != nil {
		return nil, err
	}
	// A replica that starts while another installs a key can read the
	// table between the two; a few tries settle it.
	for range 3 {
		if err = s.settle(ctx); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	source := "database"
	if s.file != nil {
		source = "SIGNING_KEY_FILE"
	}
	s.log.Info("signing key ready", "kid", s.own.kid, "source", source)
	return s, nil
}

// newSigner checks o and reads SIGNING_KEY_FILE, if given; it neither reads
// nor writes the key table.
func newSigner(o Options) (*Signer, error) {
	switch {
	case o.DB == nil:
		return nil, errors.New("signer: no database")
	case o.Issuer == "":
		return nil, errors.New("signer: no issuer")
	case o.ReceiptTTL <= 0 || o.SessionTTL <= 0:
		return nil, errors.New("signer: RECEIPT_TTL and SESSION_TTL must be positive")
	}
	s := &Signer{
		db: o.DB, iss: o.Issuer, aud: o.Audience,
		receiptTTL: o.ReceiptTTL, sessionTTL: o.SessionTTL,
		retention: max(o.ReceiptTTL, o.SessionTTL) + retireMargin,
		now:       o.Now, log: o.Log, box: o.Seal,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if o.KeyFile != "" {
		priv, err := readKeyFile(o.KeyFile)
		if err != nil {
			return nil, err
		}
		if s.file, err = newKey(priv.Public().(ed25519.PublicKey), priv); err != nil {
			return nil, err
		}
		s.filePriv = priv
	}
	return s, nil
}

// settle installs or finds the current key and reads it back.
func (s *Signer) settle(ctx context.Context) error {
	var err error
	if s.file != nil {
		err = s.installFileKey(ctx, s.file)
	} else {
		err = s.ensureGeneratedKey(ctx)
	}
	if err != nil {
		return err
	}
	v, err := s.reload(ctx)
	if err != nil {
		return err
	}
	if v.current == nil || v.current.signer == nil {
		return errors.New("signer: the current key changed while starting")
	}
	s.own = v.current
	return nil
}

// clock is the time now as the database keeps it (UTC, microseconds).
func (s *Signer) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Receipt signs a receipt: proof for an app that the address is verified,
// valid for ReceiptTTL. Nothing in verifier accepts it as a credential.
func (s *Signer) Receipt(ctx context.Context, c Claims) (string, error) {
	tok, _, err := s.sign(ctx, c, useReceipt, s.receiptTTL)
	return tok, err
}

// Session signs a sign-in token, valid for SessionTTL, and says when it
// expires.
func (s *Signer) Session(ctx context.Context, c Claims) (token string, expiresAt time.Time, err error) {
	return s.sign(ctx, c, useSession, s.sessionTTL)
}

// custom are the claims beyond RFC 7519's.
type custom struct {
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	VerifiedAt    int64  `json:"verified_at"`
	TokenUse      string `json:"token_use"`
}

func (s *Signer) sign(ctx context.Context, c Claims, use string, ttl time.Duration) (string, time.Time, error) {
	if c.UserID == uuid.Nil || c.Email == "" || c.VerifiedAt.IsZero() {
		return "", time.Time{}, errors.New("signer: claims need a user id, an email and verified_at")
	}
	k, err := s.signingKey(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	// Whole seconds, as JWT times are, so that exp - iat is ttl exactly.
	iat := time.Unix(s.now().Unix(), 0).UTC()
	exp := iat.Add(ttl)
	s.cover(ctx, k, exp)
	std := jwt.Claims{
		Issuer:   s.iss,
		Subject:  c.UserID.String(),
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(exp),
		ID:       uuid.NewString(),
	}
	if s.aud != "" {
		std.Audience = jwt.Audience{s.aud}
	}
	tok, err := jwt.Signed(k.signer).Claims(std).Claims(custom{
		Email: c.Email, EmailVerified: true, VerifiedAt: c.VerifiedAt.Unix(), TokenUse: use,
	}).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signer: sign: %w", err)
	}
	return tok, exp, nil
}

// coverAhead is how far past the token it signs cover moves a key's
// tokens_expire_by: a replica writes the row at most once per coverAhead
// per key, and a retired key stays listed at most this much longer than
// its last token needs.
const coverAhead = 10 * time.Minute

// coverTimeout bounds cover's write, which runs apart from its caller's
// context: the longest a signature waits for the key table before it is
// made all the same.
const coverTimeout = 5 * time.Second

// cover makes sure k's row says a token of k may expire as late as exp,
// before a token with that expiry exists, so that the key stays listed
// (JWKS, VerifySession) until that token has expired: after a key change
// that also shortened the lifetimes, or while a replica signs with its
// own key retired by another (a rolling change of SIGNING_KEY_FILE). The
// update only ever moves the time later, so replicas with different
// lifetimes agree on the latest.
//
// When the database does not take the write, the token is signed all the
// same (a database blip stops neither signing nor verifying, see keys),
// the failure is logged, and the write is tried again at most once per
// cacheFor: such a token can lose its key's listing before it expires
// only if the key is also retired within its lifetime.
func (s *Signer) cover(ctx context.Context, k *key, exp time.Time) {
	if exp.Unix() <= k.covered.Load() {
		return
	}
	now := s.now()
	if last := k.coverFailed.Load(); last != 0 && now.Sub(time.Unix(0, last)) < cacheFor {
		return
	}
	by := exp.Add(coverAhead).UTC().Truncate(time.Second)
	// The row speaks for every token of k, not only this caller's: a
	// caller that is gone (its client left) must not fail the write and so
	// hold off the others' cover for cacheFor.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), coverTimeout)
	defer cancel()
	_, err := s.db.SigningKey.Update().
		Where(signingkey.Kid(k.kid), signingkey.Or(signingkey.TokensExpireByIsNil(), signingkey.TokensExpireByLT(by))).
		SetTokensExpireBy(by).
		Save(ctx)
	if err != nil {
		k.coverFailed.Store(now.UnixNano())
		s.log.Warn("signing keys: could not record how long the key's tokens live; signing all the same", "kid", k.kid, "err", err)
		return
	}
	k.coverFailed.Store(0)
	k.covered.Store(by.Unix())
}

// signingKey is the current key, or this replica's own key while the
// current one is a file key it was not given.
func (s *Signer) signingKey(ctx context.Context) (*key, error) {
	v, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	if v.current != nil && v.current.signer != nil {
		return v.current, nil
	}
	cur := ""
	if v.current != nil {
		cur = v.current.kid
	}
	s.mu.Lock()
	warn := s.warnedKID != cur
	s.warnedKID = cur
	s.mu.Unlock()
	if warn {
		// Tokens signed with a retired key stop verifying once it drops
		// out of the JWKS: replicas must share SIGNING_KEY_FILE (or all
		// leave it empty).
		s.log.Error("signing keys: the current key is one this replica cannot sign with (another replica has a different SIGNING_KEY_FILE); signing with its own key",
			"current_kid", cur, "kid", s.own.kid)
	}
	return s.own, nil
}

// invalid wraps ErrInvalid with why.
func invalid(why string, err ...error) error {
	if len(err) > 0 && err[0] != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, why, err[0])
	}
	return fmt.Errorf("%w: %s", ErrInvalid, why)
}

// VerifySession checks a sign-in token: signed by a listed key, EdDSA,
// ours (iss, aud), unexpired, and a session token (a receipt is never a
// credential). Any bad token gives an error wrapping ErrInvalid; an error
// without it means the key table could not be read.
func (s *Signer) VerifySession(ctx context.Context, token string) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, invalid("too long")
	}
	// Only EdDSA parses: "none", HMAC (with our public key as the secret)
	// and every other algorithm are refused here.
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		// The parser's message may quote the token: not kept.
		return Claims{}, invalid("not a compact EdDSA JWS")
	}
	if len(tok.Headers) != 1 {
		return Claims{}, invalid("not one signature")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "JWT" {
		return Claims{}, invalid("typ is not JWT")
	}
	k, err := s.lookup(ctx, h.KeyID)
	if err != nil {
		return Claims{}, err
	}
	if k == nil {
		return Claims{}, invalid("unknown or expired kid")
	}
	var (
		std jwt.Claims
		ext custom
	)
	if err := tok.Claims(k.pub, &std, &ext); err != nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return Claims{}, invalid("bad signature")
		}
		return Claims{}, invalid("claims do not parse")
	}
	if std.Expiry == nil || std.IssuedAt == nil {
		return Claims{}, invalid("no exp or iat")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: s.iss, Time: s.now()}, leeway); err != nil {
		return Claims{}, invalid("claims", err)
	}
	if s.aud == "" && len(std.Audience) > 0 || s.aud != "" && !std.Audience.Contains(s.aud) {
		return Claims{}, invalid("audience")
	}
	if ext.TokenUse != useSession {
		return Claims{}, invalid("not a session token")
	}
	id, err := uuid.Parse(std.Subject)
	if err != nil || ext.Email == "" || !ext.EmailVerified || ext.VerifiedAt <= 0 {
		return Claims{}, invalid("sub, email or verification missing")
	}
	return Claims{UserID: id, Email: ext.Email, VerifiedAt: time.Unix(ext.VerifiedAt, 0).UTC()}, nil
}
