package account

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/database"
)

const (
	// MaxCodeAttempts is how many wrong codes a registration takes before
	// its code is dead: a guesser's odds stay at 5 in a million.
	MaxCodeAttempts = 5
	// DefaultCodeTTL is CODE_TTL's default.
	DefaultCodeTTL = 15 * time.Minute
	// addressCodeLimit caps the wrong codes per address over
	// addressCodeWindow, across registrations: registering again (a new
	// registration, 5 new tries) must not become a way to keep guessing.
	addressCodeLimit  = 20
	addressCodeWindow = 24 * time.Hour
)

// VerifyEmailWithCode confirms the registration behind watchToken with
// the code from its email. A wrong code answers INVALID_CODE with the
// tries left and counts against that registration; a dead code (expired,
// or MaxCodeAttempts wrong tries) answers INVALID_CODE with 0 and the
// link still works. Expired answers INVALID_CODE rather than
// TOKEN_EXPIRED: for the person both mean "use the link or ask for a new
// email", and the code field needs one answer to show.
func (s *Service) VerifyEmailWithCode(ctx context.Context, watchToken, c string) (Verification, error) {
	if err := checkCode(c); err != nil {
		return Verification{}, err
	}
	reg, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return Verification{}, err
	}
	return s.confirmWithCode(ctx, reg, c)
}

// checkCode screens a code argument: a malformed one costs no try.
func checkCode(c string) error {
	switch {
	case c == "":
		return apperr.Errorf(apperr.BadUserInput, "code is required")
	case !code.WellFormed(c):
		return apperr.Errorf(apperr.BadUserInput, "code must be %d digits", code.Digits)
	}
	return nil
}

// confirmWithCode checks c against reg's code and confirms reg if it is
// right. A decoy's code was never mailed: every guess at it is wrong,
// exactly like a wrong guess at a real one.
func (s *Service) confirmWithCode(ctx context.Context, reg *ent.Registration, c string) (Verification, error) {
	if err := s.addressCodeBudget(ctx, s.DB, reg.Email); err != nil {
		return Verification{}, err
	}
	now := s.now()
	live := reg.CodeHash != "" && reg.CodeAttempts < MaxCodeAttempts && reg.CodeExpiresAt != nil && now.Before(*reg.CodeExpiresAt)
	// Compared even when dead, so the time taken says nothing more.
	right := s.Codes.Match(reg.ID, c, reg.CodeHash)
	switch {
	case !live:
		return Verification{}, apperr.WrongCode(0)
	case right && reg.UserID != nil:
		if err := s.takeCode(ctx, reg); err != nil {
			return Verification{}, err
		}
		return s.confirm(ctx, reg)
	}
	return Verification{}, s.wrongCode(ctx, reg)
}

// takeCode checks, before a right code confirms, that reg's code is still
// the one it was compared with and still live: reg was read before the
// comparison, and guesses sent at once all read it while its code lived,
// so without this check the right one among them confirmed whatever the
// wrong ones had counted meanwhile, and a burst tried as many codes as
// it held. Under the lock wrongCode counts under (the address's cooldown
// record), with the address's cap checked again, so a wrong code counted
// before is seen here. A code that died meanwhile answers as a dead one.
func (s *Service) takeCode(ctx context.Context, reg *ent.Registration) error {
	live := false
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		if _, err := s.lockCooldown(ctx, tx, reg.Email); err != nil {
			return err
		}
		if err := s.addressCodeBudget(ctx, tx.Client(), reg.Email); err != nil {
			return err
		}
		var err error
		live, err = tx.Registration.Query().
			Where(registration.ID(reg.ID), registration.CodeHash(reg.CodeHash),
				registration.CodeAttemptsLT(MaxCodeAttempts), registration.CodeExpiresAtGT(s.now())).
			Exist(ctx)
		return err
	})
	if _, limited := apperr.From(err); limited {
		return err
	}
	if err != nil {
		return fmt.Errorf("take code: %w", err)
	}
	if !live {
		return apperr.WrongCode(0)
	}
	return nil
}

// wrongCode counts a wrong try against reg and answers INVALID_CODE with
// the tries left. The count is one conditional UPDATE (only below the
// cap), so parallel guesses on any replica cannot take more than
// MaxCodeAttempts tries between them. The address's cap is checked again
// in the same transaction, under the lock of the address's cooldown
// record: several registrations of one address can be live at once (each
// account's pending change to it), and a check before the guess alone let
// every guess that was in flight through.
func (s *Service) wrongCode(ctx context.Context, reg *ent.Registration) error {
	left := 0
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		if _, err := s.lockCooldown(ctx, tx, reg.Email); err != nil {
			return err
		}
		if err := s.addressCodeBudget(ctx, tx.Client(), reg.Email); err != nil {
			return err
		}
		n, err := tx.Registration.Update().
			Where(registration.ID(reg.ID), registration.CodeAttemptsLT(MaxCodeAttempts)).
			AddCodeAttempts(1).
			Save(ctx)
		if err != nil || n == 0 {
			return err
		}
		after, err := tx.Registration.Query().Where(registration.ID(reg.ID)).Select(registration.FieldCodeAttempts).Int(ctx)
		left = MaxCodeAttempts - after
		return err
	})
	if _, limited := apperr.From(err); limited {
		return err
	}
	if err != nil {
		return fmt.Errorf("count wrong code: %w", err)
	}
	return apperr.WrongCode(left)
}

// addressCodeBudget answers RATE_LIMITED once the address's registrations
// of the last addressCodeWindow took addressCodeLimit wrong codes between
// them, until the oldest of those registrations leaves the window.
func (s *Service) addressCodeBudget(ctx context.Context, db *ent.Client, email string) error {
	now := s.now()
	regs, err := db.Registration.Query().
		Where(registration.Email(email), registration.CreatedAtGT(now.Add(-addressCodeWindow)), registration.CodeAttemptsGT(0)).
		Order(ent.Desc(registration.FieldCreatedAt)).
		Select(registration.FieldCodeAttempts, registration.FieldCreatedAt).
		Limit(addressCodeLimit).
		All(ctx)
	if err != nil {
		return fmt.Errorf("count wrong codes: %w", err)
	}
	wrong := 0
	for _, r := range regs {
		wrong += r.CodeAttempts
		if wrong >= addressCodeLimit {
			wait := r.CreatedAt.Add(addressCodeWindow).Sub(now)
			return apperr.Limited(wait, "too many wrong codes for this address; use the link in the email, or try again in %d seconds", RetryAfterSeconds(wait))
		}
	}
	return nil
}
