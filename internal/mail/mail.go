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

// Verification renders the email with a verification link.
func Verification(id, to, link string, expires time.Time, resend bool) (Message, error) {
	data := struct {
		Link    string
		Expires string
		Resend  bool
	}{link, expires.UTC().Format("Mon, 2 Jan 2006 15:04 MST"), resend}
	return render(id, to, "Verify your email address", "verify", data)
}

// AlreadyRegistered renders the notice sent when someone registers an
// address that has an account.
func AlreadyRegistered(id, to string) (Message, error) {
	return render(id, to, "Someone tried to sign up with your email address", "exists", nil)
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
