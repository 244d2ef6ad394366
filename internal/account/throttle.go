package account

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
)

// BudgetWindow is the span over which the per-domain and global caps count
// emails: fixed clock hours, one row per scope and hour. Around the turn of
// an hour up to twice a cap can pass; in exchange a budget is a single
// counter that every replica updates atomically.
const BudgetWindow = time.Hour

// globalScope is the EmailBudget scope every email counts against.
const globalScope = "global"

// lockCooldown returns the cooldown record of one address, as NormalizeEmail
// gives it (the exact address, lower-cased), creating it if need be, and
// locks it for the rest of tx: the no-op upsert takes the row lock on
// PostgreSQL (SQLite transactions hold the write lock from BEGIN), so two
// requests for one address take turns and the later one sees what the
// earlier one decided.
//
// The key is the address, not its inbox (CanonicalEmail): the contract
// promises one email per address per cooldown, registered or not, and
// keeps one waiting email per address. Keyed by inbox, a+1@x and a+2@x,
// two accounts, would share one waiting slot: a+2's registration email
// would replace a+1's, which never went out, and a resend for a+1 would be
// refused for mail sent to a+2. What an inbox key would add, bounding the
// mail one inbox gets through its +tag and dot spellings, the other limits
// still do: each spelling is a request against the sender's per-client
// limit (CLIENT_RATE_LIMIT a minute, IPv6 per /64), and each email is
// counted against its domain's DOMAIN_EMAIL_LIMIT an hour (a provider's
// domains as one, see spend) and GLOBAL_EMAIL_LIMIT.
func (s *Service) lockCooldown(ctx context.Context, tx *ent.Tx, addr string) (*ent.EmailThrottle, error) {
	err := tx.EmailThrottle.Create().
		SetEmail(addr).
		SetLastSentMs(0).
		OnConflictColumns(emailthrottle.FieldEmail).
		Ignore().
		Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock cooldown record: %w", err)
	}
	th, err := tx.EmailThrottle.Query().Where(emailthrottle.Email(addr)).Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("read cooldown record: %w", err)
	}
	return th, nil
}

// cooldownLeft is how long the address's cooldown still runs at now (zero or
// less: it has ended).
func (s *Service) cooldownLeft(th *ent.EmailThrottle, now time.Time) time.Duration {
	return time.UnixMilli(th.LastSentMs).Add(s.ResendCooldown).Sub(now)
}

// outgoing is an email to queue: an outbox event for the mailer.
type outgoing struct {
	topic   string
	payload event.Email
}

// queue writes m to the outbox in tx, to go out at at, with its delivery
// record (QUEUED: the admin API lists it from now on, not from when a
// mailer picks it up). It returns the event's id, and what to run once tx
// committed (nil: nothing; only a resend announces its record).
func (s *Service) queue(ctx context.Context, tx *ent.Tx, now, at time.Time, m outgoing) (uuid.UUID, func(), error) {
	id, err := outbox.EnqueueAt(ctx, tx, now, at, m.topic, m.payload)
	if err != nil || s.Deliveries == nil {
		return id, nil, err
	}
	after, err := s.Deliveries.Queue(ctx, tx, delivery.EventOf(id.String(), m.topic, m.payload.Mail()), at)
	return id, after, err
}

// schedule queues m for the address th (locked by lockCooldown) so that no
// email is dropped and the cooldown still holds. The rule is the same for
// every address, registered or not, so neither the answer nor a later
// retryAfterSeconds tells them apart:
//
//   - If an email is waiting for the cooldown to end, m takes its place and
//     its time: at most one waits per address, the newest (see
//     replaceWaiting). Nothing is added, so no budget is spent.
//   - Otherwise m goes out when the cooldown ends (now, if it has), after
//     spending from the domain and global budgets; that time becomes the
//     address's last-sent time, from which the next cooldown counts.
func (s *Service) schedule(ctx context.Context, tx *ent.Tx, th *ent.EmailThrottle, now time.Time, m outgoing) error {
	if th.PendingEvent != nil {
		replaced, err := s.replaceWaiting(ctx, tx, th, now, m)
		if err != nil || replaced {
			return err
		}
	}
	at := time.UnixMilli(th.LastSentMs).Add(s.ResendCooldown).UTC()
	if at.Before(now) {
		at = now
	}
	if err := s.spend(ctx, tx, emailDomain(th.Email), now); err != nil {
		return err
	}
	// Never a resend (Resend queues its own), so nothing to run after.
	id, _, err := s.queue(ctx, tx, now, at, m)
	if err != nil {
		return err
	}
	upd := updateThrottle(tx, th).SetLastSentMs(at.UnixMilli())
	if at.After(now) {
		upd.SetPendingEvent(id)
	} else {
		upd.ClearPendingEvent()
	}
	if err := upd.Exec(ctx); err != nil {
		return fmt.Errorf("update cooldown record: %w", err)
	}
	return nil
}

// replaceWaiting puts m in the place of the email waiting for th's cooldown
// and reports whether there was one.
//
// The newest wins whatever the two are, a notice over a verification link
// included: a notice goes only to an address a VERIFIED account holds (the
// "already registered" notice to its owner, the change notice to a
// signed-in, so verified, user's current address), and then no link
// waiting for that address can verify anything: the holder's own answers
// VERIFIED again, and another account's (a superseded sign-up, a change of
// address to it) is refused, the address being taken. Keeping the link
// would instead drop the notice, which its reader cannot ask for again,
// while a link can be (resendVerificationEmail, changeEmail).
func (s *Service) replaceWaiting(ctx context.Context, tx *ent.Tx, th *ent.EmailThrottle, now time.Time, m outgoing) (bool, error) {
	// Still waiting: never tried, unclaimed and not yet due. A row the
	// relay has claimed or tried is on its way and stays.
	waiting, err := tx.OutboxEvent.Query().
		Where(outboxevent.EventID(*th.PendingEvent), unclaimed(), outboxevent.Attempts(0), outboxevent.AvailableAtGT(now)).
		Only(ctx)
	if ent.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read waiting email: %w", err)
	}
	// Only mail to this very address is replaced. A record written by a
	// version that keyed by inbox (CanonicalEmail) may hold another
	// spelling's email, a+1@x's under the key a@x: that one stays and m
	// takes a slot of its own, after it. Such records end with their
	// cooldown, so in the first RESEND_COOLDOWN after the upgrade a
	// spelling can get one email sooner than its cooldown allows, or the
	// key's own address wait one cooldown longer, and no email is lost. A
	// payload that names no address counts as another's: kept, not lost.
	var to struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(waiting.Payload, &to) != nil || to.Email != th.Email {
		return false, nil
	}
	// Guarded again, so a relay of another replica that claimed the row
	// meanwhile keeps it (and this email takes a new slot instead).
	n, err := tx.OutboxEvent.Delete().Where(outboxevent.ID(waiting.ID), unclaimed()).Exec(ctx)
	if err != nil || n == 0 {
		return false, err
	}
	if s.Deliveries != nil {
		// It never goes out: no record lists it.
		if err := s.Deliveries.Forget(ctx, tx, waiting.EventID.String()); err != nil {
			return false, err
		}
	}
	id, _, err := s.queue(ctx, tx, now, waiting.AvailableAt.UTC(), m)
	if err != nil {
		return false, err
	}
	return true, setPending(ctx, tx, th, id)
}

// unclaimed matches outbox rows no relay holds: never claimed (NULL) or
// released ("").
func unclaimed() predicate.OutboxEvent {
	return outboxevent.Or(outboxevent.ClaimIsNil(), outboxevent.Claim(""))
}

func setPending(ctx context.Context, tx *ent.Tx, th *ent.EmailThrottle, id uuid.UUID) error {
	if err := updateThrottle(tx, th).SetPendingEvent(id).Exec(ctx); err != nil {
		return fmt.Errorf("update cooldown record: %w", err)
	}
	return nil
}

// updateThrottle updates th's row in one statement: ent's UpdateOne reads
// the whole row back after its UPDATE, a SELECT per sign-up for a row
// nobody reads again in the transaction.
func updateThrottle(tx *ent.Tx, th *ent.EmailThrottle) *ent.EmailThrottleUpdate {
	return tx.EmailThrottle.Update().Where(emailthrottle.ID(th.ID))
}

// spend takes one email from the budgets of the recipient's domain and of
// everyone for the current window, or answers RATE_LIMITED until the
// window ends. Domains of one provider's inboxes (googlemail.com,
// gmail.com) share a budget: the cooldown is per address, and this cap is
// one of the limits on mail to one inbox across its spellings. Each budget
// is one conditional upsert (count up only below the cap), so concurrent
// requests on any replica cannot overspend it, on SQLite or PostgreSQL
// alike. A refusal rolls back tx, so a domain budget
// spent before a global refusal is given back.
func (s *Service) spend(ctx context.Context, tx *ent.Tx, domain string, now time.Time) error {
	window := now.Truncate(BudgetWindow)
	for _, b := range []struct {
		scope, message string
		limit          int
	}{
		{"domain:" + budgetDomain(domain), "too many emails to this domain this hour; try again in %d seconds", s.DomainEmailLimit},
		{globalScope, "too many emails are being sent right now; try again in %d seconds", s.GlobalEmailLimit},
	} {
		if b.limit <= 0 {
			continue
		}
		ok, err := s.countUp(ctx, tx, b.scope, window, b.limit)
		if err != nil {
			return fmt.Errorf("spend email budget: %w", err)
		}
		if !ok {
			wait := window.Add(BudgetWindow).Sub(now)
			return apperr.Limited(wait, b.message, RetryAfterSeconds(wait))
		}
	}
	return nil
}

// execer runs a statement: a transaction or the client.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (stdsql.Result, error)
}

// countUp adds one to the counter of scope for window, only while it is
// below limit (0: always), in one upsert, and reports whether it counted.
func (s *Service) countUp(ctx context.Context, db execer, scope string, window time.Time, limit int) (bool, error) {
	opts := []sql.ConflictOption{
		sql.ConflictColumns(emailbudget.FieldScope, emailbudget.FieldWindowStart),
		sql.ResolveWith(func(u *sql.UpdateSet) { u.Add(emailbudget.FieldSent, 1) }),
	}
	if limit > 0 {
		opts = append(opts, sql.UpdateWhere(sql.LT(emailbudget.FieldSent, limit)))
	}
	query, args := sql.Dialect(s.Dialect).
		Insert(emailbudget.Table).
		Columns(emailbudget.FieldScope, emailbudget.FieldWindowStart, emailbudget.FieldSent).
		Values(scope, window.Unix(), 1).
		OnConflict(opts...).
		Query()
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
