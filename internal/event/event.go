// Package event defines the messages that travel from the outbox through the
// broker to the consumers. The routing key of each is its Topic.
package event

import (
	"time"

	"github.com/google/uuid"
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
)

// VerificationRequested carries the link's secret to the mailer, for a
// registration or a resend. The secret is sealed (package seal) to the
// address: the outbox, the broker and a dead-letter queue hold nothing
// that verifies an address if read; it exists in clear only in the email.
type VerificationRequested struct {
	UserID      uuid.UUID `json:"userId"`
	Email       string    `json:"email"`
	SealedToken string    `json:"sealedToken"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// AlreadyRegistered is the notice sent instead of a second account.
type AlreadyRegistered struct {
	Email string `json:"email"`
}

// Verified reports the one status change an address goes through.
type Verified struct {
	UserID     uuid.UUID `json:"userId"`
	VerifiedAt time.Time `json:"verifiedAt"`
}
