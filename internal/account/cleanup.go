package account

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/internal/database"
)

// ExpiredTokenGrace is how long an expired verification token is kept:
// until then its link answers TOKEN_EXPIRED, whose page offers a new email,
// rather than INVALID_TOKEN.
const ExpiredTokenGrace = 7 * 24 * time.Hour

// DefaultUnverifiedTTL is UNVERIFIED_TTL's default.
const DefaultUnverifiedTTL = 7 * 24 * time.Hour

// cleanupBatch bounds the rows one clean-up transaction deletes, so it
// never holds the database's writer (SQLite) or many row locks for long.
const cleanupBatch = 500

// DeleteExpired removes verification tokens a week past expiry, decoy
// registrations whose watch token expired, superseded registrations (and
// their tokens, which answer INVALID_TOKEN anyway) once past that grace,
// and cooldown records and email budgets that no longer limit anything.
func (s *Service) DeleteExpired(ctx context.Context) (int, error) {
	now := s.now()
	total := 0
	vt, err := s.DB.VerificationToken.Delete().Where(verificationtoken.ExpiresAtLT(now.Add(-ExpiredTokenGrace))).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete expired verification tokens: %w", err)
	}
	total += vt
	decoys, err := s.DB.Registration.Delete().Where(registration.UserIDIsNil(), registration.ExpiresAtLT(now)).Exec(ctx)
	if err != nil {
		return total, fmt.Errorf("delete expired decoy registrations: %w", err)
	}
	total += decoys
	old := registration.SupersededAtLT(now.Add(-ExpiredTokenGrace))
	if _, err := s.DB.VerificationToken.Delete().Where(verificationtoken.HasRegistrationWith(old)).Exec(ctx); err != nil {
		return total, fmt.Errorf("delete superseded registrations' tokens: %w", err)
	}
	sup, err := s.DB.Registration.Delete().Where(old).Exec(ctx)
	if err != nil {
		return total, fmt.Errorf("delete superseded registrations: %w", err)
	}
	total += sup
	th, err := s.DB.EmailThrottle.Delete().Where(emailthrottle.LastSentMsLT(now.Add(-s.ResendCooldown).UnixMilli())).Exec(ctx)
	if err != nil {
		return total, fmt.Errorf("delete old cooldown records: %w", err)
	}
	total += th
	// Windows that have ended count nothing any more.
	eb, err := s.DB.EmailBudget.Delete().Where(emailbudget.WindowStartLTE(now.Add(-BudgetWindow).Unix())).Exec(ctx)
	if err != nil {
		return total, fmt.Errorf("delete past email budgets: %w", err)
	}
	return total + eb, nil
}

// DeleteUnverified deletes the UNVERIFIED users whose last registration is
// older than UnverifiedTTL, with their registrations, tokens, delivery
// records and the webhook deliveries of their events (deleteUsers),
// freeing their addresses: an address someone else registered and never
// confirmed is not held forever. It works in batches until none is left.
func (s *Service) DeleteUnverified(ctx context.Context) (int, error) {
	ttl := s.UnverifiedTTL
	if ttl <= 0 {
		ttl = DefaultUnverifiedTTL
	}
	cutoff := s.now().Add(-ttl)
	total := 0
	for {
		ids, err := s.DB.User.Query().
			Where(user.StatusEQ(user.StatusUNVERIFIED), user.CreatedAtLT(cutoff),
				user.Not(user.HasRegistrationsWith(registration.CreatedAtGTE(cutoff)))).
			Limit(cleanupBatch).
			IDs(ctx)
		if err != nil || len(ids) == 0 {
			return total, err
		}
		err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
			// Checked again under the transaction: a registration made
			// since the read keeps its user.
			ids, err = tx.User.Query().
				Where(user.IDIn(ids...), user.StatusEQ(user.StatusUNVERIFIED),
					user.Not(user.HasRegistrationsWith(registration.CreatedAtGTE(cutoff)))).
				IDs(ctx)
			if err != nil || len(ids) == 0 {
				return err
			}
			return s.deleteUsers(ctx, tx, s.now(), nil, ids...)
		})
		if err != nil {
			return total, fmt.Errorf("delete unverified users: %w", err)
		}
		total += len(ids)
		if len(ids) < cleanupBatch {
			return total, nil
		}
	}
}
