package hub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/status"
	"github.com/verifier/verifier/internal/testkit"
)

var t0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func delivery(state status.DeliveryState, s, attempts int) *status.Delivery {
	return &status.Delivery{State: state, At: at(s), Attempts: attempts}
}

// ofEmail sets the email d is of: its delivery record's id.
func ofEmail(record int, d *status.Delivery) *status.Delivery {
	d.Email = record
	return d
}

// reads returns a Watch.Read that answers c.
func reads(c status.Change) func(context.Context) (*status.Change, error) {
	return func(context.Context) (*status.Change, error) { cp := c; return &cp, nil }
}

// requireEmpty checks nothing is pending on ch and it is open.
func requireEmpty(t *testing.T, ch <-chan *status.Change) {
	t.Helper()
	select {
	case c, ok := <-ch:
		t.Fatalf("unexpected %+v (open %v)", c, ok)
	default:
	}
}

func TestSubscriptionSees(t *testing.T) {
	t.Parallel()
	reg := uuid.New()
	unverified := status.Change{Status: status.Unverified, At: at(0)}
	queued := status.Change{Status: status.Unverified, At: at(0), Delivery: delivery(status.Queued, 0, 0)}
	// step is one thing the feeding side does.
	type step func(h *Hub)
	verified := func(h *Hub) { h.PublishVerified(reg, Verified{At: at(9)}) }
	delivered := func(d *status.Delivery) step { return func(h *Hub) { h.PublishDelivery(reg, *d) } }
	tests := []struct {
		name  string
		watch Watch
		steps []step
		want  []status.Change
		// closed: the channel is closed after want.
		closed bool
	}{
		{
			name:  "status only: current, then VERIFIED, then closed",
			watch: Watch{Registration: reg, Read: reads(unverified)},
			steps: []step{delivered(delivery(status.Sent, 1, 1)), verified},
			want: []status.Change{unverified,
				{Status: status.Verified, At: at(9)}},
			closed: true,
		},
		{
			name:  "with delivery: each newer state, VERIFIED with the latest, then closed",
			watch: Watch{Registration: reg, Delivery: true, Read: reads(queued)},
			steps: []step{
				delivered(delivery(status.Deferred, 1, 1)),
				delivered(delivery(status.Queued, 0, 0)), // out of order: older
				delivered(delivery(status.Sent, 2, 2)),
				delivered(delivery(status.Deferred, 1, 1)), // a redelivery of an old one
				verified,
			},
			want: []status.Change{queued,
				{Status: status.Unverified, At: at(0), Delivery: delivery(status.Deferred, 1, 1)},
				{Status: status.Unverified, At: at(0), Delivery: delivery(status.Sent, 2, 2)},
				{Status: status.Verified, At: at(9), Delivery: delivery(status.Sent, 2, 2)}},
			closed: true,
		},
		{
			name:  "same time: more attempts, then a further state, is later",
			watch: Watch{Registration: reg, Delivery: true, Read: reads(queued)},
			steps: []step{
				delivered(delivery(status.Deferred, 0, 1)),
				delivered(delivery(status.Failed, 0, 1)),
				delivered(delivery(status.Deferred, 0, 1)),
			},
			want: []status.Change{queued,
				{Status: status.Unverified, At: at(0), Delivery: delivery(status.Deferred, 0, 1)},
				{Status: status.Unverified, At: at(0), Delivery: delivery(status.Failed, 0, 1)}},
		},
		{
			// A resend's QUEUED and the earlier email's SENT committed at
			// once: the SENT is stamped later, but is the older email's.
			name:  "a later email's state beats an earlier email's, whatever their times",
			watch: Watch{Registration: reg, Delivery: true, Read: reads(queued)},
			steps: []step{
				delivered(ofEmail(2, delivery(status.Queued, 2, 0))),
				delivered(ofEmail(1, delivery(status.Sent, 3, 1))),
				delivered(ofEmail(2, delivery(status.Sent, 4, 1))),
			},
			want: []status.Change{queued,
				{Status: status.Unverified, At: at(0), Delivery: ofEmail(2, delivery(status.Queued, 2, 0))},
				{Status: status.Unverified, At: at(0), Delivery: ofEmail(2, delivery(status.Sent, 4, 1))}},
		},
		{
			name:  "another registration's confirmation is not ours",
			watch: Watch{Registration: uuid.New(), Delivery: true, Read: reads(queued)},
			steps: []step{verified},
			want:  []status.Change{queued},
		},
		{
			name:   "already verified: one snapshot, closed",
			watch:  Watch{Registration: reg, Read: reads(status.Change{Status: status.Verified, At: at(3)})},
			steps:  []step{verified},
			want:   []status.Change{{Status: status.Verified, At: at(3)}},
			closed: true,
		},
		{
			name:  "another registration's delivery is not ours",
			watch: Watch{Registration: uuid.New(), Delivery: true, Read: reads(queued)},
			steps: []step{delivered(delivery(status.Sent, 1, 1))},
			want:  []status.Change{queued},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New()
			defer h.CloseAll()
			s, err := h.Subscribe(context.Background(), tt.watch)
			require.NoError(t, err)
			defer s.Close()
			got := []status.Change{*testkit.Receive(t, s.C(), "a status change")}
			for _, step := range tt.steps {
				step(h)
				// Read as a live subscriber would, so no snapshot is
				// coalesced away.
				for {
					select {
					case c, ok := <-s.C():
						if ok {
							got = append(got, *c)
							continue
						}
					default:
					}
					break
				}
			}
			require.Equal(t, tt.want, got)
			if tt.closed {
				require.Nil(t, testkit.Receive(t, s.C(), "a status change"))
				require.Zero(t, h.Len())
			} else {
				requireEmpty(t, s.C())
				require.Equal(t, 1, h.Len())
			}
		})
	}
}

// A subscriber that never reads blocks no publisher, and of what it missed
// it keeps the latest snapshots, VERIFIED last.
func TestSlowSubscriberKeepsVerified(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	reg := uuid.New()
	s, err := h.Subscribe(context.Background(), Watch{Registration: reg, Delivery: true,
		Read: reads(status.Change{Status: status.Unverified, At: at(0)})})
	require.NoError(t, err)
	for i := range 1000 {
		h.PublishDelivery(reg, *delivery(status.Deferred, i+1, i+1))
	}
	h.PublishVerified(reg, Verified{At: at(2000)})
	var got []*status.Change
	for c := range s.C() {
		got = append(got, c)
	}
	require.Len(t, got, bufferSize)
	last := got[len(got)-1]
	require.Equal(t, status.Verified, last.Status)
	require.Equal(t, 1000, last.Delivery.Attempts, "the latest delivery")
	require.Equal(t, 1000, got[len(got)-2].Delivery.Attempts, "newest kept, oldest dropped")
	require.Equal(t, 999, got[len(got)-3].Delivery.Attempts)
}

// A change heard between the subscription and its first read is not lost:
// it is folded into the first snapshot even if the read missed it.
func TestChangeDuringFirstReadIsKept(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	reg := uuid.New()
	s, err := h.Subscribe(context.Background(), Watch{Registration: reg, Delivery: true, Read: func(context.Context) (*status.Change, error) {
		h.PublishDelivery(reg, *delivery(status.Sent, 5, 1))
		h.PublishVerified(reg, Verified{At: at(6)})
		// What the database said before those commits.
		return &status.Change{Status: status.Unverified, At: at(0), Delivery: delivery(status.Queued, 0, 0)}, nil
	}})
	require.NoError(t, err)
	require.Equal(t, &status.Change{Status: status.Verified, At: at(6), Delivery: delivery(status.Sent, 5, 1)}, testkit.Receive(t, s.C(), "a status change"))
	require.Nil(t, testkit.Receive(t, s.C(), "a status change"))
}

func TestSubscribeReadFails(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	opened := 0
	h.OnChange = func(d int) { opened += d }
	boom := errors.New("database gone")
	_, err := h.Subscribe(context.Background(), Watch{Registration: uuid.New(), Read: func(context.Context) (*status.Change, error) { return nil, boom }})
	require.ErrorIs(t, err, boom)
	require.Zero(t, h.Len())
	require.Zero(t, opened)
}

// After a reconnect every subscription re-reads; what changed is sent, a
// failed read changes nothing, and a call during a re-check runs it again.
func TestRecheckAll(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	var verifiedNow atomic.Bool
	var reads atomic.Int32
	hold := make(chan struct{})
	holding := make(chan struct{}, 1)
	read := func(ctx context.Context) (*status.Change, error) {
		n := reads.Add(1)
		if n == 2 { // the first re-read waits until the test lets it go
			holding <- struct{}{}
			<-hold
		}
		if verifiedNow.Load() {
			return &status.Change{Status: status.Verified, At: at(1)}, nil
		}
		return &status.Change{Status: status.Unverified, At: at(0)}, nil
	}
	s, err := h.Subscribe(context.Background(), Watch{Registration: uuid.New(), Read: read})
	require.NoError(t, err)
	require.Equal(t, status.Unverified, testkit.Receive(t, s.C(), "a status change").Status)
	failedReads := make(chan struct{}, 10)
	// Its own count: the re-check visits subscriptions in no fixed order.
	var failingReads atomic.Int32
	failing, err := h.Subscribe(context.Background(), Watch{Registration: uuid.New(), Read: func(ctx context.Context) (*status.Change, error) {
		if failingReads.Add(1) > 1 {
			failedReads <- struct{}{}
			return nil, errors.New("database gone")
		}
		return &status.Change{Status: status.Unverified, At: at(0)}, nil
	}})
	require.NoError(t, err)
	require.NotNil(t, testkit.Receive(t, failing.C(), "a status change"))

	h.RecheckAll()
	testkit.Receive(t, holding, "first re-read, held")
	h.RecheckAll() // while the first runs: runs again after it
	requireEmpty(t, s.C())
	verifiedNow.Store(true)
	close(hold)
	require.Equal(t, &status.Change{Status: status.Verified, At: at(1)}, testkit.Receive(t, s.C(), "a status change"))
	require.Nil(t, testkit.Receive(t, s.C(), "a status change"))
	for pass := range 2 {
		testkit.Receive(t, failedReads, "read of the failing subscription at re-check pass %d", pass+1)
	}
	requireEmpty(t, failing.C())
	require.Equal(t, 1, h.Len())
}

func TestCloseIsIdempotentAndCounts(t *testing.T) {
	t.Parallel()
	h := New()
	var mu sync.Mutex
	open := 0
	h.OnChange = func(d int) { mu.Lock(); open += d; mu.Unlock() }
	w := Watch{Registration: uuid.New(), Delivery: true, Read: reads(status.Change{Status: status.Unverified, At: at(0)})}
	s, err := h.Subscribe(context.Background(), w)
	require.NoError(t, err)
	s.Close()
	s.Close()
	require.NotNil(t, testkit.Receive(t, s.C(), "a status change"), "the snapshot sent before")
	require.Nil(t, testkit.Receive(t, s.C(), "a status change"), "closed")
	require.Zero(t, open)
	require.Zero(t, h.Len())

	for range 10 {
		_, err := h.Subscribe(context.Background(), w)
		require.NoError(t, err)
	}
	require.Equal(t, 10, open)
	h.CloseAll()
	require.Zero(t, open)
	require.Zero(t, h.Len())

	late, err := h.Subscribe(context.Background(), w)
	require.NoError(t, err)
	require.Nil(t, testkit.Receive(t, late.C(), "a status change"), "a closed hub takes no subscriptions")
	late.Close()
	h.RecheckAll() // nothing to do, and no goroutine left behind
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	reg := uuid.New()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			s, err := h.Subscribe(context.Background(), Watch{Registration: reg, Delivery: true, Read: reads(status.Change{Status: status.Unverified, At: at(0)})})
			if err != nil {
				t.Error(err)
				return
			}
			h.PublishDelivery(reg, *delivery(status.Sent, i, 1))
			h.RecheckAll()
			<-s.C() // CloseAll, deferred, ends it if the test fails first
			s.Close()
		})
	}
	testkit.Wait(t, &wg, "end of 50 concurrent subscribers")
	require.Zero(t, h.Len())
}

// The VERIFIED event heard from the broker carries what the watch's
// Receipt hook gave that watcher, whose receipt is minted only when asked
// for; End completes a superseded registration's watchers without
// VERIFIED.
func TestReceiptAndEnd(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	reg, gone := uuid.New(), uuid.New()
	unverified := status.Change{Status: status.Unverified, At: at(0)}
	receipt, redirect := "a receipt", "https://app.example/next"
	var minted []Verified
	s, err := h.Subscribe(context.Background(), Watch{Registration: reg, Read: reads(unverified),
		Receipt: func(v Verified) (func(context.Context) (*string, error), *string) {
			return func(context.Context) (*string, error) {
				minted = append(minted, v)
				return &receipt, nil
			}, &redirect
		}})
	require.NoError(t, err)
	defer s.Close()
	old, err := h.Subscribe(context.Background(), Watch{Registration: gone, Read: reads(unverified)})
	require.NoError(t, err)
	require.Equal(t, &unverified, testkit.Receive(t, s.C(), "a status change"))
	require.Equal(t, &unverified, testkit.Receive(t, old.C(), "a status change"))

	h.End(gone)
	require.Nil(t, testkit.Receive(t, old.C(), "the end"), "completed without VERIFIED")

	v := Verified{User: uuid.New(), Email: "a@example.com", At: at(5)}
	h.PublishVerified(reg, v)
	c := testkit.Receive(t, s.C(), "VERIFIED")
	require.Equal(t, status.Verified, c.Status)
	require.Equal(t, at(5), c.At)
	require.Equal(t, &redirect, c.RedirectTo)
	require.Empty(t, minted, "nothing signed until a client asks")
	got, err := c.Receipt(context.Background())
	require.NoError(t, err)
	require.Equal(t, &receipt, got)
	require.Nil(t, testkit.Receive(t, s.C(), "the end"))
	require.Equal(t, []Verified{v}, minted)
	require.Zero(t, h.Len())
}

// Notify comes once before each snapshot a reader gets and once before the
// close, whatever the buffer dropped on the way (gqlws.Ready counts on it:
// one notice fewer and a subscription would wait for nothing, unwoken).
// Meanwhile a reader takes snapshots concurrently.
func TestNotifyCountsEvents(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	reg := uuid.New()
	var notices atomic.Int64
	s, err := h.Subscribe(context.Background(), Watch{Registration: reg, Delivery: true,
		Read:   reads(status.Change{Status: status.Unverified, At: at(0)}),
		Notify: func() { notices.Add(1) }})
	require.NoError(t, err)
	got := make(chan int)
	go func() {
		n := 0
		for range s.C() {
			n++
		}
		got <- n
	}()
	for i := range 1000 {
		h.PublishDelivery(reg, *delivery(status.Deferred, i+1, i+1))
	}
	h.PublishVerified(reg, Verified{At: at(2000)})
	read := testkit.Receive(t, got, "the channel's close")
	require.Equal(t, int64(read+1), notices.Load(), "one notice per snapshot read, and one for the close")
}

// A re-read that fails (the database is still down as the broker comes
// back) is tried again by the re-check itself: the change it would have
// found (VERIFIED, missed during the outage) comes no other way.
func TestRecheckReadsAgainAfterAFailure(t *testing.T) {
	t.Parallel()
	h := New()
	defer h.CloseAll()
	var reads atomic.Int32
	s, err := h.Subscribe(context.Background(), Watch{Registration: uuid.New(), Read: func(context.Context) (*status.Change, error) {
		switch reads.Add(1) {
		case 1:
			return &status.Change{Status: status.Unverified, At: at(0)}, nil
		case 2:
			return nil, errors.New("database gone")
		}
		return &status.Change{Status: status.Verified, At: at(1)}, nil
	}})
	require.NoError(t, err)
	require.Equal(t, status.Unverified, testkit.Receive(t, s.C(), "a status change").Status)

	h.RecheckAll()
	require.Equal(t, &status.Change{Status: status.Verified, At: at(1)}, testkit.Receive(t, s.C(), "VERIFIED once the database answers"))
}
