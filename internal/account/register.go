package account

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/watchtoken"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/token"
)

// Register stores a new UNVERIFIED user and queues the verification email,
// returning a watch token. For an address that already exists it answers
// the same way, but queues a notice to the owner instead and returns a watch
// token that never reports VERIFIED: the answer reveals nothing. Either
// email waits for the end of the inbox's cooldown if one runs (see
// schedule). Over the domain or global email cap it answers RATE_LIMITED
// and stores nothing.
func (s *Service) Register(ctx context.Context, email, pw string) (watchToken string, err error) {
	email, err = NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if err := CheckPassword(pw); err != nil {
		return "", err
	}
	// Hashed for existing addresses too, so the response time does not
	// tell the two cases apart.
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	watch, watchHash := token.New()

	// Two registrations of one new address can race; the loser's insert
	// fails on the unique email, and its second try takes the
	// existing-address path.
	for attempt := 0; ; attempt++ {
		err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error { return s.register(ctx, tx, email, hash, watchHash) })
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

func (s *Service) register(ctx context.Context, tx *ent.Tx, email, hash, watchHash string) error {
	now := s.now()
	expires := now.Add(s.TokenTTL)
	// First, so that concurrent registrations of one inbox take turns.
	inbox, err := s.lockInbox(ctx, tx, CanonicalEmail(email))
	if err != nil {
		return err
	}
	existing, err := tx.User.Query().Where(user.Email(email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return err
	}
	// Named here, not by the database, so the email's event can carry it:
	// the records of the email are shown to whoever watches this token.
	registration := uuid.New()
	if existing != nil {
		err := tx.WatchToken.Create().SetTokenHash(watchHash).SetRegistration(registration).SetExpiresAt(expires).SetCreatedAt(now).Exec(ctx)
		if err != nil {
			return err
		}
		// The notice obeys the cooldown like every email: a repeated
		// attempt cannot flood the owner, and the notice is not lost.
		return s.schedule(ctx, tx, inbox, now, outgoing{event.AlreadyRegisteredTopic, event.AlreadyRegistered{Email: email, Registration: registration}})
	}

	u, err := tx.User.Create().SetEmail(email).SetPasswordHash(hash).SetCreatedAt(now).Save(ctx)
	if err != nil {
		return err
	}
	if err := tx.WatchToken.Create().SetTokenHash(watchHash).SetRegistration(registration).SetUserID(u.ID).SetExpiresAt(expires).SetCreatedAt(now).Exec(ctx); err != nil {
		return err
	}
	if err := publicevent.Enqueue(ctx, tx, now, publicevent.UserRegistered{UserID: u.ID, Email: email, RegisteredAt: now.UTC()}); err != nil {
		return err
	}
	req, err := s.verificationRequest(ctx, tx, u.ID, registration, email, now)
	if err != nil {
		return err
	}
	// The registration email obeys the cooldown too (an inbox can have had
	// mail moments ago: a resend for the address, or another spelling of
	// it). Were it forced out at once, the cooldown that follows would
	// differ between new and existing addresses and a later resend's
	// retryAfterSeconds would tell them apart.
	return s.schedule(ctx, tx, inbox, now, outgoing{event.RegisteredTopic, req})
}

// Resend queues a fresh verification email for an existing UNVERIFIED
// address. It answers the same for every address, registered or not, and
// allows one email per inbox (canonical address) per ResendCooldown.
func (s *Service) Resend(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now := s.now()
		inbox, err := s.lockInbox(ctx, tx, CanonicalEmail(email))
		if err != nil {
			return err
		}
		if wait := s.cooldownLeft(inbox, now); wait > 0 {
			return apperr.Limited(wait, "an email was sent to this address recently; try again in %d seconds", RetryAfterSeconds(wait))
		}
		// Spent and recorded whether or not an email goes out, so neither
		// the budgets nor the next answer differ between addresses.
		if err := s.spend(ctx, tx, emailDomain(inbox.Email), now); err != nil {
			return err
		}
		if err := tx.EmailThrottle.UpdateOne(inbox).SetLastSentMs(now.UnixMilli()).ClearPendingEvent().Exec(ctx); err != nil {
			return fmt.Errorf("update cooldown record: %w", err)
		}
		u, err := tx.User.Query().Where(user.Email(email), user.StatusEQ(user.StatusUNVERIFIED)).Only(ctx)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		registration, err := latestRegistration(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		req, err := s.verificationRequest(ctx, tx, u.ID, registration, email, now)
		if err != nil {
			return err
		}
		return outbox.Enqueue(ctx, tx, now, event.ResentTopic, req)
	})
	if err != nil {
		return fmt.Errorf("resend: %w", err)
	}
	// Woken whether or not an email was queued: the relay's work would
	// otherwise show in the timing of the answer.
	s.Wake()
	return nil
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// latestRegistration names the user's newest registration: a resent email
// is shown to whoever watches it. uuid.Nil when none is left (its watch
// tokens expired): the email then goes out unwatched.
func latestRegistration(ctx context.Context, tx *ent.Tx, userID uuid.UUID) (uuid.UUID, error) {
	wt, err := tx.WatchToken.Query().
		Where(watchtoken.UserID(userID)).
		Order(ent.Desc(watchtoken.FieldCreatedAt), ent.Desc(watchtoken.FieldID)).
		Select(watchtoken.FieldRegistration).
		First(ctx)
	if ent.IsNotFound(err) || (err == nil && wt.Registration == nil) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("latest registration: %w", err)
	}
	return *wt.Registration, nil
}

// verificationRequest issues a fresh verification token for the user and
// returns the event that carries it to the mailer, sealed to the address:
// the clear token exists only in the email.
func (s *Service) verificationRequest(ctx context.Context, tx *ent.Tx, userID, registration uuid.UUID, email string, now time.Time) (event.VerificationRequested, error) {
	tok, hash := token.New()
	expires := now.Add(s.TokenTTL)
	err := tx.VerificationToken.Create().
		SetTokenHash(hash).
		SetUserID(userID).
		SetExpiresAt(expires).
		SetCreatedAt(now).
		Exec(ctx)
	return event.VerificationRequested{UserID: userID, Registration: registration, Email: email, SealedToken: s.Seal.Seal(tok, email), ExpiresAt: expires}, err
}
