package password

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestPercentFor(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
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

// The room is kept while hashes run, renewed at each collection, and GOGC
// is put back once hashing stopped for the linger. GOGC is the process's:
// not parallel with anything that reads it.
func TestHeapRoomWhileHashing(t *testing.T) {
	base := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(base) })
	set := make(chan int, 64)
	r := &heapRoom{on: true, linger: time.Millisecond, changed: func(p int) { set <- p }}
	next := func() int { t.Helper(); return testkit.Receive(t, set, "GOGC set") }

	r.enter(1 << 30) // a room far above any test's live heap
	require.Greater(t, next(), 100, "raised as the first hash starts")
	require.Equal(t, maxGCPercent, gcPercent())
	r.enter(1 << 30)
	r.leave()
	runtime.GC()
	require.Greater(t, next(), 100, "set again after a collection, a hash still running")
	r.leave()
	require.Equal(t, 100, next(), "put back after the linger")
	require.Equal(t, 100, gcPercent())
	runtime.GC()
	select {
	case p := <-set:
		t.Fatalf("GOGC set to %d after the room was given back", p)
	default:
	}
}

// An operator's GOGC is theirs.
func TestKeepHeapRoomLeavesGOGCSet(t *testing.T) {
	t.Setenv("GOGC", "150")
	KeepHeapRoom()
	room.mu.Lock()
	defer room.mu.Unlock()
	require.False(t, room.on)
}
