package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/seal"
)

// MailerQueue is the durable queue the mailers of all replicas share
// (verifier.mailer on RabbitMQ).
const MailerQueue = "mailer"

// Retry schedules, by what the failure says, indexed by the attempt (the
// last entry repeats). They match RabbitMQ's delay tiers, so a retry waits
// exactly this long there too.
var (
	// No session with the server. Short, so the whole backlog goes within
	// about two seconds of the server's return; mail.SMTP dials a down
	// server at most once a second, so the waiting mail costs it nothing.
	unreachableRetry = []time.Duration{time.Second, 2 * time.Second}
	// The server refused our sender or our session: our settings or the
	// server are wrong and a person has to act. Mail waits for them,
	// asking again from 30 s up to every 5 minutes, never given up on in
	// seconds.
	misconfiguredRetry = []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
)

const (
	// recordRetry is the wait after the delivery record could not be read
	// or written (the database is down): the email is not sent blind.
	recordRetry = 2 * time.Second
	// recordSentRetryMin and recordSentRetryMax pace the attempts to
	// record an email that was sent while the database refused writes.
	recordSentRetryMin = 50 * time.Millisecond
	recordSentRetryMax = time.Second
	// noticeMaxAge is how long an already-registered notice is retried;
	// a verification email is retried until its link expires.
	noticeMaxAge = 24 * time.Hour
	// deferredMin and deferredMax bound the wait after the server
	// declined one message for now (greylisting, a busy mailbox, a
	// per-recipient rate, or a 451 for everyone while its queue is full).
	deferredMin = time.Second
	deferredMax = time.Minute
	// problemLogEvery bounds the ERROR lines while the server keeps
	// refusing our sender or session: loud, not flooding.
	problemLogEvery = time.Minute
)

// MailMetrics counts the mailer's outcomes; nil fields are skipped.
type MailMetrics struct {
	// Sent, Failed (dead-lettered), Retried (a send attempt failed and
	// will be retried) and Skipped (a redelivery whose email was sent
	// already) count emails by kind.
	Sent, Failed, Retried, Skipped func(kind string)
	// Problem is called with true when the mail server starts refusing our
	// sender or session, and with false when it accepts mail again.
	Problem func(bool)
}

// Mailer turns registrations, resend requests and already-registered
// notices into emails, and keeps a delivery record of each.
type Mailer struct {
	Sender mail.Sender
	// Seal opens the sealed tokens of verification events.
	Seal *seal.Box
	// Records holds the delivery record of each email event.
	Records *delivery.Store
	// Templates renders the emails (nil: the built-in ones).
	Templates *mail.Templates
	PublicURL string
	Log       *slog.Logger
	Metrics   MailMetrics
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Concurrency is the number of emails in flight (default 8).
	Concurrency int
	// HeldUpTo is the longest an email waits in the outbox before it may
	// go out (RESEND_COOLDOWN: mail to an address within its cooldown is
	// held until the cooldown ends). A notice's time to be retried counts
	// from then, not from the request, so a notice held for a long
	// cooldown still gets its full noticeMaxAge.
	HeldUpTo time.Duration
	// Handled, a test hook (nil in production), is called after each
	// event is handled and its delivery record written, so a test waits on
	// the records changing instead of polling them.
	Handled func()

	mu            sync.Mutex
	problem       error
	problemLogged time.Time
}

// Queue is where the mailer listens.
func (m *Mailer) Queue() broker.Queue {
	n := m.Concurrency
	if n <= 0 {
		n = 8
	}
	return broker.Queue{Name: MailerQueue, Topics: MailTopics, Concurrency: n}
}

// MailTopics are the events the mailer sends an email for.
var MailTopics = []string{event.RegisteredTopic, event.RenewedTopic, event.ResentTopic, event.EmailChangeRequestedTopic,
	event.AlreadyRegisteredTopic, event.EmailChangeNoticeTopic}

// Handle sends the email of one event, once. It never waits to retry: a
// failure worth retrying returns broker.RetryAfter and the broker brings
// the event back later, so a few addresses that keep failing never hold up
// the others.
//
//   - The record says SENT (a redelivery after a crash or a lost
//     connection): nothing is sent again.
//   - The server accepted the message: the record says SENT before
//     anything else happens, then the event is acknowledged.
//   - A permanent failure (the recipient refused for good, an event that
//     cannot be read): the record says FAILED and keeps the event, a dead
//     letter an operator can replay; the event is acknowledged.
//   - Anything else: the record says DEFERRED, with the reason, and the
//     event comes back after a delay chosen by what went wrong.
func (m *Mailer) Handle(ctx context.Context, msg broker.Message) error {
	if m.Handled != nil {
		defer m.Handled()
	}
	if err := ctx.Err(); err != nil {
		// The broker has taken the delivery back and hands it to someone
		// else: sending now could make a second copy.
		return err
	}
	email, about, renderErr := m.render(msg)
	e := delivery.EventOf(msg.ID, msg.Topic, about.Mail)
	e.Payload = msg.Body
	rec, err := m.Records.Begin(ctx, e)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return broker.RetryAfter(fmt.Errorf("%s email %s: %w", about.Kind, msg.ID, err), recordRetry)
	}
	if rec.Busy > 0 {
		// Another copy of this event is being sent right now (the broker
		// redelivered it while the first was still in an SMTP session):
		// come back once that one has settled, and find it SENT.
		return broker.RetryAfter(fmt.Errorf("%s email %s: another delivery of it is being sent", about.Kind, msg.ID), rec.Busy)
	}
	switch rec.State {
	case delivery.Sent:
		m.count(m.Metrics.Skipped, about.Kind)
		m.Log.Debug("email already sent; not sending it again", "kind", about.Kind, "id", msg.ID)
		return nil
	case delivery.Failed:
		// A dead letter until an operator replays it (which makes it
		// QUEUED first).
		return nil
	}
	if renderErr != nil {
		m.Log.Error("email event cannot be sent; kept as a dead letter", "kind", about.Kind, "id", msg.ID, "err", renderErr)
		return m.fail(about.Kind, func() error { return m.Records.MarkUnsendable(context.WithoutCancel(ctx), rec, renderErr.Error()) })
	}
	if err := ctx.Err(); err != nil {
		// Hand the reservation back, so the copy the broker delivers
		// again need not wait for it to lapse.
		if rerr := m.Records.Release(context.WithoutCancel(ctx), rec); rerr != nil {
			m.Log.Debug("could not hand back a delivery reservation; it lapses", "id", msg.ID, "err", rerr)
		}
		return err
	}

	// An SMTP transaction, once begun, is finished even if the delivery's
	// channel dies meanwhile: stopped half-way, the server's answer would
	// be unknown and the copy the broker hands out again would send a
	// second email. The copy waits on the record (Busy) instead, then
	// finds it SENT. SendLease bounds the send, so the reservation
	// outlives it.
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), delivery.SendLease)
	sendErr := m.Sender.Send(sendCtx, email)
	cancel()
	if sendErr == nil {
		accepted := m.now()
		// First the record, so that from here on a crash or a lost
		// delivery cannot send it again; even if ctx just ended.
		m.recordSent(ctx, rec, about.Kind, msg.ID)
		m.count(m.Metrics.Sent, about.Kind)
		m.solved()
		// recorded_in is the window in which a crash sends this email
		// twice (the server's "250" to the SENT commit): the figure to
		// look at when the fault suite counts duplicates.
		m.Log.Debug("email sent", "kind", about.Kind, "id", msg.ID, "attempt", msg.Attempt, "recorded_in", m.now().Sub(accepted))
		return nil
	}
	if ctx.Err() != nil {
		// Recorded (which ends the reservation) for the copy that comes
		// next; this delivery is no longer ours to settle.
		if err := m.Records.MarkDeferred(context.WithoutCancel(ctx), rec, !mail.NotTried(sendErr), mail.ReasonOf(sendErr)); err != nil {
			m.Log.Debug("could not record a send interrupted by the delivery's end", "id", msg.ID, "err", err)
		}
		return fmt.Errorf("%s email %s: stopped: %w", about.Kind, msg.ID, sendErr)
	}

	tried := !mail.NotTried(sendErr)
	attempts := rec.Attempts
	if tried {
		attempts++
	}
	reason := mail.ReasonOf(sendErr)
	var schedule []time.Duration
	switch class := mail.ClassOf(sendErr); class {
	case mail.Rejected:
		m.Log.Warn("email refused for good; kept as a dead letter", "kind", about.Kind, "id", msg.ID, "reason", reason)
		return m.fail(about.Kind, func() error { return m.Records.MarkFailed(context.WithoutCancel(ctx), rec, tried, reason) })
	case mail.Misconfigured:
		m.report(sendErr)
		schedule = misconfiguredRetry
	case mail.Unreachable:
		// mail.SMTP logs the outage once; one line per message would flood.
		schedule = unreachableRetry
	default:
		m.Log.Warn("email deferred; will retry", "kind", about.Kind, "id", msg.ID, "attempt", attempts, "reason", reason, "err", sendErr)
		// A quarter of how long this email has been failing: soon after a
		// short hiccup (a server that said 451 to everyone for a few
		// seconds is back within a few seconds), up to a minute for an
		// address that keeps declining. Counting attempts instead would
		// make an email that lived through an outage wait a minute at its
		// first 451.
		schedule = []time.Duration{min(max((m.now().Sub(rec.Since)/4).Truncate(time.Second), deferredMin), deferredMax)}
	}
	if !about.deadline.IsZero() && !m.now().Before(about.deadline) {
		m.Log.Warn("email given up on: it could not be delivered in time", "kind", about.Kind, "id", msg.ID, "attempts", attempts, "reason", reason)
		return m.fail(about.Kind, func() error {
			return m.Records.MarkFailed(context.WithoutCancel(ctx), rec, tried, "gave up, too late to be of use; last: "+reason)
		})
	}
	if tried {
		m.count(m.Metrics.Retried, about.Kind)
	}
	// Also when nothing was tried: the mark ends Begin's reservation,
	// which would otherwise keep the next delivery waiting for SendLease.
	if err := m.Records.MarkDeferred(ctx, rec, tried, reason); err != nil {
		m.Log.Warn("could not record a deferred email", "kind", about.Kind, "id", msg.ID, "err", err)
	}
	return broker.RetryAfter(fmt.Errorf("%s email %s: %w", about.Kind, msg.ID, sendErr), at(schedule, attempts))
}

// recordSent writes SENT for an email the server accepted, trying again
// while the database refuses writes (read-only, locked): acknowledging
// without the record would let the outbox or the broker bring the event
// back and send it twice. Only the end of ctx (shutdown), or the record's
// erasure, stops it.
func (m *Mailer) recordSent(ctx context.Context, rec delivery.Record, kind, id string) {
	wait := recordSentRetryMin
	for {
		err := m.Records.MarkSent(context.WithoutCancel(ctx), rec, true)
		if err == nil {
			return
		}
		if errors.Is(err, delivery.ErrGone) {
			// Erased with its user while the server took it (the erasure
			// left it SENT, see delivery.Erase): no write will ever find
			// it, and nothing is left to record.
			m.Log.Info("email sent while its user was erased", "kind", kind, "id", id)
			return
		}
		if ctx.Err() != nil {
			m.Log.Error("email sent but not recorded; a redelivery would send it again", "kind", kind, "id", id, "err", err)
			return
		}
		m.Log.Warn("email sent; recording it failed, trying again", "kind", kind, "id", id, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(2*wait, recordSentRetryMax)
	}
}

// at returns schedule's delay after attempt (1-based).
func at(schedule []time.Duration, attempt int) time.Duration {
	return schedule[min(max(attempt, 1), len(schedule))-1]
}

// fail records a dead letter with mark and acknowledges the event; if the
// record cannot be written, the event comes back instead of being lost.
func (m *Mailer) fail(kind string, mark func() error) error {
	if err := mark(); err != nil {
		return broker.RetryAfter(fmt.Errorf("%s email: recording the dead letter: %w", kind, err), recordRetry)
	}
	m.count(m.Metrics.Failed, kind)
	return nil
}

// Problem reports why the mail server refuses our sender or our session (a
// 5xx at MAIL FROM, authentication required or failed, a relay that will
// not relay for us), or nil while it does not. While it lasts no email goes
// out, every one waits, and only a person can fix it: /readyz shows it.
// It clears when an email is accepted again.
func (m *Mailer) Problem() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.problem
}

// report records and logs a misconfiguration, loudly but not once per
// email.
func (m *Mailer) report(err error) {
	now := m.now()
	m.mu.Lock()
	started := m.problem == nil
	m.problem = errors.New(mail.ReasonOf(err))
	logIt := started || now.Sub(m.problemLogged) >= problemLogEvery
	if logIt {
		m.problemLogged = now
	}
	m.mu.Unlock()
	if started && m.Metrics.Problem != nil {
		m.Metrics.Problem(true)
	}
	if logIt {
		m.Log.Error("the mail server refuses our sender or session: check SMTP_URL, its credentials and MAIL_FROM; emails wait and are retried",
			"reason", mail.ReasonOf(err), "err", err)
	}
}

// solved clears a reported problem after an email went out.
func (m *Mailer) solved() {
	m.mu.Lock()
	was := m.problem
	m.problem = nil
	m.mu.Unlock()
	if was != nil {
		if m.Metrics.Problem != nil {
			m.Metrics.Problem(false)
		}
		m.Log.Info("the mail server accepts our mail again")
	}
}

func (m *Mailer) templates() *mail.Templates {
	if m.Templates != nil {
		return m.Templates
	}
	return mail.BuiltinTemplates()
}

func (m *Mailer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// MailKinds is every kind the mailer sends, so each email counter can be
// present at 0 from the start (metrics.Metrics.MailKinds).
var MailKinds = []string{event.KindVerification, event.KindAlreadyRegistered, event.KindEmailChangeNotice}

// about is what the mailer knows of an event before sending it.
type about struct {
	event.Mail
	// deadline is when retrying stops being of use (zero: never).
	deadline time.Time
}

func (m *Mailer) render(msg broker.Message) (mail.Message, about, error) {
	switch msg.Topic {
	case event.RegisteredTopic, event.RenewedTopic, event.ResentTopic, event.EmailChangeRequestedTopic:
		a := about{Mail: event.Mail{Kind: event.KindVerification}}
		var ev event.VerificationRequested
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Email == "" || ev.SealedToken == "" {
			return mail.Message{}, a, fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID)
		}
		a = about{Mail: ev.Mail(), deadline: ev.ExpiresAt}
		tok, err := m.Seal.Open(ev.SealedToken, ev.Email)
		if err != nil {
			// Another deployment's key, or a tampered event: no retry
			// helps, but a replay after fixing TOKEN_SEAL_KEY would.
			return mail.Message{}, a, fmt.Errorf("%s event %s: sealed token does not open with this key", msg.Topic, msg.ID)
		}
		d := mail.VerificationData{
			Link: mail.VerifyLink(m.PublicURL, tok), Expires: ev.ExpiresAt, CodeExpires: ev.CodeExpiresAt,
			Resend: msg.Topic == event.ResentTopic, ChangeEmail: msg.Topic == event.EmailChangeRequestedTopic, Locale: ev.Locale,
		}
		if ev.SealedCode != "" {
			if d.Code, err = m.Seal.Open(ev.SealedCode, ev.Email); err != nil {
				return mail.Message{}, a, fmt.Errorf("%s event %s: sealed code does not open with this key", msg.Topic, msg.ID)
			}
		}
		email, err := m.templates().Verification(msg.ID, ev.Email, d)
		return email, a, err
	case event.AlreadyRegisteredTopic:
		a := about{Mail: event.Mail{Kind: event.KindAlreadyRegistered}}
		var ev event.AlreadyRegistered
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Email == "" {
			return mail.Message{}, a, fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID)
		}
		a = about{Mail: ev.Mail(), deadline: m.noticeDeadline(msg)}
		email, err := m.templates().AlreadyRegistered(msg.ID, ev.Email, ev.Locale, ev.ChangeEmail)
		return email, a, err
	case event.EmailChangeNoticeTopic:
		a := about{Mail: event.Mail{Kind: event.KindEmailChangeNotice}}
		var ev event.EmailChangeNotice
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Email == "" {
			return mail.Message{}, a, fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID)
		}
		a = about{Mail: ev.Mail(), deadline: m.noticeDeadline(msg)}
		email, err := m.templates().EmailChangeNotice(msg.ID, ev.Email, ev.Locale, ev.NewEmail)
		return email, a, err
	}
	return mail.Message{}, about{Mail: event.Mail{Kind: "unknown"}}, fmt.Errorf("mailer: unexpected topic %q", msg.Topic)
}

// noticeDeadline is when retrying the notice of msg stops being of use:
// noticeMaxAge after it could first go out (zero: never, for a message
// that does not say when it was published).
func (m *Mailer) noticeDeadline(msg broker.Message) time.Time {
	if msg.Published.IsZero() {
		return time.Time{}
	}
	return msg.Published.Add(m.HeldUpTo + noticeMaxAge)
}

func (m *Mailer) count(f func(string), kind string) {
	if f != nil {
		f(kind)
	}
}
