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
	// RegisteredTopic reports a new user (the first registration of an
	// address); the mailer sends its verification email. Payload:
	// VerificationRequested.
	RegisteredTopic = "user.registered"
	// RenewedTopic reports a new registration of an UNVERIFIED address
	// (no new user: it supersedes the older registrations); the mailer
	// sends its verification email. Payload: VerificationRequested.
	RenewedTopic = "user.registration_renewed"
	// EmailChangeRequestedTopic asks the mailer for the verification
	// email of a change of address, to the new address. Payload:
	// VerificationRequested.
	EmailChangeRequestedTopic = "user.email_change_requested"
	// EmailChangeNoticeTopic asks the mailer to tell the old address that
	// a change of address was requested. Payload: EmailChangeNotice.
	EmailChangeNoticeTopic = "user.email_change_notice"
	// SupersededTopic tells every replica that registrations were
	// superseded: subscriptions on their watch tokens complete. Payload:
	// Superseded.
	SupersededTopic = "registration.superseded"
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
	// SealedCode is the one-time code, sealed like the token; empty when
	// the registration's code is dead (the email carries the link only).
	SealedCode    string    `json:"sealedCode,omitempty"`
	CodeExpiresAt time.Time `json:"codeExpiresAt,omitzero"`
	// Locale is the BCP 47 tag of the email's language.
	Locale string `json:"locale,omitempty"`
}

// AlreadyRegistered is the notice sent instead of a second account, or to
// the owner of an address that someone asked to change theirs to.
type AlreadyRegistered struct {
	Email string `json:"email"`
	// ChangeEmail is set when the attempt was a change of address.
	ChangeEmail bool `json:"changeEmail,omitempty"`
	// Registration is the id of the repeated registration's watch token:
	// its watcher sees this notice's delivery as a fresh registration's
	// watcher would see a verification email's.
	Registration uuid.UUID `json:"registration,omitempty"`
	// Locale is the BCP 47 tag of the notice's language: the owner's,
	// not the one of whoever tried (empty: English).
	Locale string `json:"locale,omitempty"`
	// UserID is the owner of the address the notice goes to, so its
	// delivery record is listed among the user's emails.
	UserID uuid.UUID `json:"userId,omitzero"`
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
	// Registration is the one whose link or code confirmed the address:
	// only its watchers are told VERIFIED.
	Registration uuid.UUID `json:"registration"`
	// Email is the verified address, for the watchers' receipts.
	Email string `json:"email"`
}

// Superseded names registrations that no longer confirm anything.
type Superseded struct {
	Registrations []uuid.UUID `json:"registrations"`
}

// EmailChangeNotice tells the old address of a requested change.
type EmailChangeNotice struct {
	Email string `json:"email"`
	// NewEmail is the requested address, masked (n…@example.com).
	NewEmail string `json:"newEmail"`
	// Locale is the BCP 47 tag of the notice's language (empty: English).
	Locale string `json:"locale,omitempty"`
	// UserID is the user the notice goes to (see AlreadyRegistered).
	UserID uuid.UUID `json:"userId,omitzero"`
}

// The kinds of email, as delivery records and metrics name them.
const (
	KindVerification      = "verification"
	KindAlreadyRegistered = "already_registered"
	KindEmailChangeNotice = "email_change_notice"
)

// Mail is what an email event says of its email: what it is, to whom, and
// whose (the registration whose watchers are told of its delivery, the
// user it is listed under; uuid.Nil when the event names none).
type Mail struct {
	Kind         string
	To           string
	Registration uuid.UUID
	UserID       uuid.UUID
}

// Email is the payload of an email event.
type Email interface {
	Mail() Mail
}

// Mail describes the verification email.
func (e VerificationRequested) Mail() Mail {
	return Mail{Kind: KindVerification, To: e.Email, Registration: e.Registration, UserID: e.UserID}
}

// Mail describes the notice.
func (e AlreadyRegistered) Mail() Mail {
	return Mail{Kind: KindAlreadyRegistered, To: e.Email, Registration: e.Registration, UserID: e.UserID}
}

// Mail describes the notice.
func (e EmailChangeNotice) Mail() Mail {
	return Mail{Kind: KindEmailChangeNotice, To: e.Email, UserID: e.UserID}
}
