// Package heaproom sets how much garbage the heap may hold between two
// collections while the service is busy, so that the garbage collector
// runs a few times a second instead of after every few MiB allocated.
//
// Why: the service's live heap is small (about 2 MiB idle, under 20 MiB
// while a mail backlog drains or confirmations pour in), and Go's default (GOGC=100) collects
// once the heap has grown by as much as is live. A mail backlog of
// 3,000 emails a second or verifyEmail at c=64 allocates about 200 MiB a
// second, so the collector ran ten to twenty times a second, each cycle
// some 30 ms of CPU, and took 9–14 % of it (make bench -profile,
// GODEBUG=gctrace=1); GOGC=400 made each email 15–20 % cheaper. A
// password hash allocates 19 MiB at once and drops it: with the default,
// every other hash was collected and its memory handed back to the kernel
// between two, about 3–4 ms of page faults per registration.
//
// The room is the heap the collector lets grow above the live heap before
// it runs again. While the process allocates fast, it is what busyEvery
// of allocation takes (at most maxBusyRoom); while a Hold is in place
// (passwords are being hashed), at least what the holder asked for. Once
// neither lasts (linger after the last hash, or after the last collection
// that found the process busy), GOGC is put back and the heap shrinks to
// its usual size: an idle service keeps its small footprint. GOGC is set
// again after each collection from the live heap it found; a large live
// heap (thousands of subscriptions) keeps GOGC at its value, its own share
// being more than the room. An operator's GOGC is left alone, and
// GOMEMLIMIT still caps the heap.
package heaproom

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

const (
	// busyEvery is how much allocation time the room should hold while
	// the process allocates fast: the collector then runs about four
	// times a second, whatever the load, each cycle marking the same
	// live heap. At 100 ms (about GOGC=200 at that load) the gain was
	// within the noise; at 250 ms, emails and verifications were 3–11 %
	// cheaper in CPU (make bench, A/B).
	busyEvery = 250 * time.Millisecond
	// maxBusyRoom bounds the room that allocating fast earns: the most
	// a burst of work adds to the resident memory.
	maxBusyRoom = 64 << 20
	// minBusyRoom: below this much room, GOGC's own share of the live
	// heap is left alone (an almost idle process).
	minBusyRoom = 8 << 20
	// linger is how long the room stays after the last hash or the last
	// busy collection: work comes in bursts with gaps between them, and
	// each change of GOGC takes effect only at the next cycle.
	linger = 2 * time.Second
	// maxGCPercent bounds GOGC while the room is kept, for a live heap so
	// small that the room would be dozens of times its size.
	maxGCPercent = 2000
)

// Keep sets the room from now on. Call it from main, before the work
// starts; the process's GOGC is the room's to change afterwards, unless
// the GOGC environment variable is set.
func Keep() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	room.mu.Lock()
	defer room.mu.Unlock()
	if room.on {
		return
	}
	if room.base = gcPercent(); room.base < 0 {
		// The collector is off (debug.SetGCPercent(-1)): nothing to do.
		return
	}
	room.on, room.percent = true, room.base
	room.lastAllocs, room.lastGC = allocated(), time.Now()
	room.armLocked()
}

// Hold asks for at least bytes of room until the matching Release (and
// for linger after the last one): a password hash, whose 19 MiB each
// would otherwise be collected one or two hashes apart.
func Hold(bytes uint64) { room.hold(bytes) }

// Release ends a Hold.
func Release() { room.release() }

// heapRoom is the process's collector setting; one per process, as GOGC
// is.
type heapRoom struct {
	mu sync.Mutex
	on bool
	// base is GOGC as it was, put back when no room is wanted.
	base int
	// holders counts the Holds in place; held is the most one asked for,
	// heldUntil when a released one stops counting.
	holders   int
	held      uint64
	heldUntil time.Time
	// busy is the room the allocation rate earned at the last
	// collection, busyUntil when it stops counting.
	busy      uint64
	busyUntil time.Time
	// lastAllocs and lastGC are the bytes allocated in all and the time
	// at the last collection.
	lastAllocs uint64
	lastGC     time.Time
	// kept: GOGC is raised, to percent, for a heap goal of goal bytes.
	kept    bool
	percent int
	goal    uint64
	timer   *time.Timer
	// linger is the package's linger but in tests; changed, a test hook,
	// is called with each GOGC set.
	linger  time.Duration
	changed func(percent int)
}

var room heapRoom

func (r *heapRoom) lingerFor() time.Duration {
	if r.linger > 0 {
		return r.linger
	}
	return linger
}

func (r *heapRoom) hold(bytes uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.holders++
	if r.held < bytes {
		r.held = bytes
		r.setLocked(time.Now())
	}
}

func (r *heapRoom) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.holders--
	if r.holders == 0 {
		r.heldUntil = time.Now().Add(r.lingerFor())
		r.scheduleLocked()
	}
}

// wanted is the room asked for at now: 0 when none is.
func (r *heapRoom) wantedLocked(now time.Time) uint64 {
	var want uint64
	if r.holders > 0 || now.Before(r.heldUntil) {
		want = r.held
	} else {
		r.held = 0
	}
	if now.Before(r.busyUntil) {
		want = max(want, r.busy)
	}
	return want
}

// setLocked sets GOGC for the room wanted now, or puts it back.
func (r *heapRoom) setLocked(now time.Time) {
	want := r.wantedLocked(now)
	if want == 0 {
		if r.kept {
			r.kept, r.goal = false, 0
			r.setPercent(r.base)
		}
		return
	}
	// While hashes hold room, the goal does not come down. The live heap a
	// collection finds holds the hashes then in flight (19 MiB each), so
	// a goal of live + room rose and fell by a hash from one cycle to the
	// next, and each fall let the runtime's scavenger hand a hash's worth
	// of free pages back to the kernel, for the next hash to fault in
	// again page by page: about 170 page faults per sign-up, 60 with the
	// goal held (perf record -e page-faults, /proc/PID/stat).
	live := liveHeap()
	r.kept, r.goal = true, goalFor(live, want, r.goal, r.held > 0)
	r.setPercent(percentFor(live, r.goal-live, r.base))
	r.scheduleLocked()
}

// goalFor is the heap goal for room want above live; while hashes hold
// room, never below the last goal, floor (see setLocked).
func goalFor(live, want, floor uint64, hashing bool) uint64 {
	goal := live + want
	if hashing {
		goal = max(goal, floor)
	}
	return goal
}

func (r *heapRoom) setPercent(p int) {
	if p == r.percent {
		return
	}
	r.percent = p
	debug.SetGCPercent(p)
	if r.changed != nil {
		r.changed(p)
	}
}

// scheduleLocked makes sure GOGC is looked at again once the room wanted
// may have lapsed, even if no collection comes (an idle process).
func (r *heapRoom) scheduleLocked() {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = time.AfterFunc(r.lingerFor(), r.lapse)
}

func (r *heapRoom) lapse() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = nil
	r.setLocked(time.Now())
}

// afterGC is told of the end of each collection: it measures how fast
// the process allocated since the previous one, and sets GOGC from the
// live heap this one found.
func (r *heapRoom) afterGC(*gcMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.armLocked()
	now, allocs := time.Now(), allocated()
	r.collected(now, allocs)
	r.setLocked(now)
}

// collected notes a collection at now with allocs bytes allocated in all.
func (r *heapRoom) collected(now time.Time, allocs uint64) {
	if elapsed := now.Sub(r.lastGC); elapsed > 0 && allocs >= r.lastAllocs {
		if room := busyRoom(allocs-r.lastAllocs, elapsed); room > 0 {
			r.busy, r.busyUntil = room, now.Add(r.lingerFor())
		}
	}
	r.lastAllocs, r.lastGC = allocs, now
}

// busyRoom is the room earned by allocating bytes in elapsed: what
// busyEvery of it takes, or 0 below minBusyRoom.
func busyRoom(bytes uint64, elapsed time.Duration) uint64 {
	room := min(uint64(float64(bytes)*busyEvery.Seconds()/elapsed.Seconds()), maxBusyRoom)
	if room < minBusyRoom {
		return 0
	}
	return room
}

// percentFor is the GOGC that puts the goal room above live, never below
// base nor above maxGCPercent.
func percentFor(live, room uint64, base int) int {
	p := maxGCPercent
	if live > 0 {
		p = int(min(room*100/live, maxGCPercent))
	}
	return min(max(p, base), max(base, maxGCPercent))
}

// armLocked asks to be told of the end of the next collection. A
// finalizer runs once per object, after the cycle that found it
// unreachable; renewing it each time keeps one call per cycle, on the
// runtime's finalizer goroutine.
func (r *heapRoom) armLocked() {
	runtime.SetFinalizer(&gcMark{}, r.afterGC)
}

// gcMark holds a pointer so that it is not a tiny allocation: those share
// a block with other objects and their finalizer may never run.
type gcMark struct{ _ *int }

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 { return readUint64("/gc/heap/live:bytes") }

// allocated is the bytes allocated on the heap since the process started.
func allocated() uint64 { return readUint64("/gc/heap/allocs:bytes") }

// gcPercent is GOGC as set now (-1: off).
func gcPercent() int { return int(int64(readUint64("/gc/gogc:percent"))) }

func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
