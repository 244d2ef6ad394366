// Package event defines the messages that travel from the outbox through the
// broker to the consumers. The routing key of each is its Topic.
package event

import (
	"time"

	"github.com/google/uuid"
)

// Topics, used as routing keys.
const (
	// VerificationRequestedTopic asks the mailer to send a verification
	// link, for a new registration or a resend.
	VerificationRequestedTopic = "user.verification_requested"
	// AlreadyRegisteredTopic asks the mailer to tell an address's owner
	// that someone tried to register it again.
	AlreadyRegisteredTopic = "user.already_registered"
	// VerifiedTopic tells every replica that an address was verified.
	VerifiedTopic = "user.verified"
)

// VerificationRequested carries the link's secret to the mailer. The secret
// exists in clear only here, in flight, and in the email itself.
type VerificationRequested struct {
	UserID    uuid.UUID `json:"userId"`
	Email     string    `json:"email"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
	Resend    bool      `json:"resend"`
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
