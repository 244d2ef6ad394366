package hub

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestPublishReachesOnlyThatUser(t *testing.T) {
	t.Parallel()
	h := New()
	alice, bob := uuid.New(), uuid.New()
	a1, a2, b := h.Subscribe(alice), h.Subscribe(alice), h.Subscribe(bob)
	defer b.Close()
	at := time.Now()
	h.Publish(alice, Event{VerifiedAt: at})
	require.Equal(t, Event{VerifiedAt: at}, <-a1.C())
	require.Equal(t, Event{VerifiedAt: at}, <-a2.C())
	select {
	case e := <-b.C():
		t.Fatalf("bob got alice's event %+v", e)
	default:
	}
	a1.Close()
	a2.Close()
	require.Equal(t, 1, h.Len())
}

// A subscriber that never reads must not block publishers.
func TestPublishNeverBlocks(t *testing.T) {
	t.Parallel()
	h := New()
	u := uuid.New()
	s := h.Subscribe(u)
	defer s.Close()
	for range 1000 {
		h.Publish(u, Event{VerifiedAt: time.Now()})
		h.RecheckAll()
	}
	_, ok := <-s.C()
	require.True(t, ok)
}

func TestCloseIsIdempotentAndCounts(t *testing.T) {
	t.Parallel()
	h := New()
	var mu sync.Mutex
	open := 0
	h.OnChange = func(d int) { mu.Lock(); open += d; mu.Unlock() }
	s := h.Subscribe(uuid.New())
	s.Close()
	s.Close()
	_, ok := <-s.C()
	require.False(t, ok, "closed channel")
	require.Zero(t, open)
	require.Zero(t, h.Len())

	for range 10 {
		h.Subscribe(uuid.New())
	}
	h.CloseAll()
	require.Zero(t, open)
	require.Zero(t, h.Len())
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	h := New()
	u := uuid.New()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			s := h.Subscribe(u)
			h.Publish(u, Event{Recheck: true})
			<-s.C()
			s.Close()
		})
	}
	wg.Wait()
	require.Zero(t, h.Len())
}
