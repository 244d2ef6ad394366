package account

import (
	"context"
	"fmt"
	"math"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/token"
)

// Register stores a new UNVERIFIED user and queues the verification email,
// returning a watch token. For an address that already exists it answers
// the same way, but queues a notice to the owner instead and returns a watch
// token that never reports VERIFIED: the answer reveals nothing.
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
		err = s.inTx(ctx, func(tx *ent.Tx) error { return s.register(ctx, tx, email, hash, watchHash) })
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
	existing, err := tx.User.Query().Where(user.Email(email)).Only(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return err
	}
	if existing != nil {
		err := tx.WatchToken.Create().SetTokenHash(watchHash).SetExpiresAt(expires).SetCreatedAt(now).Exec(ctx)
		if err != nil {
			return err
		}
		// The notice obeys the cooldown; the caller still gets the usual
		// answer, so a repeated attempt cannot be used to flood the owner.
		ok, _, err := s.takeSendSlot(ctx, tx, email, now, false)
		if err != nil || !ok {
			return err
		}
		return outbox.Enqueue(ctx, tx, now, event.AlreadyRegisteredTopic, event.AlreadyRegistered{Email: email})
	}

	u, err := tx.User.Create().SetEmail(email).SetPasswordHash(hash).SetCreatedAt(now).Save(ctx)
	if err != nil {
		return err
	}
	if err := tx.WatchToken.Create().SetTokenHash(watchHash).SetUserID(u.ID).SetExpiresAt(expires).SetCreatedAt(now).Exec(ctx); err != nil {
		return err
	}
	verify, err := s.issueVerificationToken(ctx, tx, u.ID, now)
	if err != nil {
		return err
	}
	// The registration email always goes out, and starts the cooldown.
	if _, _, err := s.takeSendSlot(ctx, tx, email, now, true); err != nil {
		return err
	}
	return outbox.Enqueue(ctx, tx, now, event.RegisteredTopic, event.VerificationRequested{
		UserID: u.ID, Email: email, SealedToken: s.Seal.Seal(verify, email), ExpiresAt: now.Add(s.TokenTTL),
	})
}

// Resend queues a fresh verification email for an existing UNVERIFIED
// address. It answers the same for every address, registered or not, and
// allows one email per address per ResendCooldown.
func (s *Service) Resend(ctx context.Context, email string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	queued := false
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		now := s.now()
		ok, wait, err := s.takeSendSlot(ctx, tx, email, now, false)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.Limited(wait, "an email was sent to this address recently; try again in %d seconds", RetryAfterSeconds(wait))
		}
		u, err := tx.User.Query().Where(user.Email(email), user.StatusEQ(user.StatusUNVERIFIED)).Only(ctx)
		if ent.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		verify, err := s.issueVerificationToken(ctx, tx, u.ID, now)
		if err != nil {
			return err
		}
		queued = true
		return outbox.Enqueue(ctx, tx, now, event.ResentTopic, event.VerificationRequested{
			UserID: u.ID, Email: email, SealedToken: s.Seal.Seal(verify, email), ExpiresAt: now.Add(s.TokenTTL),
		})
	})
	if err != nil {
		return fmt.Errorf("resend: %w", err)
	}
	if queued {
		s.Wake()
	}
	return nil
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

func (s *Service) issueVerificationToken(ctx context.Context, tx *ent.Tx, userID uuid.UUID, now time.Time) (string, error) {
	tok, hash := token.New()
	err := tx.VerificationToken.Create().
		SetTokenHash(hash).
		SetUserID(userID).
		SetExpiresAt(now.Add(s.TokenTTL)).
		SetCreatedAt(now).
		Exec(ctx)
	return tok, err
}

// takeSendSlot records that an email to addr goes out at now. With force it
// always succeeds; otherwise only if the previous one is at least
// ResendCooldown old, and else it says how long to wait. It is a single
// conditional upsert, so concurrent callers cannot both win, on SQLite or
// PostgreSQL alike.
func (s *Service) takeSendSlot(ctx context.Context, tx *ent.Tx, addr string, now time.Time, force bool) (ok bool, wait time.Duration, err error) {
	opts := []sql.ConflictOption{sql.ConflictColumns(emailthrottle.FieldEmail), sql.ResolveWithNewValues()}
	if !force {
		cutoff := now.Add(-s.ResendCooldown).UnixMilli()
		opts = append(opts, sql.UpdateWhere(sql.LTE(emailthrottle.FieldLastSentMs, cutoff)))
	}
	query, args := sql.Dialect(s.Dialect).
		Insert(emailthrottle.Table).
		Columns(emailthrottle.FieldEmail, emailthrottle.FieldLastSentMs).
		Values(addr, now.UnixMilli()).
		OnConflict(opts...).
		Query()
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return false, 0, fmt.Errorf("take send slot: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err == nil, 0, err
	}
	last, err := tx.EmailThrottle.Query().Where(emailthrottle.Email(addr)).Only(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("read send slot: %w", err)
	}
	return false, time.UnixMilli(last.LastSentMs).Add(s.ResendCooldown).Sub(now), nil
}
