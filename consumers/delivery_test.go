package consumers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/outboxevent"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/status"
)

// The mailer stores each email's registration on its record, and each
// change a watcher could see goes into the outbox as DeliveryChanged,
// for verification emails and notices alike (a repeated registration's
// watcher sees the same timeline as a fresh one's).
func TestMailerAnnouncesDeliveryChanges(t *testing.T) {
	t.Parallel()
	verification := func(reg uuid.UUID, to string) broker.Message {
		body, err := json.Marshal(event.VerificationRequested{
			UserID: uuid.New(), Registration: reg, Email: to,
			SealedToken: testBox(t).Seal("tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD", to),
			ExpiresAt:   time.Now().Add(time.Hour),
		})
		require.NoError(t, err)
		return broker.Message{ID: uuid.NewString(), Topic: event.RegisteredTopic, Body: body, Attempt: 1}
	}
	notice := func(reg uuid.UUID, to string) broker.Message {
		body, err := json.Marshal(event.AlreadyRegistered{Email: to, Registration: reg})
		require.NoError(t, err)
		return broker.Message{ID: uuid.NewString(), Topic: event.AlreadyRegisteredTopic, Body: body, Attempt: 1}
	}
	tests := []struct {
		name    string
		message func(reg uuid.UUID, to string) broker.Message
		refuse  error
		handles int
		want    []status.DeliveryState
		reason  string
	}{
		{"verification sent", verification, nil, 1, []status.DeliveryState{status.Sent}, ""},
		{"notice sent", notice, nil, 1, []status.DeliveryState{status.Sent}, ""},
		{"verification refused", verification, mailtest.PermFail, 1, []status.DeliveryState{status.Failed}, "the mail server refused the recipient: 550 5.1.1 no such user"},
		{"notice refused", notice, mailtest.PermFail, 1, []status.DeliveryState{status.Failed}, "the mail server refused the recipient: 550 5.1.1 no such user"},
		{"verification deferred twice", verification, mailtest.TempFail, 2, []status.DeliveryState{status.Deferred, status.Deferred}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if tt.refuse != nil {
				b.sink.Refuse(func(string) error { return tt.refuse })
			}
			reg := uuid.New()
			msg := tt.message(reg, "ada@example.com")
			for range tt.handles {
				_ = b.mailer.Handle(context.Background(), msg)
			}
			rec := b.record(t, msg)
			require.Equal(t, &reg, rec.Registration)

			rows, err := b.db.OutboxEvent.Query().Where(outboxevent.Topic(event.DeliveryChangedTopic)).Order(ent.Asc(outboxevent.FieldID)).All(context.Background())
			require.NoError(t, err)
			var got []status.DeliveryState
			for i, r := range rows {
				var ev event.DeliveryChanged
				require.NoError(t, json.Unmarshal(r.Payload, &ev))
				require.Equal(t, reg, ev.Registration)
				require.Equal(t, i+1, ev.Delivery.Attempts)
				got = append(got, ev.Delivery.State)
				if tt.reason != "" {
					require.Equal(t, tt.reason, *ev.Delivery.Reason, "plain words")
				}
				if ev.Delivery.State == status.Sent {
					require.Nil(t, ev.Delivery.Reason)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// An event from before registrations were named is mailed as always, and
// announced to nobody.
func TestMailerWithoutRegistrationAnnouncesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg := verificationMessage(t, "ada@example.com")
	require.NoError(t, b.mailer.Handle(context.Background(), msg))
	require.Nil(t, b.record(t, msg).Registration)
	require.Zero(t, b.db.OutboxEvent.Query().CountX(context.Background()))
}
