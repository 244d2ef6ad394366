package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/verifier/verifier/internal/tracing"
)

// SMTP sends mail through one SMTP server, keeping connections open between
// messages: a handshake (and STARTTLS) per email would dominate the time
// from sign-up to inbox.
//
// A message counts as sent once the server accepted its data; whatever
// happens to the connection after that never causes a resend. A pooled
// connection found dead (the server restarted, or closed it while idle) is
// replaced by a fresh one for the same send, at no cost to the message.
// While the server is unreachable, sends fail at once without dialing,
// except one probe a second, so waiting mail costs the server nothing and
// the first probe that gets through reopens the way for all of it.
type SMTP struct {
	client *gomail.Client // settings for dialing; sessions are its smtp.Clients
	from   string
	// idDomain is the right side of every Message-ID: MAIL_FROM's domain.
	// Spam filters read a Message-ID that names no domain of the sender
	// as a sign of bulk software.
	idDomain string
	host     string
	log      *slog.Logger
	now      func() time.Time

	// idle holds connected sessions ready for reuse; its capacity bounds
	// how many are kept.
	idle chan *conn
	// busy holds a token per session in use: its capacity is how many
	// messages are sent at once, whatever the number of callers.
	busy chan struct{}

	mu      sync.Mutex
	down    *Failure  // why the server is unreachable, nil while it is not
	probeAt time.Time // when a send may dial a down server again
}

type conn struct {
	c        *smtp.Client
	lastUsed time.Time
	// pipelining: the server offered PIPELINING in its EHLO reply.
	pipelining bool
}

const (
	// dialTimeout bounds connecting, the greeting, STARTTLS and AUTH.
	dialTimeout = 15 * time.Second
	// sendTimeout bounds one message's exchange on an open session.
	sendTimeout = 30 * time.Second
	// idleTimeout closes a connection unused this long, under the usual
	// server-side timeouts (often 60 s or more).
	idleTimeout = 30 * time.Second
	// checkIdleAfter: a connection idle this long is checked with NOOP
	// before reuse. One used within the last second is almost surely
	// alive, and if not, the send moves to a fresh connection anyway.
	checkIdleAfter = time.Second
	// probeEvery is how often a down server is dialed, whatever the
	// number of messages waiting.
	probeEvery = time.Second
)

// NewSMTP returns a sender for smtp://[user:pass@]host:port (STARTTLS when
// offered) or smtps://… (TLS from the start). conns bounds the connections
// open at once, in use or kept idle: callers beyond it wait for one.
func NewSMTP(rawURL, from string, conns int, log *slog.Logger) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: cannot parse")
	}
	port := 25
	opts := []gomail.Option{gomail.WithTimeout(dialTimeout)}
	switch u.Scheme {
	case "smtp":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case "smtps":
		port = 465
		opts = append(opts, gomail.WithSSL())
	default:
		return nil, fmt.Errorf("SMTP_URL: want smtp:// or smtps://")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("SMTP_URL: bad port")
		}
	}
	opts = append(opts, gomail.WithPort(port))
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("SMTP_URL: no host")
	}
	client, err := gomail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: %w", err)
	}
	if conns <= 0 {
		conns = 4
	}
	idDomain := "localhost"
	if a, err := netmail.ParseAddress(from); err == nil {
		idDomain = a.Address[strings.LastIndex(a.Address, "@")+1:]
	}
	return &SMTP{client: client, from: from, idDomain: idDomain, host: u.Hostname(), log: log, now: time.Now,
		idle: make(chan *conn, conns), busy: make(chan struct{}, conns)}, nil
}

// Send delivers m, reusing an idle connection when one is open. Its errors
// are *Failure, classified. Its span says the server and the outcome's
// class, never the recipient.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	ctx, span := tracing.Tracer().Start(ctx, "smtp send", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", s.host)))
	defer span.End()
	err := s.send(ctx, m)
	if f, ok := errors.AsType[*Failure](err); ok {
		// The class only: a server's reply may quote the address.
		span.SetStatus(codes.Error, f.Class.String())
	}
	return err
}

// autoSubmitted is RFC 3834's header, which go-mail does not name.
const autoSubmitted gomail.Header = "Auto-Submitted"

func (s *SMTP) send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return &Failure{Class: Misconfigured, Reason: "MAIL_FROM is not a valid address", Err: err}
	}
	if err := msg.To(m.To); err != nil {
		return &Failure{Class: Rejected, Reason: "not a valid email address", Err: err}
	}
	msg.Subject(m.Subject)
	// RFC 3834: written by a program, so an out-of-office reply or a
	// vacation notice must not answer it (nobody reads no-reply@).
	msg.SetGenHeader(autoSubmitted, "auto-generated")
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID + "@" + s.idDomain)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	from, err := msg.GetSender(false)
	if err != nil {
		return &Failure{Class: Misconfigured, Reason: "MAIL_FROM is not a valid address", Err: err}
	}

	select {
	case s.busy <- struct{}{}:
		defer func() { <-s.busy }()
	case <-ctx.Done():
		return &Failure{Class: Temporary, Reason: "no connection to the mail server was free in time", NotTried: true, Err: ctx.Err()}
	}
	// Each stale pooled connection is dropped and the send moves on; the
	// pool's size bounds how many there can be.
	for range cap(s.idle) + 1 {
		c, reused, f := s.get(ctx, m.To)
		if f != nil {
			return f
		}
		err := s.transact(ctx, c, msg, from, m.To)
		if err == nil {
			s.put(c)
			return nil
		}
		if reused && stale(err) {
			_ = c.c.Close()
			continue
		}
		s.recycle(c, err)
		f = classify(ctx, stageOf(err), err, m.To, s.host)
		if f.Class == Unreachable {
			s.markDown(f)
		}
		return f
	}
	return &Failure{Class: Unreachable, Reason: "the connection to the mail server broke", Err: errors.New("every pooled connection was dead")}
}

// transact runs one message's exchange on c. It returns nil once the server
// accepted the data: nothing after that can make the message unsent.
func (s *SMTP) transact(ctx context.Context, c *conn, msg *gomail.Msg, from, to string) error {
	// A handler whose context ends (its broker delivery died, or the
	// service is stopping) must stop sending: the broker hands the message
	// to someone else.
	// Text.Close closes the socket under the session without its lock,
	// which a blocked read holds.
	interrupted := context.AfterFunc(ctx, func() { _ = c.c.Text.Close() })
	defer interrupted()
	if err := c.c.UpdateDeadline(sendTimeout); err != nil {
		return &stageError{stageMail, err}
	}
	if c.pipelining && !strings.ContainsAny(from+to, "\r\n") {
		return pipelined(c, msg, from, to)
	}
	if err := c.c.Mail(from); err != nil {
		return &stageError{stageMail, err}
	}
	// In angle brackets, as RFC 5321 has it (the client sends what it is
	// given): strict servers answer a bare address with 501, and a 5xx
	// here is a dead letter.
	if err := c.c.Rcpt("<" + to + ">"); err != nil {
		return &stageError{stageRcpt, err}
	}
	w, err := c.c.Data()
	if err != nil {
		return &stageError{stageData, err}
	}
	if _, err := msg.WriteTo(w); err != nil {
		return &stageError{stageData, err}
	}
	if err := w.Close(); err != nil {
		return &stageError{stageDataEnd, err}
	}
	return nil
}

// pipelined is transact's exchange for a server that offers PIPELINING
// (RFC 2920), as every common MTA and relay does: MAIL FROM, RCPT TO and
// DATA go in one write and their replies are read together, so a message
// costs two round trips instead of four. A relay in another region makes
// each round trip tens of milliseconds of the time to inbox; here each one
// is a wake-up on both sides. The commands are the ones go-mail's own
// would send (its MAIL FROM parameters included), and every reply is read,
// refused or not, so the session stays in step for the next message.
func pipelined(c *conn, msg *gomail.Msg, from, to string) error {
	t := c.c.Text
	mailCmd := "MAIL FROM:" + from
	if ok, _ := c.c.Extension("8BITMIME"); ok {
		mailCmd += " BODY=8BITMIME"
	}
	if ok, _ := c.c.Extension("SMTPUTF8"); ok {
		mailCmd += " SMTPUTF8"
	}
	// In angle brackets, as in transact.
	for _, line := range []string{mailCmd, "RCPT TO:<" + to + ">", "DATA"} {
		_, _ = t.W.WriteString(line)
		_, _ = t.W.WriteString("\r\n")
	}
	if err := t.W.Flush(); err != nil {
		return &stageError{stageMail, err}
	}
	_, _, mailErr := t.ReadResponse(250)
	if mailErr != nil && !isReply(mailErr) {
		// No reply at all: the session is gone (stale tells a reused one).
		return &stageError{stageMail, mailErr}
	}
	_, _, rcptErr := t.ReadResponse(25)
	_, _, dataErr := t.ReadResponse(354)
	if mailErr != nil || rcptErr != nil {
		if dataErr == nil {
			// A server that takes DATA with no recipient gets an empty
			// message, as RFC 2920 asks, so the session stays in step; it
			// goes nowhere, as nobody was accepted.
			_, _ = t.W.WriteString(".\r\n")
			if t.W.Flush() == nil {
				_, _, _ = t.ReadResponse(250)
			}
		}
		if mailErr != nil {
			return &stageError{stageMail, mailErr}
		}
		return &stageError{stageRcpt, rcptErr}
	}
	if dataErr != nil {
		return &stageError{stageData, dataErr}
	}
	w := t.DotWriter()
	if _, err := msg.WriteTo(w); err != nil {
		return &stageError{stageData, err}
	}
	if err := w.Close(); err != nil { // the final ".", as in transact
		return &stageError{stageDataEnd, err}
	}
	if _, _, err := t.ReadResponse(250); err != nil {
		return &stageError{stageDataEnd, err}
	}
	return nil
}

// stale reports whether err shows a reused connection was dead before the
// exchange began: no reply at all to MAIL FROM, or a 421 "closing".
func stale(err error) bool {
	var se *stageError
	if !errors.As(err, &se) || se.stage != stageMail {
		return false
	}
	return !isReply(err) || replyCode(err) == 421
}

func stageOf(err error) stage {
	var se *stageError
	if errors.As(err, &se) {
		return se.stage
	}
	return stageConnect
}

// recycle keeps c after a refused message if the session still works (a
// reply, then a successful RSET), and closes it otherwise.
func (s *SMTP) recycle(c *conn, err error) {
	if isReply(err) && replyCode(err) != 421 {
		if c.c.UpdateDeadline(sendTimeout) == nil && c.c.Reset() == nil {
			s.put(c)
			return
		}
	}
	_ = c.c.Close()
}

// get returns a live pooled connection or dials a new one. reused tells
// which.
func (s *SMTP) get(ctx context.Context, to string) (c *conn, reused bool, f *Failure) {
	for {
		select {
		case c := <-s.idle:
			idle := s.now().Sub(c.lastUsed)
			if idle >= idleTimeout {
				_ = c.c.Close()
				continue
			}
			if idle >= checkIdleAfter && (c.c.UpdateDeadline(sendTimeout) != nil || c.c.Noop() != nil) {
				_ = c.c.Close()
				continue
			}
			return c, true, nil
		default:
		}
		break
	}
	if f := s.heldBack(); f != nil {
		return nil, false, f
	}
	sc, err := s.dial(ctx)
	if err != nil {
		f := classify(ctx, stageConnect, err, to, s.host)
		if f.Class == Unreachable {
			s.markDown(f)
		}
		return nil, false, f
	}
	s.markUp()
	pipelining, _ := sc.Extension("PIPELINING")
	return &conn{c: sc, pipelining: pipelining}, false, nil
}

// dial opens a session: connection, greeting, EHLO, STARTTLS, AUTH. go-mail
// bounds all but the connection by dialTimeout and not by ctx, so a server
// that accepts and never greets held a stopping service for that long
// beyond SHUTDOWN_GRACE. The dial runs aside and dial returns when ctx
// ends; a session it opens after that is closed at once.
func (s *SMTP) dial(ctx context.Context) (*smtp.Client, error) {
	type dialed struct {
		c   *smtp.Client
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		c, err := s.client.DialToSMTPClientWithContext(ctx)
		done <- dialed{c, err}
	}()
	select {
	case d := <-done:
		return d.c, d.err
	case <-ctx.Done():
		go func() {
			if d := <-done; d.c != nil {
				_ = d.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// heldBack returns the failure to answer with while the server is down and
// the next probe is not due; nil lets the caller dial (as the probe when
// the server is down).
func (s *SMTP) heldBack() *Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down == nil {
		return nil
	}
	now := s.now()
	if now.Before(s.probeAt) {
		return &Failure{Class: Unreachable, Reason: s.down.Reason, NotTried: true, Err: s.down.Err}
	}
	s.probeAt = now.Add(probeEvery)
	return nil
}

func (s *SMTP) markDown(f *Failure) {
	s.mu.Lock()
	was := s.down
	s.down, s.probeAt = f, s.now().Add(probeEvery)
	s.mu.Unlock()
	if was == nil {
		s.log.Warn("mail server unreachable; mail waits and is retried", "server", s.host, "err", f)
		s.Close() // pooled sessions are as dead as the server
	}
}

func (s *SMTP) markUp() {
	s.mu.Lock()
	was := s.down
	s.down = nil
	s.mu.Unlock()
	if was != nil {
		s.log.Info("mail server reachable again", "server", s.host)
	}
}

func (s *SMTP) put(c *conn) {
	c.lastUsed = s.now()
	select {
	case s.idle <- c:
	default:
		_ = c.c.Close()
	}
}

// Close closes the idle connections.
func (s *SMTP) Close() {
	for {
		select {
		case c := <-s.idle:
			_ = c.c.Close()
		default:
			return
		}
	}
}

var _ Sender = (*SMTP)(nil)
