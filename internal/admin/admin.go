// Package admin is what the admin API (graph/admin) calls: looking users
// up with their emails, paging through them, and the operator's changes,
// resend, mark verified, erase (carried out by the account service, as
// every change to a user is), and listing and replaying dead letters and
// failed webhook deliveries. Its resolvers only translate.
package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/predicate"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/webhookdelivery"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/webhook"
)

// Accounts is what the service needs from the account service: every
// change to a user goes through it, in its transactions and with its
// events.
type Accounts interface {
	ResendTo(ctx context.Context, userID uuid.UUID) (bool, error)
	MarkVerified(ctx context.Context, userID uuid.UUID) (*ent.User, error)
	DeleteUser(ctx context.Context, userID uuid.UUID) error
}

var _ Accounts = (*account.Service)(nil)

// Deliveries is what the service needs from the delivery records.
type Deliveries interface {
	OfUsers(ctx context.Context, users []uuid.UUID, owners map[uuid.UUID]uuid.UUID) (map[uuid.UUID][]*status.Delivery, error)
	List(ctx context.Context, state entdelivery.State, limit int) ([]*ent.Delivery, error)
	Replay(ctx context.Context, eventID string) error
}

var _ Deliveries = (*delivery.Store)(nil)

// Webhooks is what the service needs from the webhook dispatcher.
type Webhooks interface {
	List(ctx context.Context, state webhookdelivery.State, limit int) ([]*ent.WebhookDelivery, error)
	Replay(ctx context.Context, id int) error
}

var _ Webhooks = (*webhook.Dispatcher)(nil)

// Service answers the admin API.
type Service struct {
	DB         *ent.Client
	Accounts   Accounts
	Deliveries Deliveries
	// Webhooks is nil without WEBHOOK_URL: no failed deliveries then.
	Webhooks Webhooks
	// Log gets a line for each change an operator made (nil: none): an
	// erasure or a verification by hand is otherwise seen only in the
	// events it publishes, and not at all in the replica's own log.
	Log *slog.Logger
}

// changed logs a change an operator made, with the request's id, naming
// what it changed by its id in the database, never by anything else the
// call carried.
func (s *Service) changed(ctx context.Context, msg string, args ...any) {
	if s.Log != nil {
		s.Log.InfoContext(ctx, msg, args...)
	}
}

// Bounds of a page (users, dead letters, failed webhooks).
const (
	MaxPage     = 200
	DefaultPage = 50
)

// ParseID reads a user id as the API shows it; anything else is
// BAD_USER_INPUT.
func ParseID(id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, apperr.Errorf(apperr.BadUserInput, "id: want a user id (a UUID)")
	}
	return u, nil
}

// User finds one user by exactly one of id and email (normalised like a
// registration's); nil when there is none.
func (s *Service) User(ctx context.Context, id, email *string) (*ent.User, error) {
	if (id == nil) == (email == nil) {
		return nil, apperr.Errorf(apperr.BadUserInput, "give exactly one of id and email")
	}
	var where predicate.User
	if id != nil {
		uid, err := ParseID(*id)
		if err != nil {
			return nil, err
		}
		where = user.ID(uid)
	} else {
		e, err := account.NormalizeEmail(*email)
		if err != nil {
			return nil, err
		}
		where = user.Email(e)
	}
	u, err := s.DB.User.Query().Where(where).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("admin: user: %w", err)
	}
	return u, nil
}

// DeliveriesOf lists every email to each of users, newest first, in two
// queries whatever their number, so a page's users cost what one does.
// A user with no email has an empty list.
func (s *Service) DeliveriesOf(ctx context.Context, users []uuid.UUID) (map[uuid.UUID][]*status.Delivery, error) {
	regs, err := s.DB.Registration.Query().
		Where(registration.UserIDIn(users...)).
		Select(registration.FieldID, registration.FieldUserID).
		All(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin: registrations of %d users: %w", len(users), err)
	}
	owners := make(map[uuid.UUID]uuid.UUID, len(regs))
	for _, r := range regs {
		owners[r.ID] = *r.UserID // not nil: selected by it
	}
	return s.Deliveries.OfUsers(ctx, users, owners)
}

// UsersQuery selects a page of users.
type UsersQuery struct {
	// First is the page size, 1 to MaxPage.
	First int
	// After is the cursor of the last user of the previous page; "" for
	// the first page.
	After string
	// Status, if set, keeps the users in it.
	Status *status.Status
	// EmailContains, if set, keeps the users whose address contains it,
	// in any case.
	EmailContains *string
}

// UserPage is one page of users, newest first.
type UserPage struct {
	Users []*ent.User
	// Cursors[i] is the cursor of Users[i].
	Cursors     []string
	HasNextPage bool
	// TotalCount counts every user the filters select, on all pages.
	TotalCount int
}

// Users returns a page of users, newest first (created_at, then id: a
// total order, so a page boundary never splits or repeats users that
// share a creation time). The cursor is a position in that order, not an
// offset, so users created while a client pages appear before its pages,
// never shifting them.
func (s *Service) Users(ctx context.Context, q UsersQuery) (UserPage, error) {
	if err := checkFirst(q.First); err != nil {
		return UserPage{}, err
	}
	if q.EmailContains != nil && len(*q.EmailContains) > account.MaxEmailLen {
		// No address is longer; and SQLite answers a LIKE pattern over
		// 50,000 bytes with an error, which was an INTERNAL.
		return UserPage{}, apperr.Errorf(apperr.BadUserInput, "emailContains: want at most %d bytes, as an address", account.MaxEmailLen)
	}
	if q.EmailContains != nil && strings.ContainsRune(*q.EmailContains, 0) {
		// No address holds a NUL; and PostgreSQL refuses one in any text
		// parameter, which was an INTERNAL.
		return UserPage{}, apperr.Errorf(apperr.BadUserInput, "emailContains: a NUL character is in no address")
	}
	query := s.DB.User.Query()
	if q.Status != nil {
		query.Where(user.StatusEQ(user.Status(*q.Status)))
	}
	if q.EmailContains != nil && *q.EmailContains != "" {
		// ent escapes % and _ in the pattern.
		query.Where(user.EmailContainsFold(*q.EmailContains))
	}
	total, err := query.Clone().Count(ctx)
	if err != nil {
		return UserPage{}, fmt.Errorf("admin: count users: %w", err)
	}
	if q.After != "" {
		c, err := decodeCursor(q.After)
		if err != nil {
			return UserPage{}, err
		}
		query.Where(func(sel *entsql.Selector) {
			sel.Where(entsql.Or(
				entsql.LT(sel.C(user.FieldCreatedAt), c.CreatedAt),
				entsql.And(entsql.EQ(sel.C(user.FieldCreatedAt), c.CreatedAt), entsql.LT(sel.C(user.FieldID), c.ID)),
			))
		})
	}
	users, err := query.
		Order(ent.Desc(user.FieldCreatedAt), ent.Desc(user.FieldID)).
		Limit(q.First + 1).
		All(ctx)
	if err != nil {
		return UserPage{}, fmt.Errorf("admin: users: %w", err)
	}
	page := UserPage{TotalCount: total, HasNextPage: len(users) > q.First}
	page.Users = users[:min(len(users), q.First)]
	page.Cursors = make([]string, len(page.Users))
	for i, u := range page.Users {
		page.Cursors[i] = encodeCursor(cursor{CreatedAt: u.CreatedAt, ID: u.ID})
	}
	return page, nil
}

// cursor is a position in the users' order.
type cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// encodeCursor makes c opaque: clients pass it back, never read it.
func encodeCursor(c cursor) string {
	j, _ := json.Marshal(c) // a time and a UUID always encode
	return base64.RawURLEncoding.EncodeToString(j)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	j, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(j, &c)
	}
	if err != nil || c.ID == uuid.Nil || c.CreatedAt.IsZero() {
		return cursor{}, apperr.Errorf(apperr.BadUserInput, "after: not a cursor this API gave")
	}
	return c, nil
}

// ResendVerificationEmail mails the user a fresh link and code, under the
// cooldown; false for a VERIFIED user.
func (s *Service) ResendVerificationEmail(ctx context.Context, userID string) (bool, error) {
	id, err := ParseID(userID)
	if err != nil {
		return false, err
	}
	sent, err := s.Accounts.ResendTo(ctx, id)
	if err == nil && sent {
		s.changed(ctx, "admin: verification email sent again", "user", id)
	}
	return sent, err
}

// MarkVerified verifies the user as a confirmation would.
func (s *Service) MarkVerified(ctx context.Context, userID string) (*ent.User, error) {
	id, err := ParseID(userID)
	if err != nil {
		return nil, err
	}
	u, err := s.Accounts.MarkVerified(ctx, id)
	if err == nil && u.VerifiedAt != nil {
		// verified_at earlier than the line: it was verified already,
		// and nothing changed.
		s.changed(ctx, "admin: user marked verified", "user", id, "verified_at", *u.VerifiedAt)
	}
	return u, err
}

// DeleteUser erases the user and everything kept about its address.
func (s *Service) DeleteUser(ctx context.Context, userID string) error {
	id, err := ParseID(userID)
	if err != nil {
		return err
	}
	if err := s.Accounts.DeleteUser(ctx, id); err != nil {
		return err
	}
	s.changed(ctx, "admin: user erased", "user", id)
	return nil
}

// checkFirst bounds a list's length.
func checkFirst(first int) error {
	if first < 1 || first > MaxPage {
		return apperr.Errorf(apperr.BadUserInput, "first: want 1 to %d", MaxPage)
	}
	return nil
}

// DeadLetters lists up to first emails refused for good (FAILED delivery
// records), oldest first.
func (s *Service) DeadLetters(ctx context.Context, first int) ([]*ent.Delivery, error) {
	if err := checkFirst(first); err != nil {
		return nil, err
	}
	return s.Deliveries.List(ctx, delivery.Failed, first)
}

// ReplayDeadLetter sends a dead letter's email event to the mailer again.
func (s *Service) ReplayDeadLetter(ctx context.Context, eventID string) error {
	err := s.Deliveries.Replay(ctx, eventID)
	switch {
	case errors.Is(err, delivery.ErrNotFound):
		return apperr.Errorf(apperr.BadUserInput, "id: no email event has this id")
	case errors.Is(err, delivery.ErrNotDeadLetter):
		return apperr.Errorf(apperr.BadUserInput, "id: this email was not refused for good (not FAILED)")
	case errors.Is(err, delivery.ErrNotKept):
		return apperr.Errorf(apperr.BadUserInput, "id: this email's event was not kept; it cannot be sent again")
	case errors.Is(err, delivery.ErrSettling):
		return apperr.Limited(time.Second, "this email's refusal is still being recorded; try again in a second")
	case err == nil:
		s.changed(ctx, "admin: dead letter sent to the mailer again", "event", eventID)
	}
	return err
}

// FailedWebhooks lists up to first webhook deliveries given up on, oldest
// first; none without webhooks.
func (s *Service) FailedWebhooks(ctx context.Context, first int) ([]*ent.WebhookDelivery, error) {
	if err := checkFirst(first); err != nil {
		return nil, err
	}
	if s.Webhooks == nil {
		return nil, nil
	}
	return s.Webhooks.List(ctx, webhook.Failed, first)
}

// ReplayWebhook makes a failed webhook delivery due again, with a fresh
// day of retries.
func (s *Service) ReplayWebhook(ctx context.Context, id int) error {
	if s.Webhooks == nil {
		return apperr.Errorf(apperr.BadUserInput, "id: webhooks are off (WEBHOOK_URL is empty)")
	}
	err := s.Webhooks.Replay(ctx, id)
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		return apperr.Errorf(apperr.BadUserInput, "id: no webhook delivery has this id")
	case errors.Is(err, webhook.ErrNotFailed):
		return apperr.Errorf(apperr.BadUserInput, "id: this webhook delivery was not given up on (not FAILED)")
	case errors.Is(err, webhook.ErrEndpointGone):
		return apperr.Errorf(apperr.BadUserInput, "id: this webhook delivery's endpoint is no longer in WEBHOOK_URL")
	case err == nil:
		s.changed(ctx, "admin: failed webhook delivery due again", "delivery", id)
	}
	return err
}
