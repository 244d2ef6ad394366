package account

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	entdelivery "github.com/verifier/verifier/ent/delivery"
	"github.com/verifier/verifier/ent/registration"
	"github.com/verifier/verifier/ent/user"
	"github.com/verifier/verifier/ent/verificationtoken"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/webhook"
)

// An erased user's email that a mailer gets after the erasure (the relay
// had published it, the broker brings it back for a retry, or, after
// UNVERIFIED_TTL, it still waits in the outbox) is not sent to the erased
// address, and leaves no record naming the user or the address.
func TestErasedEmailIsNotSent(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"deleteUser", "UNVERIFIED_TTL"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				b.register(t, "gone@example.com")
				u := b.userOf(t, "gone@example.com")
				evs := b.events(t, event.RegisteredTopic)
				require.Len(t, evs, 1)
				var req event.VerificationRequested
				require.NoError(t, json.Unmarshal(evs[0].Payload, &req))
				// The event as a mailer gets it, whatever became of its
				// outbox row.
				e := delivery.EventOf(evs[0].EventID.String(), event.RegisteredTopic, req.Mail())
				e.Payload = evs[0].Payload

				b.erase(t, how, u, "gone@example.com", "")

				r, err := b.svc.Deliveries.(*delivery.Store).Begin(ctx, e)
				require.NoError(t, err)
				require.Equal(t, delivery.Sent, r.State, "turned away, not sent to the erased address")
				named, err := b.db.Delivery.Query().Where(entdelivery.Or(entdelivery.Address("gone@example.com"), entdelivery.UserID(u.ID), entdelivery.Registration(req.Registration))).Count(ctx)
				require.NoError(t, err)
				require.Zero(t, named, "no record names the erased user or address")
			}, func(o *Options) {
				o.Deliveries = delivery.New(o.DB, o.Now)
				o.UnverifiedTTL = time.Hour
			})
		})
	}
}

// An erased user's public events name its address, and webhook receivers
// must not be sent them after the erasure, by any of the three erasures:
// a delivery the dispatcher had recorded goes with the user, and a copy
// that reaches the dispatcher afterwards (published before the erasure,
// or brought back by the broker) is turned away. The erasure's own
// verifier.user.deleted.v1 is recorded as ever.
func TestErasedUsersEventsAreNotPosted(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"deleteUser", "UNVERIFIED_TTL", "confirmed change"} {
		for _, when := range []string{"recorded before", "arriving after"} {
			t.Run(how+"/"+when, func(t *testing.T) {
				t.Parallel()
				eachDB(t, func(t *testing.T, b *testBundle) {
					ctx := context.Background()
					hooks := b.webhooks(t)
					b.register(t, "gone@example.com")
					gone := b.userOf(t, "gone@example.com")
					registered := b.publicEvents(t, publicevent.UserRegisteredType)
					require.Len(t, registered, 1)
					if when == "recorded before" {
						require.NoError(t, hooks.Handle(ctx, registered[0]))
					}

					var mover string
					if how == "confirmed change" {
						mover = b.signedIn(t, "mover@example.com")
					}
					b.erase(t, how, gone, "gone@example.com", mover)

					if when == "arriving after" {
						require.NoError(t, hooks.Handle(ctx, registered[0]), "turned away, not failed: the broker would bring it back")
					}
					var deleted []broker.Message
					for _, m := range b.publicEvents(t, publicevent.UserDeletedType) {
						if strings.Contains(string(m.Body), gone.ID.String()) {
							deleted = append(deleted, m)
						}
					}
					require.Len(t, deleted, 1)
					require.NoError(t, hooks.Handle(ctx, deleted[0]))

					rows, err := b.db.WebhookDelivery.Query().All(ctx)
					require.NoError(t, err)
					var types []string
					for _, r := range rows {
						types = append(types, r.Type)
					}
					require.Equal(t, []string{publicevent.UserDeletedType}, types, "only the deletion's own event is to be posted")
				}, func(o *Options) { o.UnverifiedTTL = time.Hour })
			})
		}
	}
}

// testWebhookSecret is whsec_ + base64 of 32 bytes.
var testWebhookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// publicEvents returns the public events of type typ in the outbox as the
// broker hands them to a consumer, oldest first.
func (b *testBundle) publicEvents(t *testing.T, typ string) []broker.Message {
	t.Helper()
	var out []broker.Message
	for _, ev := range b.events(t, typ) {
		out = append(out, broker.Message{ID: ev.EventID.String(), Topic: ev.Topic, Body: ev.Payload})
	}
	return out
}

// webhooks is a dispatcher on b's database, to record public events as
// its broker consumer would; its one endpoint is never called.
func (b *testBundle) webhooks(t *testing.T) *webhook.Dispatcher {
	t.Helper()
	d, err := webhook.New(webhook.Options{
		DB: b.db, Endpoints: []string{"http://127.0.0.1:9/hook"}, Secret: testWebhookSecret,
		Log: testkit.Discard(), Now: b.clock.Now,
	})
	require.NoError(t, err)
	return d
}

// userOf returns the user that holds addr.
func (b *testBundle) userOf(t *testing.T, addr string) *ent.User {
	t.Helper()
	u, err := b.db.User.Query().Where(user.Email(addr)).Only(context.Background())
	require.NoError(t, err)
	return u
}

// erase erases u, whose address is addr, by how: "deleteUser",
// "UNVERIFIED_TTL" (b's UnverifiedTTL must be under 2 h), or "confirmed
// change" (mover, a signed-in session, moves to addr); then checks u is
// gone.
func (b *testBundle) erase(t *testing.T, how string, u *ent.User, addr, mover string) {
	t.Helper()
	ctx := context.Background()
	switch how {
	case "deleteUser":
		require.NoError(t, b.svc.DeleteUser(ctx, u.ID))
	case "UNVERIFIED_TTL":
		b.clock.Advance(2 * time.Hour)
		n, err := b.svc.DeleteUnverified(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	case "confirmed change":
		require.NoError(t, b.svc.ChangeEmail(ctx, mover, addr))
		_, err := b.svc.VerifyEmail(ctx, b.lastEmail(t, addr).token)
		require.NoError(t, err)
	default:
		t.Fatalf("no erasure %q", how)
	}
	exists, err := b.db.User.Query().Where(user.ID(u.ID)).Exist(ctx)
	require.NoError(t, err)
	require.False(t, exists, "erased")
}

// TestErasureRacingTheWebhookDispatcher interleaves an erasure and the
// dispatcher's recording of one of the user's events on PostgreSQL, where
// the two run at once (SQLite's writer runs one transaction at a time).
// Whichever commits second must see the first: a dispatcher that comes
// while the erasure is under way waits for it and turns the event away,
// and an erasure that comes while the dispatcher is recording waits for
// it and erases what it recorded.
func TestErasureRacingTheWebhookDispatcher(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"erasure", "dispatcher"} {
		t.Run(first+" first", func(t *testing.T) {
			t.Parallel()
			b := setup(t, databasetest.Postgres(t))
			ctx := context.Background()
			hooks := b.webhooks(t)
			b.register(t, "gone@example.com")
			gone := b.userOf(t, "gone@example.com")
			registered := b.publicEvents(t, publicevent.UserRegisteredType)
			require.Len(t, registered, 1)

			tx, err := b.db.Tx(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			second := make(chan error, 1)
			if first == "erasure" {
				// The erasure has deleted the user's row and not committed.
				_, err := tx.VerificationToken.Delete().Where(verificationtoken.UserID(gone.ID)).Exec(ctx)
				require.NoError(t, err)
				_, err = tx.Registration.Delete().Where(registration.UserID(gone.ID)).Exec(ctx)
				require.NoError(t, err)
				require.NoError(t, tx.User.DeleteOneID(gone.ID).Exec(ctx))
				go func() { second <- hooks.Handle(ctx, registered[0]) }()
			} else {
				// The dispatcher has checked the user, holding its row as
				// Handle does, and recorded the event, and not committed.
				rows, err := tx.QueryContext(ctx, `SELECT id FROM users WHERE id = $1 FOR KEY SHARE`, gone.ID)
				require.NoError(t, err)
				require.True(t, rows.Next(), "the user is there")
				require.NoError(t, rows.Close())
				require.NoError(t, tx.WebhookDelivery.Create().
					SetEndpoint("http://127.0.0.1:9/hook").SetEventID(uuid.MustParse(registered[0].ID)).
					SetType(registered[0].Topic).SetUserID(gone.ID).SetPayload(registered[0].Body).
					SetNextAttemptAt(b.clock.Now()).SetPendingSince(b.clock.Now()).Exec(ctx))
				go func() { second <- b.svc.DeleteUser(ctx, gone.ID) }()
			}
			testkit.Eventually(t, func() bool {
				var waiting int
				rows, err := b.db.QueryContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
				if err != nil {
					return false
				}
				defer rows.Close()
				return rows.Next() && rows.Scan(&waiting) == nil && waiting > 0
			}, "the %s waits for the %s", map[string]string{"erasure": "dispatcher", "dispatcher": "erasure"}[first], first)
			require.NoError(t, tx.Commit())
			require.NoError(t, testkit.Receive(t, second, "the second one's end"))

			n, err := b.db.WebhookDelivery.Query().Count(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "nothing of the erased user is to be posted")
		})
	}
}

// An erasure finds the users' webhook deliveries by their user_id (the
// event's subject, which the dispatcher keeps on the row), not by reading
// every payload: the UNVERIFIED_TTL janitor and a confirmed change read a
// body only on a row from before the column (user_id NULL). deleteUser
// also reads every body for its addresses, as it always did.
func TestErasureFindsWebhookDeliveriesByUser(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"deleteUser", "UNVERIFIED_TTL", "confirmed change"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, b *testBundle) {
				ctx := context.Background()
				hooks := b.webhooks(t)
				b.register(t, "gone@example.com")
				gone := b.userOf(t, "gone@example.com")
				session := b.signedIn(t, "mover@example.com")
				mover := b.userOf(t, "mover@example.com")

				registered := b.publicEvents(t, publicevent.UserRegisteredType)
				require.NotEmpty(t, registered)
				require.NoError(t, hooks.Handle(ctx, registered[0]))
				recorded, err := b.db.WebhookDelivery.Query().Only(ctx)
				require.NoError(t, err)
				require.Equal(t, &gone.ID, recorded.UserID, "the dispatcher keeps the event's subject")

				row := func(name string, userID *uuid.UUID, body string) {
					require.NoError(t, b.db.WebhookDelivery.Create().
						SetEndpoint("http://127.0.0.1:9/hook").SetEventID(uuid.New()).
						SetType(name).SetNillableUserID(userID).SetPayload([]byte(body)).
						SetNextAttemptAt(b.clock.Now()).SetPendingSince(b.clock.Now()).Exec(ctx))
				}
				row("gone's, by the column only", &gone.ID, `{"subject":"someone"}`)
				row("mover's, naming gone's id", &mover.ID, `{"data":{"user_id":"`+gone.ID.String()+`"}}`)
				row("mover's, naming gone's address", &mover.ID, `{"data":{"email":"gone@example.com"}}`)
				row("legacy, naming gone's id", nil, `{"subject":"`+gone.ID.String()+`"}`)
				row("legacy, naming mover's id", nil, `{"subject":"`+mover.ID.String()+`"}`)

				b.erase(t, how, gone, "gone@example.com", session)

				left, err := b.db.WebhookDelivery.Query().All(ctx)
				require.NoError(t, err)
				var kept []string
				for _, r := range left {
					kept = append(kept, r.Type)
				}
				want := []string{"mover's, naming gone's id", "mover's, naming gone's address", "legacy, naming mover's id"}
				if how == "deleteUser" {
					// Its addresses are looked for in every body.
					want = []string{"mover's, naming gone's id", "legacy, naming mover's id"}
				}
				require.ElementsMatch(t, want, kept)
			}, func(o *Options) { o.UnverifiedTTL = time.Hour })
		})
	}
}
