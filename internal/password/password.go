// Package password hashes passwords with argon2id. Hashing costs 19 MiB and
// tens of milliseconds, so a Hasher lets only a bounded number run at once:
// a burst of sign-ups queues instead of exhausting memory.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/verifier/verifier/internal/heaproom"
)

// Params are argon2id's cost settings.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// OWASP is the minimum OWASP recommends for argon2id (m=19 MiB, t=2, p=1).
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Hasher hashes and checks passwords, at most Concurrency at a time.
type Hasher struct {
	params Params
	slots  chan struct{}
	// room is the heap its hashes' garbage may take between two
	// collections (see heaproom.Hold).
	room uint64
}

// cpus is GOMAXPROCS as the runtime chose it (the CPUs this process may
// use, cgroup limits included), read before main can raise it with
// LeaveRoom.
var cpus = runtime.GOMAXPROCS(0)

// LeaveRoom raises GOMAXPROCS above the number of hashes that run at once,
// so hashing never holds every P. With one P per CPU and one hash per CPU,
// a burst of sign-ups left nothing for the rest of the service: every
// goroutine the mail and push paths wake (relay, broker, mailer, SMTP
// client) queued behind a hash until the scheduler preempted it, up to
// 10 ms a hop (register answer → mail p50 25 ms at c=8). With spare Ps,
// those goroutines run at once on a thread of their own and the kernel
// shares the CPUs, favouring the thread that just woke; the hashes lose
// only the CPU the rest actually uses. The number of hashes at once, and
// so their memory, stays one per CPU. Call it from main, before anything
// starts.
func LeaveRoom() {
	runtime.GOMAXPROCS(cpus + spareProcs(cpus))
}

// spareProcs is half as many Ps again as CPUs, at least one: enough that
// the request, relay and mailer goroutines never wait for a P, few enough
// that they do not thrash the CPUs' caches.
func spareProcs(cpus int) int { return max(1, cpus/2) }

// NewHasher returns a Hasher with the given cost that runs at most
// concurrency hashes at once; 0 means one per CPU.
func NewHasher(p Params, concurrency int) *Hasher {
	if concurrency <= 0 {
		concurrency = cpus
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrency), room: roomHashes * uint64(p.Memory) * 1024}
}

// roomHashes is how many hashes may run between two collections: 8 (152
// MiB above the live heap at OWASP's minimum) took the collections to
// about one every eight hashes and a registration 3–4 ms of CPU cheaper on
// 2 CPUs (make bench; room for 4 collected twice as often). The live heap
// a collection finds holds the hashes then in flight, so the room does not
// grow with the number of CPUs: the same one collection every eight hashes
// on 64.
const roomHashes = 8

// Hash returns the PHC string of password with a fresh random salt. It waits
// for a free slot, or returns ctx's error if the caller gives up first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.params.Memory, h.params.Time, h.params.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC string phc, using the
// parameters recorded in phc so old hashes keep working after a cost change.
func (h *Hasher) Verify(ctx context.Context, password, phc string) (bool, error) {
	p, salt, key, err := parse(phc)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		heaproom.Hold(h.room)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to hash a password: %w", ctx.Err())
	}
}

func (h *Hasher) release() {
	heaproom.Release()
	<-h.slots
}

var errFormat = errors.New("password: not an argon2id PHC string")

func parse(phc string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errFormat
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errFormat
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errFormat
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, errFormat
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, errFormat
	}
	return p, salt, key, nil
}
