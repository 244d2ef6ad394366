package account

import (
	"context"
	"fmt"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/ent/watchtoken"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/status"
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
//
// On SQLite every write transaction takes the single writer in turn, so
// what other requests wait for is kept to the writes: the token and its
// user are read before, beside the writer, and the transaction is three
// statements that return nothing (at c=64 it was five, two of them
// SELECTs, and verifyEmail/s is bounded by that turn).
func (s *Service) VerifyEmail(ctx context.Context, tok string) (Verification, error) {
	if err := checkToken("token", tok); err != nil {
		return Verification{}, err
	}
	vt, err := s.DB.VerificationToken.Query().Where(verificationtoken.TokenHash(token.Hash(tok))).WithUser().Only(ctx)
	if ent.IsNotFound(err) {
		return Verification{}, apperr.Errorf(apperr.InvalidToken, "this verification link is not valid")
	}
	if err != nil {
		return Verification{}, fmt.Errorf("verify: find token: %w", err)
	}
	if !s.now().Before(vt.ExpiresAt) {
		return Verification{}, apperr.Errorf(apperr.TokenExpired, "this verification link has expired; ask for a new email")
	}
	u := vt.Edges.User
	if u.Status == user.StatusVERIFIED {
		// Verified before: nothing to write, and verified_at never
		// changes once set.
		return Verification{Email: u.Email, VerifiedAt: u.VerifiedAt.UTC(), AlreadyVerified: true}, nil
	}

	var now time.Time
	changed := false
	err = database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		now = s.now()
		// Conditional on the old status, so of two concurrent clicks
		// exactly one changes the row and writes the event.
		n, err := tx.User.Update().
			Where(user.ID(vt.UserID), user.StatusEQ(user.StatusUNVERIFIED)).
			SetStatus(user.StatusVERIFIED).
			SetVerifiedAt(now).
			Save(ctx)
		if err != nil || n == 0 {
			return err
		}
		changed = true
		// Update, not UpdateOneID: that reads the row back, a SELECT in
		// the writer's turn for a result nobody uses.
		if err := tx.VerificationToken.Update().Where(verificationtoken.ID(vt.ID)).SetUsedAt(now).Exec(ctx); err != nil {
			return err
		}
		if err := publicevent.Enqueue(ctx, tx, now, publicevent.UserVerified{UserID: vt.UserID, Email: u.Email, VerifiedAt: now.UTC()}); err != nil {
			return err
		}
		return outbox.Enqueue(ctx, tx, now, event.VerifiedTopic, event.Verified{UserID: vt.UserID, VerifiedAt: now})
	})
	if err != nil {
		return Verification{}, fmt.Errorf("verify: %w", err)
	}
	if changed {
		s.Wake()
		return Verification{Email: u.Email, VerifiedAt: now.UTC()}, nil
	}
	// Another click verified it since the read above (or the account is
	// gone): answer with what that one stored.
	u, err = s.DB.User.Get(ctx, vt.UserID)
	if err != nil {
		return Verification{}, fmt.Errorf("verify: %w", err)
	}
	return Verification{Email: u.Email, VerifiedAt: u.VerifiedAt.UTC(), AlreadyVerified: true}, nil
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

// Status answers the current status behind a watch token.
func (s *Service) Status(ctx context.Context, watchToken string) (status.Status, error) {
	wt, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return "", err
	}
	c, err := s.current(ctx, wt, false)
	if err != nil {
		return "", err
	}
	return c.Status, nil
}

// current reads the state a watcher of wt is shown: its user's status (a
// registration without a user stays UNVERIFIED from its own time on, like
// a fresh one until confirmed) and, withDelivery, its latest email's.
func (s *Service) current(ctx context.Context, wt *ent.WatchToken, withDelivery bool) (*status.Change, error) {
	c := &status.Change{Status: status.Unverified, At: wt.CreatedAt.UTC()}
	if wt.UserID != nil {
		u, err := s.DB.User.Get(ctx, *wt.UserID)
		if err != nil {
			return nil, fmt.Errorf("read status: %w", err)
		}
		if u.Status == user.StatusVERIFIED {
			c.Status, c.At = status.Verified, u.VerifiedAt.UTC()
		} else {
			c.At = u.CreatedAt.UTC()
		}
	}
	if withDelivery {
		d, err := s.latestDelivery(ctx, wt)
		if err != nil {
			return nil, err
		}
		c.Delivery = d
	}
	return c, nil
}

// latestDelivery is the delivery of wt's latest email. Until the mailer
// recorded one (or without records, or for a token older than
// registration ids) the email is QUEUED since the registration with no
// attempts: the same start for every registration, a repeated one
// included, so the timeline tells nothing about the address.
func (s *Service) latestDelivery(ctx context.Context, wt *ent.WatchToken) (*status.Delivery, error) {
	if s.Deliveries != nil && wt.Registration != nil {
		d, err := s.Deliveries.Latest(ctx, *wt.Registration)
		if err != nil {
			return nil, fmt.Errorf("read delivery: %w", err)
		}
		if d != nil {
			return d, nil
		}
	}
	return &status.Delivery{State: status.Queued, At: wt.CreatedAt.UTC()}, nil
}

// Watch streams the state behind a watch token on a channel the caller
// reads directly: the current one at once, then each change, and after
// VERIFIED the channel closes. withDelivery adds the latest email's
// delivery to every event and an event at each delivery change. The
// channel also closes when ctx ends. A repeated registration's token sends
// UNVERIFIED and never VERIFIED, as a fresh registration's would until
// confirmed; its delivery events are its notice's.
func (s *Service) Watch(ctx context.Context, watchToken string, withDelivery bool) (<-chan *status.Change, error) {
	wt, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return nil, err
	}
	w := hub.Watch{Read: func(ctx context.Context) (*status.Change, error) { return s.current(ctx, wt, withDelivery) }}
	if wt.UserID != nil {
		w.User = *wt.UserID
	}
	if withDelivery && wt.Registration != nil {
		w.Registration = *wt.Registration
	}
	sub, err := s.Hub.Subscribe(ctx, w)
	if err != nil {
		return nil, err
	}
	// No goroutine waits for the end: the hub deregisters the
	// subscription when ctx ends, or earlier after VERIFIED.
	context.AfterFunc(ctx, sub.Close)
	return sub.C(), nil
}
