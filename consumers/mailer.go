package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/seal"
)

// MailerQueue is the durable queue the mailers of all replicas share
// (verifier.mailer on RabbitMQ).
const MailerQueue = "mailer"

// MailMetrics counts the mailer's outcomes; nil fields are skipped.
type MailMetrics struct {
	Sent, Failed, Retried func(kind string)
}

// Mailer turns registrations, resend requests and already-registered
// notices into emails.
type Mailer struct {
	Sender mail.Sender
	// Seal opens the sealed tokens of verification events.
	Seal      *seal.Box
	PublicURL string
	Log       *slog.Logger
	Metrics   MailMetrics
	// RetryBase and RetryMax bound the backoff between attempts after a
	// temporary failure (defaults 500ms and 30s).
	RetryBase, RetryMax time.Duration
	// Concurrency is the number of emails in flight (default 8).
	Concurrency int
}

// Queue is where the mailer listens.
func (m *Mailer) Queue() broker.Queue {
	n := m.Concurrency
	if n <= 0 {
		n = 8
	}
	return broker.Queue{
		Name:        MailerQueue,
		Topics:      []string{event.RegisteredTopic, event.ResentTopic, event.AlreadyRegisteredTopic},
		Concurrency: n,
	}
}

// Handle renders and sends one email. A temporary failure (SMTP down, a 4xx
// reply) is retried here with backoff for as long as ctx lives, holding the
// message unacknowledged; when ctx ends the message goes back to the broker.
// A permanent failure (undecodable event, 5xx reply) dead-letters it.
func (m *Mailer) Handle(ctx context.Context, msg broker.Message) error {
	email, kind, err := m.render(msg)
	if err != nil {
		m.count(m.Metrics.Failed, kind)
		return broker.Permanent(err)
	}
	base, capd := m.RetryBase, m.RetryMax
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if capd <= 0 {
		capd = 30 * time.Second
	}
	for attempt := 0; ; attempt++ {
		err := m.Sender.Send(ctx, email)
		if err == nil {
			m.count(m.Metrics.Sent, kind)
			m.Log.Debug("email sent", "kind", kind, "to", email.To, "id", msg.ID)
			return nil
		}
		if mail.IsPermanent(err) {
			m.count(m.Metrics.Failed, kind)
			return broker.Permanent(fmt.Errorf("%s email to %s: %w", kind, email.To, err))
		}
		m.count(m.Metrics.Retried, kind)
		wait := broker.Backoff(attempt, base, capd)
		m.Log.Warn("email not sent; will retry", "kind", kind, "to", email.To, "attempt", attempt+1, "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%s email to %s: stopped while retrying: %w", kind, email.To, err)
		}
	}
}

func (m *Mailer) render(msg broker.Message) (mail.Message, string, error) {
	switch msg.Topic {
	case event.RegisteredTopic, event.ResentTopic:
		var ev event.VerificationRequested
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Email == "" || ev.SealedToken == "" {
			return mail.Message{}, "verification", fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID)
		}
		tok, err := m.Seal.Open(ev.SealedToken, ev.Email)
		if err != nil {
			// Another deployment's key, or a tampered event: no retry helps.
			return mail.Message{}, "verification", fmt.Errorf("%s event %s: sealed token does not open with this key", msg.Topic, msg.ID)
		}
		link := mail.VerifyLink(m.PublicURL, tok)
		email, err := mail.Verification(msg.ID, ev.Email, link, ev.ExpiresAt, msg.Topic == event.ResentTopic)
		return email, "verification", err
	case event.AlreadyRegisteredTopic:
		var ev event.AlreadyRegistered
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Email == "" {
			return mail.Message{}, "already_registered", fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID)
		}
		email, err := mail.AlreadyRegistered(msg.ID, ev.Email)
		return email, "already_registered", err
	}
	return mail.Message{}, "unknown", fmt.Errorf("mailer: unexpected topic %q", msg.Topic)
}

func (m *Mailer) count(f func(string), kind string) {
	if f != nil {
		f(kind)
	}
}
