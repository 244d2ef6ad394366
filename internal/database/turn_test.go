package database

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// The writer's turn goes to urgent waiters first, then in arrival order.
func TestTurnsOrder(t *testing.T) {
	t.Parallel()
	var tu turns
	require.Nil(t, tu.enqueue(false), "a free writer is taken at once")
	n1, u1, n2, u2 := tu.enqueue(false), tu.enqueue(true), tu.enqueue(false), tu.enqueue(true)
	want := []chan struct{}{u1, u2, n1, n2}
	for i := range want {
		tu.release()
		for j, ch := range want {
			require.Equal(t, j <= i, closed(ch), "after %d releases, waiter %d", i+1, j)
		}
	}
	tu.release()
	require.False(t, tu.busy, "free again once every waiter had its turn")
}

// A waiter whose context ends leaves the queue; the turn skips it.
func TestTurnsCancelledWaiter(t *testing.T) {
	t.Parallel()
	var tu turns
	require.NoError(t, tu.acquire(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	gave := make(chan error, 1)
	go func() { gave <- tu.acquire(ctx) }()
	next := tu.enqueue(false)
	cancel()
	require.ErrorIs(t, testkit.Receive(t, gave, "the cancelled waiter's answer"), context.Canceled)
	tu.release()
	require.True(t, closed(next), "the turn went past the cancelled waiter")
	tu.release()
	require.False(t, tu.busy)
}
