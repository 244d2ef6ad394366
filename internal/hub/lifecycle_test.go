package hub

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

func TestStopEndsEverySubscription(t *testing.T) {
	t.Parallel()
	h := New()
	h.Stop() // before Start: nothing to do
	require.NoError(t, h.Start(context.Background()))
	read := func(context.Context) (*status.Change, error) { return &status.Change{Status: status.Unverified}, nil }
	var subs []*Subscription
	for range 2 {
		s, err := h.Subscribe(context.Background(), Watch{Registration: uuid.New(), Read: read})
		require.NoError(t, err)
		subs = append(subs, s)
	}
	h.Stop()
	h.Stop()
	for _, s := range subs {
		first := testkit.Receive(t, s.C(), "the current state")
		require.Equal(t, status.Unverified, first.Status)
		testkit.Closed(t, s.C(), "a subscription's channel after Stop")
	}
	require.Zero(t, h.Len())
}
