package consumers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/event"
	"github.com/verifier/verifier/internal/hub"
)

// Hub is what the notifier feeds.
type Hub interface {
	Publish(user uuid.UUID, e hub.Event)
	RecheckAll()
}

// Notifier hands status changes to this process's subscription hub. Its
// queue is private to the process, so every replica hears every change and
// a subscription open on any replica sees it.
type Notifier struct {
	Hub Hub
}

// Queue is where the notifier listens. When the queue is re-attached after
// a broker outage, changes made meanwhile were not heard; every open
// subscription then re-reads its status.
func (n *Notifier) Queue() broker.Queue {
	return broker.Queue{
		Topics:      []string{event.VerifiedTopic},
		Concurrency: 16,
		OnReady:     n.Hub.RecheckAll,
	}
}

// Handle publishes one verification to the hub. It never blocks on
// subscribers.
func (n *Notifier) Handle(_ context.Context, msg broker.Message) error {
	var ev event.Verified
	if err := json.Unmarshal(msg.Body, &ev); err != nil || ev.UserID == uuid.Nil {
		return broker.Permanent(fmt.Errorf("undecodable %s event %s", msg.Topic, msg.ID))
	}
	n.Hub.Publish(ev.UserID, hub.Event{VerifiedAt: ev.VerifiedAt})
	return nil
}
