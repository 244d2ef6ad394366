package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends mail through one SMTP server, keeping connections open between
// messages: a handshake (and STARTTLS) per email would dominate the time
// from sign-up to inbox.
type SMTP struct {
	from string
	opts []gomail.Option
	host string
	log  *slog.Logger

	// idle holds connected clients ready for reuse; its capacity bounds
	// how many are kept.
	idle chan *conn
}

type conn struct {
	c        *gomail.Client
	lastUsed time.Time
}

// idleTimeout closes a connection unused this long, under the usual
// server-side timeouts (often 60 s or more).
const idleTimeout = 30 * time.Second

// NewSMTP returns a sender for smtp://[user:pass@]host:port (STARTTLS when
// offered) or smtps://… (TLS from the start). maxIdle bounds the connections
// kept open.
func NewSMTP(rawURL, from string, maxIdle int, log *slog.Logger) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: cannot parse")
	}
	port := 25
	opts := []gomail.Option{gomail.WithTimeout(15 * time.Second)}
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
	if maxIdle <= 0 {
		maxIdle = 4
	}
	return &SMTP{from: from, opts: opts, host: u.Hostname(), log: log, idle: make(chan *conn, maxIdle)}, nil
}

// Send delivers m, reusing an idle connection when one is open.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return Permanent(fmt.Errorf("MAIL_FROM %q: %w", s.from, err))
	}
	if err := msg.To(m.To); err != nil {
		return Permanent(fmt.Errorf("recipient: %w", err))
	}
	msg.Subject(m.Subject)
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID + "@verifier")
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)

	c, err := s.get(ctx)
	if err != nil {
		return fmt.Errorf("smtp connect %s: %w", s.host, err)
	}
	if err := c.c.Send(msg); err != nil {
		// The session may be in any state after an error: start afresh.
		_ = c.c.Close()
		var se *gomail.SendError
		if errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
			return Permanent(fmt.Errorf("smtp rejected the message: %w", err))
		}
		return fmt.Errorf("smtp send: %w", err)
	}
	s.put(c)
	return nil
}

func (s *SMTP) get(ctx context.Context) (*conn, error) {
	for {
		select {
		case c := <-s.idle:
			if time.Since(c.lastUsed) < idleTimeout {
				return c, nil
			}
			_ = c.c.Close()
			continue
		default:
		}
		break
	}
	cl, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return nil, err
	}
	if err := cl.DialWithContext(ctx); err != nil {
		return nil, err
	}
	return &conn{c: cl}, nil
}

func (s *SMTP) put(c *conn) {
	c.lastUsed = time.Now()
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

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks err as one that retrying will not fix (a 5xx reply to
// this message). Connection failures and 4xx replies are never permanent:
// an SMTP outage must delay mail, not lose it.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

var _ Sender = (*SMTP)(nil)
