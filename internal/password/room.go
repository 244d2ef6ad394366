package password

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// KeepHeapRoom lets the heap hold the garbage of several hashes while
// passwords are being hashed, so that the garbage collector neither runs
// for every hash nor hands their memory back to the kernel between two.
//
// Why: each argon2id hash allocates 19 MiB and drops it. With Go's default
// (GOGC=100) and a service whose live heap is a few MiB, the heap goal was
// about twice that, so a burst of sign-ups collected about every other hash
// (0.34–0.48 cycles per registration) and, after each cycle, the scavenger
// returned the freed hash memory to the kernel, whose next touch faulted it
// back in page by page: about 280 page faults and 3–4 ms of system CPU per
// registration, 12–15 % of its cost (make bench, BENCHMARKS.md).
//
// While a hash runs, and for hashRoomLinger after the last one, the
// collector's goal is kept above the live heap by roomHashes hashes'
// memory (GOGC is set again after each cycle from the live heap it found,
// which includes the hashes in flight); then GOGC is put back. A large
// live heap (thousands of subscriptions) keeps GOGC at its value: its own
// share is then more than the room. An operator's own GOGC is left alone,
// and GOMEMLIMIT still caps the heap. Call it from main, before anything
// hashes.
func KeepHeapRoom() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	room.mu.Lock()
	room.on = true
	room.mu.Unlock()
}

// roomHashes is how many hashes may run between two collections: 8 (152
// MiB above the live heap at OWASP's minimum) took the collections to
// about one every eight hashes and a registration 3–4 ms of CPU cheaper on
// 2 CPUs (make bench; room for 4 collected twice as often). The live heap
// a collection finds holds the hashes then in flight, so the room does not
// grow with the number of CPUs: the same one collection every eight hashes
// on 64.
const roomHashes = 8

// hashRoomLinger is how long the room stays after the last hash: sign-ups
// come in bursts with gaps between them, and each change of GOGC takes
// effect only at the next cycle.
const hashRoomLinger = 2 * time.Second

// maxGCPercent bounds GOGC while the room is kept, for a live heap so
// small that the room would be dozens of times its size.
const maxGCPercent = 2000

// heapRoom is the process's collector setting while hashes run; one per
// process, as GOGC is.
type heapRoom struct {
	mu sync.Mutex
	on bool
	// hashing counts the hashes running; bytes is the room they asked for.
	hashing int
	bytes   uint64
	// kept: GOGC is raised, and base is the value to put back.
	kept  bool
	base  int
	timer *time.Timer
	// linger is hashRoomLinger but in tests.
	linger time.Duration
	// changed, a test hook, is called with each GOGC set.
	changed func(percent int)
}

var room heapRoom

// enter is called as a hash starts, with the room its Hasher needs.
func (r *heapRoom) enter(bytes uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.hashing++
	r.bytes = max(r.bytes, bytes)
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.kept {
		return
	}
	r.base = gcPercent()
	if r.base < 0 {
		// GC off (debug.SetGCPercent(-1) somewhere): nothing to raise.
		return
	}
	r.kept = true
	r.setLocked()
	r.armLocked()
}

// leave is called as a hash ends.
func (r *heapRoom) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.hashing--
	if r.hashing == 0 && r.kept {
		linger := r.linger
		if linger == 0 {
			linger = hashRoomLinger
		}
		r.timer = time.AfterFunc(linger, r.restore)
	}
}

// restore puts GOGC back once hashing has stopped for hashRoomLinger.
func (r *heapRoom) restore() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hashing > 0 || !r.kept {
		return
	}
	r.kept, r.timer, r.bytes = false, nil, 0
	debug.SetGCPercent(r.base)
	if r.changed != nil {
		r.changed(r.base)
	}
}

// setLocked sets GOGC so that the next goal is the live heap plus the
// room, or GOGC's own value if that is more.
func (r *heapRoom) setLocked() {
	p := percentFor(liveHeap(), r.bytes, r.base)
	debug.SetGCPercent(p)
	if r.changed != nil {
		r.changed(p)
	}
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

// armLocked asks to be told of the end of the next collection: GOGC is a
// factor of the live heap, which the in-flight hashes make jump, so it is
// set again from each cycle's live heap. A finalizer runs once per object,
// after the cycle that found it unreachable; renewing it each time keeps
// one call per cycle, on the runtime's finalizer goroutine, while the room
// is kept.
func (r *heapRoom) armLocked() {
	runtime.SetFinalizer(&gcMark{}, r.afterGC)
}

// gcMark holds a pointer so that it is not a tiny allocation: those share
// a block with other objects and their finalizer may never run.
type gcMark struct{ _ *int }

func (r *heapRoom) afterGC(*gcMark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.kept {
		return
	}
	r.setLocked()
	r.armLocked()
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 { return readUint64("/gc/heap/live:bytes") }

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
