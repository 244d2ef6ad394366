package heaproom

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

const mib = 1 << 20

func TestPercentFor(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		live, room uint64
		base, want int
	}{
		{"small live heap: the room sets the goal", 10 * mib, 150 * mib, 100, 1500},
		{"large live heap: GOGC's own share is more", 400 * mib, 150 * mib, 100, 100},
		{"an operator's higher base stays", 50 * mib, 100 * mib, 300, 300},
		{"a tiny live heap is bounded", 1 * mib, 150 * mib, 100, maxGCPercent},
		{"no collection yet", 0, 150 * mib, 100, maxGCPercent},
		{"a base above the bound wins", 1 * mib, 150 * mib, 5000, 5000},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, percentFor(c.live, c.room, c.base))
		})
	}
}

func TestGoalFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name              string
		live, want, floor uint64
		hashing           bool
		goal              uint64
	}{
		{"hashing, fewer hashes in flight than last time: the goal stays", 39 * mib, 152 * mib, 211 * mib, true, 211 * mib},
		{"hashing, more in flight: the goal rises", 59 * mib, 152 * mib, 191 * mib, true, 211 * mib},
		{"busy without hashes: the goal follows the live heap", 20 * mib, 64 * mib, 211 * mib, false, 84 * mib},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.goal, goalFor(c.live, c.want, c.floor, c.hashing))
		})
	}
}

func TestBusyRoom(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		bytes   uint64
		elapsed time.Duration
		want    uint64
	}{
		{"busyEvery's share of a second's allocation", 160 * mib, time.Second, uint64(160 * mib * busyEvery.Seconds())},
		{"the same rate over a short cycle", 8 * mib, 50 * time.Millisecond, uint64(160 * mib * busyEvery.Seconds())},
		{"bounded", 10000 * mib, time.Second, maxBusyRoom},
		{"almost idle: no room", uint64(float64(minBusyRoom-mib) / busyEvery.Seconds()), time.Second, 0},
		{"just enough", uint64(minBusyRoom / busyEvery.Seconds()), time.Second, minBusyRoom},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, busyRoom(c.bytes, c.elapsed))
		})
	}
}

// testRoom is a room that reports each GOGC it sets. GOGC is the
// process's: the tests that use one do not run in parallel.
func testRoom(t *testing.T) (*heapRoom, func() int) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	set := make(chan int, 64)
	r := &heapRoom{on: true, base: 100, percent: 100, linger: 20 * time.Millisecond, changed: func(p int) { set <- p }}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.on = false
		if r.timer != nil {
			r.timer.Stop()
		}
	})
	return r, func() int { t.Helper(); return testkit.Receive(t, set, "GOGC set") }
}

// A Hold raises GOGC at once, keeps it while held, and GOGC is put back
// once the last one was released for the linger.
func TestHoldKeepsRoom(t *testing.T) {
	r, next := testRoom(t)
	r.hold(1 << 30) // a room far above any test's live heap
	require.Equal(t, maxGCPercent, next(), "raised as the first hash starts")
	require.Equal(t, maxGCPercent, gcPercent())
	r.hold(1 << 30)
	r.release()
	// GOGC looked at again a linger later, as the timer would, without
	// sleeping for it (the room reads no clock a test can move).
	r.mu.Lock()
	r.setLocked(time.Now().Add(2 * r.linger))
	r.mu.Unlock()
	require.Equal(t, maxGCPercent, gcPercent(), "kept past the linger while one is held")
	r.release()
	require.Equal(t, 100, next(), "put back after the linger")
	require.Equal(t, 100, gcPercent())
}

// Allocating fast earns room for the linger after the collection that saw
// it; allocating slowly earns none.
func TestBusyCollectionsKeepRoom(t *testing.T) {
	r, next := testRoom(t)
	t0 := time.Now().Add(-2 * time.Second)
	collect := func(at time.Time, allocs uint64) (busy uint64, kept bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.collected(at, allocs)
		r.setLocked(at)
		return r.busy, r.kept
	}
	r.lastGC = t0
	_, kept := collect(t0.Add(time.Second), 20*mib)
	require.False(t, kept, "20 MiB/s: no room")

	busy, kept := collect(time.Now(), 20*mib+1000*mib)
	require.True(t, kept, "about 1 GiB/s: room")
	require.Equal(t, uint64(maxBusyRoom), busy, "bounded")
	require.Greater(t, next(), 100, "raised")
	require.Equal(t, 100, next(), "put back once no busy collection came for the linger")
}

// The room follows the collections: Keep arms the hook, and each cycle
// sets GOGC again from what it measured.
func TestKeepFollowsCollections(t *testing.T) {
	r, next := testRoom(t)
	r.hold(1 << 30)
	require.Equal(t, maxGCPercent, next())
	r.mu.Lock()
	r.percent = 0 // as if set elsewhere: the next cycle sets it again
	r.armLocked()
	r.mu.Unlock()
	runtime.GC()
	require.Equal(t, maxGCPercent, next(), "set again after a collection, a hash still running")
	r.release()
	require.Equal(t, 100, next(), "put back after the linger")
}

// An operator's GOGC is theirs.
func TestKeepLeavesGOGCSet(t *testing.T) {
	t.Setenv("GOGC", "150")
	Keep()
	room.mu.Lock()
	defer room.mu.Unlock()
	require.False(t, room.on)
}
