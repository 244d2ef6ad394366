// Package account is what the GraphQL resolvers call: registration, email
// verification, resends and status watching. Every change is one ent
// transaction that also writes its outbox event; nothing here talks to the
// broker or to SMTP, so no request waits on either.
package account

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/status"
)

// Hub is what Watch needs from the subscription hub.
type Hub interface {
	Subscribe(ctx context.Context, w hub.Watch) (*hub.Subscription, error)
}

// Deliveries is what Watch needs from the delivery records: the latest
// state of a registration's latest email, nil if none is recorded yet.
type Deliveries interface {
	Latest(ctx context.Context, registration uuid.UUID) (*status.Delivery, error)
}

// Options configure a Service.
type Options struct {
	DB *ent.Client
	// Dialect of DB (dialect.SQLite or dialect.Postgres).
	Dialect string
	Hasher  *password.Hasher
	// Seal seals verification tokens for their trip to the mailer.
	Seal *seal.Box
	Hub  Hub
	// Deliveries, if set, gives watchers the delivery of their email so
	// far; nil shows every email QUEUED until its first change is heard.
	Deliveries Deliveries
	// Wake is called after each commit that wrote an outbox event.
	Wake           func()
	TokenTTL       time.Duration
	ResendCooldown time.Duration
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
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wake == nil {
		o.Wake = func() {}
	}
	return &Service{o}
}

// now is the service clock in UTC, to the microsecond. UTC: SQLite
// compares stored times as text, which orders correctly only when every
// time has the same offset. Microseconds: PostgreSQL keeps no more, so a
// time answered straight from the clock (verifyEmail's winner) equals the
// same time read back from the database (every repeat of the call).
func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }
