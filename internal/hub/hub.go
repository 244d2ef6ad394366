// Package hub fans status and delivery changes out to the subscriptions
// open in this process. Every send is non-blocking: a slow or vanished
// websocket client never stalls the consumer that feeds the hub.
//
// A subscription's channel is the one gqlgen reads: the hub sends
// *status.Change snapshots on it and closes it after the terminal event
// (VERIFIED), so no goroutine copies between channels. Each snapshot holds
// the whole state a watcher is shown (status, and with delivery the latest
// email's), so when a subscriber falls behind, the hub drops its oldest
// unread snapshot rather than the newest: the subscriber skips an
// intermediate state and never misses VERIFIED. A subscriber that stops
// reading altogether is the websocket's to end (its write deadline), which
// ends the subscription's context and so the subscription.
package hub

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/internal/startstop"
	"github.com/verifier/verifier/internal/status"
)

// bufferSize is how many unread snapshots a subscription holds. One is
// enough for correctness (each snapshot supersedes the ones before); a few
// let a subscriber that reads a little late still see each delivery step
// (QUEUED, DEFERRED, SENT) rather than only the latest.
const bufferSize = 4

// recheckTimeout bounds one re-read of every subscription after a broker
// reconnect: a database that does not answer must not keep the hub's
// goroutine past it.
const recheckTimeout = time.Minute

// Pauses before the re-check reads again the subscriptions it could not
// read (the database still down as the broker came back), doubling from
// the first to the last.
const (
	recheckRetryMin = time.Second
	recheckRetryMax = 30 * time.Second
)

// Watch is what a subscription follows.
type Watch struct {
	// Registration whose confirmation (VERIFIED) and, with Delivery, whose
	// email's delivery changes are sent.
	Registration uuid.UUID
	// Delivery: the watcher asked for its email's delivery changes.
	Delivery bool
	// Read returns the current state from the database: at Subscribe, and
	// again after a broker reconnect, when changes may have been missed.
	// It sets Delivery only for a watcher that asked for it. ErrGone from
	// a re-read ends the subscription (its registration was superseded).
	Read func(ctx context.Context) (*status.Change, error)
	// Receipt, if set, is called for the VERIFIED event heard from the
	// broker: what that watcher alone is given, a way to mint its receipt
	// (status.Change.Sign) and the registration's redirectTo.
	Receipt func(v Verified) (sign func(context.Context) (*string, error), redirectTo *string)
	// Notify, if set, is called right before each snapshot is sent and
	// before the channel closes, once for each (gqlws.Ready: the reader
	// then needs no goroutine waiting on the channel). It runs under the
	// hub's lock and must not block.
	Notify func()
}

// Verified is a confirmation as the broker tells it: enough to mint a
// receipt without reading the database.
type Verified struct {
	User  uuid.UUID
	Email string
	At    time.Time
}

// ErrGone is what Watch.Read returns when the watched registration no
// longer exists or was superseded.
var ErrGone = errors.New("hub: registration gone")

// Hub is a set of subscriptions keyed by registration.
type Hub struct {
	// Base gives the hub the service's lifecycle: Stop ends every
	// subscription (lifecycle.go).
	startstop.Base

	mu           sync.Mutex
	byReg        map[uuid.UUID]map[*Subscription]struct{}
	all          map[*Subscription]struct{}
	closed       bool
	rechecking   bool
	recheckAgain bool
	// recheckWake cuts short the re-check's pause before it reads again
	// what it could not read: a reconnect meanwhile wants a full pass at
	// once, not after up to recheckRetryMax.
	recheckWake   chan struct{}
	stopRecheck   context.CancelFunc
	recheckCtx    context.Context
	recheckerDone sync.WaitGroup
	// OnChange, if set, is called with +1/-1 as subscriptions open and close.
	OnChange func(delta int)
}

// New returns an empty hub.
func New() *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		byReg:       map[uuid.UUID]map[*Subscription]struct{}{},
		all:         map[*Subscription]struct{}{},
		recheckCtx:  ctx,
		recheckWake: make(chan struct{}, 1),
		stopRecheck: cancel,
	}
}

// Subscription receives the changes of one watch until it ends.
type Subscription struct {
	hub   *Hub
	watch Watch
	ch    chan *status.Change
	// The fields below are guarded by hub.mu.
	// ready is set once the first snapshot went out; changes heard before
	// are folded into cur and sent with it.
	ready bool
	cur   status.Change
	done  bool
}

// C delivers snapshots, the current state first; it is closed after
// VERIFIED, when the subscription is closed, and when the hub shuts down.
func (s *Subscription) C() <-chan *status.Change { return s.ch }

// Close ends the subscription. Safe to call more than once and from any
// goroutine (e.g. with context.AfterFunc).
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.closeLocked(s)
}

// Subscribe opens a subscription to w and sends its current state (w.Read)
// as the first snapshot. It listens before it reads, so a change committed
// in between is in the read or heard, and folded into that first snapshot
// either way. If the state is VERIFIED the channel closes after it.
func (h *Hub) Subscribe(ctx context.Context, w Watch) (*Subscription, error) {
	s := &Subscription{hub: h, watch: w, ch: make(chan *status.Change, bufferSize)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.done = true
		close(s.ch)
		return s, nil
	}
	add(h.all, s)
	if w.Registration != uuid.Nil {
		addKeyed(h.byReg, w.Registration, s)
	}
	if h.OnChange != nil {
		h.OnChange(+1)
	}
	h.mu.Unlock()

	cur, err := w.Read(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.done {
		return s, nil // the hub shut down meanwhile
	}
	s.ready = true
	h.mergeLocked(s, cur)
	h.sendLocked(s)
	return s, nil
}

// PublishVerified hands a registration's confirmation to its watchers.
// Their receipts are minted later, if at all: by GraphQL, for a client
// that selected one, so nothing here is slow enough to leave the lock for.
func (h *Hub) PublishVerified(registration uuid.UUID, v Verified) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Deleting from a map while ranging over it is safe: a VERIFIED watch
	// ends and leaves byReg as it is applied.
	for s := range h.byReg[registration] {
		c := &status.Change{Status: status.Verified, At: v.At}
		if s.watch.Receipt != nil {
			c.Sign, c.RedirectTo = s.watch.Receipt(v)
		}
		h.applyLocked(s, c)
	}
}

// End completes the subscriptions of registrations that were superseded:
// they will never be VERIFIED.
func (h *Hub) End(registrations ...uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range registrations {
		for s := range h.byReg[r] {
			h.closeLocked(s)
		}
	}
}

// PublishDelivery hands a new state of a registration's latest email to
// the subscriptions that follow its delivery. An older state than one
// already known (the notifier handles messages concurrently) is ignored.
func (h *Hub) PublishDelivery(registration uuid.UUID, d status.Delivery) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.byReg[registration] {
		if s.watch.Delivery {
			h.applyLocked(s, &status.Change{Delivery: &d})
		}
	}
}

// RecheckAll makes every subscription re-read its state (Watch.Read) and
// sends what changed, because changes may have been missed while the
// broker connection was down. It returns at once: the reads run on one
// goroutine of the hub's, so the broker's reconnect is not held up; a call
// while one runs makes it run again once done. A subscription it could not
// read is read again after a pause, until it is or ends.
func (h *Hub) RecheckAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.rechecking {
		h.recheckAgain = true
		select {
		case h.recheckWake <- struct{}{}:
		default:
		}
		return
	}
	h.rechecking = true
	h.recheckerDone.Add(1)
	go h.recheck()
}

func (h *Hub) recheck() {
	defer h.recheckerDone.Done()
	// again are the subscriptions to read once more: their read failed,
	// or the pass ran out of time before it reached them. Each may have
	// missed its VERIFIED during the outage, which nothing would send
	// again, so the re-check keeps at them, with a pause, until read.
	var again []*Subscription
	full, wait := true, recheckRetryMin
	for {
		h.mu.Lock()
		var subs []*Subscription
		if full || h.recheckAgain {
			subs = make([]*Subscription, 0, len(h.all))
			for s := range h.all {
				subs = append(subs, s)
			}
		} else {
			for _, s := range again {
				if !s.done {
					subs = append(subs, s)
				}
			}
		}
		h.recheckAgain = false
		h.mu.Unlock()

		again = nil
		ctx, cancel := context.WithTimeout(h.recheckCtx, recheckTimeout)
		for i, s := range subs {
			cur, err := s.watch.Read(ctx)
			if ctx.Err() != nil {
				again = append(again, subs[i:]...)
				break
			}
			if errors.Is(err, ErrGone) {
				h.mu.Lock()
				h.closeLocked(s)
				h.mu.Unlock()
				continue
			}
			if err != nil {
				again = append(again, s)
				continue
			}
			h.mu.Lock()
			h.applyLocked(s, cur)
			h.mu.Unlock()
		}
		cancel()

		h.mu.Lock()
		if h.closed || (!h.recheckAgain && len(again) == 0) {
			h.rechecking = false
			h.mu.Unlock()
			return
		}
		full = h.recheckAgain
		h.mu.Unlock()
		if full {
			wait = recheckRetryMin
			// A wake sent for the pass about to run is spent.
			select {
			case <-h.recheckWake:
			default:
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-h.recheckCtx.Done():
			t.Stop()
			h.mu.Lock()
			h.rechecking = false
			h.mu.Unlock()
			return
		case <-h.recheckWake:
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, recheckRetryMax)
	}
}

// applyLocked folds c into s's state and, if s is live and c changed
// something, sends the new snapshot.
func (h *Hub) applyLocked(s *Subscription, c *status.Change) {
	if s.done || !h.mergeLocked(s, c) || !s.ready {
		return
	}
	h.sendLocked(s)
}

// mergeLocked folds c into s.cur and reports whether that changed it. A
// status only moves to VERIFIED; a delivery only to a newer one.
func (h *Hub) mergeLocked(s *Subscription, c *status.Change) bool {
	changed := false
	if c.Status != "" && s.cur.Status != status.Verified && c.Status != s.cur.Status {
		s.cur.Status, s.cur.At = c.Status, c.At
		s.cur.Sign, s.cur.RedirectTo = c.Sign, c.RedirectTo
		changed = true
	}
	if c.Delivery != nil && c.Delivery.After(s.cur.Delivery) {
		d := *c.Delivery
		s.cur.Delivery = &d
		changed = true
	}
	return changed
}

// sendLocked offers s its current snapshot without blocking, and ends s
// after VERIFIED. If s's buffer is full its oldest snapshot makes room:
// the newer one holds everything it said.
func (h *Hub) sendLocked(s *Subscription) {
	snap := s.cur
	// Only holders of h.mu send, so room seen here stays.
	replaced := false
	if len(s.ch) == cap(s.ch) {
		select {
		case <-s.ch:
			// The new snapshot takes the place of one not yet read,
			// and of its notice.
			replaced = true
		default:
			// Read meanwhile: room for a new event.
		}
	}
	if !replaced {
		s.notify()
	}
	s.ch <- &snap
	if snap.Status == status.Verified {
		h.closeLocked(s)
	}
}

func (h *Hub) closeLocked(s *Subscription) {
	if s.done {
		return
	}
	s.done = true
	delete(h.all, s)
	removeKeyed(h.byReg, s.watch.Registration, s)
	s.notify()
	close(s.ch)
	if h.OnChange != nil {
		h.OnChange(-1)
	}
}

// notify tells the reader an event comes (Watch.Notify).
func (s *Subscription) notify() {
	if s.watch.Notify != nil {
		s.watch.Notify()
	}
}

// Len reports the open subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}

// CloseAll ends every subscription and refuses new ones, for shutdown. It
// returns once a re-check under way has stopped.
func (h *Hub) CloseAll() {
	h.mu.Lock()
	h.closed = true
	for s := range h.all {
		h.closeLocked(s)
	}
	h.mu.Unlock()
	h.stopRecheck()
	h.recheckerDone.Wait()
}

func add(set map[*Subscription]struct{}, s *Subscription) { set[s] = struct{}{} }

func addKeyed(m map[uuid.UUID]map[*Subscription]struct{}, k uuid.UUID, s *Subscription) {
	set := m[k]
	if set == nil {
		set = map[*Subscription]struct{}{}
		m[k] = set
	}
	set[s] = struct{}{}
}

func removeKeyed(m map[uuid.UUID]map[*Subscription]struct{}, k uuid.UUID, s *Subscription) {
	set := m[k]
	if set == nil {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(m, k)
	}
}
