package account

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/ent/watchtoken"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/token"
)

// Verification is the result of a successful VerifyEmail.
type Verification struct {
	Email      string
	VerifiedAt time.Time
	// AlreadyVerified is set when an earlier call verified the address.
	AlreadyVerified bool
}

// VerifyEmail marks the token's address VERIFIED and queues the change
// event. Any unexpired token of an already verified address succeeds again
// without a second event: people click old emails and double-click links.
func (s *Service) VerifyEmail(ctx context.Context, tok string) (Verification, error) {
	if err := checkToken("token", tok); err != nil {
		return Verification{}, err
	}
	vt, err := s.DB.VerificationToken.Query().Where(verificationtoken.TokenHash(token.Hash(tok))).Only(ctx)
	if ent.IsNotFound(err) {
		return Verification{}, apperr.Errorf(apperr.InvalidToken, "this verification link is not valid")
	}
	if err != nil {
		return Verification{}, fmt.Errorf("verify: find token: %w", err)
	}
	if !s.now().Before(vt.ExpiresAt) {
		return Verification{}, apperr.Errorf(apperr.TokenExpired, "this verification link has expired; ask for a new email")
	}

	var res Verification
	changed := false
	err = s.inTx(ctx, func(tx *ent.Tx) error {
		now := s.now()
		// Conditional on the old status, so of two concurrent clicks
		// exactly one changes the row and writes the event.
		n, err := tx.User.Update().
			Where(user.ID(vt.UserID), user.StatusEQ(user.StatusUNVERIFIED)).
			SetStatus(user.StatusVERIFIED).
			SetVerifiedAt(now).
			Save(ctx)
		if err != nil {
			return err
		}
		if n == 1 {
			changed = true
			if err := tx.VerificationToken.UpdateOneID(vt.ID).SetUsedAt(now).Exec(ctx); err != nil {
				return err
			}
			if err := outbox.Enqueue(ctx, tx, now, event.VerifiedTopic, event.Verified{UserID: vt.UserID, VerifiedAt: now}); err != nil {
				return err
			}
		}
		u, err := tx.User.Get(ctx, vt.UserID)
		if err != nil {
			return err
		}
		res = Verification{Email: u.Email, VerifiedAt: u.VerifiedAt.UTC(), AlreadyVerified: n == 0}
		return nil
	})
	if err != nil {
		return Verification{}, fmt.Errorf("verify: %w", err)
	}
	if changed {
		s.Wake()
	}
	return res, nil
}

// lookupWatch finds a live watch token.
func (s *Service) lookupWatch(ctx context.Context, tok string) (*ent.WatchToken, error) {
	if err := checkToken("watchToken", tok); err != nil {
		return nil, err
	}
	wt, err := s.DB.WatchToken.Query().Where(watchtoken.TokenHash(token.Hash(tok))).Only(ctx)
	if ent.IsNotFound(err) || (err == nil && !s.now().Before(wt.ExpiresAt)) {
		return nil, apperr.Errorf(apperr.InvalidToken, "watchToken is not valid")
	}
	if err != nil {
		return nil, fmt.Errorf("find watch token: %w", err)
	}
	return wt, nil
}

// StatusEvent is one status reported to a watcher.
type StatusEvent struct {
	Status Status
	At     time.Time
}

// Status answers the current status behind a watch token.
func (s *Service) Status(ctx context.Context, watchToken string) (Status, error) {
	wt, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return "", err
	}
	if wt.UserID == nil {
		return Unverified, nil
	}
	ev, err := s.userStatus(ctx, *wt.UserID)
	return ev.Status, err
}

func (s *Service) userStatus(ctx context.Context, id uuid.UUID) (StatusEvent, error) {
	u, err := s.DB.User.Get(ctx, id)
	if err != nil {
		return StatusEvent{}, fmt.Errorf("read status: %w", err)
	}
	if u.Status == user.StatusVERIFIED {
		return StatusEvent{Status: Verified, At: u.VerifiedAt.UTC()}, nil
	}
	return StatusEvent{Status: Unverified, At: u.CreatedAt.UTC()}, nil
}

// Watch streams the status behind a watch token: the current one at once,
// then VERIFIED when it happens, after which the channel closes. The
// channel also closes when ctx ends. A repeated registration's token sends
// UNVERIFIED and nothing more, as a fresh registration's would until
// confirmed.
func (s *Service) Watch(ctx context.Context, watchToken string) (<-chan StatusEvent, error) {
	wt, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return nil, err
	}
	out := make(chan StatusEvent, 1)
	if wt.UserID == nil {
		// Never closed: like an unconfirmed registration it stays open
		// until the client leaves. No goroutine is needed for that.
		out <- StatusEvent{Status: Unverified, At: wt.CreatedAt.UTC()}
		return out, nil
	}
	id := *wt.UserID
	// Subscribe before reading, so a change committed in between is seen
	// either by the read or by the subscription.
	sub := s.Hub.Subscribe(id)
	cur, err := s.userStatus(ctx, id)
	if err != nil {
		sub.Close()
		return nil, err
	}
	out <- cur
	if cur.Status == Verified {
		sub.Close()
		close(out)
		return out, nil
	}
	go func() {
		defer close(out)
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.C():
				if !ok {
					return // the hub is shutting down
				}
				at := e.VerifiedAt
				if e.Recheck {
					cur, err := s.userStatus(ctx, id)
					if err != nil {
						s.Log.Warn("re-reading status after reconnect failed", "err", err)
						continue
					}
					if cur.Status != Verified {
						continue
					}
					at = cur.At
				}
				select {
				case out <- StatusEvent{Status: Verified, At: at.UTC()}:
				case <-ctx.Done():
				}
				return
			}
		}
	}()
	return out, nil
}
