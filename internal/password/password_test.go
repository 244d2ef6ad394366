package password

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestHashFormatAndVerify(t *testing.T) {
	t.Parallel()
	h := NewHasher(OWASP, 1)
	ctx := context.Background()

	phc, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`), phc)

	ok, err := h.Verify(ctx, "correct horse battery staple", phc)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = h.Verify(ctx, "correct horse battery stapler", phc)
	require.NoError(t, err)
	require.False(t, ok)

	again, err := h.Hash(ctx, "correct horse battery staple")
	require.NoError(t, err)
	require.NotEqual(t, phc, again, "each hash has its own salt")
}

func TestVerifyRejectsGarbage(t *testing.T) {
	t.Parallel()
	h := NewHasher(OWASP, 1)
	for _, phc := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=1,t=1,p=1$!!$AAAA"} {
		_, err := h.Verify(context.Background(), "x", phc)
		require.Error(t, err, phc)
	}
}

// TestConcurrencyIsBounded checks the pool: with two slots, no more than two
// hashes ever run together however many callers arrive.
func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{Memory: 1024, Time: 1, Threads: 1}, 2)
	var running, peak atomic.Int32
	// The first two holders keep their slots until both are in, so the
	// peak is reached whatever the scheduling (no sleep to hope for it).
	bothIn := make(chan struct{})
	var once sync.Once
	// The callers do not touch t (require must not run off the test's
	// goroutine, and they may outlive a failed test): what goes wrong
	// comes back on errs, and ctx ends their waits when the test ends.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := h.acquire(ctx); err != nil {
				errs <- fmt.Errorf("acquire: %w", err)
				return
			}
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n == 2 {
				once.Do(func() { close(bothIn) })
			}
			select {
			case <-bothIn:
			case <-ctx.Done():
				errs <- errors.New("two slots were never held together")
			}
			running.Add(-1)
			h.release()
		})
	}
	testkit.Wait(t, &wg, "return of 16 callers of a pool of two, the first two holding their slots until both are in")
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(2), peak.Load())

	// The peak above reaches 2 whatever the bound; a third slot would
	// show in it only when a third caller happened to come in before the
	// first two left (1 run in 20). So: with both slots held, a caller
	// whose context is already done finds none. Were a slot free, select
	// would take it half of the time, so 64 tries cannot all miss it.
	require.NoError(t, h.acquire(context.Background()))
	require.NoError(t, h.acquire(context.Background()))
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 64 {
		err := h.acquire(done)
		if err == nil {
			h.release()
			t.Fatal("a third hash got a slot beside two")
		}
		require.ErrorIs(t, err, context.Canceled)
	}
	h.release()
	h.release()
}

func TestHashGivesUpWithContext(t *testing.T) {
	t.Parallel()
	h := NewHasher(OWASP, 1)
	require.NoError(t, h.acquire(context.Background())) // occupy the only slot
	defer h.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Hash(ctx, "whatever-password")
	require.ErrorIs(t, err, context.Canceled)
}

// LeaveRoom gives the rest of the service Ps of its own while the number
// of hashes at once, and so their memory, stays one per CPU.
func TestLeaveRoom(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	LeaveRoom()
	require.Equal(t, cpus+spareProcs(cpus), runtime.GOMAXPROCS(0))
	require.Equal(t, cpus, cap(NewHasher(OWASP, 0).slots), "hashes at once: one per CPU")

	for _, tt := range []struct{ cpus, spare int }{{1, 1}, {2, 1}, {4, 2}, {16, 8}} {
		require.Equal(t, tt.spare, spareProcs(tt.cpus), "%d CPUs", tt.cpus)
	}
}
