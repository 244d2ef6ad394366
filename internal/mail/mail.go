// Package mail renders the service's emails and sends them, over SMTP or
// into the dev outbox.
package mail

import (
	"context"
	"net/url"
	"time"
)

// Message is a rendered email.
type Message struct {
	// ID identifies the event that caused the email, so a redelivered
	// event is recognisable.
	ID      string
	To      string
	Subject string
	Text    string
	HTML    string
}

// Sender delivers messages. An error says what the failure means through
// ClassOf (a *Failure's Class; Temporary for any other error), ReasonOf
// and NotTried: only Rejected is not worth retrying, and the class sets
// how soon the mailer tries again.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// VerifyLink is the link in a verification email, as the contract fixes it.
func VerifyLink(publicURL, token string) string {
	return publicURL + "/verify-email?token=" + url.QueryEscape(token)
}

// VerificationData is what a verification email says.
type VerificationData struct {
	Link    string
	Expires time.Time
	// Code is the one-time code; empty when the registration's code is
	// dead (the email then carries the link only).
	Code        string
	CodeExpires time.Time
	// Resend: the person asked for this email again.
	Resend bool
	// ChangeEmail: the email confirms a new address of an existing account.
	ChangeEmail bool
	// Locale is the BCP 47 tag asked for; the closest language there
	// are templates for is used, English when none is close.
	Locale string
}
