// Package mail renders the service's emails and sends them, over SMTP or
// into the dev outbox.
package mail

import (
	"bytes"
	"context"
	"embed"
	htmltemplate "html/template"
	"net/url"
	texttemplate "text/template"
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

// Sender delivers messages. Errors marked permanent (see IsPermanent) will
// not succeed on retry; any other error is worth retrying.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

//go:embed templates
var templateFS embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/*.txt"))
	// html/template escapes every value, so nothing in an address or link
	// can inject markup.
	htmlTemplates = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/*.html"))
)

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
	// Locale is the BCP 47 tag asked for; only English exists so far, and
	// every other tag falls back to it.
	Locale string
}

// timeFormat is how emails show when a link or code stops working.
const timeFormat = "Mon, 2 Jan 2006 15:04 MST"

// Verification renders the email with a verification link and code.
func Verification(id, to string, d VerificationData) (Message, error) {
	data := struct {
		Link, Expires, Code, CodeExpires string
		Resend, ChangeEmail              bool
	}{d.Link, d.Expires.UTC().Format(timeFormat), d.Code, d.CodeExpires.UTC().Format(timeFormat), d.Resend, d.ChangeEmail}
	// The code stays out of the subject: lock screens and mail lists
	// show subjects to whoever is near.
	subject := "Verify your email address"
	if d.ChangeEmail {
		subject = "Verify your new email address"
	}
	return render(id, to, subject, "verify", data)
}

// AlreadyRegistered renders the notice sent when someone registers an
// address that has an account, or asks to move their account to it
// (changeEmail).
func AlreadyRegistered(id, to string, changeEmail bool) (Message, error) {
	data := struct{ ChangeEmail bool }{changeEmail}
	return render(id, to, "Someone tried to use your email address", "exists", data)
}

// EmailChangeNotice renders the notice to an account's address that a
// change to another address was asked for; newEmail is shown masked.
func EmailChangeNotice(id, to, newEmail string) (Message, error) {
	data := struct{ NewEmail string }{newEmail}
	return render(id, to, "A change of your email address was requested", "change", data)
}

func render(id, to, subject, name string, data any) (Message, error) {
	var text, html bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&text, name+".txt", data); err != nil {
		return Message{}, err
	}
	if err := htmlTemplates.ExecuteTemplate(&html, name+".html", data); err != nil {
		return Message{}, err
	}
	return Message{ID: id, To: to, Subject: subject, Text: text.String(), HTML: html.String()}, nil
}
