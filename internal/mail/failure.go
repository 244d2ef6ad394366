package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"unicode"

	gomail "github.com/wneessen/go-mail"
)

// Class says what a failed send means for the message, and so what the
// mailer does next.
type Class int

const (
	// Temporary: the server is up but declined this message for now (a
	// 4xx reply to it, such as greylisting). Retried soon, backing off.
	Temporary Class = iota
	// Unreachable: no working session with the server (connection refused
	// or broken, timeouts, a 421 "closing"). Retried within seconds: the
	// whole backlog should go as soon as the server is back.
	Unreachable
	// Rejected: the server refused the recipient for good (a 5xx at RCPT,
	// or a 550/553 naming the mailbox after the data). No retry helps.
	Rejected
	// Misconfigured: the server refused our sender or our session (a 5xx at
	// MAIL FROM, authentication failed or required). Our settings or the
	// server are wrong and every message fails alike until someone acts:
	// retried with a long backoff, never given up on in seconds.
	Misconfigured
)

func (c Class) String() string {
	switch c {
	case Temporary:
		return "temporary"
	case Unreachable:
		return "unreachable"
	case Rejected:
		return "rejected"
	case Misconfigured:
		return "misconfigured"
	}
	return "unknown"
}

// Failure is a send that did not go through.
type Failure struct {
	Class Class
	// Reason is for people and for the delivery record: plain words and
	// the server's reply, with the recipient and the server's host name
	// taken out. Never an internal error.
	Reason string
	// NotTried is set when no attempt was made because the server was
	// found unreachable moments ago (see SMTP): the message waits without
	// costing the server anything, and it is not counted as an attempt.
	NotTried bool
	// Err is the underlying error, for logs.
	Err error
}

func (f *Failure) Error() string {
	var tp *textproto.Error
	if f.Err == nil || errors.As(f.Err, &tp) {
		// A reply is in Reason already, cleaned; its raw text may echo
		// the recipient.
		return f.Reason
	}
	return f.Reason + ": " + f.Err.Error()
}

func (f *Failure) Unwrap() error { return f.Err }

// ClassOf returns the class of a send error: a Failure's, or Temporary for
// any other error (a dev outbox that could not write, say).
func ClassOf(err error) Class {
	var f *Failure
	if errors.As(err, &f) {
		return f.Class
	}
	return Temporary
}

// ReasonOf returns the plain-words reason of a send error.
func ReasonOf(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Reason
	}
	return "could not send"
}

// NotTried reports whether err is a Failure for which no attempt was made.
func NotTried(err error) bool {
	var f *Failure
	return errors.As(err, &f) && f.NotTried
}

// stage is where in the SMTP exchange an error came.
type stage int

const (
	stageConnect stage = iota // dial, greeting, EHLO, STARTTLS, AUTH
	stageMail                 // MAIL FROM
	stageRcpt                 // RCPT TO
	stageData                 // DATA and the message
	stageDataEnd              // the reply to the final "."
)

// stageError is an error from one stage of a send.
type stageError struct {
	stage stage
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// authCodes are replies about authentication, wherever they come: 530
// required, 534 mechanism too weak, 535 credentials invalid, 538
// encryption required.
var authCodes = map[int]bool{530: true, 534: true, 535: true, 538: true}

// maxReason bounds a reason's length (the delivery record's column).
const maxReason = 300

// classify turns an error from stage into a Failure. to is the recipient
// and host the server's name, both taken out of the reason.
func classify(ctx context.Context, st stage, err error, to, host string) *Failure {
	if ctx.Err() != nil {
		return &Failure{Class: Temporary, Reason: "stopped before the mail server accepted the message", Err: err}
	}
	clean := func(s string) string { return cleanReply(s, to, host) }
	var tp *textproto.Error
	if errors.As(err, &tp) {
		reply := clean(fmt.Sprintf("%03d %s", tp.Code, tp.Msg))
		f := &Failure{Err: err}
		switch {
		case tp.Code == 421:
			f.Class, f.Reason = Unreachable, "the mail server is not taking mail now: "+reply
		case authCodes[tp.Code]:
			f.Class, f.Reason = Misconfigured, "the mail server refused our authentication: "+reply
		case tp.Code < 500 && st == stageConnect:
			f.Class, f.Reason = Unreachable, "the mail server is not taking mail now: "+reply
		case tp.Code < 500:
			f.Class, f.Reason = Temporary, "the mail server deferred the message: "+reply
		case st == stageConnect:
			f.Class, f.Reason = Misconfigured, "the mail server refused our session: "+reply
		case st == stageMail:
			f.Class, f.Reason = Misconfigured, "the mail server refused our sender address: "+reply
		case st == stageRcpt && relayDenied(tp.Msg):
			f.Class, f.Reason = Misconfigured, "the mail server does not relay for us: "+reply
		case st == stageRcpt, namesMailbox(tp, to):
			f.Class, f.Reason = Rejected, "the mail server refused the recipient: "+reply
		default:
			f.Class, f.Reason = Misconfigured, "the mail server refused the message: "+reply
		}
		return f
	}
	if st != stageConnect {
		return &Failure{Class: Unreachable, Reason: "the connection to the mail server broke", Err: err}
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuthority), errors.As(err, &hostname):
		return &Failure{Class: Misconfigured, Reason: "the mail server's TLS certificate is not trusted", Err: err}
	case errors.As(err, &header):
		return &Failure{Class: Misconfigured, Reason: "the mail server does not speak TLS on that port", Err: err}
	case isNetwork(err):
		return &Failure{Class: Unreachable, Reason: "the mail server could not be reached", Err: err}
	}
	if errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) {
		// AUTH offered, but no mechanism we may use on this connection:
		// go-mail never sends a password in clear, so PLAIN and LOGIN
		// count only under TLS.
		return &Failure{Class: Misconfigured, Reason: "the mail server offers no login we use: SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5 or NTLM, or PLAIN and LOGIN only over TLS (a port with STARTTLS, or smtps://), so the password never travels in clear", Err: err}
	}
	// Not the network and not a reply: go-mail found the session unfit
	// (no AUTH offered, no mechanism in common, STARTTLS required but not
	// offered). That is a setting to fix.
	return &Failure{Class: Misconfigured, Reason: "the mail server does not offer what our settings require", Err: err}
}

// namesMailbox reports whether a 5xx reply after the data is about the
// recipient's mailbox: 550/551/552/553 with an enhanced code 5.1.x
// (address) or 5.2.x (mailbox), or naming the recipient or its mailbox.
func namesMailbox(tp *textproto.Error, to string) bool {
	switch tp.Code {
	case 550, 551, 552, 553:
	default:
		return false
	}
	msg := strings.ToLower(tp.Msg)
	if strings.HasPrefix(msg, "5.1.") || strings.HasPrefix(msg, "5.2.") {
		return true
	}
	if to != "" && strings.Contains(msg, strings.ToLower(to)) {
		return true
	}
	for _, w := range []string{"mailbox", "recipient", "user unknown", "no such user"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// relayDenied reports whether a RCPT refusal says the server does not
// relay for us: our credentials or settings, not the recipient.
func relayDenied(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "relay")
}

// isNetwork reports whether err is the network's: refused, reset, timed
// out, or closed before the greeting.
func isNetwork(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// cleanReply makes a server reply fit for a record and a log: one line,
// printable, bounded, with the recipient and the server's host name
// replaced.
func cleanReply(s, to, host string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	s = replaceFold(s, to, "<recipient>")
	// Any other address: the recipient as the server rewrote it, or one
	// of its own (postmaster@…).
	s = emailAddress.ReplaceAllString(s, "<address>")
	s = replaceFold(s, host, "<server>")
	s = hostName.ReplaceAllString(s, "<server>")
	s = strings.Join(strings.Fields(s), " ")
	// Room for the words put before it.
	if r := []rune(s); len(r) > maxReason-60 {
		s = string(r[:maxReason-60]) + "…"
	}
	return s
}

// emailAddress matches what looks like an email address in a reply.
var emailAddress = regexp.MustCompile(`[^\s<>@"'(),;:]+@[^\s<>@"'(),;:]+`)

// hostName matches a domain name (its last label alphabetic, so enhanced
// status codes such as 5.1.1 are left alone) or an IPv4 address.
var hostName = regexp.MustCompile(`(?i)\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\b|\b\d{1,3}(?:\.\d{1,3}){3}\b`)

// replaceFold replaces every case-insensitive occurrence of old in s.
func replaceFold(s, old, repl string) string {
	if old == "" {
		return s
	}
	lower, lowerOld := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) {
		return strings.ReplaceAll(s, old, repl) // case folding changed lengths
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lowerOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

// isReply reports whether err is a reply from the server (so the session
// is intact), not a broken connection.
func isReply(err error) bool {
	var tp *textproto.Error
	return errors.As(err, &tp)
}

// replyCode returns the reply code in err, or 0.
func replyCode(err error) int {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		return tp.Code
	}
	return 0
}
