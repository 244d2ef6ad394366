package broker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("550 mailbox unavailable")
	require.True(t, IsPermanent(Permanent(base)))
	require.True(t, IsPermanent(fmt.Errorf("send: %w", Permanent(base))))
	require.ErrorIs(t, Permanent(base), base)
	require.False(t, IsPermanent(base))
	require.NoError(t, Permanent(nil))
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{0, 75 * time.Millisecond, 100 * time.Millisecond},
		{1, 150 * time.Millisecond, 200 * time.Millisecond},
		{3, 600 * time.Millisecond, 800 * time.Millisecond},
		{50, 7500 * time.Millisecond, 10 * time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			d := Backoff(tt.n, 100*time.Millisecond, 10*time.Second)
			require.GreaterOrEqual(t, d, tt.min, "attempt %d", tt.n)
			require.LessOrEqual(t, d, tt.max, "attempt %d", tt.n)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	base := errors.New("451 try again later")
	err := fmt.Errorf("send: %w", RetryAfter(base, 5*time.Second))
	d, ok := RetryDelay(err)
	require.True(t, ok)
	require.Equal(t, 5*time.Second, d)
	require.ErrorIs(t, err, base)
	require.False(t, IsPermanent(err))

	_, ok = RetryDelay(base)
	require.False(t, ok)
	d, _ = RetryDelay(RetryAfter(nil, -time.Second))
	require.Zero(t, d, "never negative")
	require.Error(t, RetryAfter(nil, time.Second), "always an error, so it is never taken for success")
}

func TestDefaultRetry(t *testing.T) {
	t.Parallel()
	require.LessOrEqual(t, DefaultRetry(1), time.Second)
	require.GreaterOrEqual(t, DefaultRetry(1), 750*time.Millisecond)
	require.LessOrEqual(t, DefaultRetry(100), time.Minute)
	require.Positive(t, DefaultRetry(0), "attempt 0 still waits")
}
