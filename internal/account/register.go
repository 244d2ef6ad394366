package account

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/token"
)

// Register records a registration and queues its email, returning its
// watch token. Every answer looks the same; what happens depends on the
// address:
//
//   - New: an UNVERIFIED user, and the verification email (link and code).
//   - UNVERIFIED: a new registration that supersedes the user's older ones
//     (their links, codes and watch tokens stop working, and their open
//     subscriptions complete), the user's password becomes this one, and
//     a fresh verification email goes out. Whoever confirms decides the
//     password: an attacker who registered someone else's address first
//     loses it the moment the owner registers and confirms.
//   - VERIFIED: a decoy registration (no user; its watch token never
//     reports VERIFIED) and a notice to the owner instead.
//
// Either email waits for the end of the address's cooldown if one runs (see
// schedule). Over the domain or global email cap it answers RATE_LIMITED
// and stores nothing.
func (s *Service) Register(ctx context.Context, in RegisterInput) (watchToken string, err error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return "", err
	}
	if err := CheckPassword(in.Password); err != nil {
		return "", err
	}
	r := newRegistration{email: email, purpose: registration.PurposeSIGNUP, locale: "en"}
	if in.RedirectTo != nil {
		to, err := CheckRedirect(*in.RedirectTo, s.RedirectOrigins)
		if err != nil {
			return "", err
		}
		r.redirectTo = &to
	}
	if in.Locale != nil {
		if r.locale, err = NormalizeLocale(*in.Locale); err != nil {
			return "", err
		}
	}
	// Hashed for existing addresses too, so the response time does not
	// tell the cases apart.
	if r.passwordHash, err = s.Hasher.Hash(ctx, in.Password); err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	watch, watchHash := token.New()
	r.watchHash = watchHash

	// Two registrations of one new address can race; the loser's insert
	// fails on the unique email, and its second try takes the
	// existing-address path.
	for attempt := 0; ; attempt++ {
		err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error { return s.register(ctx, tx, r) })
		if err == nil || !ent.IsConstraintError(err) || attempt > 0 {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	s.Wake()
	return watch, nil
}

// newRegistration is a registration about to be written.
type newRegistration struct {
	email        string
	purpose      registration.Purpose
	passwordHash string
	watchHash    string
	redirectTo   *string
	locale       string
}

func (s *Service) register(ctx context.Context, tx *ent.Tx, r newRegistration) error {
	now := s.now()
	// First, so that concurrent registrations of one address take turns.
	cooldown, err := s.lockCooldown(ctx, tx, r.email)
	if err != nil {
		return err
	}
	existing, err := tx.User.Query().Where(user.Email(r.email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return err
	}
	if existing != nil && existing.Status == user.StatusVERIFIED {
		return s.decoy(ctx, tx, cooldown, r, existing.ID, now)
	}

	topic := event.RegisteredTopic
	var u *ent.User
	if existing == nil {
		if u, err = tx.User.Create().SetEmail(r.email).SetPasswordHash(r.passwordHash).SetCreatedAt(now).Save(ctx); err != nil {
			return err
		}
		// Once per user: a renewal of an unverified address is not a new user.
		if err := s.Events.Enqueue(ctx, tx, now, publicevent.UserRegistered{UserID: u.ID, Email: r.email, RegisteredAt: now.UTC()}); err != nil {
			return err
		}
	} else {
		u, topic = existing, event.RenewedTopic
		// The newest registration's password is the one signIn checks
		// while the address is unverified, and the one VerifyEmail
		// requires to be still in place (see confirmSignup). Conditional
		// on the status: a confirmation that committed since the read
		// above (PostgreSQL) makes this a repeated registration of a
		// VERIFIED address, whose password must not change.
		n, err := tx.User.Update().Where(user.ID(u.ID), user.StatusEQ(user.StatusUNVERIFIED)).SetPasswordHash(r.passwordHash).Save(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return s.decoy(ctx, tx, cooldown, r, existing.ID, now)
		}
		if err := s.supersede(ctx, tx, u.ID, registration.PurposeSIGNUP, now); err != nil {
			return err
		}
	}
	req, err := s.issue(ctx, tx, r, u.ID, now)
	if err != nil {
		return err
	}
	// The registration email obeys the cooldown too (the address can have
	// had mail moments ago, a resend for instance). Were it forced out at
	// once, the cooldown that follows would differ between new and
	// existing addresses and a later resend's retryAfterSeconds would tell
	// them apart.
	return s.schedule(ctx, tx, cooldown, now, outgoing{topic, req})
}

// decoy answers a repeated registration of a VERIFIED address: the same
// rows as a fresh registration but no user, and a code nobody is mailed,
// so a guess at it fails like a wrong code at a real one; the owner gets a
// notice, which obeys the cooldown like every email (a repeated attempt
// cannot flood the owner, and the notice is not lost), in the owner's
// language. It supersedes the address's earlier decoys as a renewal
// supersedes an UNVERIFIED user's registrations: otherwise whoever
// registers an address twice could tell a VERIFIED one by its first watch
// token still answering.
func (s *Service) decoy(ctx context.Context, tx *ent.Tx, cooldown *ent.EmailThrottle, r newRegistration, owner uuid.UUID, now time.Time) error {
	if err := s.supersedeDecoys(ctx, tx, r.email, r.purpose, now); err != nil {
		return err
	}
	reg, _, err := s.createRegistration(ctx, tx, r, nil, true, now)
	if err != nil {
		return err
	}
	locale, err := userLocale(ctx, tx, owner)
	if err != nil {
		return err
	}
	return s.schedule(ctx, tx, cooldown, now, outgoing{event.AlreadyRegisteredTopic, event.AlreadyRegistered{Email: r.email, Registration: reg.ID, Locale: locale, UserID: owner}})
}

// userLocale is the language a user chose: their newest registration's
// (a sign-up's locale, which a change of address inherits). Not the
// locale of whoever triggers a notice to them: that may be someone else.
func userLocale(ctx context.Context, tx *ent.Tx, userID uuid.UUID) (string, error) {
	locale, err := tx.Registration.Query().
		Where(registration.UserID(userID)).
		Order(ent.Desc(registration.FieldCreatedAt)).
		Limit(1).
		Select(registration.FieldLocale).
		String(ctx)
	if ent.IsNotFound(err) {
		return "en", nil // registered before registrations were kept
	}
	return locale, err
}

// supersede marks the user's live registrations of purpose superseded and
// tells every replica, so their watchers complete.
func (s *Service) supersede(ctx context.Context, tx *ent.Tx, userID uuid.UUID, purpose registration.Purpose, now time.Time) error {
	return s.supersedeWhere(ctx, tx, now, registration.UserID(userID), registration.PurposeEQ(purpose))
}

// supersedeDecoys is supersede for the decoys of email, which no user id
// names: they are found by the address, in an index of its own (ent
// schema Registration). The cooldown record the caller holds locked is no
// shortcut: it names the address, not its registrations.
func (s *Service) supersedeDecoys(ctx context.Context, tx *ent.Tx, email string, purpose registration.Purpose, now time.Time) error {
	return s.supersedeWhere(ctx, tx, now, registration.Email(email), registration.UserIDIsNil(), registration.PurposeEQ(purpose))
}

// supersedeWhere marks the live registrations matching ps superseded and
// enqueues the event that completes their watchers on every replica.
func (s *Service) supersedeWhere(ctx context.Context, tx *ent.Tx, now time.Time, ps ...predicate.Registration) error {
	ids, err := tx.Registration.Query().
		Where(append(ps, registration.SupersededAtIsNil())...).
		IDs(ctx)
	if err != nil || len(ids) == 0 {
		return err
	}
	if err := tx.Registration.Update().Where(registration.IDIn(ids...)).SetSupersededAt(now).Exec(ctx); err != nil {
		return err
	}
	return outbox.Enqueue(ctx, tx, now, event.SupersededTopic, event.Superseded{Registrations: ids})
}

// issue writes r for userID with a fresh code and a first link, and
// returns the event that mails them.
func (s *Service) issue(ctx context.Context, tx *ent.Tx, r newRegistration, userID uuid.UUID, now time.Time) (event.VerificationRequested, error) {
	reg, c, err := s.createRegistration(ctx, tx, r, &userID, true, now)
	if err != nil {
		return event.VerificationRequested{}, err
	}
	return s.verificationRequest(ctx, tx, reg, c, now)
}

// createRegistration writes a registration with a code, for userID (nil: a
// decoy), and returns it with its code. Without givable the code is one
// nobody can give, and "": what is stored is the keyed hash of the empty
// string, which no well-formed code (checkCode) matches.
func (s *Service) createRegistration(ctx context.Context, tx *ent.Tx, r newRegistration, userID *uuid.UUID, givable bool, now time.Time) (*ent.Registration, string, error) {
	id := uuid.New()
	c, stored := "", s.Codes.Hash(id, "")
	if givable {
		c, stored = s.Codes.Issue(id)
	}
	create := tx.Registration.Create().
		SetID(id).
		SetWatchTokenHash(r.watchHash).
		SetNillableUserID(userID).
		SetPurpose(r.purpose).
		SetEmail(r.email).
		SetCodeHash(stored).
		SetCodeExpiresAt(now.Add(s.CodeTTL)).
		SetNillableRedirectTo(r.redirectTo).
		SetLocale(r.locale).
		SetExpiresAt(now.Add(s.TokenTTL)).
		SetCreatedAt(now)
	if r.passwordHash != "" {
		create.SetPasswordHash(r.passwordHash)
	}
	reg, err := create.Save(ctx)
	return reg, c, err
}

// Resend queues a fresh verification email for an existing UNVERIFIED
// address: a new link and the code of its current registration (the live
// code again, see renewCode; the link only once the code is dead: a
// resend buys no fresh guesses). It
// answers the same for every address, registered or not, and allows one
// email per address per ResendCooldown.
func (s *Service) Resend(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	var queued func() // the resend's announcement, once committed
	err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now := s.now()
		cooldown, err := s.lockCooldown(ctx, tx, email)
		if err != nil {
			return err
		}
		if wait := s.cooldownLeft(cooldown, now); wait > 0 {
			return apperr.Limited(wait, "an email was sent to this address recently; try again in %d seconds", RetryAfterSeconds(wait))
		}
		// Spent and recorded whether or not an email goes out, so neither
		// the budgets nor the next answer differ between addresses.
		if err := s.spend(ctx, tx, emailDomain(cooldown.Email), now); err != nil {
			return err
		}
		if err := updateThrottle(tx, cooldown).SetLastSentMs(now.UnixMilli()).ClearPendingEvent().Exec(ctx); err != nil {
			return fmt.Errorf("update cooldown record: %w", err)
		}
		u, err := tx.User.Query().Where(user.Email(email)).Only(ctx)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if u.Status == user.StatusVERIFIED {
			// No email, but the address's decoy's code is renewed as a
			// registration's would be: otherwise a wrong code after a resend
			// answered attemptsLeft 0 for a decoy whose code had expired
			// and more for a fresh registration, telling them apart.
			return s.renewDecoyCode(ctx, tx, email, now)
		}
		reg, err := currentRegistration(ctx, tx, u.ID, registration.PurposeSIGNUP)
		if err != nil || reg == nil {
			// None left (expired): nothing the link could confirm.
			return err
		}
		c := ""
		if reg.CodeAttempts < MaxCodeAttempts {
			var err error
			if c, err = s.renewCode(ctx, tx, reg, now); err != nil {
				return err
			}
		}
		req, err := s.verificationRequest(ctx, tx, reg, c, now)
		if err != nil {
			return err
		}
		_, queued, err = s.queue(ctx, tx, now, now, outgoing{event.ResentTopic, req})
		return err
	})
	if err != nil {
		return fmt.Errorf("resend: %w", err)
	}
	if queued != nil {
		queued()
	}
	// Woken whether or not an email was queued: the relay's work would
	// otherwise show in the timing of the answer.
	s.Wake()
	return nil
}

// renewDecoyCode renews the code of the newest live decoy of email, which
// nobody is mailed, as Resend does a registration's code while it has
// tries left (renewCode).
func (s *Service) renewDecoyCode(ctx context.Context, tx *ent.Tx, email string, now time.Time) error {
	reg, err := tx.Registration.Query().
		Where(registration.Email(email), registration.UserIDIsNil(), registration.PurposeEQ(registration.PurposeSIGNUP), registration.SupersededAtIsNil()).
		Order(ent.Desc(registration.FieldCreatedAt)).
		First(ctx)
	if ent.IsNotFound(err) {
		return nil
	}
	if err != nil || reg.CodeAttempts >= MaxCodeAttempts {
		return err
	}
	_, err = s.renewCode(ctx, tx, reg, now)
	return err
}

// renewCode gives reg's code CodeTTL more from now, for a new email, and
// returns it: the live code again, so that the code of every email of the
// registration works while it lives, not only the latest one's; a new code
// once it expired, or when the live one cannot be had again (stored by an
// earlier release, which kept only its hash).
func (s *Service) renewCode(ctx context.Context, tx *ent.Tx, reg *ent.Registration, now time.Time) (string, error) {
	c, stored := "", reg.CodeHash
	if reg.CodeExpiresAt != nil && now.Before(*reg.CodeExpiresAt) {
		c, _ = s.Codes.Recall(reg.ID, stored)
	}
	if c == "" {
		c, stored = s.Codes.Issue(reg.ID)
	}
	err := tx.Registration.Update().Where(registration.ID(reg.ID)).SetCodeHash(stored).SetCodeExpiresAt(now.Add(s.CodeTTL)).Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("renew code: %w", err)
	}
	return c, nil
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// currentRegistration is the user's registration of purpose that is not
// superseded, nil if none. Its watch token may have expired: its links
// still confirm, and a resend still mails them.
func currentRegistration(ctx context.Context, tx *ent.Tx, userID uuid.UUID, purpose registration.Purpose) (*ent.Registration, error) {
	reg, err := tx.Registration.Query().
		Where(registration.UserID(userID), registration.PurposeEQ(purpose), registration.SupersededAtIsNil()).
		Order(ent.Desc(registration.FieldCreatedAt)).
		First(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current registration: %w", err)
	}
	return reg, nil
}

// verificationRequest issues a fresh verification token for reg and
// returns the event that carries it and the code c (empty: none) to the
// mailer, both sealed to the address: the clear token and code exist only
// in the email.
func (s *Service) verificationRequest(ctx context.Context, tx *ent.Tx, reg *ent.Registration, c string, now time.Time) (event.VerificationRequested, error) {
	tok, hash := token.New()
	expires := now.Add(s.TokenTTL)
	err := tx.VerificationToken.Create().
		SetTokenHash(hash).
		SetUserID(*reg.UserID).
		SetRegistrationID(reg.ID).
		SetExpiresAt(expires).
		SetCreatedAt(now).
		Exec(ctx)
	ev := event.VerificationRequested{UserID: *reg.UserID, Registration: reg.ID, Email: reg.Email, SealedToken: s.Seal.Seal(tok, reg.Email), ExpiresAt: expires, Locale: reg.Locale}
	if c != "" {
		ev.SealedCode, ev.CodeExpiresAt = s.Seal.Seal(c, reg.Email), now.Add(s.CodeTTL)
	}
	return ev, err
}
