package account

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent/emailbudget"
	"github.com/verifier/verifier/ent/emailthrottle"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/ent/watchtoken"
)

// ExpiredTokenGrace is how long an expired verification token is kept:
// until then its link answers TOKEN_EXPIRED, whose page offers a new email,
// rather than INVALID_TOKEN.
const ExpiredTokenGrace = 7 * 24 * time.Hour

// DeleteExpired removes verification tokens a week past expiry, expired
// watch tokens, and cooldown records and email budgets that no longer limit
// anything.
func (s *Service) DeleteExpired(ctx context.Context) (int, error) {
	now := s.now()
	vt, err := s.DB.VerificationToken.Delete().Where(verificationtoken.ExpiresAtLT(now.Add(-ExpiredTokenGrace))).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete expired verification tokens: %w", err)
	}
	wt, err := s.DB.WatchToken.Delete().Where(watchtoken.ExpiresAtLT(now)).Exec(ctx)
	if err != nil {
		return vt, fmt.Errorf("delete expired watch tokens: %w", err)
	}
	th, err := s.DB.EmailThrottle.Delete().Where(emailthrottle.LastSentMsLT(now.Add(-s.ResendCooldown).UnixMilli())).Exec(ctx)
	if err != nil {
		return vt + wt, fmt.Errorf("delete old cooldown records: %w", err)
	}
	// Windows that have ended count nothing any more.
	eb, err := s.DB.EmailBudget.Delete().Where(emailbudget.WindowStartLTE(now.Add(-BudgetWindow).Unix())).Exec(ctx)
	if err != nil {
		return vt + wt + th, fmt.Errorf("delete past email budgets: %w", err)
	}
	return vt + wt + th + eb, nil
}
