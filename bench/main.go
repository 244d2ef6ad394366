// Command bench drives the verifier service through its public API and
// prints the figures of BENCHMARKS.md in one table: registrations per
// second against the machine's argon2id-only ceiling measured in the same
// run, register answer → mail accepted by SMTP, verifyEmail throughput and
// answer → VERIFIED at the subscriber, memory and goroutines per idle
// subscription, and mail throughput from a backlog to SMTP.
//
// The service runs as a child process (the binary built from the module
// root), on a fresh database, sending to a real SMTP server (go-smtp) in
// this process. Backends: embedded (SQLite, in-process broker), rabbitmq
// (AMQP_URL) and postgres (POSTGRES_URL and AMQP_URL).
//
//	go run ./bench                      # embedded, plus the others whose URLs are set
//	go run ./bench -backends embedded   # one backend
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/verifier/verifier/internal/heaproom"
	"github.com/verifier/verifier/internal/password"
)

type options struct {
	regClients, verifyClients, resendClients int
	regFor, ceilingFor                       time.Duration
	regRounds, ceilingGoroutines             int
	idle                                     int
	profileDir                               string
}

func main() {
	var o options
	// The ceiling hashes under the collector setting the service uses.
	heaproom.Keep()
	def := []string{"embedded"}
	if os.Getenv("AMQP_URL") != "" {
		def = append(def, "rabbitmq")
		if os.Getenv("POSTGRES_URL") != "" {
			def = append(def, "postgres")
		}
	}
	backends := flag.String("backends", strings.Join(def, ","), "comma-separated: embedded (SQLite, in-process broker), rabbitmq (AMQP_URL), postgres (POSTGRES_URL + AMQP_URL)")
	bin := flag.String("bin", "", "verifier binary (default: built from the module root)")
	flag.IntVar(&o.regClients, "c-register", 8, "concurrent register clients")
	flag.IntVar(&o.verifyClients, "c-verify", 64, "concurrent verifyEmail clients")
	flag.IntVar(&o.resendClients, "c-resend", 64, "concurrent resend clients filling the mail backlog")
	flag.DurationVar(&o.regFor, "register-for", 15*time.Second, "how long the register phase runs (it also makes the accounts the later phases use)")
	flag.IntVar(&o.regRounds, "register-rounds", 3, "rounds the register phase is cut into, the argon2id-only ceiling measured before each and after the last")
	flag.DurationVar(&o.ceilingFor, "ceiling-for", 3*time.Second, "how long each measurement of the argon2id-only ceiling runs")
	flag.IntVar(&o.ceilingGoroutines, "ceiling-goroutines", 2, "goroutines hashing for the ceiling")
	flag.StringVar(&o.profileDir, "profile", "", "write the service's CPU profiles of the register, mail and verify phases into this folder (BACKEND-register.pprof, BACKEND-mail.pprof, BACKEND-verify.pprof; go tool pprof reads them), and the bench process's own beside them (BACKEND-PHASE-bench.pprof)")
	flag.IntVar(&o.idle, "idle", 5000, "idle subscriptions opened, one websocket each")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, strings.Split(*backends, ","), *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, names []string, bin string) error {
	dir, err := os.MkdirTemp("", "verifier-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "verifier")
		fmt.Fprintln(os.Stderr, "building the service")
		b := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	var cols []string
	results := map[string]*result{}
	for _, n := range names {
		be := backend{name: n}
		switch n {
		case "embedded":
		case "rabbitmq", "postgres":
			if be.amqpURL = os.Getenv("AMQP_URL"); be.amqpURL == "" {
				return fmt.Errorf("%s needs AMQP_URL", n)
			}
			if n == "postgres" {
				if be.postgres = os.Getenv("POSTGRES_URL"); be.postgres == "" {
					return fmt.Errorf("postgres needs POSTGRES_URL")
				}
			}
		default:
			return fmt.Errorf("unknown backend %q", n)
		}
		fmt.Fprintf(os.Stderr, "== %s\n", n)
		r, err := measure(ctx, o, bin, dir, be)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		cols = append(cols, n)
		results[n] = r
	}
	printTable(os.Stdout, o, cols, results)
	return nil
}

// ceiling is the machine's argon2id-only throughput: how many hashes per
// second g goroutines do with nothing else running, what registrations per
// second are measured against, and the CPU time one hash took (this
// process's user + system time ÷ hashes), to compare with what a
// registration costs.
type ceiling struct {
	perSec float64
	cpu    time.Duration
	// procs is GOMAXPROCS while it hashed, when not the default.
	procs int
}

// ratio is the registrations over the hashes the ceiling would have done
// in the same time: each round's time at the mean of the ceilings
// measured right before and right after it.
func (r *result) ratio() float64 {
	var hashes float64
	for i, d := range r.rounds {
		hashes += d.Seconds() * (r.ceilings[i].perSec + r.ceilings[i+1].perSec) / 2
	}
	return float64(r.regN) / hashes
}

// spareShare is the ceiling with the service's GOMAXPROCS over the one
// measured right before it.
func (r *result) spareShare() float64 {
	return r.spareCeiling.perSec / r.ceilings[len(r.ceilings)-1].perSec
}

func hashCeiling(g int, d time.Duration) ceiling {
	// Through the service's own Hasher, with its heap room (the bench
	// calls heaproom.Keep as the service does): the ceiling is
	// argon2id under the same collector setting, not one that collects
	// and page-faults more.
	h := password.NewHasher(password.OWASP, g)
	// Warm (see warmup): the first hashes after an idle spell fault
	// their 19 MiB in page by page, some 500 faults and 5 ms of CPU per
	// hash for a few seconds. Measured cold, the ceiling read 66–70
	// hashes/s where it is 80–88 warm.
	hashFor(h, g, warmup)
	cpu0 := processCPU()
	start := time.Now()
	n := hashFor(h, g, d)
	elapsed := time.Since(start)
	c := ceiling{perSec: float64(n) / elapsed.Seconds(), cpu: (processCPU() - cpu0) / time.Duration(n)}
	// The hashes' garbage goes back to the kernel now, before the phase
	// that follows: left to the runtime's scavenger, it went back during
	// the register round, on the CPUs the service was measured on (a
	// fifth of this process's CPU in that phase, pprof).
	debug.FreeOSMemory()
	return c
}

// spareCeiling is the ceiling with the Ps the service runs with
// (password.LeaveRoom: one spare beside the hashes, so the mail and push
// paths never wait for one). The same hashes cost more: every goroutine
// argon2 starts (eight per hash) wakes a thread for the idle P (2,400
// against 400 context switches a second, perf stat), and the runtime's
// scavenger, which finds no free P otherwise, hands free heap back to
// the kernel for the next hashes to fault in again (GODEBUG=scavtrace=1:
// 147 MiB against none in 13 s; 5,000–12,000 page faults a second
// against none). Beside the ceiling measured just before it, it says
// what the spare P costs hashing alone, apart from everything else a
// registration does.
func spareCeiling(g int, d time.Duration) ceiling {
	prev := runtime.GOMAXPROCS(0)
	password.LeaveRoom()
	defer runtime.GOMAXPROCS(prev)
	fmt.Fprintf(os.Stderr, "argon2id-only ceiling with the service's GOMAXPROCS (%d): %d goroutines for %s\n", runtime.GOMAXPROCS(0), g, d)
	c := hashCeiling(g, d)
	c.procs = runtime.GOMAXPROCS(0)
	return c
}

// warmup is how long the ceiling hashes, and each register round
// registers, before it is measured. After an idle spell the heap has
// given the hashes' memory back to the kernel, and the first hashes fault
// it in again page by page: in the bench process (the ceiling) and in the
// service alike, which idles while the ceiling is measured (perf stat -I
// on the service: 24,000–50,000 page faults in a round's first second,
// some 60 a second after it). Each is measured warm, as a burst of
// sign-ups runs after its first second.
const warmup = 3 * time.Second

// hashFor hashes on g goroutines for d and returns how many hashes it did.
func hashFor(h *password.Hasher, g int, d time.Duration) int64 {
	var n atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			for time.Since(start) < d {
				if _, err := h.Hash(context.Background(), "correct horse battery"); err != nil {
					panic(err) // only a context's end fails it
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return n.Load()
}

// processCPU is the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type result struct {
	// The argon2id-only ceiling measured right before each register
	// round and right after the last round's last email, the service
	// idle; rounds are the rounds' lengths. Each round is compared with
	// the ceilings around it, so a machine whose speed drifts by the
	// minute (a shared VM: 78 to 98 hashes/s across one session's runs)
	// is compared with itself at the same time.
	ceilings []ceiling
	rounds   []time.Duration
	// spareCeiling is measured right after the last ceiling, with the
	// service's GOMAXPROCS.
	spareCeiling ceiling
	regPerSec    float64
	regN         int
	// CPU time per registration of the service and of this process (the
	// clients and the SMTP server) during the register phase.
	regCPU, regBenchCPU time.Duration
	// The service's garbage collections per registration: each hash
	// leaves 19 MiB of garbage.
	regGCs float64
	// The same for a verification, from verifyEmail to the push.
	verifyCPU, verifyBenchCPU time.Duration
	mailP50, mailP99          time.Duration
	mailPerSec                float64
	mailN                     int
	// CPU time per email of the service and of this process (the SMTP
	// server taking the mail) while the backlog drains.
	mailCPU, mailBenchCPU    time.Duration
	verifyPerSec             float64
	verifyN                  int
	pushP50, pushP99         time.Duration
	idleRSSKiB, idleRoutines float64
	idleN                    int
}

// idleWatched is how many unverified addresses the idle subscriptions
// watch between them.
const idleWatched = 10

func measure(ctx context.Context, o options, bin, dir string, be backend) (*result, error) {
	sk, err := startSink()
	if err != nil {
		return nil, err
	}
	defer sk.close()
	var env []string
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		env = append(env, "PPROF_ADDR="+port)
	}
	s, err := startService(ctx, bin, dir, be, sk, env...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	profile := func(phase string, d time.Duration) func() error {
		if o.profileDir == "" {
			return func() error { return nil }
		}
		svc := s.cpuProfile(ctx, env[0][len("PPROF_ADDR="):], d, filepath.Join(o.profileDir, be.name+"-"+phase+".pprof"))
		// The bench process shares the CPUs, so its own cost is half the
		// story of a phase's figures.
		self := selfProfile(filepath.Join(o.profileDir, be.name+"-"+phase+"-bench.pprof"))
		return func() error { return errors.Join(self(), svc()) }
	}
	r := &result{}
	prefix := fmt.Sprintf("b%d-%s", time.Now().UnixNano()%1e9, be.name)

	// Register at c=8: throughput, and answer → mail per address, in
	// rounds with the ceiling measured around and between them.
	var (
		mu       sync.Mutex
		answered = map[string]time.Time{}
		watches  = map[string]string{}
		seq      atomic.Int64
		firstErr error
		regTime  time.Duration
		measured int
		svcCPU   float64
		gcs      float64
		benchCPU time.Duration
	)
	const cpuMetric, gcMetric = "process_cpu_seconds_total", "go_gc_duration_seconds_count"
	rounds := max(1, o.regRounds)
	per := o.regFor / time.Duration(rounds)
	for round := range rounds {
		fmt.Fprintf(os.Stderr, "argon2id-only ceiling: %d goroutines for %s\n", o.ceilingGoroutines, o.ceilingFor)
		r.ceilings = append(r.ceilings, hashCeiling(o.ceilingGoroutines, o.ceilingFor))
		fmt.Fprintf(os.Stderr, "register, round %d of %d: %d clients, %s of warm-up then %s measured\n", round+1, rounds, o.regClients, warmup, per)
		// The clients start with the warm-up and go on through the
		// measured part: it starts with them in full flow, and counts
		// the registrations answered from then on.
		warm := time.Now()
		from := warm.Add(warmup)
		var wg sync.WaitGroup
		for range o.regClients {
			wg.Go(func() {
				for time.Since(warm) < warmup+per && ctx.Err() == nil {
					addr := fmt.Sprintf("%s-%d@example.com", prefix, seq.Add(1))
					w, err := s.register(addr)
					at := time.Now()
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					if err == nil {
						answered[addr], watches[addr] = at, w
						if !at.Before(from) {
							measured++
						}
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Until(from))
		m0, err := s.metrics(cpuMetric, gcMetric)
		if err != nil {
			wg.Wait()
			return nil, err
		}
		bench0 := processCPU()
		// The first round's: the bench process hashes between rounds.
		regProfile := func() error { return nil }
		if round == 0 {
			regProfile = profile("register", per)
		}
		wg.Wait()
		elapsed := time.Since(from)
		if firstErr != nil {
			return nil, fmt.Errorf("register: %w", firstErr)
		}
		r.rounds = append(r.rounds, elapsed)
		regTime += elapsed
		if err := regProfile(); err != nil {
			return nil, err
		}
		if err := sk.waitTotal(len(answered), time.Minute); err != nil {
			return nil, err
		}
		// Once every email is out, so each registration's whole path
		// counts.
		m1, err := s.metrics(cpuMetric, gcMetric)
		if err != nil {
			return nil, err
		}
		svcCPU += m1[cpuMetric] - m0[cpuMetric]
		gcs += m1[gcMetric] - m0[gcMetric]
		benchCPU += processCPU() - bench0
	}
	r.regN = measured
	if r.regN == 0 {
		return nil, errors.New("register: no registration answered")
	}
	r.regPerSec = float64(r.regN) / regTime.Seconds()
	r.regCPU = time.Duration(svcCPU * float64(time.Second) / float64(r.regN))
	r.regGCs = gcs / float64(r.regN)
	r.regBenchCPU = benchCPU / time.Duration(r.regN)
	fmt.Fprintf(os.Stderr, "argon2id-only ceiling again: %d goroutines for %s\n", o.ceilingGoroutines, o.ceilingFor)
	r.ceilings = append(r.ceilings, hashCeiling(o.ceilingGoroutines, o.ceilingFor))
	r.spareCeiling = spareCeiling(o.ceilingGoroutines, o.ceilingFor)
	// The later phases' readings.
	var (
		m0, m1  map[string]float64
		bench0  time.Duration
		start   time.Time
		elapsed time.Duration
	)
	var lat []time.Duration
	addrs := make([]string, 0, len(answered))
	for a, at := range answered {
		d, _ := sk.first(a)
		lat = append(lat, max(0, d.at.Sub(at)))
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	r.mailP50, r.mailP99 = quantile(lat, 0.50), quantile(lat, 0.99)
	if len(addrs) < 64 {
		return nil, fmt.Errorf("only %d registrations: run the register phase longer", len(addrs))
	}

	// Mail throughput: hold SMTP, queue one resend per address, release,
	// and time the backlog's way out.
	time.Sleep(1100 * time.Millisecond) // past RESEND_COOLDOWN=1s of the last registration
	fmt.Fprintf(os.Stderr, "mail: backlog of %d resends\n", len(addrs))
	before := sk.count()
	sk.hold()
	if err := forEach(addrs, o.resendClients, func(a string) error {
		_, err := s.gql(resendQ, map[string]any{"e": a})
		return err
	}); err != nil {
		sk.release()
		return nil, fmt.Errorf("resend: %w", err)
	}
	mailProfile := profile("mail", time.Second)
	if m0, err = s.metrics(cpuMetric); err != nil {
		return nil, err
	}
	bench0 = processCPU()
	t0 := time.Now()
	sk.release()
	if err := sk.waitTotal(before+len(addrs), 2*time.Minute); err != nil {
		return nil, err
	}
	r.mailN = len(addrs)
	r.mailPerSec = float64(len(addrs)) / time.Since(t0).Seconds()
	r.mailBenchCPU = (processCPU() - bench0) / time.Duration(r.mailN)
	if m1, err = s.metrics(cpuMetric); err != nil {
		return nil, err
	}
	r.mailCPU = time.Duration((m1[cpuMetric] - m0[cpuMetric]) * float64(time.Second) / float64(r.mailN))
	if err := mailProfile(); err != nil {
		return nil, err
	}
	// The last emails' SENT records are announced through the outbox
	// (RabbitMQ): the verify phase starts once they are out, or its first
	// status changes would wait behind them.
	if err := s.waitOutboxEmpty(time.Minute); err != nil {
		return nil, err
	}

	// verifyEmail at c=64, each address watched on its own websocket.
	fmt.Fprintf(os.Stderr, "verify: %d watched addresses, %d clients\n", len(addrs), o.verifyClients)
	watchers := make(map[string]*watcher, len(addrs))
	var wmu sync.Mutex
	err = forEach(addrs, 16, func(a string) error {
		w, err := s.watch(watches[a])
		if err != nil {
			return err
		}
		wmu.Lock()
		watchers[a] = w
		wmu.Unlock()
		select {
		case <-w.first:
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("no first event")
		}
	})
	defer func() {
		for _, w := range watchers {
			w.close()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	verifiedAnswer := make(map[string]time.Time, len(addrs))
	tokens := make(map[string]string, len(addrs))
	for _, a := range addrs {
		d, _ := sk.last(a)
		tokens[a] = d.token()
	}
	// The phase lasts well under a second at thousands per second; the
	// profile's window covers it and the pushes after it.
	verifyProfile := profile("verify", 2*time.Second)
	if m0, err = s.metrics(cpuMetric); err != nil {
		return nil, err
	}
	bench0 = processCPU()
	start = time.Now()
	err = forEach(addrs, o.verifyClients, func(a string) error {
		if _, err := s.gql(verifyQ, map[string]any{"t": tokens[a]}); err != nil {
			return err
		}
		at := time.Now()
		mu.Lock()
		verifiedAnswer[a] = at
		mu.Unlock()
		return nil
	})
	elapsed = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("verifyEmail: %w", err)
	}
	r.verifyN = len(addrs)
	r.verifyPerSec = float64(len(addrs)) / elapsed.Seconds()
	lat = lat[:0]
	for _, a := range addrs {
		select {
		case at := <-watchers[a].verified:
			lat = append(lat, max(0, at.Sub(verifiedAnswer[a])))
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("no VERIFIED event for a subscriber within 30s")
		}
	}
	r.pushP50, r.pushP99 = quantile(lat, 0.50), quantile(lat, 0.99)
	m1, err = s.metrics(cpuMetric)
	if err != nil {
		return nil, err
	}
	r.verifyCPU = time.Duration((m1[cpuMetric] - m0[cpuMetric]) * float64(time.Second) / float64(r.verifyN))
	r.verifyBenchCPU = (processCPU() - bench0) / time.Duration(r.verifyN)
	if err := verifyProfile(); err != nil {
		return nil, err
	}
	for _, w := range watchers {
		w.close()
	}
	watchers = nil

	// Idle subscriptions on a fresh process, so earlier phases' heap does
	// not hide (or inflate) what the subscriptions cost. This one stops
	// first: on RabbitMQ both would consume the shared mail queue, each
	// dead-lettering the other's events (their seal keys differ).
	s.stop()
	if o.idle > 0 {
		fmt.Fprintf(os.Stderr, "idle: %d subscriptions\n", o.idle)
		if err := idleCost(ctx, o, bin, dir, be, sk, r); err != nil {
			return nil, fmt.Errorf("idle subscriptions: %w", err)
		}
	}
	return r, nil
}

// idleCost opens o.idle subscriptions, one websocket each, on a fresh
// service and reads its RSS and goroutine count before and after.
func idleCost(ctx context.Context, o options, bin, dir string, be backend, sk *sink, r *result) error {
	var env []string
	if o.profileDir != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		env = append(env, "PPROF_ADDR="+port)
	}
	s, err := startService(ctx, bin, dir, be, sk, env...)
	if err != nil {
		return err
	}
	defer s.stop()
	mailed := sk.count()
	var watches []string
	for i := range idleWatched {
		w, err := s.register(fmt.Sprintf("idle-%d-%d@example.com", time.Now().UnixNano(), i))
		if err != nil {
			return err
		}
		watches = append(watches, w)
	}
	// One subscription first, so lazily built parts (gqlgen's caches,
	// the websocket upgrader's pools) count in the baseline.
	w0, err := s.watch(watches[0])
	if err != nil {
		return err
	}
	defer w0.close()
	<-w0.first
	if err := s.waitRSSSettled(time.Minute); err != nil {
		return err
	}
	const rss, gor = "process_resident_memory_bytes", "go_goroutines"
	m0, err := s.metrics(rss, gor)
	if err != nil {
		return err
	}
	idx := make([]int, o.idle)
	for i := range idx {
		idx[i] = i
	}
	var mu sync.Mutex
	var ws []*watcher
	defer func() {
		for _, w := range ws {
			w.close()
		}
	}()
	err = forEach(idx, 16, func(i int) error {
		w, err := s.watch(watches[i%len(watches)])
		if err != nil {
			return err
		}
		mu.Lock()
		ws = append(ws, w)
		mu.Unlock()
		select {
		case <-w.first:
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("no first event")
		}
	})
	if err != nil {
		return err
	}
	// Idle: once the service's memory settles after the burst of upgrades.
	if err := s.waitRSSSettled(time.Minute); err != nil {
		return err
	}
	m1, err := s.metrics(rss, gor)
	if err == nil && o.profileDir != "" {
		// What the open subscriptions hold, and where their goroutines wait.
		addr := env[0][len("PPROF_ADDR="):]
		err = errors.Join(
			s.saveProfile(ctx, addr, "heap", filepath.Join(o.profileDir, be.name+"-idle-heap.pprof")),
			s.saveProfile(ctx, addr, "goroutine", filepath.Join(o.profileDir, be.name+"-idle-goroutine.pprof")))
	}
	if err != nil {
		return err
	}
	r.idleN = o.idle
	r.idleRSSKiB = (m1[rss] - m0[rss]) / 1024 / float64(o.idle)
	r.idleRoutines = (m1[gor] - m0[gor]) / float64(o.idle)
	// Leave nothing in RabbitMQ's durable queues for the next run's
	// service, whose seal key is another, to find and dead-letter: these
	// addresses' emails are out, and so is every event.
	if err := sk.waitTotal(mailed+idleWatched, time.Minute); err != nil {
		return err
	}
	return s.waitOutboxEmpty(time.Minute)
}

// forEach runs f on every item with c workers and returns the first error.
func forEach[T any](items []T, c int, f func(T) error) error {
	next := make(chan T)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range c {
		wg.Go(func() {
			for it := range next {
				if err := f(it); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return first
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// ms2 is ms with two decimals, for costs under a millisecond.
func ms2(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

// joinCeilings is f of each ceiling, in the order measured.
func joinCeilings(cs []ceiling, f func(ceiling) string) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = f(c)
	}
	return strings.Join(out, " / ")
}

func printTable(w0 *os.File, o options, cols []string, rs map[string]*result) {
	w := tabwriter.NewWriter(w0, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintf(w0, "\nargon2id-only ceiling: %d goroutines hashing for %s after %s of warm-up in the bench process (m=%d KiB, t=%d, p=%d), the service idle, before each of the %d register rounds and after the last; each round measured for %s after %s of warm-up\n\n",
		o.ceilingGoroutines, o.ceilingFor, warmup, password.OWASP.Memory, password.OWASP.Time, password.OWASP.Threads, max(1, o.regRounds), o.regFor/time.Duration(max(1, o.regRounds)), warmup)
	fmt.Fprintf(w0, "machine: %s\n\n", machine())
	head := "| figure\t target\t " + strings.Join(cols, "\t ") + "\t"
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, "|---\t---\t"+strings.Repeat("---\t", len(cols)))
	row := func(name, target string, f func(*result) string) {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = f(rs[c])
		}
		fmt.Fprintf(w, "| %s\t %s\t %s\t\n", name, target, strings.Join(cells, "\t "))
	}
	row("argon2id-only ceiling hashes/s, around the rounds", "", func(r *result) string {
		return joinCeilings(r.ceilings, func(c ceiling) string { return fmt.Sprintf("%.1f", c.perSec) })
	})
	row(fmt.Sprintf("registrations/s ÷ ceiling, c=%d", o.regClients), "≥ 0.90", func(r *result) string {
		return fmt.Sprintf("%.2f (%.1f/s, n=%d)", r.ratio(), r.regPerSec, r.regN)
	})
	// Where the CPU of a registration goes: the ratio above is about
	// hash ÷ (service + bench process) when the CPUs are saturated.
	row("CPU per registration ms: service / bench process", "", func(r *result) string {
		return ms(r.regCPU) + " / " + ms(r.regBenchCPU)
	})
	// What the spare P (password.LeaveRoom) costs hashing alone, and the
	// ratio against a ceiling measured with it: the rest of the gap is
	// what a registration does besides hashing.
	row("argon2id-only ceiling hashes/s at the service's GOMAXPROCS, after the last: ÷ the last", "", func(r *result) string {
		return fmt.Sprintf("%.1f (GOMAXPROCS %d): %.2f", r.spareCeiling.perSec, r.spareCeiling.procs, r.spareShare())
	})
	row("registrations/s ÷ ceiling with the service's GOMAXPROCS", "", func(r *result) string {
		return fmt.Sprintf("%.2f", r.ratio()/r.spareShare())
	})
	row("service's GC cycles per registration", "", func(r *result) string { return fmt.Sprintf("%.2f", r.regGCs) })
	row("CPU per argon2id-only hash ms, around the rounds", "", func(r *result) string {
		return joinCeilings(r.ceilings, func(c ceiling) string { return ms(c.cpu) })
	})
	row(fmt.Sprintf("register answer → mail at SMTP p50 / p99 ms, c=%d", o.regClients), "≤ 10 / ≤ 50", func(r *result) string {
		return ms(r.mailP50) + " / " + ms(r.mailP99)
	})
	row(fmt.Sprintf("verifyEmail/s, c=%d", o.verifyClients), "≥ 3,000", func(r *result) string {
		return fmt.Sprintf("%.0f (n=%d)", r.verifyPerSec, r.verifyN)
	})
	row("CPU per verification ms: service / bench process", "", func(r *result) string {
		return ms2(r.verifyCPU) + " / " + ms2(r.verifyBenchCPU)
	})
	row(fmt.Sprintf("verifyEmail answer → VERIFIED at subscriber p50 / p99 ms, c=%d", o.verifyClients), "p99 ≤ 50", func(r *result) string {
		return ms(r.pushP50) + " / " + ms(r.pushP99)
	})
	row("RSS per idle subscription KiB", "≤ 24", func(r *result) string {
		return fmt.Sprintf("%.1f (n=%d)", r.idleRSSKiB, r.idleN)
	})
	row("goroutines per idle subscription", "≤ 3", func(r *result) string { return fmt.Sprintf("%.2f", r.idleRoutines) })
	row("mail throughput backlog → SMTP, mails/s", "≥ 4,000", func(r *result) string {
		return fmt.Sprintf("%.0f (n=%d)", r.mailPerSec, r.mailN)
	})
	// With both CPUs busy, the rate is about 2 s ÷ (service + bench
	// process) per email.
	row("CPU per email ms: service / bench process", "", func(r *result) string {
		return ms2(r.mailCPU) + " / " + ms2(r.mailBenchCPU)
	})
	w.Flush()
}
