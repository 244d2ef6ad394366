package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/token"
)

// Verification is the result of a successful confirmation.
type Verification struct {
	// UserID is the verified user; with Email and VerifiedAt, what its
	// receipt states (Service.Receipt mints it, when a client asks).
	UserID     uuid.UUID
	Email      string
	VerifiedAt time.Time
	// AlreadyVerified is set when an earlier call verified the address.
	AlreadyVerified bool
	// RedirectTo is the registration's, if it had one.
	RedirectTo *string
}

// errInvalidLink answers a link that is unknown or whose registration was
// superseded.
var errInvalidLink = apperr.Errorf(apperr.InvalidToken, "this verification link is not valid")

// VerifyEmail confirms the registration behind a link's token: marks the
// address VERIFIED (a sign-up) or moves the account to it (a change of
// address) and queues the change's event. Any unexpired token of the
// address's current registration succeeds again without a second event:
// people click old emails and double-click links. A superseded
// registration's tokens answer INVALID_TOKEN.
//
// A sign-up's token, registration and user are read in the transaction
// that writes, not on the readers first. On SQLite a reader's page cache
// is dropped whenever another connection committed since its last read,
// which under writes is every time, so each read there loads its pages
// again (a pread and a parse each); the single writer's cache stays warm.
// Read beside the writer, the three reads cost a third of a
// verification's CPU; in its turn, a few microseconds (BENCHMARKS.md,
// "Reads in the writer's turn").
func (s *Service) VerifyEmail(ctx context.Context, tok string) (Verification, error) {
	if err := checkToken("token", tok); err != nil {
		return Verification{}, err
	}
	var (
		reg     *ent.Registration
		v       Verification
		signup  bool // confirmed here: reg is a sign-up's
		changed bool
	)
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		var err error
		if reg, err = s.linked(ctx, tx, tok); err != nil {
			return err
		}
		if reg.UserID == nil || reg.Purpose != registration.PurposeSIGNUP {
			return nil // confirm's to answer, below
		}
		signup = true
		v, changed, err = s.confirmSignup(ctx, tx, reg)
		return err
	})
	switch {
	case err != nil:
		return Verification{}, err
	case !signup:
		return s.confirm(ctx, reg)
	case changed:
		s.Wake()
	}
	return v, nil
}

// linked finds the live registration behind a link's token.
func (s *Service) linked(ctx context.Context, tx *ent.Tx, tok string) (*ent.Registration, error) {
	vt, err := tx.VerificationToken.Query().Where(verificationtoken.TokenHash(token.Hash(tok))).WithRegistration().Only(ctx)
	if ent.IsNotFound(err) {
		return nil, errInvalidLink
	}
	if err != nil {
		return nil, fmt.Errorf("verify: find token: %w", err)
	}
	reg := vt.Edges.Registration
	if reg == nil || reg.SupersededAt != nil {
		return nil, errInvalidLink
	}
	if !s.now().Before(vt.ExpiresAt) {
		return nil, apperr.Errorf(apperr.TokenExpired, "this verification link has expired; ask for a new email")
	}
	return reg, nil
}

// confirm carries out what a registration's link or code confirms.
func (s *Service) confirm(ctx context.Context, reg *ent.Registration) (Verification, error) {
	if reg.UserID == nil {
		// A decoy has no links, and its code never matches.
		return Verification{}, errInvalidLink
	}
	if reg.Purpose == registration.PurposeCHANGE_EMAIL {
		return s.confirmChange(ctx, reg)
	}
	var v Verification
	changed := false
	err := database.InTx(ctx, s.DB, func(tx *ent.Tx) error {
		var err error
		v, changed, err = s.confirmSignup(ctx, tx, reg)
		return err
	})
	if err != nil {
		return Verification{}, err
	}
	if changed {
		s.Wake()
	}
	return v, nil
}

// confirmSignup marks the user VERIFIED in tx, if reg is still the user's
// newest sign-up; changed tells whether it did.
//
// "Still the newest" is checked on the user's own row: every sign-up sets
// the user's password hash to its own (each hash has a salt of its own),
// so the hash still being reg's means no later registration superseded
// it, and the conditional UPDATE decides that atomically against a
// concurrent Register, which writes the same row. The password that counts
// is thereby always the confirming registration's.
func (s *Service) confirmSignup(ctx context.Context, tx *ent.Tx, reg *ent.Registration) (v Verification, changed bool, err error) {
	u, err := tx.User.Get(ctx, *reg.UserID)
	if ent.IsNotFound(err) {
		return Verification{}, false, errInvalidLink // deleted since the link was sent
	}
	if err != nil {
		return Verification{}, false, fmt.Errorf("verify: read user: %w", err)
	}
	if u.Status == user.StatusVERIFIED {
		// Verified before: nothing to write, and verified_at never
		// changes once set.
		v, err = s.alreadyVerified(reg, u)
		return v, false, err
	}
	now := s.now()
	// Conditional on the old status, so of two concurrent clicks exactly
	// one changes the row and writes the event.
	n, err := tx.User.Update().
		Where(user.ID(u.ID), user.StatusEQ(user.StatusUNVERIFIED), user.PasswordHash(*reg.PasswordHash)).
		SetStatus(user.StatusVERIFIED).
		SetVerifiedAt(now).
		Save(ctx)
	if err != nil {
		return Verification{}, false, fmt.Errorf("verify: %w", err)
	}
	if n == 0 {
		// Another click verified it since the read above, a newer
		// registration superseded this one, or the user was deleted.
		u, err = tx.User.Get(ctx, u.ID)
		if ent.IsNotFound(err) {
			return Verification{}, false, errInvalidLink
		}
		if err != nil {
			return Verification{}, false, fmt.Errorf("verify: %w", err)
		}
		if u.Status != user.StatusVERIFIED {
			return Verification{}, false, errInvalidLink
		}
		v, err = s.alreadyVerified(reg, u)
		return v, false, err
	}
	if err := s.announceVerified(ctx, tx, u.ID, u.Email, reg.ID, now); err != nil {
		return Verification{}, false, fmt.Errorf("verify: %w", err)
	}
	u.VerifiedAt = &now
	return s.verified(reg, u, false), true, nil
}

// alreadyVerified answers a sign-up's link or code again once u is
// VERIFIED, unless the account has moved to another address since: the
// old address's inbox proves nothing about the new one, and whoever reads
// it must not learn the new address or get a receipt for it.
func (s *Service) alreadyVerified(reg *ent.Registration, u *ent.User) (Verification, error) {
	if u.Email != reg.Email {
		return Verification{}, errInvalidLink
	}
	return s.verified(reg, u, true), nil
}

// verified is the answer to a confirmation of reg for u.
func (s *Service) verified(reg *ent.Registration, u *ent.User, already bool) Verification {
	return Verification{
		UserID: u.ID, Email: u.Email, VerifiedAt: u.VerifiedAt.UTC(), AlreadyVerified: already, RedirectTo: reg.RedirectTo,
	}
}

// Receipt mints a fresh receipt of v: a signature each call, so the
// GraphQL layer calls it only for a client that selected the field. When
// none can be signed it returns the error (INTERNAL to the client, logged
// by the error presenter): the verification stands, but receipt is a
// non-null String, and "" would be a proof that proves nothing.
func (s *Service) Receipt(ctx context.Context, v Verification) (string, error) {
	return s.receipt(ctx, Claims{UserID: v.UserID, Email: v.Email, VerifiedAt: v.VerifiedAt})
}

// signer returns what mints a receipt of c when called: a subscription's
// status.Change.Sign.
func (s *Service) signer(c Claims) func(context.Context) (*string, error) {
	return func(ctx context.Context) (*string, error) {
		r, err := s.receipt(ctx, c)
		if err != nil {
			return nil, err
		}
		return &r, nil
	}
}

// receipt mints a receipt for c.
func (s *Service) receipt(ctx context.Context, c Claims) (string, error) {
	if s.Signer == nil {
		return "", errors.New("sign receipt: no signer")
	}
	r, err := s.Signer.Receipt(ctx, c)
	if err != nil {
		return "", fmt.Errorf("sign receipt: %w", err)
	}
	return r, nil
}

// lookupWatch finds the live registration behind a watch token.
func (s *Service) lookupWatch(ctx context.Context, tok string) (*ent.Registration, error) {
	if err := checkToken("watchToken", tok); err != nil {
		return nil, err
	}
	reg, err := s.DB.Registration.Query().Where(registration.WatchTokenHash(token.Hash(tok))).Only(ctx)
	if ent.IsNotFound(err) || (err == nil && (reg.SupersededAt != nil || !s.now().Before(reg.ExpiresAt))) {
		return nil, errInvalidWatch
	}
	if err != nil {
		return nil, fmt.Errorf("find watch token: %w", err)
	}
	return reg, nil
}

// errInvalidWatch answers an unknown, expired or superseded watch token.
var errInvalidWatch = apperr.Errorf(apperr.InvalidToken, "watchToken is not valid")

// errGone is errInvalidWatch to a client and hub.ErrGone to the hub: a
// watched registration that was superseded (or deleted) since.
var errGone = fmt.Errorf("%w: %w", hub.ErrGone, errInvalidWatch)

// Status answers the current status behind a watch token.
func (s *Service) Status(ctx context.Context, watchToken string) (status.Status, error) {
	reg, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return "", err
	}
	c, err := s.current(ctx, reg, false, false)
	if err != nil {
		return "", err
	}
	return c.Status, nil
}

// current reads the state a watcher of reg is shown: its user's status (a
// decoy stays UNVERIFIED from its own time on, like a fresh registration
// until confirmed) and, withDelivery, its latest email's. reread is a
// watcher's read: it reads reg again first, as it may have been superseded
// since it was looked up, and mints a receipt for a VERIFIED state.
func (s *Service) current(ctx context.Context, reg *ent.Registration, withDelivery, reread bool) (*status.Change, error) {
	if reread {
		var err error
		reg, err = s.DB.Registration.Get(ctx, reg.ID)
		if ent.IsNotFound(err) || (err == nil && reg.SupersededAt != nil) {
			return nil, errGone
		}
		if err != nil {
			return nil, fmt.Errorf("read registration: %w", err)
		}
	}
	c := &status.Change{Status: status.Unverified, At: reg.CreatedAt.UTC()}
	if reg.UserID != nil {
		u, err := s.DB.User.Get(ctx, *reg.UserID)
		if ent.IsNotFound(err) {
			return nil, errGone
		}
		if err != nil {
			return nil, fmt.Errorf("read status: %w", err)
		}
		if u.Status == user.StatusVERIFIED {
			if reg.Purpose == registration.PurposeSIGNUP && u.Email != reg.Email {
				// The account has moved to another address since: like
				// the sign-up's links (alreadyVerified), its watchToken
				// proves nothing about the new one, and a receipt
				// minted here would name it.
				return nil, errGone
			}
			c.Status, c.At = status.Verified, u.VerifiedAt.UTC()
			// Only a sign-up's own watcher gets a receipt, freshly minted
			// also when it subscribes after the verification.
			if reread && reg.Purpose == registration.PurposeSIGNUP {
				c.Sign = s.signer(Claims{UserID: u.ID, Email: u.Email, VerifiedAt: c.At})
				c.RedirectTo = reg.RedirectTo
			}
		}
	}
	if withDelivery {
		d, err := s.latestDelivery(ctx, reg)
		if err != nil {
			return nil, err
		}
		c.Delivery = d
	}
	return c, nil
}

// latestDelivery is the delivery of reg's latest email. Until the mailer
// recorded one (or without records) the email is QUEUED since the
// registration with no attempts: the same start for every registration, a
// decoy included, so the timeline tells nothing about the address.
func (s *Service) latestDelivery(ctx context.Context, reg *ent.Registration) (*status.Delivery, error) {
	if s.Deliveries != nil {
		d, err := s.Deliveries.Latest(ctx, reg.ID)
		if err != nil {
			return nil, fmt.Errorf("read delivery: %w", err)
		}
		if d != nil {
			return d, nil
		}
	}
	return &status.Delivery{State: status.Queued, At: reg.CreatedAt.UTC()}, nil
}

// Watch streams the state behind a watch token on a channel the caller
// reads directly: the current one at once, then each change, and after
// VERIFIED (with a receipt minted for this watcher) the channel closes.
// withDelivery adds the latest email's delivery to every event and an
// event at each delivery change. The channel also closes when ctx ends,
// and, without VERIFIED, when a newer registration supersedes this one. A
// decoy's token sends UNVERIFIED and never VERIFIED, as a fresh
// registration's would until confirmed; its delivery events are its
// notice's.
//
// notify, if not nil, is called right before each event and before the
// channel closes (hub.Watch.Notify).
func (s *Service) Watch(ctx context.Context, watchToken string, withDelivery bool, notify func()) (<-chan *status.Change, error) {
	reg, err := s.lookupWatch(ctx, watchToken)
	if err != nil {
		return nil, err
	}
	// The closures keep only the id and the redirect, not the row: Read
	// reads the row again, and a subscription lives for as long as its
	// page stays open (thousands at once).
	id, redirectTo := reg.ID, reg.RedirectTo
	w := hub.Watch{
		Registration: id,
		Delivery:     withDelivery,
		Notify:       notify,
		Read: func(ctx context.Context) (*status.Change, error) {
			return s.current(ctx, &ent.Registration{ID: id}, withDelivery, true)
		},
	}
	if reg.UserID != nil && reg.Purpose == registration.PurposeSIGNUP {
		w.Receipt = func(v hub.Verified) (func(context.Context) (*string, error), *string) {
			return s.signer(Claims{UserID: v.User, Email: v.Email, VerifiedAt: v.At}), redirectTo
		}
	}
	sub, err := s.Hub.Subscribe(ctx, w)
	if errors.Is(err, hub.ErrGone) {
		return nil, errInvalidWatch
	}
	if err != nil {
		return nil, err
	}
	// No goroutine waits for the end: the hub deregisters the
	// subscription when ctx ends, or earlier after VERIFIED.
	context.AfterFunc(ctx, sub.Close)
	return sub.C(), nil
}

// announceVerified writes the two events of a verification into tx: the
// internal user.verified, which flips the watchers of registration (none:
// uuid.Nil) to VERIFIED on every replica, and the public
// verifier.user.verified.v1.
func (s *Service) announceVerified(ctx context.Context, tx *ent.Tx, userID uuid.UUID, email string, registration uuid.UUID, now time.Time) error {
	if err := s.Events.Enqueue(ctx, tx, now, publicevent.UserVerified{UserID: userID, Email: email, VerifiedAt: now.UTC()}); err != nil {
		return err
	}
	return outbox.Enqueue(ctx, tx, now, event.VerifiedTopic, event.Verified{UserID: userID, VerifiedAt: now, Registration: registration, Email: email})
}
