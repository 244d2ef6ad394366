package account

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	records "github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/mask"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/token"
)

// ChangeEmail starts moving the signed-in user (bearer) to newEmail: a
// CHANGE_EMAIL registration (superseding an older pending one) with a
// link and code mailed to the new address, and a notice to the current
// one. If newEmail belongs to a VERIFIED user, that owner gets the
// "someone tried" notice instead and a stand-in registration is written
// (see changeToTaken), so the answer, the work and what confirmEmailChange
// answers next are the same either way: nobody learns whether the address
// is taken. Every email obeys the cooldown machinery.
func (s *Service) ChangeEmail(ctx context.Context, bearer, newEmail string) error {
	u, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return err
	}
	newEmail, err = NormalizeEmail(newEmail)
	if err != nil {
		return err
	}
	if newEmail == u.Email {
		return nil // nothing to change
	}
	_, watchHash := token.New() // nobody watches a change: changeEmail returns no token
	r := newRegistration{email: newEmail, purpose: registration.PurposeCHANGE_EMAIL, watchHash: watchHash}
	err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error { return s.changeEmail(ctx, tx, u, r) })
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	s.Wake()
	return nil
}

func (s *Service) changeEmail(ctx context.Context, tx *ent.Tx, u *ent.User, r newRegistration) (err error) {
	now := s.now()
	// changeEmail takes no locale: the link and the notice speak the
	// language the user signed up in.
	if r.locale, err = userLocale(ctx, tx, u.ID); err != nil {
		return err
	}
	cooldowns, err := s.lockCooldowns(ctx, tx, u.Email, r.email)
	if err != nil {
		return err
	}
	oldAddr, newAddr := cooldowns[0], cooldowns[1]
	// The newest change counts, whatever its address: a pending change
	// that stayed confirmable behind a change to a taken address would
	// tell the two apart.
	if err := s.supersede(ctx, tx, u.ID, registration.PurposeCHANGE_EMAIL, now); err != nil {
		return err
	}
	holder, err := tx.User.Query().Where(user.Email(r.email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return err
	}
	if holder != nil && holder.Status == user.StatusVERIFIED {
		err = s.changeToTaken(ctx, tx, newAddr, u, r, holder.ID, now)
	} else {
		err = s.changeToFree(ctx, tx, newAddr, u, r, now)
	}
	if err != nil {
		return err
	}
	// Two addresses (a change to the same one returned above), so two
	// cooldown records: the notice never waits behind the link.
	return s.schedule(ctx, tx, oldAddr, now, outgoing{event.EmailChangeNoticeTopic, event.EmailChangeNotice{Email: u.Email, NewEmail: mask.Email(r.email), Locale: r.locale, UserID: u.ID}})
}

// changeToTaken answers a change to an address a VERIFIED account holds
// with a stand-in registration and the "someone tried" notice to its
// owner, in the owner's language. The stand-in is u's, like the
// registration of a change to a free address, so confirmEmailChange finds
// it as u's pending change and counts wrong codes against it the same way
// (a decoy with no user would leave nothing pending: attemptsLeft 0 at
// the first try). Its code is one nobody can give, so nothing confirms
// it, and it has no links.
func (s *Service) changeToTaken(ctx context.Context, tx *ent.Tx, cooldown *ent.EmailThrottle, u *ent.User, r newRegistration, owner uuid.UUID, now time.Time) error {
	if _, _, err := s.createRegistration(ctx, tx, r, &u.ID, false, now); err != nil {
		return err
	}
	locale, err := userLocale(ctx, tx, owner)
	if err != nil {
		return err
	}
	return s.schedule(ctx, tx, cooldown, now, outgoing{event.AlreadyRegisteredTopic, event.AlreadyRegistered{Email: r.email, ChangeEmail: true, Locale: locale, UserID: owner}})
}

// changeToFree writes u's CHANGE_EMAIL registration and queues its link
// and code to the new address.
func (s *Service) changeToFree(ctx context.Context, tx *ent.Tx, cooldown *ent.EmailThrottle, u *ent.User, r newRegistration, now time.Time) error {
	req, err := s.issue(ctx, tx, r, u.ID, now)
	if err != nil {
		return err
	}
	return s.schedule(ctx, tx, cooldown, now, outgoing{event.EmailChangeRequestedTopic, req})
}

// lockCooldowns locks the cooldown records of two addresses in one order (sorted),
// so two requests locking the same pair cannot deadlock, and returns them
// in the order asked.
func (s *Service) lockCooldowns(ctx context.Context, tx *ent.Tx, a, b string) ([2]*ent.EmailThrottle, error) {
	first, second := a, b
	if second < first {
		first, second = second, first
	}
	x, err := s.lockCooldown(ctx, tx, first)
	if err != nil {
		return [2]*ent.EmailThrottle{}, err
	}
	y := x
	if second != first {
		if y, err = s.lockCooldown(ctx, tx, second); err != nil {
			return [2]*ent.EmailThrottle{}, err
		}
	}
	if first == a {
		return [2]*ent.EmailThrottle{x, y}, nil
	}
	return [2]*ent.EmailThrottle{y, x}, nil
}

// ConfirmEmailChange confirms the signed-in user's pending change of
// address with the code mailed to the new address. No pending change
// answers like a dead code.
func (s *Service) ConfirmEmailChange(ctx context.Context, bearer, c string) (Verification, error) {
	u, err := s.Authenticate(ctx, bearer)
	if err != nil {
		return Verification{}, err
	}
	if err := checkCode(c); err != nil {
		return Verification{}, err
	}
	reg, err := s.DB.Registration.Query().
		Where(registration.UserID(u.ID), registration.PurposeEQ(registration.PurposeCHANGE_EMAIL), registration.SupersededAtIsNil()).
		Order(ent.Desc(registration.FieldCreatedAt)).
		First(ctx)
	if ent.IsNotFound(err) {
		return Verification{}, apperr.WrongCode(0)
	}
	if err != nil {
		return Verification{}, fmt.Errorf("confirm email change: %w", err)
	}
	return s.confirmWithCode(ctx, reg, c)
}

// confirmChange moves reg's user to reg's address in one transaction with
// the public event verifier.user.email_changed.v1. An UNVERIFIED account
// holding the address is deleted then: the inbox's owner just proved
// control of it. A
// VERIFIED one that took the address meanwhile keeps it (INVALID_TOKEN).
// Confirming again once moved answers VERIFIED again, without an event.
//
// reg was read before the transaction, and a changeEmail since may have
// superseded it: the transaction takes the cooldown records changeEmail
// takes (the account's address and reg's), so the two run one after the
// other, and reads reg again under them. Without that, a link clicked as
// the person asked for another address moved the account to the address
// they had just abandoned.
func (s *Service) confirmChange(ctx context.Context, reg *ent.Registration) (Verification, error) {
	var now time.Time
	var u *ent.User
	already := false
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now = s.now()
		var err error
		u, err = tx.User.Get(ctx, *reg.UserID)
		if ent.IsNotFound(err) {
			return errInvalidLink // deleted since the link was read
		}
		if err != nil {
			return err
		}
		if u.Email == reg.Email {
			already = true
			return nil
		}
		// Serialises with a registration of the new address, with the
		// account's next changeEmail and with a second click of this link.
		if _, err := s.lockCooldowns(ctx, tx, u.Email, reg.Email); err != nil {
			return err
		}
		// Read again under the locks: a second click may have moved it,
		// or an admin deleted it.
		u, err = tx.User.Get(ctx, u.ID)
		if ent.IsNotFound(err) {
			return errInvalidLink
		}
		if err != nil {
			return err
		}
		if u.Email == reg.Email {
			already = true
			return nil
		}
		live, err := tx.Registration.Query().Where(registration.ID(reg.ID), registration.SupersededAtIsNil()).Exist(ctx)
		if err != nil {
			return err
		}
		if !live {
			return errInvalidLink
		}
		holder, err := tx.User.Query().Where(user.Email(reg.Email)).Only(ctx)
		switch {
		case ent.IsNotFound(err):
		case err != nil:
			return err
		case holder.Status == user.StatusVERIFIED:
			return errInvalidLink
		default:
			if err := s.deleteUsers(ctx, tx, now, nil, holder.ID); err != nil {
				return err
			}
		}
		old := u.Email
		if u, err = tx.User.UpdateOne(u).SetEmail(reg.Email).SetVerifiedAt(now).Save(ctx); err != nil {
			return err
		}
		// No internal event: nothing in verifier reacts to the change;
		// other services hear it.
		return s.Events.Enqueue(ctx, tx, now, publicevent.EmailChanged{UserID: u.ID, OldEmail: old, Email: u.Email, ChangedAt: now.UTC()})
	})
	if err != nil {
		return Verification{}, fmt.Errorf("confirm email change: %w", err)
	}
	if !already {
		s.Wake()
	}
	return s.verified(reg, u, already), nil
}

// deleteUsers deletes users with everything that names them: their
// registrations, their tokens, their emails' delivery records (erased,
// see deleteRegistrations) and the webhook deliveries of their events and
// of events naming addrs (see eraseWebhooks); tells other services
// (verifier.user.deleted.v1), which heard of each user when it was
// created; and ends the watchers of the registrations on every
// replica, as a superseding registration does: a waiting screen left open
// on a deleted account (its address taken by a confirmed change, or its
// UNVERIFIED_TTL over) completes rather than waiting for a recheck.
func (s *Service) deleteUsers(ctx context.Context, tx *ent.Tx, now time.Time, addrs []string, ids ...uuid.UUID) error {
	for _, id := range ids {
		if err := s.Events.Enqueue(ctx, tx, now, publicevent.UserDeleted{UserID: id, DeletedAt: now.UTC()}); err != nil {
			return err
		}
	}
	regs, err := tx.Registration.Query().Where(registration.UserIDIn(ids...)).IDs(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.VerificationToken.Delete().Where(verificationtoken.UserIDIn(ids...)).Exec(ctx); err != nil {
		return err
	}
	// Notices name their user but no registration of it.
	if err := records.Erase(ctx, tx, now, delivery.UserIDIn(ids...)); err != nil {
		return err
	}
	if err := deleteRegistrations(ctx, tx, now, regs); err != nil {
		return err
	}
	// The rows first: the delete waits for a webhook dispatcher recording
	// one of their events (it holds the row), so eraseWebhooks sees it.
	if _, err = tx.User.Delete().Where(user.IDIn(ids...)).Exec(ctx); err != nil {
		return err
	}
	if err := s.eraseWebhooks(ctx, tx, ids, addrs); err != nil || len(regs) == 0 {
		return err
	}
	return outbox.Enqueue(ctx, tx, now, event.SupersededTopic, event.Superseded{Registrations: regs})
}

// deleteRegistrations deletes registrations with their tokens, and erases
// their emails' delivery records (delivery.Erase: a copy of an email
// event still to come is turned away).
func deleteRegistrations(ctx context.Context, tx *ent.Tx, now time.Time, regs []uuid.UUID) error {
	if len(regs) == 0 {
		return nil
	}
	if _, err := tx.VerificationToken.Delete().Where(verificationtoken.RegistrationIDIn(regs...)).Exec(ctx); err != nil {
		return err
	}
	if err := records.Erase(ctx, tx, now, delivery.RegistrationIn(regs...)); err != nil {
		return err
	}
	_, err := tx.Registration.Delete().Where(registration.IDIn(regs...)).Exec(ctx)
	return err
}
