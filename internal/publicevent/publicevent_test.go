package publicevent_test

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

var at = time.Date(2026, 12, 6, 13, 0, 0, 123456000, time.UTC)

// samples holds one event of every type, with every field set.
func samples() []publicevent.Event {
	id := uuid.New()
	return []publicevent.Event{
		publicevent.UserRegistered{UserID: id, Email: "ada@example.com", RegisteredAt: at},
		publicevent.UserVerified{UserID: id, Email: "ada@example.com", VerifiedAt: at},
		publicevent.EmailChanged{UserID: id, OldEmail: "ada@example.com", Email: "ada@example.org", ChangedAt: at},
		publicevent.UserDeleted{UserID: id, DeletedAt: at},
		publicevent.EmailFailed{UserID: id, Email: "ada@example.com", Reason: "550 no such mailbox", FailedAt: at},
	}
}

func TestSamplesCoverTypes(t *testing.T) {
	var types []string
	for _, ev := range samples() {
		types = append(types, ev.Type())
	}
	require.Equal(t, publicevent.Types, types)
	for _, typ := range publicevent.Types {
		require.True(t, broker.Public(typ), "%s goes to the public exchange", typ)
	}
	for _, internal := range []string{event.RegisteredTopic, event.ResentTopic, event.AlreadyRegisteredTopic, event.VerifiedTopic, event.DeliveryChangedTopic} {
		require.False(t, broker.Public(internal), "%s stays internal", internal)
	}
}

// The contract's data fields, exactly.
func TestDataFields(t *testing.T) {
	want := map[string][]string{
		publicevent.UserRegisteredType: {"email", "registeredAt", "userId"},
		publicevent.UserVerifiedType:   {"email", "userId", "verifiedAt"},
		publicevent.EmailChangedType:   {"changedAt", "email", "oldEmail", "userId"},
		publicevent.UserDeletedType:    {"deletedAt", "userId"},
		publicevent.EmailFailedType:    {"email", "failedAt", "reason", "userId"},
	}
	for _, ev := range samples() {
		t.Run(ev.Type(), func(t *testing.T) {
			require.Equal(t, want[ev.Type()], dataKeys(t, ev))
		})
	}
}

// secretish matches every name a secret could travel under.
var secretish = regexp.MustCompile(`(?i)token|code|password|hash|secret|seal|key|otp`)

func TestNoSecrets(t *testing.T) {
	for _, ev := range samples() {
		t.Run(ev.Type(), func(t *testing.T) {
			for _, k := range dataKeys(t, ev) {
				require.NotRegexp(t, secretish, k, "no public event carries a token, code or password hash")
			}
			body, err := publicevent.Writer{}.Encode(uuid.New(), at, ev)
			require.NoError(t, err)
			var env map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(body, &env))
			for k := range env {
				require.NotRegexp(t, secretish, k)
			}
		})
	}
}

// Every envelope is a valid CloudEvent by the SDK's own reading.
func TestEnvelopeIsCloudEvent(t *testing.T) {
	w := publicevent.Writer{Source: "https://verify.example.com"}
	for _, ev := range samples() {
		t.Run(ev.Type(), func(t *testing.T) {
			id := uuid.New()
			body, err := w.Encode(id, at, ev)
			require.NoError(t, err)
			var ce cloudevents.Event
			require.NoError(t, json.Unmarshal(body, &ce))
			require.NoError(t, ce.Validate())
			require.Equal(t, "1.0", ce.SpecVersion())
			require.Equal(t, id.String(), ce.ID())
			require.Equal(t, "https://verify.example.com", ce.Source())
			require.Equal(t, ev.Type(), ce.Type())
			require.Equal(t, ev.Subject().String(), ce.Subject())
			require.True(t, at.Equal(ce.Time()))
			require.Equal(t, "application/json", ce.DataContentType())
			data, err := json.Marshal(ev)
			require.NoError(t, err)
			require.JSONEq(t, string(data), string(ce.Data()))
		})
	}
}

// Enqueue writes the envelope in the caller's transaction, under its own
// id and its type as topic; a rolled-back transaction leaves nothing.
func TestEnqueue(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		db, err := database.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		ctx := context.Background()
		ev := publicevent.UserVerified{UserID: uuid.New(), Email: "ada@example.com", VerifiedAt: at}

		tx, err := db.Ent.Tx(ctx)
		require.NoError(t, err)
		require.NoError(t, publicevent.Writer{}.Enqueue(ctx, tx, at, ev))
		require.NoError(t, tx.Rollback())
		n, err := db.Ent.OutboxEvent.Query().Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "nothing of a rolled-back transaction")

		require.NoError(t, database.InTx(ctx, db.Ent, func(tx *ent.Tx) error { return publicevent.Writer{}.Enqueue(ctx, tx, at, ev) }))
		row, err := db.Ent.OutboxEvent.Query().Where(outboxevent.Topic(publicevent.UserVerifiedType)).Only(ctx)
		require.NoError(t, err)
		var env publicevent.Envelope
		require.NoError(t, json.Unmarshal(row.Payload, &env))
		require.Equal(t, row.EventID.String(), env.ID, "the envelope's id is the message id, so a redelivery carries the same")
	})
}

func dataKeys(t *testing.T, ev publicevent.Event) []string {
	t.Helper()
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	var keys []string
	for k, v := range m {
		require.NotEmpty(t, v, "%s set", k)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// An Unheard writer writes nothing: with the in-process broker and no
// webhook endpoint nobody could receive an event.
func TestUnheardWritesNothing(t *testing.T) {
	t.Parallel()
	db, err := database.Open(context.Background(), databasetest.SQLite(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	w := publicevent.Writer{Unheard: true}
	for _, ev := range samples() {
		require.NoError(t, database.InTx(ctx, db.Ent, func(tx *ent.Tx) error { return w.Enqueue(ctx, tx, at, ev) }))
	}
	n, err := db.Ent.OutboxEvent.Query().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
