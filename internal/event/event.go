// Package event defines the messages that travel from the outbox through the
// broker to the consumers. The routing key of each is its Topic.
package event

import (
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/internal/status"
)

// Topics, used as routing keys.
const (
	// RegisteredTopic reports a new registration; the mailer sends its
	// verification link. Payload: VerificationRequested.
	RegisteredTopic = "user.registered"
	// ResentTopic asks for a fresh link for an unverified address.
	// Payload: VerificationRequested.
	ResentTopic = "user.verification_resent"
	// AlreadyRegisteredTopic asks the mailer to tell an address's owner
	// that someone tried to register it again.
	AlreadyRegisteredTopic = "user.already_registered"
	// VerifiedTopic tells every replica that an address was verified.
	VerifiedTopic = "user.verified"
	// DeliveryChangedTopic tells every replica that a registration's latest
	// email changed state, for subscribers watching withDelivery.
	// Payload: DeliveryChanged.
	DeliveryChangedTopic = "delivery.changed"
)

// VerificationRequested carries the link's secret to the mailer, for a
// registration or a resend. The secret is sealed (package seal) to the
// address: the outbox, the broker and a dead-letter queue hold nothing
// that verifies an address if read; it exists in clear only in the email.
type VerificationRequested struct {
	UserID uuid.UUID `json:"userId"`
	// Registration is the id of the registration (its watch token) the
	// email belongs to, so its delivery can be shown to whoever watches it.
	Registration uuid.UUID `json:"registration,omitempty"`
	Email        string    `json:"email"`
	SealedToken  string    `json:"sealedToken"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// AlreadyRegistered is the notice sent instead of a second account.
type AlreadyRegistered struct {
	Email string `json:"email"`
	// Registration is the id of the repeated registration's watch token:
	// its watcher sees this notice's delivery as a fresh registration's
	// watcher would see a verification email's.
	Registration uuid.UUID `json:"registration,omitempty"`
}

// DeliveryChanged reports a new state of a registration's latest email.
type DeliveryChanged struct {
	Registration uuid.UUID       `json:"registration"`
	Delivery     status.Delivery `json:"delivery"`
}

// Verified reports the one status change an address goes through.
type Verified struct {
	UserID     uuid.UUID `json:"userId"`
	VerifiedAt time.Time `json:"verifiedAt"`
}
