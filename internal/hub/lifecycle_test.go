package hub

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestStopEndsEverySubscription(t *testing.T) {
	t.Parallel()
	h := New()
	h.Stop() // before Start: nothing to do
	require.NoError(t, h.Start(context.Background()))
	subs := []*Subscription{h.Subscribe(uuid.New()), h.Subscribe(uuid.New())}
	h.Stop()
	h.Stop()
	for _, s := range subs {
		select {
		case _, ok := <-s.C():
			require.False(t, ok, "no event was published, so the channel was closed")
		case <-time.After(10 * time.Second):
			t.Fatal("subscription still open after Stop")
		}
	}
	require.Zero(t, h.Len())
}
