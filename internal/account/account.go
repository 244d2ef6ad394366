// Package account is what the GraphQL resolvers call: registration, email
// verification, resends and status watching. Every change is one ent
// transaction that also writes its outbox event; nothing here talks to the
// broker or to SMTP, so no request waits on either.
package account

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/seal"
)

// Status is a verification status as the contract names it.
type Status string

// The two statuses.
const (
	Unverified Status = "UNVERIFIED"
	Verified   Status = "VERIFIED"
)

// Hub is what Watch needs from the subscription hub.
type Hub interface {
	Subscribe(user uuid.UUID) *hub.Subscription
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

// now is the service clock in UTC: SQLite compares stored times as text,
// which orders correctly only when every time has the same offset.
func (s *Service) now() time.Time { return s.Now().UTC() }

// inTx runs fn in a transaction and commits it if fn succeeds.
func (s *Service) inTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	tx, err := s.DB.Tx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
