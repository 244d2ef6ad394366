package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkVerifyEmailC64 is the verifyEmail load of bench/ (64 clients,
// every address watched on its own websocket) run in-process, so pprof can
// see it. With PROFILE_DIR set it writes cpu.pprof, block.pprof and
// mutex.pprof of the verify phase alone (the registrations before it are
// argon2id, which would drown everything else):
//
//	PROFILE_DIR=/tmp/prof go test -run '^$' -bench VerifyEmailC64 -benchtime 1x .
func BenchmarkVerifyEmailC64(b *testing.B) {
	const n, regClients, clients = 600, 8, 64
	// B.Loop does not allow the timer stopped at the end of an iteration.
	for range b.N {
		b.StopTimer()
		s := startService(b, svcOptions{})
		s.waitReady(b, 200)
		watches := make([]string, n)
		var wg sync.WaitGroup
		next := make(chan int)
		for range regClients {
			wg.Go(func() {
				for i := range next {
					watches[i] = s.register(b, fmt.Sprintf("prof-%d@example.com", i))
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		tokens := map[string]string{}
		for _, m := range s.sink.Collect(b, n, 2*time.Minute) {
			tokens[m.To[0]] = tokenFrom(b, m)
		}
		subs := make([]*sub, n)
		for i := range n {
			subs[i] = s.subscribe(b, transportWS, watches[i])
			subs[i].expect("UNVERIFIED")
		}

		stop := startProfiles(b)
		b.StartTimer()
		start := time.Now()
		next = make(chan int)
		for range clients {
			wg.Go(func() {
				for i := range next {
					r := s.gql(b, verifyQ, map[string]any{"t": tokens[fmt.Sprintf("prof-%d@example.com", i)]})
					require.Empty(b, r.Errors)
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		elapsed := time.Since(start)
		// Every subscriber sees it (the latency is bench/'s to measure).
		for _, w := range subs {
			w.expect("VERIFIED")
		}
		b.StopTimer()
		stop()
		b.StartTimer()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "verify/s")
	}
}

// BenchmarkRegisterC8 is the register load of bench/ (8 clients, new
// addresses, real SMTP) run in-process, so pprof can see where the CPU
// that argon2id does not use goes. With PROFILE_DIR set it writes the
// profiles of the whole phase:
//
//	PROFILE_DIR=/tmp/prof go test -run '^$' -bench RegisterC8 -benchtime 1x .
func BenchmarkRegisterC8(b *testing.B) {
	const n, clients = 400, 8
	for range b.N {
		b.StopTimer()
		s := startService(b, svcOptions{})
		s.waitReady(b, 200)
		stop := startProfiles(b)
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range clients {
			wg.Go(func() {
				for i := range next {
					s.register(b, fmt.Sprintf("reg-%d@example.com", i))
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		s.sink.Collect(b, n, 2*time.Minute)
		elapsed := time.Since(start)
		b.StopTimer()
		stop()
		b.StartTimer()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "register/s")
	}
}

// startProfiles starts CPU, block and mutex profiling into PROFILE_DIR, if
// set, and returns what ends it.
func startProfiles(b *testing.B) func() {
	dir := os.Getenv("PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	require.NoError(b, os.MkdirAll(dir, 0o755))
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	require.NoError(b, err)
	require.NoError(b, pprof.StartCPUProfile(cpu))
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(5)
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		for _, name := range []string{"block", "mutex"} {
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			require.NoError(b, err)
			require.NoError(b, pprof.Lookup(name).WriteTo(f, 0))
			f.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}
}
