package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
)

// EnqueueRaw adds an event whose id and encoded payload the caller chose
// (a public event, whose id is inside its own body), in tx.
func EnqueueRaw(ctx context.Context, tx *ent.Tx, now time.Time, id uuid.UUID, topic string, payload []byte) error {
	err := tx.OutboxEvent.Create().
		SetEventID(id).
		SetTopic(topic).
		SetPayload(payload).
		SetCreatedAt(now).
		SetAvailableAt(now).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("outbox: write %s: %w", topic, err)
	}
	return nil
}
