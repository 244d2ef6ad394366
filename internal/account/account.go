// Package account is what the GraphQL resolvers call: registration, email
// verification, resends and status watching. Every change is one ent
// transaction that also writes its outbox event; nothing here talks to the
// broker or to SMTP, so no request waits on either.
package account

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
	"github.com/verifier/verifier/internal/status"
)

// Claims are what a receipt or a session token says of a user.
type Claims = signer.Claims

// Signer mints receipts and session tokens and checks the latter
// (*signer.Signer).
type Signer interface {
	Receipt(ctx context.Context, c Claims) (string, error)
	Session(ctx context.Context, c Claims) (token string, expiresAt time.Time, err error)
	// VerifySession accepts a session token only (never a receipt); its
	// errors for a token it refuses wrap signer.ErrInvalid.
	VerifySession(ctx context.Context, token string) (Claims, error)
}

var _ Signer = (*signer.Signer)(nil)

// Hub is what Watch needs from the subscription hub.
type Hub interface {
	Subscribe(ctx context.Context, w hub.Watch) (*hub.Subscription, error)
}

// Deliveries is what the service needs from the delivery records: the
// latest state of a registration's latest email for Watch (nil if none
// is recorded yet), and a record for each email it queues (see
// delivery.Store's Queue and Forget).
type Deliveries interface {
	Latest(ctx context.Context, registration uuid.UUID) (*status.Delivery, error)
	Queue(ctx context.Context, tx *ent.Tx, e delivery.Event, at time.Time) (func(), error)
	Forget(ctx context.Context, tx *ent.Tx, id string) error
}

// Options configure a Service.
type Options struct {
	DB *ent.Client
	// Dialect of DB (dialect.SQLite or dialect.Postgres).
	Dialect string
	Hasher  *password.Hasher
	// Seal seals verification tokens and codes for their trip to the
	// mailer.
	Seal *seal.Box
	// Codes hashes one-time codes under the server's key.
	Codes *code.Hasher
	// Signer mints receipts and session tokens.
	Signer Signer
	Hub    Hub
	// Deliveries, if set, records each email queued and gives watchers
	// the delivery of their email so far; nil records nothing, and shows
	// every email QUEUED until its first change is heard.
	Deliveries Deliveries
	// Wake is called after each commit that wrote an outbox event.
	Wake func()
	// Events writes the public events (the zero Writer writes them all,
	// with the default source).
	Events         publicevent.Writer
	TokenTTL       time.Duration
	ResendCooldown time.Duration
	// CodeTTL is how long a one-time code works.
	CodeTTL time.Duration
	// UnverifiedTTL is how long an UNVERIFIED user outlives its last
	// registration (DefaultUnverifiedTTL if 0).
	UnverifiedTTL time.Duration
	// RedirectOrigins are the origins a redirectTo may have: PUBLIC_URL's
	// and REDIRECT_ALLOWLIST's.
	RedirectOrigins []string
	// SignInAddressLimit and SignInClientLimit are the failed sign-ins
	// allowed per address and per client in a BudgetWindow, counted in
	// the database so replicas share them; 0 is the default.
	SignInAddressLimit int
	SignInClientLimit  int
	// DomainEmailLimit and GlobalEmailLimit cap the emails queued per
	// BudgetWindow to one recipient domain and in all; 0 is no cap.
	DomainEmailLimit int
	GlobalEmailLimit int
	Log              *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements the registration and verification use cases.
type Service struct {
	Options

	// dummyHash is what signIn checks a password against for an unknown
	// address, so that it costs what a known one costs.
	dummyOnce sync.Once
	dummyHash string
	dummyErr  error
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	if o.CodeTTL == 0 {
		o.CodeTTL = DefaultCodeTTL
	}
	if o.SignInAddressLimit == 0 {
		o.SignInAddressLimit = DefaultSignInAddressLimit
	}
	if o.SignInClientLimit == 0 {
		o.SignInClientLimit = DefaultSignInClientLimit
	}
	return &Service{Options: o}
}

// now is the service clock in UTC, to the microsecond. UTC: SQLite
// compares stored times as text, which orders correctly only when every
// time has the same offset. Microseconds: PostgreSQL keeps no more, so a
// time answered straight from the clock (verifyEmail's winner) equals the
// same time read back from the database (every repeat of the call).
func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }
