package account

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/webhookdelivery"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	records "github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
)

// The operator's use cases (the admin API). Each takes a user id, as the
// events and receipts name users, and answers an unknown one with
// errUnknownUser.

// errUnknownUser answers an admin call about a user that does not exist.
var errUnknownUser = apperr.Errorf(apperr.BadUserInput, "no user has this id")

// ResendTo queues a fresh verification email to the user's address like
// Resend (the cooldown applies: RATE_LIMITED), and says whether the user
// still needed one: false for a VERIFIED user, who is sent nothing.
func (s *Service) ResendTo(ctx context.Context, userID uuid.UUID) (bool, error) {
	u, err := s.DB.User.Get(ctx, userID)
	if ent.IsNotFound(err) {
		return false, errUnknownUser
	}
	if err != nil {
		return false, fmt.Errorf("resend: %w", err)
	}
	if u.Status == user.StatusVERIFIED {
		return false, nil
	}
	return true, s.Resend(ctx, u.Email)
}

// MarkVerified verifies the user's address as a confirmation would, in one
// transaction: the status, user.verified naming the user's current sign-up
// registration (so its open watchers flip to VERIFIED with a receipt) and
// verifier.user.verified.v1. A VERIFIED user is returned unchanged, and
// nothing is published.
func (s *Service) MarkVerified(ctx context.Context, userID uuid.UUID) (*ent.User, error) {
	var u *ent.User
	changed := false
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now := s.now()
		// Conditional on the old status, so that it races a confirmation
		// safely: of the two, one writes the event.
		n, err := tx.User.Update().
			Where(user.ID(userID), user.StatusEQ(user.StatusUNVERIFIED)).
			SetStatus(user.StatusVERIFIED).
			SetVerifiedAt(now).
			Save(ctx)
		if err != nil {
			return err
		}
		if u, err = tx.User.Get(ctx, userID); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		changed = true
		reg, err := currentRegistration(ctx, tx, userID, registration.PurposeSIGNUP)
		if err != nil {
			return err
		}
		current := uuid.Nil
		if reg != nil {
			current = reg.ID
		}
		return s.announceVerified(ctx, tx, u.ID, u.Email, current, now)
	})
	if ent.IsNotFound(err) {
		return nil, errUnknownUser
	}
	if err != nil {
		return nil, fmt.Errorf("mark verified: %w", err)
	}
	if changed {
		s.Wake()
	}
	return u, nil
}

// DeleteUser erases the user and everything kept about its addresses (its
// current one and those of its registrations, unless another user holds
// one now): registrations, decoy registrations and other users' pending
// changes to them, tokens, delivery records (the dev mailbox shows
// nothing else), queued outbox events that name the user or an address,
// cooldown records, failed sign-in counts and the webhook deliveries of
// events that name the user or an address (see eraseWebhooks: a copy of
// such an event that reaches the dispatcher afterwards is turned away).
// Open subscriptions of its registrations end, and other services hear
// verifier.user.deleted.v1, which carries no address.
func (s *Service) DeleteUser(ctx context.Context, userID uuid.UUID) error {
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now := s.now()
		u, err := tx.User.Get(ctx, userID)
		if err != nil {
			return err
		}
		addrs, err := s.addressesOf(ctx, tx, u)
		if err != nil {
			return err
		}
		// Registrations naming an address (decoys, pending changes) die
		// with the user's own.
		regs, err := tx.Registration.Query().
			Where(registration.Or(registration.UserID(userID), registration.EmailIn(addrs...))).
			IDs(ctx)
		if err != nil {
			return err
		}
		if err := s.purgeOutbox(ctx, tx, userID, addrs); err != nil {
			return err
		}
		if err := records.Erase(ctx, tx, now, delivery.Or(delivery.UserID(userID), delivery.AddressIn(addrs...))); err != nil {
			return err
		}
		scopes := make([]string, len(addrs))
		for i, a := range addrs {
			scopes[i] = "signin:" + CanonicalEmail(a)
		}
		if _, err := tx.EmailThrottle.Delete().Where(emailthrottle.EmailIn(addrs...)).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.EmailBudget.Delete().Where(emailbudget.ScopeIn(scopes...)).Exec(ctx); err != nil {
			return err
		}
		if err := deleteRegistrations(ctx, tx, now, regs); err != nil {
			return err
		}
		if err := s.deleteUsers(ctx, tx, now, addrs, userID); err != nil {
			return err
		}
		if len(regs) == 0 {
			return nil
		}
		// Every replica ends their watchers now (a watcher re-reads and
		// finds nothing).
		return outbox.Enqueue(ctx, tx, now, event.SupersededTopic, event.Superseded{Registrations: regs})
	})
	if ent.IsNotFound(err) {
		return errUnknownUser
	}
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	s.Wake()
	return nil
}

// addressesOf lists u's address and the addresses of its registrations
// that no other user holds now.
func (s *Service) addressesOf(ctx context.Context, tx *ent.Tx, u *ent.User) ([]string, error) {
	past, err := tx.Registration.Query().Where(registration.UserID(u.ID)).Unique(true).Select(registration.FieldEmail).Strings(ctx)
	if err != nil {
		return nil, err
	}
	past = slices.DeleteFunc(past, func(a string) bool { return a == u.Email })
	if len(past) > 0 {
		held, err := tx.User.Query().Where(user.EmailIn(past...)).Select(user.FieldEmail).Strings(ctx)
		if err != nil {
			return nil, err
		}
		past = slices.DeleteFunc(past, func(a string) bool { return slices.Contains(held, a) })
	}
	return append([]string{u.Email}, past...), nil
}

// purgeOutbox deletes the outbox events not yet published whose payload
// names the user or one of addrs (an email waiting for its cooldown, an
// event the broker has not confirmed). The deletion's own event comes
// after and is kept.
func (s *Service) purgeOutbox(ctx context.Context, tx *ent.Tx, userID uuid.UUID, addrs []string) error {
	needles, err := jsonNeedles([]uuid.UUID{userID}, addrs)
	if err != nil {
		return err
	}
	events := make([]predicate.OutboxEvent, len(needles))
	for i, n := range needles {
		events[i] = predicate.OutboxEvent(bytesContain(s.Dialect, outboxevent.FieldPayload, n))
	}
	_, err = tx.OutboxEvent.Delete().Where(outboxevent.Or(events...)).Exec(ctx)
	return err
}

// eraseWebhooks deletes the webhook deliveries, sent or still being
// retried, of users' events and of any event whose body names one of
// addrs: each keeps a public event that names an address for days (a
// given-up one until it is replayed, which would send the address out
// again). Called once the users' rows are deleted: the dispatcher records
// an event only while its user's row is there, holding it
// (webhook.Dispatcher.Handle), so a delivery it recorded meanwhile is
// committed and seen here, and a copy that reaches it later is turned
// away.
//
// A user's deliveries are found by their user_id (the event's subject,
// which Handle keeps on the row), through its index: the UNVERIFIED_TTL
// janitor erases up to 500 users a batch holding SQLite's one writer, and
// a batch that read every payload of days of deliveries would keep every
// sign-up waiting behind it. Bodies are read only where nothing else
// tells:
//   - rows written before user_id was added (NULL) are searched for the
//     users' ids, and only they: a user's events from before the upgrade
//     go with the user too, and what is read shrinks to the FAILED ones as
//     delivered rows are trimmed (those stay until replayed);
//   - addrs (deleteUser's addresses) are searched for in every body, as
//     before user_id: another user's event may name one (an address the
//     other changed away from), and the column does not tell it.
//
// The janitor and a confirmed change pass no addrs, and never scan a row
// with a user_id: another user's event naming the address is about that
// user, whose address it is (the confirmed change's) or was.
func (s *Service) eraseWebhooks(ctx context.Context, tx *ent.Tx, users []uuid.UUID, addrs []string) error {
	// In chunks, within PostgreSQL's bound on a statement's parameters.
	for chunk := range slices.Chunk(users, 1000) {
		if _, err := tx.WebhookDelivery.Delete().Where(webhookdelivery.UserIDIn(chunk...)).Exec(ctx); err != nil {
			return err
		}
	}
	ids, err := jsonNeedles(users, nil)
	if err != nil {
		return err
	}
	if err := s.deleteWebhooksNaming(ctx, tx, ids, webhookdelivery.UserIDIsNil()); err != nil {
		return err
	}
	names, err := jsonNeedles(nil, addrs)
	if err != nil {
		return err
	}
	return s.deleteWebhooksNaming(ctx, tx, names)
}

// deleteWebhooksNaming deletes the webhook deliveries among those matching
// where whose body contains one of needles.
func (s *Service) deleteWebhooksNaming(ctx context.Context, tx *ent.Tx, needles []string, where ...predicate.WebhookDelivery) error {
	for chunk := range slices.Chunk(needles, 1000) {
		hooks := make([]predicate.WebhookDelivery, len(chunk))
		for i, n := range chunk {
			hooks[i] = predicate.WebhookDelivery(bytesContain(s.Dialect, webhookdelivery.FieldPayload, n))
		}
		if _, err := tx.WebhookDelivery.Delete().Where(where...).Where(webhookdelivery.Or(hooks...)).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// jsonNeedles are users and addrs as JSON writes them, quotes included,
// to look for in JSON payloads: a@x.com must not match another user's
// ba@x.com.
func jsonNeedles(users []uuid.UUID, addrs []string) ([]string, error) {
	needles := make([]string, 0, len(users)+len(addrs))
	for _, id := range users {
		needles = append(needles, `"`+id.String()+`"`)
	}
	for _, a := range addrs {
		j, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		needles = append(needles, string(j))
	}
	return needles, nil
}

// bytesContain matches the rows whose column (bytes) contains needle: ent
// has no such predicate for a bytes column.
func bytesContain(dialectName, column, needle string) func(*entsql.Selector) {
	return func(sel *entsql.Selector) {
		col := sel.C(column)
		if dialectName == dialect.Postgres {
			sel.Where(entsql.P(func(b *entsql.Builder) {
				b.WriteString("position(").Arg([]byte(needle)).WriteString(" in " + col + ") > 0")
			}))
			return
		}
		sel.Where(entsql.P(func(b *entsql.Builder) {
			b.WriteString("instr(" + col + ", ").Arg([]byte(needle)).WriteString(") > 0")
		}))
	}
}
