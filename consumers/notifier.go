package consumers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/status"
)

// Hub is what the notifier feeds.
type Hub interface {
	// PublishVerified hands a registration's confirmation to its
	// watchers.
	PublishVerified(registration uuid.UUID, v hub.Verified)
	// End completes the watchers of superseded registrations.
	End(registrations ...uuid.UUID)
	// PublishDelivery hands a registration's email delivery change to the
	// watchers that asked for delivery.
	PublishDelivery(registration uuid.UUID, d status.Delivery)
	// RecheckAll makes every watcher re-read its state.
	RecheckAll()
}

// Notifier hands status and delivery changes to this process's
// subscription hub. Its queue is private to the process, so every replica
// hears every change and a subscription open on any replica sees it.
type Notifier struct {
	Hub Hub
}

// Queue is where the notifier listens. When the queue is re-attached after
// a broker outage, changes made meanwhile were not heard; every open
// subscription then re-reads its state.
func (n *Notifier) Queue() broker.Queue {
	return broker.Queue{
		Topics:      []string{event.VerifiedTopic, event.DeliveryChangedTopic, event.SupersededTopic},
		Concurrency: notifierConcurrency,
		OnReady:     n.Hub.RecheckAll,
	}
}

// notifierConcurrency is how many changes the notifier handles at once,
// and on RabbitMQ its prefetch. Handle does no I/O, only a decode and a
// hand-over under the hub's one lock, so more at once would only queue on
// that lock; on RabbitMQ these few keep deliveries coming while acks make
// their round trip.
const notifierConcurrency = 16

// Handle passes one change to the hub. It never blocks on subscribers:
// the hub's sends do not wait, and a watcher's receipt is not minted here
// but later, by GraphQL, for a client that selected one (minting may read
// and write the key table).
func (n *Notifier) Handle(ctx context.Context, msg broker.Message) error {
	switch msg.Topic {
	case event.VerifiedTopic:
		var ev event.Verified
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.UserID == uuid.Nil || ev.Registration == uuid.Nil {
			return undecodable(msg)
		}
		n.Hub.PublishVerified(ev.Registration, hub.Verified{User: ev.UserID, Email: ev.Email, At: ev.VerifiedAt.UTC()})
	case event.SupersededTopic:
		var ev event.Superseded
		if err := json.Unmarshal(msg.Body, &ev); err != nil {
			return undecodable(msg)
		}
		n.Hub.End(ev.Registrations...)
	case event.DeliveryChangedTopic:
		var ev event.DeliveryChanged
		if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.Registration == uuid.Nil || ev.Delivery.State == "" {
			return undecodable(msg)
		}
		ev.Delivery.At = ev.Delivery.At.UTC()
		n.Hub.PublishDelivery(ev.Registration, ev.Delivery)
	default:
		return undecodable(msg)
	}
	return nil
}

func undecodable(msg broker.Message) error {
	return broker.Permanent(fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID))
}
